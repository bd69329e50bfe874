"""The state shared by kmix's per-class metrics: weighted per-class counts."""

import keras
from keras import ops

from kmix import validation
from kmix.classes import integer_labels


def check_num_classes(num_classes):
    """Checks that `num_classes` is an int >= 1 and returns it."""
    return validation.check_int("num_classes", num_classes, 1)


def class_membership(labels, num_classes):
    """Float32 `(batch, num_classes)`: 1.0 where row `i` has label `c`.

    Like a one-hot encoding of integer `labels`, but every backend gives a
    row of zeros to a label outside `[0, num_classes)` (PyTorch's `one_hot`
    would raise instead).
    """
    classes = ops.arange(num_classes, dtype="int32")
    labels = ops.cast(ops.reshape(labels, (-1, 1)), "int32")
    return ops.cast(ops.equal(labels, classes[None, :]), "float32")


def per_class_sums(labels, values, num_classes):
    """`(num_classes,)` float32: the sum of `values` over the rows of each class.

    `labels` are integer class indices `(batch,)`, `values` floats
    `(batch,)`; rows whose label is outside `[0, num_classes)` are left out.
    """
    membership = class_membership(labels, num_classes)
    values = ops.cast(ops.reshape(values, (-1, 1)), "float32")
    return ops.sum(membership * values, axis=0)


class PerClassCounts(keras.metrics.Metric):
    """Accumulates, per true class, the (weighted) number of examples seen
    and of those predicted correctly.

    Two `(num_classes,)` float32 variables, `correct` and `total`, created
    with `aggregation="sum"` like every Keras metric variable: under a
    `tf.distribute` strategy each replica adds into its own copy and reading
    the result sums the replicas, so the recall is exact over an epoch.
    Labels outside `[0, num_classes)` are ignored, on every backend.
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
        total, correct = batch_counts(
            y_true, y_pred, self.num_classes, sample_weight
        )
        self.total.assign_add(total)
        self.correct.assign_add(correct)

    def seen_recall(self):
        """`(recall, seen)`, both `(num_classes,)` float32.

        `seen` is 1.0 for the classes with (weighted) examples so far, else
        0.0; `recall` is their recall, 0.0 for unseen classes. Every
        per-class metric of kmix reads its recall here.
        """
        correct, total = self.correct.value, self.total.value
        seen = ops.greater(total, 0.0)
        safe_total = ops.where(seen, total, ops.ones_like(total))
        seen = ops.cast(seen, "float32")
        return seen * correct / safe_total, seen

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


def batch_counts(y_true, y_pred, num_classes, sample_weight=None):
    """`(total, correct)` of one batch, each `(num_classes,)` float32.

    Labels and predictions follow one rule: integer classes `(batch,)` or
    `(batch, 1)`, or scores / one-hot `(batch, C)` and their argmax. Sample
    weights weight the counts.
    """
    labels = integer_labels(y_true)
    predictions = integer_labels(y_pred)
    hit = ops.cast(ops.equal(labels, predictions), "float32")
    if sample_weight is None:
        weight = ops.ones_like(hit)
    else:
        weight = ops.reshape(ops.cast(sample_weight, "float32"), (-1,))
        weight = ops.broadcast_to(weight, ops.shape(hit))
    membership = class_membership(labels, num_classes)
    total = ops.sum(membership * weight[:, None], axis=0)
    correct = ops.sum(membership * (weight * hit)[:, None], axis=0)
    return total, correct
