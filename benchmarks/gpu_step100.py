"""A short step-100 Fashion-MNIST run that needs no TensorFlow (GPU machine).

`kmix.data` builds `tf.data` pipelines, and the GPU machine lent to kmix's
sessions has no TensorFlow. This script trains the README's main job
without it, on the JAX backend with XLA by default: the IDX files are read
with NumPy (`kmix.data.idx_files.read_idx`), the step-100 training set is
chosen by kmix's own selection rule (`kmix.data.profiles`:
`imbalance_counts`, then `subsample_indices`, as `kmix.data.load` does with
its defaults, seed 0; both modules are pure NumPy, and `kmix.data` imports
TensorFlow only for its `tf.data` names), and `model.fit` trains on the
NumPy arrays.

It trains, one after the other, the models of `--models`, built alike as
`experiments/configs/quickstart.cfg` builds its model (`kmix.models
.small_cnn`, weight decay 2e-4, `SGD(0.1, momentum=0.9)` under
`kmix.schedules.WarmupStepDecay`, batch 128, `jit_compile=True`):

- `mix`: the `kmix.MixModel` with one `MajorMix` after stage 1
  (strength 0.5, major threshold 0.5);
- `plain`: the same network as a plain `keras.Model`, no `MajorMix`.

Unlike `kmix.data.load`, the training images are not augmented (no random
crops, which are `tf.data` code) and `fit` shuffles the arrays itself; the
images are scaled to [0, 1] once, in memory. A model's speed is the number
of training images over the median time of its epochs after the first (the
first compiles the step); the overhead is `mix` over `plain` epoch time.
Each model is then evaluated on the 10,000 test images (balanced accuracy,
and the mean accuracy of the major and minor classes).

Usage:

    python benchmarks/gpu_step100.py [--backend=jax] [--epochs=6] \\
        [--data_dir=/usr/share/datasets/fashion-mnist] [--json_out=step100.json]
    python benchmarks/gpu_step100.py --epochs=2 --max_per_class=600  # smoke run
"""

import json
import os
import platform
import time

from absl import app
from absl import flags
from step_overhead import BACKENDS
from step_overhead import framework_version
from step_overhead import select_backend

HERE = os.path.dirname(os.path.abspath(__file__))
DATA_DIRS = (
    os.path.join(os.path.dirname(HERE), ".gpu_data", "fashion-mnist"),
    "/usr/share/datasets/fashion-mnist",  # Debian's dataset-fashion-mnist
)
IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MODELS = ("mix", "plain")
NUM_CLASSES = 10
FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_enum(
        "backend", "jax", list(BACKENDS), "Keras backend (jax: XLA)."
    )
    flags.DEFINE_string(
        "data_dir",
        None,
        "Folder of the four Fashion-MNIST IDX files (.gz or not); default: "
        f"the first of {DATA_DIRS} that exists.",
    )
    flags.DEFINE_enum(
        "model", "small_cnn", ["small_cnn", "resnet32"], "kmix.models builder."
    )
    flags.DEFINE_list("models", list(MODELS), f"Models to train, of {MODELS}.")
    flags.DEFINE_integer("epochs", 6, "Epochs per model (>= 2).")
    flags.DEFINE_integer("batch_size", 128, "Batch size.")
    flags.DEFINE_float("imbalance_ratio", 100.0, "Step-profile ratio (>= 1).")
    flags.DEFINE_integer(
        "max_per_class",
        None,
        "Cap on each class's images before the profile (kmix.data.load's "
        "max_per_class), for smoke runs.",
    )
    flags.DEFINE_integer("seed", 0, "Seed of the selection, weights, mixing.")
    flags.DEFINE_string("json_out", None, "Also write the result here.")


def find_data_dir(data_dir=None):
    """The folder holding the IDX files; raises `FileNotFoundError`."""
    for candidate in [data_dir] if data_dir else DATA_DIRS:
        if os.path.isdir(candidate):
            return candidate
    raise FileNotFoundError(
        f"No Fashion-MNIST IDX folder: {data_dir or DATA_DIRS} does not exist."
    )


