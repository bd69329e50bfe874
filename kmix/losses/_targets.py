"""Label handling shared by kmix's losses and batch-mixing layers."""

from keras import ops


def one_hot_targets(y_true, num_classes, name="y_true"):
    """Float32 targets of shape `(batch, num_classes)`.

    Integer labels of shape `(batch,)` or `(batch, 1)` (of any dtype, since
    `keras.losses.Loss` casts labels to float) become one-hot rows; one-hot or
    soft labels of shape `(batch, num_classes)` are returned as float32.
    """
    y_true = ops.convert_to_tensor(y_true)
    shape = tuple(y_true.shape)
    if len(shape) == 2 and shape[-1] == num_classes and num_classes != 1:
        return ops.cast(y_true, "float32")
    if len(shape) == 1 or (len(shape) == 2 and shape[-1] == 1):
        labels = ops.cast(ops.reshape(y_true, (-1,)), "int32")
        return ops.one_hot(labels, num_classes, dtype="float32")
    raise ValueError(
        f"Argument `{name}` must hold integer labels of shape (batch,) or "
        f"(batch, 1), or one-hot / soft labels of shape (batch, {num_classes}). "
        f"Received: {name} of shape {shape}."
    )
