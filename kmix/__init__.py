"""kmix: major-class feature mixing for deep learning on class-imbalanced data.

Implements "Procrustean training" (Ye, Zhan & Chao, "Procrustean Training for
Imbalanced Deep Learning", ICCV 2021, arXiv:2104.01769) for Keras 3 on the
TensorFlow backend.

Example:

>>> import keras, kmix
>>> inputs = keras.Input((28, 28, 1))
>>> x = keras.layers.Conv2D(8, 3, activation="relu")(inputs)
>>> x = kmix.MajorMix(strength=0.5)(x)
>>> outputs = keras.layers.Dense(10)(keras.layers.GlobalAveragePooling2D()(x))
>>> model = kmix.MixModel(inputs, outputs, class_counts=[5000] * 5 + [50] * 5)
"""

__version__ = "0.1.0"

from kmix import callbacks
from kmix import data
from kmix import experiment
from kmix import layers
from kmix import losses
from kmix import metrics
from kmix import models
from kmix import plots
from kmix import schedules
from kmix import tuning
from kmix import weights
from kmix.experiment_config import ExperimentConfig
from kmix.layers.major_mix import MajorMix
from kmix.layers.mixing_context import mixing_context
from kmix.models.mix_model import MixModel
