"""`PerClassAccuracy`: the recall of every class, logged one scalar per class."""

import keras

from kmix.metrics._per_class_counts import PerClassCounts


@keras.saving.register_keras_serializable(package="kmix")
class PerClassAccuracy(PerClassCounts):
    """The accuracy on the examples of each class (per-class recall).

    Accumulates, over all batches since the last reset (an epoch inside
    `fit`), the weighted number of examples of each true class and of those
    predicted correctly. `result()` returns a dict with one scalar per class,
    `{prefix}{c}` (by default `acc_class_0`, `acc_class_1`, ...): Keras 3
    flattens dict results into `fit`'s logs and `History`, so each class
    gets its own column (`acc_class_3`, `val_acc_class_3`). `recall()`
    returns the same values as one `(num_classes,)` vector.

    A class with no examples so far has an undefined recall and is reported
    as NaN (not 0), so "never seen" is distinguishable from "never right".

    Labels may be integers `(batch,)`/`(batch, 1)` or one-hot `(batch,
    num_classes)`; predictions are scores `(batch, num_classes)` (their argmax
    is the prediction) or integer classes `(batch,)`. Sample weights weight
    the counts. Under `tf.distribute` the counts are summed over replicas.
    This metric is used for the per-class diagnostics of "Procrustean
    Training for Imbalanced Deep Learning" (Ye, Zhan & Chao, ICCV 2021).

    Args:
        num_classes: number of classes.
        prefix: the start of each logged name; the class index follows.
        name: name of the metric.
        dtype: dtype of the metric (the state is float32).

    Example:

    >>> metric = kmix.metrics.PerClassAccuracy(num_classes=3)
    >>> metric.update_state(
    ...     [0, 1, 1], [[0.9, 0.1, 0.0], [0.8, 0.2, 0.0], [0.1, 0.9, 0.0]]
    ... )
    >>> {k: float(v) for k, v in metric.result().items()}
    {'acc_class_0': 1.0, 'acc_class_1': 0.5, 'acc_class_2': nan}
    >>> model.compile(
    ...     "adam",
    ...     "sparse_categorical_crossentropy",
    ...     metrics=[kmix.metrics.PerClassAccuracy(10)],
    ... )
    """

    def __init__(
        self,
        num_classes,
        prefix="acc_class_",
        name="per_class_accuracy",
        dtype=None,
    ):
        super().__init__(num_classes, name=name, dtype=dtype)
        if not isinstance(prefix, str):
            raise TypeError(
                f"Argument `prefix` must be a string. Received: prefix={prefix!r}."
            )
        self.prefix = prefix

    def result(self):
        recall = self.recall()
        return {f"{self.prefix}{c}": recall[c] for c in range(self.num_classes)}

    def get_config(self):
        config = super().get_config()
        config["prefix"] = self.prefix
        return config