def load_step_data(data_dir, imbalance_ratio, max_per_class=None, seed=0):
    """The step-imbalanced training set and the test set, as NumPy arrays.

    Returns:
        A dict with `x_train`, `y_train`, `x_test`, `y_test` (float32
        images in [0, 1] of shape `(n, 28, 28, 1)`, int32 labels) and
        `class_counts`.
    """
    import numpy as np

    from kmix.data.idx_files import read_idx
    from kmix.data.profiles import class_order
    from kmix.data.profiles import imbalance_counts
    from kmix.data.profiles import subsample_indices

    arrays = {}
    for key, stem in IDX_FILES.items():
        names = [stem + ".gz", stem]
        found = [n for n in names if os.path.isfile(os.path.join(data_dir, n))]
        if not found:
            raise FileNotFoundError(
                f"{data_dir!r} lacks {stem}(.gz); it holds "
                f"{sorted(os.listdir(data_dir))}."
            )
        arrays[key] = read_idx(os.path.join(data_dir, found[0]))
    labels = arrays["train_labels"].astype("int64")
    available = np.bincount(labels, minlength=NUM_CLASSES)
    if max_per_class is not None:
        available = np.minimum(available, max_per_class)
    counts = imbalance_counts(
        available.tolist(),
        "step",
        imbalance_ratio,
        order=class_order(NUM_CLASSES, "natural", seed),
    )
    kept = subsample_indices(labels, counts, seed)

    def scaled(images):
        return (images[..., None] / np.float32(255)).astype("float32")

    return {
        "x_train": scaled(arrays["train_images"][kept]),
        "y_train": labels[kept].astype("int32"),
        "x_test": scaled(arrays["test_images"]),
        "y_test": arrays["test_labels"].astype("int32"),
        "class_counts": [int(c) for c in counts],
    }


