"""`BalancedAccuracy`: the mean of the per-class recalls."""

import keras
from keras import ops

from kmix.metrics._per_class_counts import PerClassCounts


@keras.saving.register_keras_serializable(package="kmix")
class BalancedAccuracy(PerClassCounts):
    """Balanced accuracy: the unweighted mean over classes of per-class recall.

    On class-imbalanced data plain accuracy is dominated by the major
    classes; balanced accuracy weighs every class equally (on a balanced test
    set it equals plain accuracy). The metric accumulates per-class counts of
    examples and of correct predictions over all batches since the last reset
    (an epoch inside `fit`), so the value is exact over the epoch, not an
    average of batch values; under `tf.distribute` the counts are summed over
    replicas.

    Classes with no examples so far are left out of the mean until their
    first example arrives (their recall is undefined). With no examples at
    all the result is 0.

    Labels may be integers `(batch,)`/`(batch, 1)` or one-hot `(batch,
    num_classes)`; predictions are scores `(batch, num_classes)` or integer
    classes `(batch,)`. Sample weights weight the counts. Used to evaluate
    "Procrustean Training for Imbalanced Deep Learning" (Ye, Zhan & Chao,
    ICCV 2021).

    Args:
        num_classes: number of classes.
        name: name of the metric.
        dtype: dtype of the metric (the state is float32).

    Example:

    >>> metric = kmix.metrics.BalancedAccuracy(num_classes=3)
    >>> metric.update_state(
    ...     [0, 0, 0, 1], [[1, 0, 0], [1, 0, 0], [1, 0, 0], [1, 0, 0]]
    ... )
    >>> float(metric.result())  # (1.0 + 0.0) / 2: class 2 is not seen
    0.5
    >>> model.compile(
    ...     "adam",
    ...     "sparse_categorical_crossentropy",
    ...     metrics=[kmix.metrics.BalancedAccuracy(10)],
    ... )
    """

    def __init__(self, num_classes, name="balanced_accuracy", dtype=None):
        super().__init__(num_classes, name=name, dtype=dtype)

    def result(self):
        recall, seen = self.seen_recall()
        return ops.sum(recall) / ops.maximum(ops.sum(seen), 1.0)
