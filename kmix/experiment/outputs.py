"""What a run writes: JSON files (atomically) and the plots of one run."""

import json
import os

from kmix import plots
from kmix import records
from kmix.experiment import console

METRIC_DIGITS = 6


def round_floats(value, digits=METRIC_DIGITS):
    """`value` with every float (in nested dicts, lists and tuples) rounded to `digits` decimals.

    The one rounding rule of the metrics a run reports (`metrics.json`):
    float32 accuracies such as 0.9359999895095825 become 0.936.

    Example:

    >>> round_floats(
    ...     {"accuracy": 0.9359999895095825, "per_class": [0.1234567891, 3]}
    ... )
    {'accuracy': 0.936, 'per_class': [0.123457, 3]}
    """
    if isinstance(value, float):
        return round(value, digits)
    if isinstance(value, dict):
        return {key: round_floats(item, digits) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [round_floats(item, digits) for item in value]
    return value


def write_json(path, value):
    """Writes `value` as JSON to `path` through a temporary file and a rename.

    A run killed while writing leaves the old file or none, never half of one.
    """
    write_text(path, json.dumps(value, indent=2))


def write_text(path, text):
    """Writes `text` to `path` through a temporary file and a rename.

    The temporary file sits next to `path` and is flushed to disk before
    the rename, so a kill (or a full disk) leaves the old file or none.
    """
    records.write_atomically(path, lambda f: f.write(text))


def read_json(path, what="file", remedy=None):
    """Reads a JSON file a run wrote; a corrupt or truncated one raises an error naming it.

    `what` says what the file is (e.g. "metrics of seed 3") and `remedy`
    what to do about it; the default remedy is to delete it and run again.
    """
    try:
        with open(path) as f:
            return json.load(f)
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError
        remedy = remedy or f"Delete {path!r} and run again to write it anew."
        raise ValueError(
            f"The {what} {path!r} is corrupt or truncated ({type(error).__name__}: "
            f"{error}). {remedy}"
        ) from error


def write_plots(
    output_dir, labels, predictions, class_counts, config, class_names=None
):
    """The confusion matrix, class histogram and progress curves of one run.

    The plots colour major and minor classes by the run's own
    `config.major_threshold`, name the classes by `class_names` and the run
    by `console.run_label(config)`.
    """
    join = lambda name: os.path.join(output_dir, name)  # noqa: E731
    rule = {
        "class_counts": class_counts,
        "major_threshold": config.major_threshold,
        "class_names": class_names,
        "run": console.run_label(config),
    }
    plots.plot_confusion_matrix(
        labels,
        predictions,
        join("confusion_matrix.png"),
        num_classes=len(class_counts),
        **rule,
    )
    plots.plot_class_histogram(
        class_counts,
        join("class_histogram.png"),
        **{k: v for k, v in rule.items() if k != "class_counts"},
    )
    progress = join("class_progress.json")
    if config.diagnostics and os.path.exists(progress):
        plots.plot_class_accuracy(progress, join("train_accuracy.png"), **rule)
        plots.plot_class_accuracy(
            progress,
            join("clean_accuracy.png"),
            quantity="clean_accuracy",
            **rule,
        )
        plots.plot_feature_gradients(
            progress, join("feature_gradients.png"), **rule
        )
