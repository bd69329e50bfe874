"""`MixModel`: a `keras.Model` whose training step drives `MajorMix`."""

import keras
import numpy as np
from keras import ops

from kmix import validation

# Keras turns a `Model` subclass into a `Functional` one by rewriting the
# class's bases the first time it is called with (inputs, outputs); that would
# break every later subclass of `MixModel`. kmix instead routes functional
# use to `_FunctionalMixModel`, which is a `Functional` from the start. The
# Keras internals this needs live in `kmix._keras_compat` (see why there).
from kmix._keras_compat import Functional
from kmix._keras_compat import flatten_layers
from kmix._keras_compat import functional_init_arguments
from kmix._keras_compat import init_functional_model
from kmix.classes import integer_labels
from kmix.layers.feature_probe import FeatureProbe
from kmix.layers.feature_probe import Observers
from kmix.layers.major_mix import MajorMix
from kmix.layers.mixing_context import current_mixing_context
from kmix.layers.mixing_context import mixing_context
from kmix.models.major_mix_insertion import insert_major_mix


@keras.saving.register_keras_serializable(package="kmix")
class MixModel(keras.Model):
    """A `keras.Model` whose `train_step` makes every `MajorMix` layer mix.

    The training step opens a `kmix.mixing_context` holding the batch labels
    and the global `class_counts`, runs the forward pass in training mode (so
    each `kmix.MajorMix` mixes the features of major-class rows, as in
    "Procrustean Training for Imbalanced Deep Learning", Ye, Zhan & Chao,
    ICCV 2021), and then leaves the rest to Keras: the compiled loss, sample
    weights, loss scaling under mixed precision, metrics and distribution
    (`tf.distribute` on TensorFlow, `keras.distribution` on JAX) behave as
    in a plain `keras.Model`. `evaluate` and `predict` never mix.

    It trains on the TensorFlow, JAX and PyTorch backends, and a `.keras`
    file saved on one loads on the others. Label values are checked before
    the step uses them (whole class indices in `[0, len(class_counts))`),
    except inside a JAX-compiled step, where traced labels cannot be read:
    there a bad label is not reported (the loss may turn NaN), and
    `fit(..., run_eagerly=True)` reports it.

    The loss of each example is also multiplied by `class_loss_weights[y]`,
    a non-trainable variable of one weight per class (all ones by default).
    Assigning it during `fit`, e.g. from a callback, re-weights the loss at
    once without retracing: this is how deferred re-weighting works (on
    JAX, assign through the callback's `self.model`, which syncs the
    training state, as for `kmix.MajorMix.strength`). Only training is
    re-weighted; `evaluate` reports the plain loss.

    Use it the functional way, by subclassing (pass `class_counts` to
    `super().__init__`), or wrap an existing model with `MixModel.from_model`.

    Diagnostics have two documented hooks (`kmix.callbacks.ClassProgress`
    uses both): `add_batch_observer` hands each step's labels and
    predictions to a function, and `insert_feature_probe` puts a
    `kmix.layers.FeatureProbe` on the input of a layer for the training
    forward pass, whose observers see the gradient of the loss with respect
    to those features in the same backward pass. Neither changes the model's
    config or saved file.

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
    >>> model = kmix.MixModel(
    ...     inputs, outputs, class_counts=[6000] * 5 + [60] * 5
    ... )
    >>> model.compile(
    ...     "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    ... )
    >>> history = model.fit(
    ...     x_train, y_train, batch_size=32, epochs=1, verbose=0
    ... )
    """

    def __new__(cls, *args, **kwargs):
        if cls is MixModel and functional_init_arguments(args, kwargs):
            cls = _FunctionalMixModel
        return super().__new__(cls, *args, **kwargs)

    def __init__(self, *args, class_counts=None, **kwargs):
        if isinstance(self, Functional):
            init_functional_model(self, args, kwargs, default_name="mix_model")
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
        # Plain Python holders: Keras neither tracks nor saves them.
        self._observers = Observers("batch observer")
        self._probed = _ProbedForward()
        outputs = getattr(self, "outputs", None)
        if outputs:
            self._check_output_size(outputs[0].shape)

    @classmethod
    def from_model(cls, model, class_counts, mix_after=None, **mix_kwargs):
        """Wraps a built functional or `Sequential` model, sharing its layers.

        With `mix_after`, a `kmix.MajorMix` (named `mix_after_<name>`, built
        with `**mix_kwargs`) follows each named top-level layer (see
        `kmix.models.insert_major_mix`): a pre-trained Keras Applications
        model can be fine-tuned with mixing, its weights shared, and it
        predicts exactly as before (mixing happens only in training).

        Args:
            model: a functional or `Sequential` `keras.Model`.
            class_counts: training examples per class, in label order.
            mix_after: optional list of names of top-level layers of `model`
                to mix after.
            **mix_kwargs: `MajorMix` arguments, used with `mix_after`.

        Example:

        >>> base = keras.Sequential(
        ...     [keras.Input((8,)), kmix.MajorMix(), keras.layers.Dense(3)]
        ... )
        >>> model = kmix.MixModel.from_model(base, class_counts=[100, 10, 1])
        >>> resnet = keras.applications.ResNet50(
        ...     weights=None, input_shape=(32, 32, 3), classes=10
        ... )
        >>> model = kmix.MixModel.from_model(
        ...     resnet,
        ...     [500] * 5 + [5] * 5,
        ...     mix_after=["conv3_block4_out"],
        ...     strength=0.5,
        ... )
        >>> [
        ...     layer.name
        ...     for layer in model.layers
        ...     if isinstance(layer, kmix.MajorMix)
        ... ]
        ['mix_after_conv3_block4_out']
        """
        if mix_after is not None:
            inputs, outputs = insert_major_mix(model, mix_after, **mix_kwargs)
            return cls(
                inputs=inputs,
                outputs=outputs,
                class_counts=class_counts,
                name=model.name,
            )
        if mix_kwargs:
            raise TypeError(
                "MajorMix arguments were given without `mix_after`, so no "
                f"MajorMix would use them. Received: {sorted(mix_kwargs)}."
            )
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
            inputs=inputs,
            outputs=outputs,
            class_counts=class_counts,
            name=model.name,
        )

    @property
    def major_mix_layers(self):
        """All `MajorMix` layers of the model, nested models included."""
        return [
            layer
            for layer in flatten_layers(self)
            if isinstance(layer, MajorMix)
        ]

    @property
    def batch_observers(self):
        """The observers added with `add_batch_observer`, a tuple."""
        return self._observers.snapshot()

    def add_batch_observer(self, observer):
        """Hands every train and test step's labels and predictions to `observer`.

        `observer(y, y_pred, sample_weight, training)` is called inside each
        step, before the compiled metrics are updated: in `fit`'s training
        steps (`training=True`, `y_pred` from the mixed forward pass, the
        batch as the model trained on it) and in `evaluate`'s and `fit`'s
        validation steps (`training=False`). `y` and `sample_weight` are as
        the dataset gives them (`sample_weight` may be None). The call
        happens while the step is traced, so the observer must record with
        stateful ops (e.g. a metric's `update_state`). Adding or removing an
        observer does not retrace: do it before `fit` traces its functions
        (e.g. in a callback's `on_train_begin`, then call
        `make_train_function(force=True)` and `make_test_function(force=True)`).
        `kmix.callbacks.ClassProgress` uses this hook.

        Example:

        >>> accuracy = kmix.metrics.PerClassAccuracy(num_classes=10)
        >>> model.add_batch_observer(
        ...     lambda y, y_pred, sample_weight, training: (
        ...         accuracy.update_state(y, y_pred) if training else None
        ...     )
        ... )
        >>> model.compile(
        ...     "sgd",
        ...     keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        ... )
        >>> history = model.fit(x_train, y_train, epochs=1, verbose=0)
        >>> len(
        ...     accuracy.result()
        ... )  # the accuracy of each class on the mixed batches
        10
        """
        self._observers.add(observer)

    def remove_batch_observer(self, observer):
        """Removes an observer added with `add_batch_observer`."""
        self._observers.remove(observer)

    @property
    def feature_probes(self):
        """The `FeatureProbe`s added with `insert_feature_probe`, a tuple."""
        return tuple(probe for _, probe in self._probed.entries)

    def insert_feature_probe(self, layer):
        """Runs a new `kmix.layers.FeatureProbe` on the input of `layer` in training.

        The model's graph, config and saved file do not change: while the
        probe is inserted, the training forward pass (`training=True`, e.g.
        `fit`'s training steps) runs a twin of the model's graph that shares
        every layer and weight and passes the input of `layer` (its first
        argument) through the probe. Evaluation and prediction run the model
        unchanged. Observers added to the returned probe
        (`probe.add_gradient_observer`) see the gradient of the training
        loss with respect to that input, from the training step's own
        backward pass. Retrace the training function after inserting
        (`make_train_function(force=True)`); remove the probe with
        `remove_feature_probe`.

        Only functional `MixModel`s can be probed this way; a subclassed
        model calls a `kmix.layers.FeatureProbe` in its own `call`.

        Args:
            layer: a layer of the model (nested models included), or its
                name.

        Returns:
            The inserted `kmix.layers.FeatureProbe`.

        Example:

        >>> probe = model.insert_feature_probe("logits")
        >>> probe.add_gradient_observer(lambda gradient, labels: None)
        >>> model.remove_feature_probe(probe)
        """
        if not isinstance(self, Functional):
            raise TypeError(
                "`insert_feature_probe` needs a functional MixModel (built with "
                f"inputs and outputs). Received: model {self.name!r} of type "
                f"{type(self).__name__}, a subclassed model: call a "
                "`kmix.layers.FeatureProbe` in its `call` where the features "
                "should be measured."
            )
        target = self._find_layer(layer)
        probe = FeatureProbe(name=f"{target.name}_input_probe")
        entries = self._probed.entries + [(target, probe)]
        network = self._probed_network(entries)
        if not probe.built:  # Keras' cloning never called the layer with it
            raise ValueError(
                "Argument `layer` must be called in the model's functional graph "
                "(not inside a nested Sequential model). Received: "
                f"layer={target.name!r}. Put a `kmix.layers.FeatureProbe` "
                "in the model where the features should be measured instead."
            )
        self._probed.entries, self._probed.network = entries, network
        return probe

    def remove_feature_probe(self, probe):
        """Removes a probe added with `insert_feature_probe`."""
        entries = [
            entry for entry in self._probed.entries if entry[1] is not probe
        ]
        if len(entries) == len(self._probed.entries):
            raise ValueError(
                "Argument `probe` must be a probe returned by this model's "
                f"`insert_feature_probe`. Received: probe={probe!r}."
            )
        self._probed.entries = entries
        self._probed.network = (
            self._probed_network(entries) if entries else None
        )

    def _find_layer(self, layer):
        layers = flatten_layers(self, include_self=False)
        for candidate in layers:
            if candidate is layer or (
                isinstance(layer, str) and candidate.name == layer
            ):
                return candidate
        raise ValueError(
            "Argument `layer` must be a layer of the model or its name. "
            f"Received: layer={getattr(layer, 'name', layer)!r}; the model's "
            f"layers are {[candidate.name for candidate in layers]}."
        )

    def _probed_network(self, entries):
        """A functional twin of the model, sharing its layers, with the probes."""
        probes = {id(layer): probe for layer, probe in entries}
        top_level = {id(layer) for layer in self.layers}

        def call_function(layer, *args, **kwargs):
            probe = probes.get(id(layer))
            if probe is not None and args:
                args = (probe(args[0]),) + tuple(args[1:])
            return layer(*args, **kwargs)

        return keras.models.clone_model(
            keras.Model(self.input, self.output, name=f"{self.name}_probed"),
            clone_function=lambda layer: layer,
            call_function=call_function,
            recursive=any(key not in top_level for key in probes),
        )

    def set_class_loss_weights(self, weights):
        """Sets the per-class loss weights (a sequence of C non-negative floats)."""
        weights = np.asarray(weights, dtype="float32")
        if (
            weights.shape != (len(self.class_counts),)
            or np.any(weights < 0)
            or not np.all(np.isfinite(weights))
        ):
            raise ValueError(
                "Argument `weights` must hold one finite, non-negative weight per class "
                f"({len(self.class_counts)} values). Received: weights={weights.tolist()!r}."
            )
        self.class_loss_weights.assign(weights)

    def train_step(self, *args):
        """Keras' training step, run inside a `kmix.mixing_context`.

        The signature follows the backend's trainer: `train_step(data)` on
        TensorFlow and PyTorch, `train_step(state, data)` on JAX (whose
        step is stateless). A subclass that overrides it calls
        `super().train_step(*args)` with the arguments it received.
        """
        *state, data = args
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        if y is not None and not isinstance(y, (dict, list, tuple)):
            # Fractional or out-of-range labels fail here, with a message,
            # before any op (MajorMix, the loss weights' gather) uses them.
            # Traced JAX labels cannot be read: only their shape is known.
            y = validation.check_label_values(
                y, len(self.class_counts), name="y"
            )
            data = keras.utils.pack_x_y_sample_weight(x, y, sample_weight)
        with mixing_context(labels=y, class_counts=self.class_counts):
            return super().train_step(*state, data)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        # The `add_batch_observer` hook: inside `train_step` the mixing
        # context is open, so `training` tells train steps from test steps.
        training = current_mixing_context() is not None
        for observer in self._observers.snapshot():
            observer(y, y_pred, sample_weight, training)
        return super().compute_metrics(
            x, y, y_pred, sample_weight=sample_weight
        )

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if training and y is not None:
            self._check_output_size(y_pred.shape)
            class_weight = ops.take(
                self.class_loss_weights, integer_labels(y), axis=0
            )
            if sample_weight is None:
                sample_weight = class_weight
            else:
                sample_weight = ops.cast(sample_weight, "float32")
                sample_weight = (
                    ops.reshape(
                        class_weight,
                        (-1,) + (1,) * (len(sample_weight.shape) - 1),
                    )
                    * sample_weight
                )
        return super().compute_loss(
            x=x,
            y=y,
            y_pred=y_pred,
            sample_weight=sample_weight,
            training=training,
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


class _ProbedForward:
    """The probes of `MixModel.insert_feature_probe` and the twin network that
    runs them; a plain object, so Keras neither tracks nor saves it."""

    def __init__(self):
        self.entries = []  # (layer, FeatureProbe) pairs
        self.network = None


# Registered last under the same name as `MixModel`, so that "kmix>MixModel"
# in a `.keras` file loads as this class (every saved MixModel without its own
# registered subclass is a functional one). Its `__name__` is "MixModel" too,
# so files record `class_name: "MixModel"`, and loading one without
# `import kmix` fails with "Could not locate class 'MixModel'".
@keras.saving.register_keras_serializable(package="kmix", name="MixModel")
class _FunctionalMixModel(MixModel, Functional):
    """What `kmix.MixModel(inputs, outputs, ...)` builds; saved as `MixModel`."""

    def call(self, inputs, training=None, mask=None, **kwargs):
        network = self._probed.network
        if training and network is not None:
            return network(inputs, training=training, mask=mask, **kwargs)
        return super().call(inputs, training=training, mask=mask, **kwargs)


_FunctionalMixModel.__name__ = "MixModel"
