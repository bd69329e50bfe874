"""Evaluation of a trained model: accuracy overall, per class and per group."""

import numpy as np

from kmix import metrics
from kmix.experiment import distribution


def evaluate(model, dataset, class_counts, major_threshold=0.5):
    """Accuracy, balanced accuracy, per-class and group accuracy on `dataset`.

    Returns a dict of floats and lists, the labels and the predicted classes.
    Over several processes (`distribution.initialize_processes`) every
    process calls it with the same data: each predicts its part of every
    batch, and all get the metrics of the whole of `dataset`.
    """
    num_classes = len(class_counts)
    labels, predictions = [], []
    batch_rows = None
    for x, y in dataset:
        batch_rows = batch_rows or len(y)  # the first batch is a full one
        labels.append(np.asarray(y))
        predictions.append(distribution.predict_classes(model, x, batch_rows))
    labels = np.concatenate(labels).astype("int64")
    predictions = np.concatenate(predictions)
    one_hot_predictions = np.eye(num_classes, dtype="float32")[predictions]
    with distribution.local_only():  # the same numbers on every process
        per_class = metrics.PerClassAccuracy(num_classes)
        balanced = metrics.BalancedAccuracy(num_classes)
        groups = metrics.GroupAccuracy.from_class_counts(
            class_counts, major_threshold=major_threshold
        )
        for metric in (per_class, balanced, groups):
            metric.update_state(labels, one_hot_predictions)
        per_class_values = [float(v) for v in per_class.result().values()]
        result = {
            "accuracy": float(np.mean(labels == predictions)),
            "balanced_accuracy": float(balanced.result()),
            "per_class_accuracy": per_class_values,
            "group_accuracy": {
                name.removeprefix("acc_"): float(value)
                for name, value in groups.result().items()
            },
        }
    return result, labels, predictions
