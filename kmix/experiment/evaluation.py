"""Evaluation of a trained model: accuracy overall, per class and per group."""

import numpy as np

from kmix import metrics


def evaluate(model, dataset, class_counts, major_threshold=0.5):
    """Accuracy, balanced accuracy, per-class and group accuracy on `dataset`.

    Returns a dict of floats and lists, the labels and the predicted classes.
    """
    num_classes = len(class_counts)
    labels, predictions = [], []
    for x, y in dataset:
        labels.append(y.numpy())
        predictions.append(np.argmax(model.predict_on_batch(x), axis=-1))
    labels = np.concatenate(labels).astype("int64")
    predictions = np.concatenate(predictions)
    one_hot_predictions = np.eye(num_classes, dtype="float32")[predictions]
    per_class = metrics.PerClassAccuracy(num_classes)
    balanced = metrics.BalancedAccuracy(num_classes)
    groups = metrics.GroupAccuracy.from_class_counts(
        class_counts, major_threshold=major_threshold
    )
    for metric in (per_class, balanced, groups):
        metric.update_state(labels, one_hot_predictions)
    per_class_values = [float(v) for v in per_class.result().values()]
    return (
        {
            "accuracy": float(np.mean(labels == predictions)),
            "balanced_accuracy": float(balanced.result()),
            "per_class_accuracy": per_class_values,
            "group_accuracy": {
                name.removeprefix("acc_"): float(value)
                for name, value in groups.result().items()
            },
        },
        labels,
        predictions,
    )
