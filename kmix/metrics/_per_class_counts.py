"""The state shared by kmix's per-class metrics: weighted per-class counts."""

import keras
from keras import ops

from kmix import validation
from kmix.labels import integer_labels


def check_num_classes(num_classes):
    """Checks that `num_classes` is an int >= 1 and returns it."""
    return validation.check_int("num_classes", num_classes, 1)


def predicted_labels(y_pred):
    """Predicted classes, int32 `(batch,)`, from scores or integer predictions.

    Scores (logits or probabilities) of shape `(batch, num_classes)` become
    their argmax; integer predictions of shape `(batch,)` or `(batch, 1)` are
    used as they are.
    """
    y_pred = ops.convert_to_tensor(y_pred)
    if len(y_pred.shape) >= 2 and y_pred.shape[-1] != 1:
        return ops.cast(ops.argmax(y_pred, axis=-1), "int32")
    return ops.cast(ops.reshape(y_pred, (-1,)), "int32")


class PerClassCounts(keras.metrics.Metric):
    """Accumulates, per true class, the (weighted) number of examples seen
    and of those predicted correctly.

    Two `(num_classes,)` float32 variables, `correct` and `total`, created
    with `aggregation="sum"` like every Keras metric variable: under a
    `tf.distribute` strategy each replica adds into its own copy and reading
    the result sums the replicas, so the recall is exact over an epoch.
    Labels outside `[0, num_classes)` are ignored.
    """

    def __init__(self, num_classes, name=None, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = check_num_classes(num_classes)
        self.correct = self.add_variable(
            shape=(self.num_classes,), initializer="zeros", dtype="float32",
            name="correct",
        )
        self.total = self.add_variable(
            shape=(self.num_classes,), initializer="zeros", dtype="float32",
            name="total",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        labels = integer_labels(y_true)
        predictions = predicted_labels(y_pred)
        one_hot = ops.one_hot(labels, self.num_classes, dtype="float32")
        hit = ops.cast(ops.equal(labels, predictions), "float32")
        if sample_weight is None:
            weight = ops.ones_like(hit)
        else:
            weight = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
            weight = ops.broadcast_to(weight, ops.shape(hit))
        self.total.assign_add(ops.sum(one_hot * weight[:, None], axis=0))
        self.correct.assign_add(ops.sum(one_hot * (weight * hit)[:, None], axis=0))

    def recall(self):
        """Per-class recall, `(num_classes,)` float32; NaN for unseen classes."""
        seen = self.total > 0
        safe_total = ops.where(seen, self.total, ops.ones_like(self.total))
        return ops.where(seen, self.correct / safe_total, float("nan"))

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype}
