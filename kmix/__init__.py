"""kmix: major-class feature mixing for deep learning on class-imbalanced data.

Implements "Procrustean training" (Ye, Zhan & Chao, "Procrustean Training for
Imbalanced Deep Learning", ICCV 2021, arXiv:2104.01769) for Keras 3. The
model side (layers, `MixModel`, losses, metrics, callbacks) runs on every
Keras backend (TensorFlow, JAX, PyTorch); the data side (`kmix.data`) builds
`tf.data` pipelines, which feed every backend.

Example:

>>> import keras, kmix
>>> inputs = keras.Input((28, 28, 1))
>>> x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
>>> x = kmix.MajorMix(strength=0.5)(x)
>>> outputs = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x))
>>> model = kmix.MixModel(inputs, outputs, class_counts=[5000] * 5 + [50] * 5)

`import kmix` loads the model side (layers, models, losses, metrics,
callbacks, schedules, class rules and class weights) but not TensorFlow or
the experiment harness: `kmix.data` (TensorFlow, tf.data), `kmix.experiment`,
`kmix.plots` (matplotlib) and `kmix.tuning` (keras-tuner) are imported on
first use; `kmix.data` loads TensorFlow only with its first `tf.data` name
(its NumPy helpers, such as `kmix.data.read_idx`, need none).
"""

__version__ = "0.1.0"

import importlib
import typing

from kmix import callbacks
from kmix import class_weights
from kmix import classes
from kmix import layers
from kmix import losses
from kmix import metrics
from kmix import models
from kmix import schedules
from kmix.layers.major_mix import MajorMix
from kmix.layers.mixing_context import mixing_context
from kmix.models.mix_model import MixModel

if (
    typing.TYPE_CHECKING
):  # seen by static readers (mkdocstrings, type checkers) only
    from kmix.experiment.config import ExperimentConfig

# Submodules imported on first attribute access (PEP 562): they pull in
# TensorFlow, matplotlib, keras-tuner and the training harness, which a model
# does not need. `weights` is the deprecated name of `class_weights` (it warns).
_LAZY_SUBMODULES = ("data", "experiment", "plots", "tuning", "weights")


def __getattr__(name):
    if name == "ExperimentConfig":
        return importlib.import_module(
            f"{__name__}.experiment.config"
        ).ExperimentConfig
    if name in _LAZY_SUBMODULES:
        # Importing a submodule also sets it as an attribute of `kmix`, so
        # this runs once per name.
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    names = set(globals()) | set(_LAZY_SUBMODULES) | {"ExperimentConfig"}
    return sorted(names - {"weights"})  # the deprecated name stays out of sight
