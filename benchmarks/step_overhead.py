"""Train-step overhead of `MixModel` + `MajorMix`, and of `ClassProgress`.

Measures the median time of one training step of the CIFAR ResNet-32
(`kmix.models.resnet_cifar.resnet32`: 3 stages x 5 basic blocks, 16/32/64
channels) on 32x32x3 batches of 128, for three models built alike:

- `plain`: the network as a plain `keras.Model` (no `MajorMix`);
- `mix`: a `kmix.MixModel` with one `MajorMix` after the first stage;
- `mix+progress`: the same `MixModel` with `kmix.callbacks.ClassProgress`
  installed (training accuracy and feature-gradient norms, no clean pass).

The models are timed alternately in one process, after warm-up, in rounds
(the order rotates every round) so that drifts of the machine's load hit all
three alike. Each timed step is one call of the compiled train function on
a batch already in memory, synchronised by reading its loss. Labels follow a
step-imbalanced distribution (5 classes x 5000, 5 x 50), so `MajorMix` mixes
most rows.

Targets: `mix / plain <= 1.03` (core issue) and
`mix+progress / mix <= 1.10` (diagnostics issue). The last line printed is
the `mix / plain` ratio.

Usage:

    python benchmarks/step_overhead.py [--rounds=5] [--steps=10] [--warmup=5]
    python benchmarks/step_overhead.py --quick   # a smoke run, 2 rounds of 3 steps
"""

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

CLASS_COUNTS = [5000] * 5 + [50] * 5
FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_integer("rounds", 5, "Timing rounds; each times every model.")
    flags.DEFINE_integer("steps", 10, "Timed steps per model per round.")
    flags.DEFINE_integer("warmup", 5, "Untimed steps per model before timing.")
    flags.DEFINE_integer("batch_size", 128, "Batch size.")
    flags.DEFINE_enum(
        "jit_compile",
        "auto",
        ["auto", "true", "false"],
        "`jit_compile` of `compile` (Keras' auto: XLA on GPU only).",
    )
    flags.DEFINE_bool(
        "quick", False, "Smoke run: 2 rounds of 3 steps, 2 warm-up steps."
    )


def build_models(jit_compile="auto", seed=0):
    """Returns `{"plain": ..., "mix": ..., "mix+progress": ...}`, compiled.

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

    keras.utils.set_random_seed(seed)
    base = resnet32(10, class_counts=CLASS_COUNTS, mix_at=(), name="plain")
    plain = compiled(keras.Model(base.inputs, base.outputs, name="plain"))
    keras.utils.set_random_seed(seed)
    mix = compiled(
        resnet32(
            10, class_counts=CLASS_COUNTS, mix_at=("stage1",), strength=0.5
        )
    )
    keras.utils.set_random_seed(seed)
    tracked = compiled(
        resnet32(
            10, class_counts=CLASS_COUNTS, mix_at=("stage1",), strength=0.5
        )
    )
    progress = kmix.callbacks.ClassProgress()
    progress.set_model(tracked)
    progress.on_train_begin()
    progress.on_epoch_begin(0)
    tracked._kmix_progress = progress  # keep it alive with the model
    return {"plain": plain, "mix": mix, "mix+progress": tracked}


def batch_iterator(batch_size, seed=0):
    import numpy as np
    import tensorflow as tf

    rng = np.random.RandomState(seed)
    p = np.asarray(CLASS_COUNTS, "float64") / sum(CLASS_COUNTS)
    x = rng.rand(batch_size, 32, 32, 3).astype("float32")
    y = rng.choice(len(CLASS_COUNTS), size=batch_size, p=p).astype("int32")
    return iter(tf.data.Dataset.from_tensors((x, y)).repeat())


def timed_step(model, iterator):
    start = time.perf_counter()
    logs = model.train_function(iterator)
    if hasattr(logs, "get_value"):
        logs = logs.get_value()
    float(logs["loss"])  # waits for the step to finish
    return time.perf_counter() - start


def measure(rounds, steps, warmup, batch_size, jit_compile="auto"):
    """Returns `{name: [per-step seconds]}` of the alternately timed models."""
    models = build_models(jit_compile)
    iterator = batch_iterator(batch_size)
    for model in models.values():
        model.make_train_function()
        for _ in range(warmup):
            timed_step(model, iterator)
    times = {name: [] for name in models}
    names = list(models)
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            for _ in range(steps):
                times[name].append(timed_step(models[name], iterator))
    return times


def run(rounds, steps, warmup, batch_size, jit_compile="auto"):
    """Measures, prints a report and returns `(mix / plain, progress / mix)`."""
    import numpy as np
    import tensorflow as tf

    times = measure(rounds, steps, warmup, batch_size, jit_compile)
    medians = {name: float(np.median(t)) for name, t in times.items()}
    devices = [d.device_type for d in tf.config.list_physical_devices()]
    print(
        f"devices: {devices}; batch {batch_size}; {rounds} rounds x {steps} steps "
        f"per model after {warmup} warm-up steps; jit_compile={jit_compile}"
    )
    for name, t in times.items():
        print(
            f"{name:>13}: median {1000 * medians[name]:8.2f} ms/step "
            f"(p10 {1000 * np.percentile(t, 10):.2f}, p90 {1000 * np.percentile(t, 90):.2f}, "
            f"{batch_size / medians[name]:.0f} images/s)"
        )
    mix_ratio = medians["mix"] / medians["plain"]
    progress_ratio = medians["mix+progress"] / medians["mix"]
    print(
        f"ClassProgress overhead: mix+progress / mix = {progress_ratio:.3f} (target <= 1.10)"
    )
    print(f"MajorMix overhead: mix / plain = {mix_ratio:.3f} (target <= 1.03)")
    print(f"ratio: {mix_ratio:.3f}")
    return mix_ratio, progress_ratio


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
    jit_compile = {"auto": "auto", "true": True, "false": False}[
        FLAGS.jit_compile
    ]
    run(rounds, steps, warmup, FLAGS.batch_size, jit_compile)


if __name__ == "__main__":
    define_flags()
    app.run(main)
