"""`kmix.plots`: every figure is a non-empty PNG of `figsize * dpi` pixels."""

import struct
import sys

import numpy as np
import pytest

import kmix
from kmix.callbacks.class_progress import write_records_csv

COUNTS = [500, 500, 500, 5, 5]


def _png_size(path):
    with open(path, "rb") as f:
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def _history(epochs=6):
    rng = np.random.RandomState(0)
    e = np.arange(1, epochs + 1)
    acc = np.clip(np.outer(e / epochs, [1, 1, 1, 0.4, 0.3]) + rng.rand(epochs, 5) * 0.05, 0, 1)
    acc[0, 4] = np.nan  # a class unseen in epoch 1
    grad = np.outer(1.0 / e, [0.1, 0.1, 0.1, 2.0, 3.0])
    return {
        "train_accuracy": {"epoch": e.tolist(), "value": acc.tolist()},
        "feature_grad_norm": {"epoch": e.tolist(), "value": grad.tolist()},
    }


def _records(history):
    return [
        {"epoch": epoch, "class": c, "quantity": quantity, "value": v}
        for quantity, entry in history.items()
        for epoch, row in zip(entry["epoch"], entry["value"])
        for c, v in enumerate(row)
    ]


def _check(path, size):
    assert _png_size(path) == size
    with open(path, "rb") as f:
        assert len(f.read()) > 2000


@pytest.mark.parametrize("grouped", [False, True])
def test_class_accuracy_and_gradient_figures(tmp_path, grouped):
    history = _history()
    path = kmix.plots.plot_class_accuracy(
        history, str(tmp_path / "acc.png"), class_counts=COUNTS, grouped=grouped)
    assert path == str(tmp_path / "acc.png")
    _check(path, (640, 400))
    path = kmix.plots.plot_feature_gradients(
        history, tmp_path / "grad.png", class_counts=COUNTS, grouped=grouped,
        figsize=(5, 3), dpi=80)
    _check(path, (400, 240))


def test_figures_from_the_csv_file(tmp_path):
    csv_path = write_records_csv(_records(_history()), str(tmp_path / "progress.csv"))
    path = kmix.plots.plot_class_accuracy(csv_path, str(tmp_path / "a.png"))
    _check(path, (640, 400))
    with pytest.raises(ValueError, match="quantity='val_accuracy'"):
        kmix.plots.plot_class_accuracy(csv_path, str(tmp_path / "b.png"), quantity="val_accuracy")


def test_accuracy_bars_for_several_runs(tmp_path):
    runs = {"plain": [0.9, 0.9, 0.8, 0.1, 0.0], "MajorMix": [0.85, 0.8, 0.8, 0.4, 0.3],
            "reweighted": [0.7, 0.7, 0.7, 0.5, 0.5]}
    path = kmix.plots.plot_accuracy_bars(runs, str(tmp_path / "bars.png"), class_counts=COUNTS)
    _check(path, (800, 400))


def test_confusion_matrix_figure_and_counts(tmp_path):
    y_true = np.array([0, 0, 1, 2, 3, 4, 4])
    scores = np.eye(5)[[0, 1, 1, 2, 0, 4, 0]]
    matrix = kmix.plots.confusion_matrix(y_true, scores)
    assert matrix.shape == (5, 5)
    assert matrix[0, 0] == 1 and matrix[0, 1] == 1 and matrix[4, 0] == 1 and matrix.sum() == 7
    path = kmix.plots.plot_confusion_matrix(y_true, scores, str(tmp_path / "cm.png"),
                                            class_counts=COUNTS)
    _check(path, (600, 500))


def test_class_histogram(tmp_path):
    path = kmix.plots.plot_class_histogram(COUNTS, str(tmp_path / "sub" / "hist.png"), dpi=50)
    _check(path, (320, 200))


def test_colours_split_major_and_minor_families():
    colors = kmix.plots.class_colors(5, class_counts=COUNTS)
    blue = [c[2] > c[0] for c in colors]  # blue channel above red channel
    assert blue == [True, True, True, False, False]
    assert kmix.plots.major_classes_of([100, 60, 40]) == [0, 1]


if __name__ == "__main__":
    import sys, pytest
    sys.exit(pytest.main([__file__, "-q"]))
