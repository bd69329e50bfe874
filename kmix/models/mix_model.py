"""`MixModel`: a `keras.Model` whose training step drives `MajorMix`."""

import keras
import numpy as np
from keras import ops

# Keras turns a `Model` subclass into a `Functional` one by rewriting the
# class's bases the first time it is called with (inputs, outputs); that would
# break every later subclass of `MixModel`. kmix instead routes functional
# use to `_FunctionalMixModel`, which is a `Functional` from the start.
from keras.src.models.functional import Functional
from keras.src.models.model import functional_init_arguments
from keras.src.trainers.trainer import Trainer
from keras.src.utils.naming import auto_name

from kmix import validation
from kmix.labels import integer_labels
from kmix.layers.major_mix import MajorMix
from kmix.layers.mixing_context import current_mixing_context
from kmix.layers.mixing_context import mixing_context


@keras.saving.register_keras_serializable(package="kmix")
class MixModel(keras.Model):
    """A `keras.Model` whose `train_step` makes every `MajorMix` layer mix.

    The training step opens a `kmix.mixing_context` holding the batch labels
    and the global `class_counts`, runs the forward pass in training mode (so
    each `kmix.MajorMix` mixes the features of major-class rows, as in
    "Procrustean Training for Imbalanced Deep Learning", Ye, Zhan & Chao,
    ICCV 2021), and then leaves the rest to Keras: the compiled loss, sample
    weights, loss scaling under mixed precision, metrics and `tf.distribute`
    behave as in a plain `keras.Model`. `evaluate` and `predict` never mix.

    The loss of each example is also multiplied by `class_loss_weights[y]`,
    a non-trainable variable of one weight per class (all ones by default).
    Assigning it during `fit`, e.g. from a callback, re-weights the loss at
    once without retracing: this is how deferred re-weighting works. Only
    training is re-weighted; `evaluate` reports the plain loss.

    Use it the functional way, by subclassing (pass `class_counts` to
    `super().__init__`), or wrap an existing model with `MixModel.from_model`.

    Args:
        class_counts: the number of training examples of each class, in label
            order. Its length must equal the model's number of outputs.
        **kwargs: the arguments of `keras.Model` (`inputs`, `outputs`,
            `name`, ...).

    Example:

    >>> inputs = keras.Input((28, 28, 1))
    >>> x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    >>> x = kmix.MajorMix(strength=0.5)(x)
    >>> x = keras.layers.GlobalAveragePooling2D()(x)
    >>> outputs = keras.layers.Dense(10)(x)
    >>> model = kmix.MixModel(inputs, outputs, class_counts=[6000] * 5 + [60] * 5)
    >>> model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    """

    def __new__(cls, *args, **kwargs):
        if cls is MixModel and functional_init_arguments(args, kwargs):
            cls = _FunctionalMixModel
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, *args, class_counts=None, **kwargs):
        if isinstance(self, Functional):
            Trainer.__init__(self)
            kwargs.setdefault("name", auto_name("mix_model"))
            Functional.__init__(self, *args, **kwargs)
        else:
            super().__init__(*args, **kwargs)
        self.class_counts = validation.check_class_counts(class_counts)
        self.class_loss_weights = self.add_weight(
            shape=(len(self.class_counts),),
            initializer="ones",
            trainable=False,
            dtype="float32",
            autocast=False,
            name="class_loss_weights",
        )
        outputs = getattr(self, "outputs", None)
        if outputs:
            self._check_output_size(outputs[0].shape)

    @classmethod
    def from_model(cls, model, class_counts):
        """Wraps a built functional or `Sequential` model, sharing its layers.

        Example:

        >>> base = keras.Sequential([keras.Input((8,)), kmix.MajorMix(), keras.layers.Dense(3)])
        >>> model = kmix.MixModel.from_model(base, class_counts=[100, 10, 1])
        """
        if not isinstance(model, keras.Model):
            raise TypeError(
                "Argument `model` must be a keras.Model. "
                f"Received: model={model!r} (of type {type(model).__name__})."
            )
        try:
            inputs, outputs = model.inputs, model.outputs
        except (AttributeError, ValueError):
            inputs = outputs = None
        if not inputs or not outputs:
            raise ValueError(
                "Argument `model` must be a functional or Sequential model "
                "with known inputs (start it with `keras.Input(shape)`). "
                f"Received: model={model.name!r}, which has no defined inputs. "
                "Subclassed models should subclass `kmix.MixModel` instead."
            )
        return cls(
            inputs=inputs, outputs=outputs, class_counts=class_counts, name=model.name
        )

    @property
    def major_mix_layers(self):
        """All `MajorMix` layers of the model, nested models included."""
        return [layer for layer in self._flatten_layers() if isinstance(layer, MajorMix)]

    def set_class_loss_weights(self, weights):
        """Sets the per-class loss weights (a sequence of C non-negative floats)."""
        weights = np.asarray(weights, dtype="float32")
        if weights.shape != (len(self.class_counts),) or np.any(weights < 0):
            raise ValueError(
                "Argument `weights` must hold one non-negative weight per class "
                f"({len(self.class_counts)} values). Received: weights={weights.tolist()!r}."
            )
        self.class_loss_weights.assign(weights)

    def train_step(self, data):
        _, y, _ = keras.utils.unpack_x_y_sample_weight(data)
        with mixing_context(labels=y, class_counts=self.class_counts):
            return super().train_step(data)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        # Diagnostics hook (used by `kmix.callbacks.ClassProgress`): each
        # function in `_batch_observers` sees the labels and predictions of
        # every train step (the mixed forward pass, `training=True`) and test
        # step as they are traced. Setting it does not retrace by itself.
        training = current_mixing_context() is not None
        for observer in getattr(self, "_batch_observers", ()):
            observer(y, y_pred, sample_weight, training)
        return super().compute_metrics(x, y, y_pred, sample_weight=sample_weight)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if training and y is not None:
            self._check_output_size(y_pred.shape)
            class_weight = ops.take(self.class_loss_weights, integer_labels(y), axis=0)
            if sample_weight is None:
                sample_weight = class_weight
            else:
                sample_weight = ops.cast(sample_weight, "float32")
                sample_weight = ops.reshape(class_weight, (-1,) + (1,) * (
                    len(sample_weight.shape) - 1)) * sample_weight
        return super().compute_loss(
            x=x, y=y, y_pred=y_pred, sample_weight=sample_weight, training=training
        )

    def _check_output_size(self, output_shape):
        num_outputs = output_shape[-1]
        if num_outputs is not None and num_outputs != len(self.class_counts):
            raise ValueError(
                "Argument `class_counts` must have one count per model output "
                f"class: the model has {num_outputs} outputs but received "
                f"{len(self.class_counts)} counts: class_counts={self.class_counts!r}."
            )

    def get_config(self):
        config = super().get_config()
        config["class_counts"] = list(self.class_counts)
        return config


@keras.saving.register_keras_serializable(package="kmix", name="MixModel")
class _FunctionalMixModel(MixModel, Functional):
    """What `kmix.MixModel(inputs, outputs, ...)` builds; saved as `MixModel`."""
