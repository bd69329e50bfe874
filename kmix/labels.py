"""Label helpers shared by kmix layers, models, losses and metrics."""

from keras import ops


def integer_labels(labels):
    """Integer class labels of shape `(batch,)`, int32.

    Accepts integer labels of shape `(batch,)` or `(batch, 1)` and one-hot
    (or soft) labels of shape `(batch, num_classes)`, which become their
    argmax.

    Example:

    >>> kmix.labels.integer_labels([[0.0, 1.0], [1.0, 0.0]])  # -> [1, 0]
    """
    labels = ops.convert_to_tensor(labels)
    if len(labels.shape) == 2 and labels.shape[-1] != 1:
        return ops.cast(ops.argmax(labels, axis=-1), "int32")
    return ops.cast(ops.reshape(labels, (-1,)), "int32")
