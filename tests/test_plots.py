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
    acc = np.clip(
        np.outer(e / epochs, [1, 1, 1, 0.4, 0.3]) + rng.rand(epochs, 5) * 0.05,
        0,
        1,
    )
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
        history, str(tmp_path / "acc.png"), class_counts=COUNTS, grouped=grouped
    )
    assert path == str(tmp_path / "acc.png")
    _check(path, (900, 480))
    path = kmix.plots.plot_feature_gradients(
        history,
        tmp_path / "grad.png",
        class_counts=COUNTS,
        grouped=grouped,
        figsize=(5, 3),
        dpi=80,
    )
    _check(path, (400, 240))


def test_figures_from_the_csv_file(tmp_path):
    csv_path = write_records_csv(
        _records(_history()), str(tmp_path / "progress.csv")
    )
    path = kmix.plots.plot_class_accuracy(csv_path, str(tmp_path / "a.png"))
    _check(path, (900, 480))
    with pytest.raises(ValueError, match="quantity='val_accuracy'"):
        kmix.plots.plot_class_accuracy(
            csv_path, str(tmp_path / "b.png"), quantity="val_accuracy"
        )


def test_accuracy_bars_for_several_runs(tmp_path):
    runs = {
        "plain": [0.9, 0.9, 0.8, 0.1, 0.0],
        "MajorMix": [0.85, 0.8, 0.8, 0.4, 0.3],
        "reweighted": [0.7, 0.7, 0.7, 0.5, 0.5],
    }
    path = kmix.plots.plot_accuracy_bars(
        runs, str(tmp_path / "bars.png"), class_counts=COUNTS
    )
    _check(path, (1000, 450))


def test_confusion_matrix_figure_and_counts(tmp_path):
    y_true = np.array([0, 0, 1, 2, 3, 4, 4])
    scores = np.eye(5)[[0, 1, 1, 2, 0, 4, 0]]
    matrix = kmix.plots.confusion_matrix(y_true, scores)
    assert matrix.shape == (5, 5)
    assert (
        matrix[0, 0] == 1
        and matrix[0, 1] == 1
        and matrix[4, 0] == 1
        and matrix.sum() == 7
    )
    path = kmix.plots.plot_confusion_matrix(
        y_true, scores, str(tmp_path / "cm.png"), class_counts=COUNTS
    )
    _check(path, (800, 640))


def test_class_histogram(tmp_path):
    path = kmix.plots.plot_class_histogram(
        COUNTS, str(tmp_path / "sub" / "hist.png"), dpi=50
    )
    _check(path, (400, 225))


def test_colours_split_major_and_minor_families():
    colors = kmix.plots.class_colors(5, class_counts=COUNTS)
    blue = [c[2] > c[0] for c in colors]  # blue channel above red channel
    assert blue == [True, True, True, False, False]
    assert kmix.plots.major_classes_of([100, 60, 40]) == [0, 1]


def _is_blue(colors):
    return [c[2] > c[0] for c in colors]


def test_colours_follow_the_runs_major_threshold_or_explicit_classes():
    counts = [100, 60, 40, 10]
    assert kmix.plots.major_classes_of(counts, major_threshold=0.3) == [0, 1, 2]
    assert _is_blue(kmix.plots.class_colors(4, counts)) == [
        True,
        True,
        False,
        False,
    ]
    assert _is_blue(
        kmix.plots.class_colors(4, counts, major_threshold=0.3)
    ) == [True, True, True, False]
    assert _is_blue(
        kmix.plots.class_colors(4, counts, major_threshold=1.0)
    ) == [True, False, False, False]
    assert _is_blue(kmix.plots.class_colors(4, counts, major_classes=[3])) == [
        False,
        False,
        False,
        True,
    ]
    assert _is_blue(kmix.plots.class_colors(4, major_classes=[1, 2])) == [
        False,
        True,
        True,
        False,
    ]
    # The histogram's legend counts the families by the same threshold.
    labels = [
        h.get_label() for h in kmix.plots._family_handles(4, counts, None, 0.3)
    ]
    assert labels == ["major class (3; n_c >= 0.3 * max n)", "minor class (1)"]
    with pytest.raises(ValueError, match="major_threshold"):
        kmix.plots.class_colors(4, counts, major_threshold=0.0)
    with pytest.raises(ValueError, match="major_classes"):
        kmix.plots.class_colors(4, counts, major_classes=[7])


