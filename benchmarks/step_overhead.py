"""Train-step overhead of `MixModel` + `MajorMix`, and of `ClassProgress`.

Measures the time of one training step of the CIFAR ResNet-32
(`kmix.models.resnet_cifar.resnet32`: 3 stages x 5 basic blocks, 16/32/64
channels) on 32x32x3 batches of 128, on one Keras backend
(`--backend=tensorflow|jax|torch`), for up to three models built alike:

- `plain`: the network as a plain `keras.Model` (no `MajorMix`);
- `mix`: a `kmix.MixModel` with one `MajorMix` after the first stage;
- `mix+progress`: the same `MixModel` with `kmix.callbacks.ClassProgress`
  installed (training accuracy and feature-gradient norms, no clean pass).

The backend is chosen by setting `KERAS_BACKEND` before Keras is first
imported (nothing imports Keras before `main` runs); one process measures one
backend. With `--pytorch_loop=contiguous,channels_last`, the plain PyTorch
loop of `benchmarks/torch_resnet32.py` (same network, batch, data,
optimizer and threads) is timed in the same rounds, so that its speed ratio
to the Keras models is paired against the machine's load.
`benchmarks/backends.py` runs every backend this way, one process each.

Every model is compiled with `SGD(0.1, momentum=0.9)` and sparse
cross-entropy on logits, and trained by `train_on_batch` on one batch of
random images in [0, 1) already converted to a backend tensor (the same
arrays as the PyTorch loop); each timed step ends when its loss is read.
Labels follow a step-imbalanced distribution (5 classes x 5000, 5 x 50),
so `MajorMix` mixes most rows. The models are timed alternately, after
warm-up, in rounds (in the orders of a balanced Latin square: each model
at each position, and after each other model, equally often) so that
drifts of the machine's load hit all of them alike. Each round times `--steps` steps of
every model (a window); a model's step time is the median of its window
medians, and a ratio is the median over rounds of the per-round ratios.

Threads (`--threads`, default every core the process may use, which is
every backend's own default): TensorFlow's intra- and inter-op pools are
set to it, PyTorch's `set_num_threads` too; for JAX, whose XLA CPU client
uses one thread per core, a smaller number goes into `XLA_FLAGS`
(`intra_op_parallelism_threads=N`, and `--xla_cpu_multi_thread_eigen=false`
for 1).

Targets: `mix / plain <= 1.03` (core issue) and
`mix+progress / mix <= 1.10` (diagnostics issue). The last line printed is
the `mix / plain` ratio.

Usage:

    python benchmarks/step_overhead.py [--backend=tensorflow] [--rounds=5] \\
        [--steps=10] [--warmup=5] [--models=plain,mix,mix+progress]
    python benchmarks/step_overhead.py --quick   # a smoke run, 2 rounds of 3 steps
    python benchmarks/step_overhead.py --backend=jax --json_out=/tmp/jax.json
"""

import json
import os
import platform
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

BACKENDS = ("tensorflow", "jax", "torch")
MODELS = ("plain", "mix", "mix+progress")
CLASS_COUNTS = [5000] * 5 + [50] * 5
FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_enum(
        "backend",
        None,
        list(BACKENDS),
        "Keras backend; default: $KERAS_BACKEND, else tensorflow.",
    )
    flags.DEFINE_integer("rounds", 5, "Timing rounds; each times every model.")
    flags.DEFINE_integer("steps", 10, "Timed steps per model per round.")
    flags.DEFINE_integer("warmup", 5, "Untimed steps per model before timing.")
    flags.DEFINE_integer("batch_size", 128, "Batch size.")
    flags.DEFINE_list("models", list(MODELS), f"Models to time, of {MODELS}.")
    flags.DEFINE_list(
        "pytorch_loop",
        [],
        "Also time benchmarks/torch_resnet32.py's plain PyTorch loop in this "
        "process, in these memory formats (contiguous, channels_last), "
        "alternately with the Keras models.",
    )
    flags.DEFINE_integer(
        "threads", 0, "CPU threads (see the module docstring); 0: every core."
    )
    flags.DEFINE_enum(
        "jit_compile",
        "auto",
        ["auto", "true", "false"],
        "`jit_compile` of `compile` (Keras' auto: XLA on GPU only for "
        "TensorFlow, always on JAX, never on PyTorch).",
    )
    flags.DEFINE_string("json_out", None, "Also write the result here.")
    flags.DEFINE_bool(
        "quick", False, "Smoke run: 2 rounds of 3 steps, 2 warm-up steps."
    )


