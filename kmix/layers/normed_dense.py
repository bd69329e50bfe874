"""`NormedDense`: a classifier of cosine similarities."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kmix")
class NormedDense(keras.layers.Layer):
    """A dense layer without bias whose outputs are cosine similarities.

    `outputs = normalize(inputs) @ normalize(kernel)`: each logit is the cosine
    between the features and a class's weight vector, in [-1, 1]. LDAM
    (Cao et al., "Learning Imbalanced Datasets with Label-Distribution-Aware
    Margin Loss", NeurIPS 2019) puts this head under `kmix.losses.LDAMLoss`,
    whose `scale` (30 by default) assumes logits of this range.

    Args:
        units: number of outputs (classes).
        kernel_initializer, kernel_regularizer: as for `keras.layers.Dense`.

    Example:

    >>> head = kmix.layers.NormedDense(10)
    >>> logits = head(keras.random.normal((4, 64), seed=0))
    >>> tuple(logits.shape)
    (4, 10)
    >>> bool(keras.ops.all(keras.ops.abs(logits) <= 1.0))  # cosines
    True
    """

    def __init__(
        self,
        units,
        kernel_initializer="glorot_uniform",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(units, bool) or not isinstance(units, int) or units < 1:
            raise ValueError(
                f"Argument `units` must be an int >= 1. Received: units={units!r}."
            )
        self.units = units
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)

    def build(self, input_shape):
        self.kernel = self.add_weight(
            shape=(input_shape[-1], self.units),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            name="kernel",
        )

    def call(self, inputs):
        features = ops.normalize(inputs, axis=-1)
        return ops.matmul(features, ops.normalize(self.kernel, axis=0))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.units,)

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "kernel_initializer": keras.initializers.serialize(
                self.kernel_initializer
            ),
            "kernel_regularizer": keras.regularizers.serialize(
                self.kernel_regularizer
            ),
        }