def test_every_figure_takes_the_major_threshold(tmp_path):
    history = _history()
    kw = {"class_counts": COUNTS, "major_threshold": 0.005}
    for path in [
        kmix.plots.plot_class_accuracy(
            history, tmp_path / "a.png", grouped=True, **kw
        ),
        kmix.plots.plot_feature_gradients(history, tmp_path / "g.png", **kw),
        kmix.plots.plot_accuracy_bars(
            {"run": [0.9, 0.8, 0.7, 0.2, 0.1]}, tmp_path / "b.png", **kw
        ),
        kmix.plots.plot_confusion_matrix(
            [0, 1, 2, 3, 4],
            [0, 1, 2, 3, 3],
            tmp_path / "c.png",
            num_classes=5,
            **kw,
        ),
        kmix.plots.plot_class_histogram(
            COUNTS, tmp_path / "h.png", major_threshold=0.005
        ),
    ]:
        assert _png_size(path)[0] > 0


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures the plot functions save, in order."""
    saved = []
    save = kmix.plots._save

    def keep(fig, path, dpi):
        fig.canvas.draw()  # lays the figure out, as savefig does
        saved.append(fig)
        return save(fig, path, dpi)

    monkeypatch.setattr(kmix.plots, "_save", keep)
    return saved


def _texts(fig):
    return [t.get_text() for t in fig.findobj(lambda a: hasattr(a, "get_text"))]


NAMES = ["cat", "dog", "bird", "fish", "frog"]


def test_figures_name_the_quantity_the_run_and_the_classes(tmp_path, figures):
    history = {**_history(), "clean_accuracy": _history()["train_accuracy"]}
    run = "toy step-100, small_cnn, CE + MajorMix, seed 0"
    kw = {"class_counts": COUNTS, "class_names": NAMES, "run": run}
    kmix.plots.plot_class_accuracy(
        history, tmp_path / "a.png", quantity="clean_accuracy", **kw
    )
    kmix.plots.plot_feature_gradients(history, tmp_path / "g.png", **kw)
    kmix.plots.plot_confusion_matrix(
        [0, 1, 2, 3, 4], [0, 1, 2, 3, 3], tmp_path / "c.png", **kw
    )
    kmix.plots.plot_class_histogram(
        COUNTS, tmp_path / "h.png", class_names=NAMES, run=run
    )
    kmix.plots.plot_accuracy_bars(
        {"MajorMix": [0.9, 0.8, 0.7, 0.2, 0.1]}, tmp_path / "b.png", **kw
    )
    titles = [fig.axes[0].get_title() for fig in figures]
    assert (
        titles[0]
        == f"Training accuracy per class, clean pass (inference mode)\n{run}"
    )
    assert titles[1] == f"Feature-gradient norm per class\n{run}"
    assert (
        titles[2]
        == f"Test confusion matrix, row-normalized (diagonal: each class's accuracy)\n{run}"
    )
    assert (
        titles[3] == f"Training images per class (imbalance ratio 100)\n{run}"
    )
    assert titles[4] == f"Per-class test accuracy\n{run}"
    # The clean-pass footnote explains the jumps between epochs.
    assert "BatchNorm's moving averages lag" in " ".join(
        _texts(figures[0])
    ).replace("\n", " ")
    # Class names in the legends and on the ticks.
    legend = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
    assert legend == [
        "major classes (solid, blues)",
        "cat (n=500)",
        "dog (n=500)",
        "bird (n=500)",
        "minor classes (dashed, reds)",
        "fish (n=5)",
        "frog (n=5)",
    ]
    assert [t.get_text() for t in figures[2].axes[0].get_yticklabels()] == [
        "cat (500)",
        "dog (500)",
        "bird (500)",
        "fish (5)",
        "frog (5)",
    ]
    assert [t.get_text() for t in figures[3].axes[0].get_xticklabels()] == NAMES
    # Legends sit right of the axes, clear of the curves and bars.
    for fig in (figures[0], figures[1], figures[3], figures[4]):
        ax = fig.axes[0]
        renderer = fig.canvas.get_renderer()
        assert (
            ax.get_legend().get_window_extent(renderer).x0
            >= ax.get_window_extent(renderer).x1
        )
    # The confusion matrix explains its tick colours.
    assert "tick labels: minor class (2)" in _texts(figures[2])
    # Log axes read as plain numbers, not powers of ten.
    labels = [
        t.get_text()
        for t in figures[1].axes[0].get_yticklabels()
        if t.get_text()
    ]
    assert labels and all(
        "^" not in label and "\\" not in label for label in labels
    )
    for label in labels:
        float(label)


def test_class_names_must_match_the_classes(tmp_path):
    with pytest.raises(ValueError, match="must name the 5 classes"):
        kmix.plots.plot_class_accuracy(
            _history(), tmp_path / "a.png", class_names=["a", "b"]
        )


def test_confusion_matrix_reads_labels_as_kmix_classes_does():
    y = np.array([0, 2, 2, 1])
    predictions = np.array([0, 2, 1, 1])
    expected = np.array([[1, 0, 0], [0, 1, 0], [0, 1, 1]])
    np.testing.assert_array_equal(
        kmix.plots.confusion_matrix(y, predictions), expected
    )
    np.testing.assert_array_equal(
        kmix.plots.confusion_matrix(y[:, None], predictions[:, None]), expected
    )
    np.testing.assert_array_equal(
        kmix.plots.confusion_matrix(np.eye(3)[y], np.eye(3)[predictions] * 0.9),
        expected,
    )
    # Scores fix the number of classes even when the last class is never seen.
    assert kmix.plots.confusion_matrix([0, 1], np.eye(4)[[0, 1]]).shape == (
        4,
        4,
    )


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