def default_threads():
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def select_backend(backend=None):
    """Sets `KERAS_BACKEND` before Keras is imported; returns the backend.

    Raises:
        RuntimeError: Keras is already imported with another backend.
    """
    backend = backend or os.environ.get("KERAS_BACKEND") or "tensorflow"
    if "keras" in sys.modules:
        current = sys.modules["keras"].backend.backend()
        if current != backend:
            raise RuntimeError(
                f"Keras is already imported with backend {current!r}; "
                f"cannot measure backend={backend!r} in this process. Run "
                "`benchmarks/step_overhead.py --backend=...` in a new process."
            )
    os.environ["KERAS_BACKEND"] = backend
    return backend


def set_threads(backend, threads, torch_too=False):
    """Sets the CPU threads of the backend (and of PyTorch if `torch_too`).

    Call it before the backend is imported: JAX reads `XLA_FLAGS` once.

    Returns:
        A dict describing the settings.
    """
    settings = {}
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
        settings["tensorflow"] = {"intra_op": threads, "inter_op": threads}
    elif backend == "jax":
        if threads == default_threads():
            settings["jax"] = f"XLA CPU default: one per core ({threads})"
        else:
            xla_flags = f"intra_op_parallelism_threads={threads}"
            if threads == 1:
                xla_flags = f"--xla_cpu_multi_thread_eigen=false {xla_flags}"
            os.environ["XLA_FLAGS"] = (
                f"{os.environ.get('XLA_FLAGS', '')} {xla_flags}".strip()
            )
            settings["jax"] = f"XLA_FLAGS={os.environ['XLA_FLAGS']}"
    if backend == "torch" or torch_too:
        import torch

        torch.set_num_threads(threads)
        settings["torch"] = {
            "num_threads": torch.get_num_threads(),
            "interop_threads": torch.get_num_interop_threads(),
        }
    return settings


def random_batch(batch_size, seed=0):
    """Returns NHWC float32 images in [0, 1) and step-imbalanced int labels."""
    import numpy as np

    rng = np.random.RandomState(seed)
    p = np.asarray(CLASS_COUNTS, "float64") / sum(CLASS_COUNTS)
    x = rng.rand(batch_size, 32, 32, 3).astype("float32")
    y = rng.choice(len(CLASS_COUNTS), size=batch_size, p=p).astype("int32")
    return x, y


def build_models(names=MODELS, jit_compile="auto", seed=0):
    """Returns `{name: model}` of the requested models, compiled.

    The `mix+progress` model has a `ClassProgress` installed as `fit` would
    (its train function is rebuilt with the hooks).
    """
    import keras

    import kmix
    from kmix.models.resnet_cifar import resnet32

    def compiled(model):
        model.compile(
            optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit_compile,
        )
        return model

    def mix_model():
        keras.utils.set_random_seed(seed)
        return compiled(
            resnet32(
                10, class_counts=CLASS_COUNTS, mix_at=("stage1",), strength=0.5
            )
        )

    models = {}
    if "plain" in names:
        keras.utils.set_random_seed(seed)
        base = resnet32(10, class_counts=CLASS_COUNTS, mix_at=(), name="plain")
        models["plain"] = compiled(
            keras.Model(base.inputs, base.outputs, name="plain")
        )
    if "mix" in names:
        models["mix"] = mix_model()
    if "mix+progress" in names:
        tracked = mix_model()
        progress = kmix.callbacks.ClassProgress()
        progress.set_model(tracked)
        progress.on_train_begin()
        progress.on_epoch_begin(0)
        tracked._kmix_progress = progress  # keep it alive with the model
        models["mix+progress"] = tracked
    return models


def timed_step(model, x, y):
    """Runs one training step; returns its seconds (the loss read back)."""
    start = time.perf_counter()
    logs = model.train_on_batch(x, y, return_dict=True)
    float(logs["loss"])  # waits for the step to finish
    return time.perf_counter() - start