def epoch_timer(stop_at=None):
    """A Keras callback whose `seconds` lists the time of each epoch; with
    `stop_at` (a `time.time()`), it stops `fit` after the first epoch past it."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self.start)
            if stop_at is not None and time.time() > stop_at:
                self.model.stop_training = True

    return EpochTimer()


def build_model(name, builder, class_counts, input_shape, seed):
    """The `mix` (`kmix.MixModel` + `MajorMix` after stage 1) or `plain` model."""
    import keras

    import kmix

    keras.utils.set_random_seed(seed)
    build = {
        "small_cnn": kmix.models.small_cnn,
        "resnet32": kmix.models.resnet32,
    }
    if name == "mix":
        return build[builder](
            NUM_CLASSES,
            input_shape=input_shape,
            class_counts=class_counts,
            mix_at=["stage1"],
            weight_decay=2e-4,
            strength=0.5,
            major_threshold=0.5,
            seed=seed,
        )
    base = build[builder](
        NUM_CLASSES,
        input_shape=input_shape,
        class_counts=class_counts,
        mix_at=[],
        weight_decay=2e-4,
    )
    return keras.Model(base.inputs, base.outputs, name="plain")


def train(name, data, builder, epochs, batch_size, seed):
    """Trains and evaluates one model; returns its result dict."""
    import keras
    import numpy as np

    import kmix

    model = build_model(
        name, builder, data["class_counts"], data["x_train"].shape[1:], seed
    )
    n_train = len(data["y_train"])
    steps_per_epoch = -(-n_train // batch_size)
    model.compile(
        optimizer=keras.optimizers.SGD(
            kmix.schedules.WarmupStepDecay(0.1, steps_per_epoch, epochs=epochs),
            momentum=0.9,
        ),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[kmix.metrics.BalancedAccuracy(NUM_CLASSES)],
        jit_compile=True,
    )
    timer = epoch_timer()
    print(f"--- {name}: {model.count_params()} weights", flush=True)
    history = model.fit(
        data["x_train"],
        data["y_train"],
        batch_size=batch_size,
        epochs=epochs,
        shuffle=True,
        callbacks=[timer],
        verbose=2,
    )
    test = model.evaluate(
        data["x_test"],
        data["y_test"],
        batch_size=1000,
        verbose=0,
        return_dict=True,
    )
    per_class = kmix.metrics.PerClassAccuracy(NUM_CLASSES)
    per_class.update_state(
        data["y_test"],
        model.predict(data["x_test"], batch_size=1000, verbose=0),
    )
    recall = np.asarray(keras.ops.convert_to_numpy(per_class.recall()))
    major = np.asarray(data["class_counts"]) == max(data["class_counts"])
    median = float(np.median(timer.seconds[1:]))
    return {
        "epoch_s": timer.seconds,
        "median_epoch_s": median,
        "images_per_s": n_train / median,
        "test_balanced_accuracy": float(test["balanced_accuracy"]),
        "test_major_accuracy": float(recall[major].mean()),
        "test_minor_accuracy": float(recall[~major].mean())
        if (~major).any()
        else None,
        "test_per_class_accuracy": recall.tolist(),
        "history": {
            k: [float(v) for v in vs] for k, vs in history.history.items()
        },
    }


def device_name(backend):
    """The accelerator (or CPU) the backend computes on."""
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.platform}: {device.device_kind}"
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return f"cuda: {torch.cuda.get_device_name(0)}"
    return f"cpu: {platform.processor() or platform.machine()}"


def nan_if_none(value):
    return float("nan") if value is None else value


def main(argv):
    del argv
    if FLAGS.epochs < 2:
        raise app.UsageError(
            "--epochs must be >= 2 (the first epoch compiles and is not "
            f"timed). Received: --epochs={FLAGS.epochs}."
        )
    if FLAGS.batch_size < 1:
        raise app.UsageError(
            f"--batch_size must be >= 1. Received: --batch_size={FLAGS.batch_size}."
        )
    if FLAGS.imbalance_ratio < 1:
        raise app.UsageError(
            "--imbalance_ratio must be >= 1. Received: "
            f"--imbalance_ratio={FLAGS.imbalance_ratio}."
        )
    if FLAGS.max_per_class is not None and FLAGS.max_per_class < 1:
        raise app.UsageError(
            f"--max_per_class must be >= 1. Received: --max_per_class={FLAGS.max_per_class}."
        )
    if not FLAGS.models or set(FLAGS.models) - set(MODELS):
        raise app.UsageError(
            f"--models must name some of {MODELS}. Received: "
            f"--models={','.join(FLAGS.models)}."
        )
    try:
        data_dir = find_data_dir(FLAGS.data_dir)
    except FileNotFoundError as error:
        raise app.UsageError(str(error)) from error
    backend = select_backend(FLAGS.backend)
    import keras

    start = time.perf_counter()
    data = load_step_data(
        data_dir, FLAGS.imbalance_ratio, FLAGS.max_per_class, FLAGS.seed
    )
    result = {
        "device": device_name(backend),
        "backend": backend,
        "framework": framework_version(backend),
        "keras": keras.__version__,
        "python": platform.python_version(),
        "model": FLAGS.model,
        "data": {
            "data_dir": data_dir,
            "class_counts": data["class_counts"],
            "train_images": len(data["y_train"]),
            "test_images": len(data["y_test"]),
            "augment": "none",
        },
        "epochs": FLAGS.epochs,
        "batch_size": FLAGS.batch_size,
        "jit_compile": True,
        "seed": FLAGS.seed,
        "models": {},
    }
    print(
        f"{result['device']}; {result['framework']}, Keras {keras.__version__}; "
        f"step-{FLAGS.imbalance_ratio:g} Fashion-MNIST, counts "
        f"{data['class_counts']}; {FLAGS.model}, {FLAGS.epochs} epochs, batch "
        f"{FLAGS.batch_size}",
        flush=True,
    )
    for name in FLAGS.models:
        result["models"][name] = train(
            name, data, FLAGS.model, FLAGS.epochs, FLAGS.batch_size, FLAGS.seed
        )
        stats = result["models"][name]
        print(
            f"{name}: {stats['images_per_s']:.0f} images/s (median epoch "
            f"{stats['median_epoch_s']:.2f} s, first {stats['epoch_s'][0]:.1f} s); "
            f"test balanced accuracy {stats['test_balanced_accuracy']:.4f} "
            f"(major {stats['test_major_accuracy']:.4f}, minor "
            f"{nan_if_none(stats['test_minor_accuracy']):.4f})",
            flush=True,
        )
    if {"mix", "plain"} <= set(result["models"]):
        result["overhead_mix_over_plain"] = (
            result["models"]["mix"]["median_epoch_s"]
            / result["models"]["plain"]["median_epoch_s"]
        )
        print(
            f"MajorMix overhead (mix / plain epoch time): "
            f"{result['overhead_mix_over_plain']:.3f}"
        )
    result["wall_s"] = time.perf_counter() - start
    if FLAGS.json_out:
        with open(FLAGS.json_out, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    define_flags()
    app.run(main)
