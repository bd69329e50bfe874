"""The `FeatureProbe` layer: an identity that reports feature gradients."""

import keras
from keras import ops

from kmix.classes import integer_labels
from kmix.layers.mixing_context import current_mixing_context


class Observers:
    """A plain list of callables that Keras and TensorFlow do not track.

    Held by `FeatureProbe` (gradient observers) and `kmix.MixModel` (batch
    observers): neither saved with the model nor part of its config.
    """

    def __init__(self, kind):
        self._kind = kind
        self._items = []

    def add(self, observer):
        if not callable(observer):
            raise TypeError(
                f"Argument `observer` must be a callable ({self._kind}). "
                f"Received: observer={observer!r}."
            )
        if observer not in self._items:
            self._items.append(observer)

    def remove(self, observer):
        # `==`, not `is`: each access to a bound method makes a new object.
        if observer in self._items:
            self._items.remove(observer)
            return
        raise ValueError(
            f"Argument `observer` must be one of the registered {self._kind}s. "
            f"Received: observer={observer!r}."
        )

    def snapshot(self):
        return tuple(self._items)


@keras.saving.register_keras_serializable(package="kmix")
class FeatureProbe(keras.layers.Layer):
    """Identity layer that reports the loss gradient reaching its features.

    The diagnostics of "Procrustean Training for Imbalanced Deep Learning"
    (Ye, Zhan & Chao, ICCV 2021, arXiv:2104.01769) compare, per class, the
    norm of the gradient of each example's loss with respect to its features
    `h`. Put a `FeatureProbe` where `h` should be measured (e.g. just before
    the classifier); `kmix.callbacks.ClassProgress` uses it.

    In the forward pass the layer returns its input unchanged, in training
    and in inference, on every backend, and never casts it (`autocast` is
    off, so the dtype is kept under mixed precision).

    In a training step of `kmix.MixModel` (a call with `training=True`
    inside a `kmix.mixing_context`), and only when gradient observers have
    been added with `add_gradient_observer`, the output gets a custom
    gradient: on the training step's own backward pass (no second pass),
    each observer is called as `observer(gradient, labels)`, where
    `gradient` is the gradient of the batch loss with respect to the
    probe's features, shape `(batch, ...)`, and `labels` the int32 labels
    `(batch,)` of the mixing context. The gradient passes on unchanged.
    Observers run while the training step is traced (TensorFlow, JAX) or
    run (PyTorch); add them before `fit` traces its training function, or
    retrace it with `model.make_train_function(force=True)`. How they
    record depends on the backend:

    - TensorFlow and PyTorch: with stateful ops, e.g.
      `variable.assign_add(...)`; `tf.function` runs them through its
      automatic control dependencies, PyTorch at once.
    - JAX: the training step is a pure function and its backward pass runs
      outside any state Keras returns, so an assignment would be lost.
      Observers hand values to the host instead, with
      `jax.experimental.io_callback` (as `kmix.callbacks.ClassProgress`
      does); an observer that assigns a variable raises a `RuntimeError`.

    Args:
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a tensor of shape `(batch, ...)`.
        training: Python bool; observers are only called when `True`.

    Example:

    >>> inputs = keras.Input((28, 28, 1))
    >>> x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    >>> x = keras.layers.GlobalAveragePooling2D()(x)
    >>> x = kmix.layers.FeatureProbe(name="features")(x)
    >>> outputs = keras.layers.Dense(10)(x)
    >>> model = kmix.MixModel(inputs, outputs, class_counts=class_counts)
    >>> progress = kmix.callbacks.ClassProgress(feature_layer="features")
    >>> model.compile(
    ...     "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    ... )
    >>> history = model.fit(
    ...     x_train, y_train, epochs=1, callbacks=[progress], verbose=0
    ... )
    >>> progress.series("feature_grad_norm")[1].shape  # epochs x classes
    (1, 10)
    """

    def __init__(self, **kwargs):
        kwargs["autocast"] = False
        super().__init__(**kwargs)
        self.supports_masking = True
        self._gradient_observers = Observers("gradient observer")

    @property
    def gradient_observers(self):
        """The registered gradient observers, a tuple."""
        return self._gradient_observers.snapshot()

    def add_gradient_observer(self, observer):
        """Calls `observer(gradient, labels)` on every training step's backward pass.

        Example:

        >>> probe = kmix.layers.FeatureProbe()
        >>> seen = []
        >>> probe.add_gradient_observer(
        ...     lambda gradient, labels: seen.append(labels)
        ... )
        """
        self._gradient_observers.add(observer)

    def remove_gradient_observer(self, observer):
        """Removes an observer added with `add_gradient_observer`."""
        self._gradient_observers.remove(observer)

    def call(self, inputs, training=False):
        observers = self._gradient_observers.snapshot()
        context = current_mixing_context()
        if not training or not observers or context is None:
            return inputs
        labels = integer_labels(context[0])

        @ops.custom_gradient
        def identity(features):
            def grad(*args, upstream=None):
                if upstream is None:
                    (upstream,) = args
                _notify(observers, upstream, labels)
                return upstream

            return ops.copy(features), grad

        return identity(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def compute_output_spec(self, inputs, training=False):
        return keras.KerasTensor(inputs.shape, dtype=inputs.dtype)


def _notify(observers, gradient, labels):
    """Calls the observers; on JAX, refuses observers that assign variables."""
    if keras.backend.backend() != "jax":
        for observer in observers:
            observer(gradient, labels)
        return
    # JAX runs the backward pass inside `jax.value_and_grad` of a pure
    # training step: a variable assigned here is in no state that Keras
    # returns, so the value would be lost (or a tracer would leak into it).
    for observer in observers:
        with _AssignmentGuard() as scope:
            observer(gradient, labels)
        if scope.state_mapping:
            raise RuntimeError(
                "A `FeatureProbe` gradient observer assigned a variable on the "
                "JAX backend, where the training step is a pure function: the "
                "assignment would be lost. Received: observer="
                f"{observer!r}. Record on the host with "
                "`jax.experimental.io_callback` (as "
                "`kmix.callbacks.ClassProgress` does), or train with "
                "KERAS_BACKEND=tensorflow or torch."
            )


class _AssignmentGuard(keras.StatelessScope):
    """Collects the variable assignments made inside it, assigning nothing.

    Reads see these assignments, else the values of the scope around it
    (e.g. the training step's weights), as if the guard were not there.
    """

    def get_current_value(self, variable):
        value = self.state_mapping.get(id(variable))
        if value is None and self.original_scope is not None:
            value = self.original_scope.get_current_value(variable)
        return value