def measure(
    rounds,
    steps,
    warmup,
    batch_size,
    names=MODELS,
    jit_compile="auto",
    pytorch_loop=(),
):
    """Returns `{name: [[seconds of each step] for each round]}`.

    `pytorch_loop` names memory formats of the plain PyTorch loop to time
    too, as `"pytorch_loop"` (contiguous) and `"pytorch_loop_channels_last"`.
    """
    from keras import ops

    x_np, y_np = random_batch(batch_size)
    x, y = ops.convert_to_tensor(x_np), ops.convert_to_tensor(y_np)
    steppers = {
        name: (lambda model=model: timed_step(model, x, y))
        for name, model in build_models(names, jit_compile).items()
    }
    if pytorch_loop:
        import torch_resnet32

        for memory_format in pytorch_loop:
            name = pytorch_loop_name(memory_format)
            steppers[name] = torch_resnet32.make_loop(x_np, y_np, memory_format)
    for step in steppers.values():
        for _ in range(warmup):
            step()
    times = {name: [] for name in steppers}
    names = list(steppers)
    for r in range(rounds):
        for name in balanced_order(names, r):
            times[name].append([steppers[name]() for _ in range(steps)])
    return times


def balanced_order(names, round_index):
    """The order of round `round_index`: rows of a Williams Latin square.

    Over `len(names)` rounds (twice that for an odd count) every name comes
    at every position once and right after every other name once, so that
    neither the position in a round nor the model timed just before favours
    any model.
    """
    n = len(names)
    first = [0] + [(k + 1) // 2 if k % 2 else n - k // 2 for k in range(1, n)]
    row = [(i + round_index) % n for i in first]
    if n % 2 and (round_index // n) % 2:
        row.reverse()
    return [names[i] for i in row]


def pytorch_loop_name(memory_format):
    if memory_format == "contiguous":
        return "pytorch_loop"
    return f"pytorch_loop_{memory_format}"


def summarize(times, batch_size):
    """Returns per-model statistics and the paired per-round ratios."""
    import numpy as np

    summary = {"models": {}, "ratios": {}}
    windows = {}
    for name, rounds in times.items():
        windows[name] = [float(np.median(w)) for w in rounds]
        flat = [t for w in rounds for t in w]
        median = float(np.median(windows[name]))
        summary["models"][name] = {
            "window_medians_s": windows[name],
            "median_s": median,
            "min_s": float(np.min(flat)),
            "p10_s": float(np.percentile(flat, 10)),
            "p90_s": float(np.percentile(flat, 90)),
            "images_per_s": batch_size / median,
            "best_window_images_per_s": batch_size / min(windows[name]),
        }

    def paired(top, bottom):
        per_round = [
            a / b for a, b in zip(windows[top], windows[bottom], strict=True)
        ]
        return {
            "per_round": per_round,
            "median": float(np.median(per_round)),
            "min": float(np.min(per_round)),
            "max": float(np.max(per_round)),
        }

    for top, bottom in (("mix", "plain"), ("mix+progress", "mix")):
        if top in windows and bottom in windows:
            summary["ratios"][f"{top}/{bottom}"] = paired(top, bottom)
    # Speed over PyTorch: images/s of a Keras model over the loop's, that
    # is the loop's step time over the model's, round by round.
    summary["speed_vs_pytorch"] = {}
    for reference in windows:
        if reference.startswith("pytorch_loop"):
            for name in windows:
                if not name.startswith("pytorch_loop"):
                    key = f"{name}/{reference}"
                    summary["speed_vs_pytorch"][key] = paired(reference, name)
    return summary


def cpu_model():
    """The CPU's model name (/proc/cpuinfo), or `platform.processor()`."""
    try:
        with open("/proc/cpuinfo") as f:
            return next(
                line.split(":", 1)[1].strip()
                for line in f
                if line.startswith("model name")
            )
    except (OSError, StopIteration):
        return platform.processor()


def machine():
    """A short description of the machine and the software versions."""
    import keras

    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "keras": keras.__version__,
    }


def framework_version(backend):
    if backend == "tensorflow":
        import tensorflow as tf

        return f"tensorflow {tf.__version__}"
    if backend == "jax":
        import jax

        return f"jax {jax.__version__}"
    import torch

    return f"torch {torch.__version__}"


def run(
    rounds,
    steps,
    warmup,
    batch_size,
    jit_compile="auto",
    backend=None,
    names=MODELS,
    threads=0,
    pytorch_loop=(),
):
    """Measures one backend, prints a report and returns the result dict.

    Keras must not be imported yet, or be imported with `backend`.
    """
    import numpy as np

    backend = select_backend(backend)
    threads = threads or default_threads()
    thread_settings = set_threads(backend, threads, bool(pytorch_loop))
    load_start = os.getloadavg()
    start = time.perf_counter()
    times = measure(
        rounds, steps, warmup, batch_size, names, jit_compile, pytorch_loop
    )
    result = {
        "backend": backend,
        "framework": framework_version(backend),
        "machine": machine(),
        "threads": thread_settings,
        "batch_size": batch_size,
        "rounds": rounds,
        "steps": steps,
        "warmup": warmup,
        "jit_compile": jit_compile,
        "data": "random float32 32x32x3 in [0, 1), step-imbalanced labels",
        "loadavg_start": list(load_start),
        "loadavg_end": list(os.getloadavg()),
        "wall_s": time.perf_counter() - start,
        **summarize(times, batch_size),
    }
    print(
        f"backend {backend} ({result['framework']}, Keras "
        f"{result['machine']['keras']}, threads {thread_settings}); batch "
        f"{batch_size}; {rounds} rounds x {steps} steps per model after "
        f"{warmup} warm-up steps; jit_compile={jit_compile}; load average "
        f"{load_start[0]:.2f} -> {result['loadavg_end'][0]:.2f}"
    )
    width = max(map(len, result["models"]))
    for name, stats in result["models"].items():
        print(
            f"{name:>{width}}: median {1000 * stats['median_s']:8.2f} ms/step "
            f"(min {1000 * stats['min_s']:.2f}, p90 {1000 * stats['p90_s']:.2f}, "
            f"{stats['images_per_s']:.0f} images/s)"
        )
    ratios = result["ratios"]
    if "mix+progress/mix" in ratios:
        r = ratios["mix+progress/mix"]
        print(
            f"ClassProgress overhead: mix+progress / mix = {r['median']:.3f} "
            f"(rounds {np.round(r['per_round'], 3).tolist()}; target <= 1.10)"
        )
    if "mix/plain" in ratios:
        r = ratios["mix/plain"]
        print(
            f"MajorMix overhead: mix / plain = {r['median']:.3f} "
            f"(rounds {np.round(r['per_round'], 3).tolist()}; target <= 1.03)"
        )
    for key, r in result["speed_vs_pytorch"].items():
        print(
            f"images/s, {key.replace('/', ' over ')}: {r['median']:.3f} "
            f"(rounds {np.round(r['per_round'], 3).tolist()})"
        )
    if "mix/plain" in ratios:
        print(f"ratio: {ratios['mix/plain']['median']:.3f}")
    return result


def main(argv):
    del argv
    if FLAGS.quick:
        rounds, steps, warmup = 2, 3, 2
    else:
        rounds, steps, warmup = FLAGS.rounds, FLAGS.steps, FLAGS.warmup
    for name, value in (
        ("rounds", rounds),
        ("steps", steps),
        ("batch_size", FLAGS.batch_size),
    ):
        if value < 1:
            raise app.UsageError(
                f"--{name} must be >= 1. Received: --{name}={value}."
            )
    unknown = sorted(set(FLAGS.models) - set(MODELS))
    if unknown or not FLAGS.models:
        raise app.UsageError(
            f"--models must name some of {MODELS}. Received: "
            f"--models={','.join(FLAGS.models)}."
        )
    unknown = sorted(set(FLAGS.pytorch_loop) - {"contiguous", "channels_last"})
    if unknown:
        raise app.UsageError(
            "--pytorch_loop must name memory formats of contiguous, "
            f"channels_last. Received: --pytorch_loop={','.join(FLAGS.pytorch_loop)}."
        )
    if FLAGS.threads < 0:
        raise app.UsageError(
            f"--threads must be >= 0. Received: --threads={FLAGS.threads}."
        )
    jit_compile = {"auto": "auto", "true": True, "false": False}[
        FLAGS.jit_compile
    ]
    result = run(
        rounds,
        steps,
        warmup,
        FLAGS.batch_size,
        jit_compile,
        backend=FLAGS.backend,
        names=tuple(FLAGS.models),
        threads=FLAGS.threads,
        pytorch_loop=tuple(FLAGS.pytorch_loop),
    )
    if FLAGS.json_out:
        with open(FLAGS.json_out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    define_flags()
    app.run(main)
