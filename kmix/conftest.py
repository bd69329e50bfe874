"""Runs the `>>>` examples in kmix's docstrings as doctests.

    .venv/bin/python -m pytest --doctest-modules kmix   (scripts/test.sh does)

Every example sees these names without importing them, as in Keras' own
docstrings: `keras`, `np` (NumPy), `tf` (TensorFlow), `kmix`, `keras_tuner`,
and a tiny class-imbalanced data set in Fashion-MNIST's shapes:

- `x_train`, `y_train`: 60 uint8 images of 28x28x1 with integer labels of 10
  classes, 10 images of each of classes 0-4 and 2 of each of classes 5-9;
  `class_counts` is that list of counts.
- `x_test`, `y_test`: 20 images, 2 of each class.
- `model`: a fresh, uncompiled `kmix.MixModel` over those images (a 3x3
  convolution, a `kmix.MajorMix`, a 10-way `Dense` head named "logits" that
  gives logits), built only for examples that use the name `model` before
  defining it.

Each example runs in its own empty working directory (a pytest `tmp_path`), so
examples may write files such as "runs/mix/class_progress.csv", and with a
fixed Keras seed, so printed numbers are reproducible. Option flags
(`ELLIPSIS`, `NORMALIZE_WHITESPACE`, `NUMBER`) are set in pytest.ini.

This file is for pytest only: kmix never imports it (//kmix excludes it).
"""

import os
import re

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

# Deprecated aliases (they warn on import) with no examples of their own.
collect_ignore = ["experiment_config.py", "weights.py"]

NUM_CLASSES = 10
CLASS_COUNTS = [10] * 5 + [2] * 5
TEST_PER_CLASS = 2


def _images(labels, seed):
    """uint8 images whose brightness grows with the label (learnable, tiny)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 128, size=(len(labels), 28, 28, 1))
    return (noise + 12 * np.asarray(labels)[:, None, None, None]).astype(
        "uint8"
    )


def _tiny_data():
    y_train = np.repeat(np.arange(NUM_CLASSES), CLASS_COUNTS).astype("int64")
    y_test = np.repeat(np.arange(NUM_CLASSES), TEST_PER_CLASS).astype("int64")
    return {
        "x_train": _images(y_train, seed=0),
        "y_train": y_train,
        "x_test": _images(y_test, seed=1),
        "y_test": y_test,
        "class_counts": list(CLASS_COUNTS),
    }


def _tiny_model():
    import keras

    import kmix

    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(4, 3, strides=2, activation="relu")(inputs)
    x = kmix.MajorMix(strength=0.5, seed=0)(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    outputs = keras.layers.Dense(NUM_CLASSES, name="logits")(x)
    return kmix.MixModel(inputs, outputs, class_counts=CLASS_COUNTS)


def _uses_name_before_defining(doctest_item, name):
    """Whether an example reads `name` before a line assigns it."""
    assigns = re.compile(rf"^{name}\s*=[^=]", re.M)
    reads = re.compile(rf"\b{name}\b")
    for example in doctest_item.dtest.examples:
        if assigns.search(example.source):
            return False
        if reads.search(example.source):
            return True
    return False


def _skip_without_fashion_mnist(doctest_item):
    """Skips examples that read Fashion-MNIST when Debian's copy is missing."""
    from kmix.data.sources import DEBIAN_FASHION_MNIST_DIR

    source = "".join(example.source for example in doctest_item.dtest.examples)
    reads_it = '"fashion_mnist"' in source or DEBIAN_FASHION_MNIST_DIR in source
    if reads_it and not os.path.isdir(DEBIAN_FASHION_MNIST_DIR):
        pytest.skip(
            f"needs Fashion-MNIST in {DEBIAN_FASHION_MNIST_DIR}: apt-get "
            "install dataset-fashion-mnist, or run scripts/setup.sh --test"
        )


@pytest.fixture(scope="session")
def _kmix_doctest_globals():
    import keras
    import keras_tuner
    import tensorflow as tf

    import kmix

    names = {
        "keras": keras,
        "keras_tuner": keras_tuner,
        "kmix": kmix,
        "np": np,
        "tf": tf,
    }
    names.update(_tiny_data())
    return names


@pytest.fixture(autouse=True)
def _kmix_doctest_namespace(
    request, doctest_namespace, _kmix_doctest_globals, tmp_path, monkeypatch
):
    """Fresh names, a fixed seed and an empty working directory per example."""
    import keras
    from _pytest.doctest import DoctestItem

    if not isinstance(request.node, DoctestItem):
        return
    _skip_without_fashion_mnist(request.node)
    monkeypatch.chdir(tmp_path)
    keras.utils.set_random_seed(0)
    if keras.backend.backend() == "tensorflow":
        # `fit` on a few tiny batches: tracing its step would cost seconds.
        import tensorflow as tf

        tf.config.run_functions_eagerly(True)
        request.addfinalizer(lambda: tf.config.run_functions_eagerly(False))
    # Examples may parse absl flags (kmix.experiment.flags): restore them after.
    from absl.testing import flagsaver

    saved_flags = flagsaver.flagsaver()
    saved_flags.__enter__()
    request.addfinalizer(lambda: saved_flags.__exit__(None, None, None))
    doctest_namespace.clear()
    doctest_namespace.update(_kmix_doctest_globals)
    if _uses_name_before_defining(request.node, "model"):
        doctest_namespace["model"] = _tiny_model()
