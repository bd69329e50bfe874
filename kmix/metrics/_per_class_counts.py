"""The state shared by kmix's per-class metrics: weighted per-class counts."""

import keras
from keras import ops

from kmix import validation
from kmix.classes import integer_labels


def check_num_classes(num_classes):
    """Checks that `num_classes` is an int >= 1 and returns it."""
    return validation.check_int("num_classes", num_classes, 1)


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
            shape=(self.num_classes,),
            initializer="zeros",
            dtype="float32",
            name="correct",
        )
        self.total = self.add_variable(
            shape=(self.num_classes,),
            initializer="zeros",
            dtype="float32",
            name="total",
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        # Labels and predictions follow one rule: integer classes `(batch,)`
        # or `(batch, 1)`, or scores / one-hot `(batch, C)` and their argmax.
        labels = integer_labels(y_true)
        predictions = integer_labels(y_pred)
        one_hot = ops.one_hot(labels, self.num_classes, dtype="float32")
        hit = ops.cast(ops.equal(labels, predictions), "float32")
        if sample_weight is None:
            weight = ops.ones_like(hit)
        else:
            weight = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
            weight = ops.broadcast_to(weight, ops.shape(hit))
        self.total.assign_add(ops.sum(one_hot * weight[:, None], axis=0))
        self.correct.assign_add(
            ops.sum(one_hot * (weight * hit)[:, None], axis=0)
        )

    def seen_recall(self):
        """`(recall, seen)`, both `(num_classes,)` float32.

        `seen` is 1.0 for the classes with (weighted) examples so far, else
        0.0; `recall` is their recall, 0.0 for unseen classes. Every
        per-class metric of kmix reads its recall here.
        """
        seen = self.total > 0
        safe_total = ops.where(seen, self.total, ops.ones_like(self.total))
        seen = ops.cast(seen, "float32")
        return seen * self.correct / safe_total, seen

    def recall(self):
        """Per-class recall, `(num_classes,)` float32; NaN for unseen classes."""
        recall, seen = self.seen_recall()
        return ops.where(seen > 0, recall, float("nan"))

    def get_config(self):
        return {
            "num_classes": self.num_classes,
            "name": self.name,
            "dtype": self.dtype,
        }
