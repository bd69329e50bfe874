"""What a run writes: JSON files (atomically) and the plots of one run."""

import json
import os

from kmix import plots


def write_json(path, value):
    """Writes `value` as JSON to `path` through a temporary file and a rename.

    A run killed while writing leaves the old file or none, never half of one.
    """
    write_text(path, json.dumps(value, indent=2))


def write_text(path, text):
    """Writes `text` to `path` through a temporary file and a rename."""
    temporary = f"{path}.tmp"
    with open(temporary, "w") as f:
        f.write(text)
    os.replace(temporary, path)


def write_plots(output_dir, labels, predictions, class_counts, config):
    """The confusion matrix, class histogram and progress curves of one run.

    The plots colour major and minor classes by the run's own
    `config.major_threshold`.
    """
    join = lambda name: os.path.join(output_dir, name)  # noqa: E731
    rule = {"class_counts": class_counts, "major_threshold": config.major_threshold}
    plots.plot_confusion_matrix(labels, predictions, join("confusion_matrix.png"),
                                num_classes=len(class_counts), **rule)
    plots.plot_class_histogram(class_counts, join("class_histogram.png"),
                               major_threshold=config.major_threshold)
    progress = join("class_progress.json")
    if config.diagnostics and os.path.exists(progress):
        plots.plot_class_accuracy(progress, join("train_accuracy.png"), **rule)
        plots.plot_class_accuracy(progress, join("clean_accuracy.png"), quantity="clean_accuracy", **rule)
        plots.plot_feature_gradients(progress, join("feature_gradients.png"), **rule)
