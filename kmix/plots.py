"""Figures of kmix's per-class diagnostics, saved as PNG files.

Every function takes recorded data and an output path, writes one PNG of
exactly `figsize * dpi` pixels and returns the path. Figures are drawn with
matplotlib's Agg canvas (no display, no pyplot state), so they work on
headless machines and in threads.

Major classes are drawn in blues and minor classes in oranges/reds, so a
figure reads without a legend hunt. A class is major by the rule of
`kmix.MajorMix` (`kmix.classes.major_class_mask`): its training count is at
least `major_threshold` times the largest count. Every figure function takes
the run's `major_threshold` (default 0.5, `MajorMix`'s default; pass the
value the run used) or `major_classes` to choose the classes yourself.
Without class counts all classes share one neutral palette.

Each figure reads on its own: the title names the quantity (and the run,
given `run=`, e.g. "fashion_mnist step-100, small_cnn, CE + MajorMix after
stage1 (strength 0.5), seed 0"), the classes are named by `class_names=`
with their training counts, legends sit right of the axes and say which
colour is which family, log axes are labelled 0.5, 1, 2, 5, and the
per-epoch figures carry a footnote on how the quantity was measured.

The per-epoch figures (`plot_class_accuracy`, `plot_feature_gradients`) read
a `kmix.callbacks.ClassProgress` callback, its `history` dict, or the CSV /
JSON file it wrote (the JSON also carries `class_counts`). These are the two
curves of "Procrustean Training for Imbalanced Deep Learning" (Ye, Zhan &
Chao, ICCV 2021): per-class training accuracy and per-class feature-gradient
norm over epochs.

Example:

>>> progress = kmix.callbacks.ClassProgress(output_dir="runs/mix")
>>> model.compile(
...     "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
... )
>>> history = model.fit(
...     x_train, y_train, epochs=2, callbacks=[progress], verbose=0
... )
>>> kmix.plots.plot_class_accuracy(progress, "runs/mix/train_acc.png")
'runs/mix/train_acc.png'
>>> kmix.plots.plot_feature_gradients(
...     "runs/mix/class_progress.json", "runs/mix/grad.png"
... )
'runs/mix/grad.png'
"""

import os
import textwrap

import numpy as np
from keras import ops
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FormatStrFormatter
from matplotlib.ticker import FuncFormatter
from matplotlib.ticker import LogLocator
from matplotlib.ticker import MaxNLocator
from matplotlib.ticker import NullFormatter

from kmix import classes
from kmix import validation

_LABELS = {
    "train_accuracy": "training accuracy (mixed batches)",
    "clean_accuracy": "training accuracy (clean pass)",
    "val_accuracy": "validation accuracy",
    "feature_grad_norm": "mean feature-gradient norm",
}
# The default title of each per-epoch quantity: what was measured, on what.
_TITLES = {
    "train_accuracy": "Training accuracy per class, on the batches as trained (mixed)",
    "clean_accuracy": "Training accuracy per class, clean pass (inference mode)",
    "val_accuracy": "Validation accuracy per class",
    "feature_grad_norm": "Feature-gradient norm per class",
}
# A footnote under each per-epoch figure: how to read it without the docs.
_NOTES = {
    "train_accuracy": (
        "Accuracy on each epoch's training batches as the model trained on them (training "
        "mode: major-class features mixed by MajorMix, augmentation, batch statistics), "
        "averaged over the epoch. The clean pass (clean_accuracy.png) shows the model without them."
    ),
    "clean_accuracy": (
        "Inference-mode pass (no mixing, BatchNorm moving averages) over a fixed sample of "
        "training images after the epoch: what the model predicts then (its test accuracy "
        "moves alike). At the peak learning rate a class can jump between epochs: "
        "BatchNorm's moving averages lag weights that move fast, and the boundaries between "
        "rarely seen classes move within an epoch. Read the trend (docs/diagnostics.md)."
    ),
    "val_accuracy": "Accuracy on the validation split after each epoch (inference mode).",
    "feature_grad_norm": (
        "Mean over the epoch's examples of ||d loss_i / d h_i||, h the features the "
        "classifier reads: large for classes the model has not fitted (Ye et al., ICCV 2021)."
    ),
}
_MAJOR_COLOR, _MINOR_COLOR = colormaps["Blues"](0.85), colormaps["OrRd"](0.85)
_HATCHES = ("", "//", "..", "xx", "\\\\", "oo", "++", "--")


def major_classes_of(class_counts, major_threshold=0.5):
    """Indices of the major classes, as `kmix.classes.major_class_mask` finds them."""
    mask = classes.major_class_mask(class_counts, major_threshold)
    return [int(c) for c in np.flatnonzero(mask)]


def class_colors(
    num_classes,
    class_counts=None,
    major_classes=None,
    major_threshold=0.5,
    shade=0.0,
):
    """One RGBA colour per class: blues for major classes, oranges/reds for minor.

    `shade` in [0, 1] darkens the whole palette (used to tell runs apart).
    Without `class_counts` or `major_classes`, all classes get greens.
    """
    majors = _major_set(
        num_classes, class_counts, major_classes, major_threshold
    )
    colors = [None] * num_classes
    if majors is None:
        groups = [(list(range(num_classes)), "Greens")]
    else:
        minors = [c for c in range(num_classes) if c not in majors]
        groups = [(sorted(majors), "Blues"), (minors, "OrRd")]
    for members, cmap_name in groups:
        cmap = colormaps[cmap_name]
        low, high = 0.45 + 0.3 * shade, 0.8 + 0.2 * shade
        levels = (
            np.linspace(low, high, len(members))
            if len(members) > 1
            else [0.5 * (low + high)]
        )
        for c, level in zip(members, levels):
            colors[c] = cmap(float(level))
    return colors


def load_progress(progress):
    """Returns `(history, class_counts)` from a `ClassProgress`, its `history`
    dict, or the path of its CSV or JSON file (class counts are None when the
    source does not carry them)."""
    from kmix.records import history_from_records
    from kmix.records import read_records

    if isinstance(progress, (str, os.PathLike)):
        records, counts = read_records(os.fspath(progress))
        return history_from_records(records), counts
    if isinstance(progress, dict):
        return progress, None
    if hasattr(progress, "history") and isinstance(progress.history, dict):
        return progress.history, getattr(progress, "class_counts", None)
    raise TypeError(
        "Argument `progress` must be a kmix.callbacks.ClassProgress, its "
        "`history` dict, or the path of its CSV/JSON file. "
        f"Received: progress of type {type(progress).__name__}."
    )


def plot_class_accuracy(
    progress,
    path,
    quantity="train_accuracy",
    class_counts=None,
    major_classes=None,
    grouped=False,
    title=None,
    figsize=(9.0, 4.8),
    dpi=100,
    major_threshold=0.5,
    class_names=None,
    run=None,
):
    """Per-class (or major/minor grouped) accuracy against epoch.

    The title names the quantity (and `run`), the legend (right of the
    axes) names each class and its training count, and a footnote says how
    the quantity was measured.

    Args:
        progress: a `ClassProgress`, its `history`, or its CSV/JSON path.
        path: where to write the PNG.
        quantity: `"train_accuracy"` (the mixed batches), `"clean_accuracy"`
            or `"val_accuracy"`.
        class_counts: training counts for the colours; defaults to those
            recorded with `progress`.
        major_classes: explicit major classes (overrides the threshold rule).
        grouped: draw the mean over major and over minor classes (with their
            range shaded) instead of one line per class.
        title, figsize, dpi: figure options; the PNG is `figsize * dpi` pixels.
        major_threshold: the run's `MajorMix` threshold: a class is major
            when `n_c >= major_threshold * max(n)`.
        class_names: names of the classes, in label order (default "class <c>").
        run: a short description of the run, shown under the title.
    """
    return _plot_series(
        progress,
        path,
        quantity,
        class_counts,
        major_classes,
        major_threshold,
        grouped,
        title,
        figsize,
        dpi,
        log_y=False,
        class_names=class_names,
        run=run,
    )


def plot_feature_gradients(
    progress,
    path,
    class_counts=None,
    major_classes=None,
    grouped=False,
    title=None,
    figsize=(9.0, 4.8),
    dpi=100,
    log_y=True,
    major_threshold=0.5,
    class_names=None,
    run=None,
):
    """Per-class mean feature-gradient norm against epoch (log scale by default).

    Same arguments as `plot_class_accuracy`; `log_y` sets a logarithmic y axis
    (ticks labelled in plain numbers: 0.5, 1, 2, ...).
    """
    return _plot_series(
        progress,
        path,
        "feature_grad_norm",
        class_counts,
        major_classes,
        major_threshold,
        grouped,
        title,
        figsize,
        dpi,
        log_y=log_y,
        class_names=class_names,
        run=run,
    )


def plot_accuracy_bars(
    runs,
    path,
    class_counts=None,
    major_classes=None,
    title=None,
    ylabel="test accuracy",
    figsize=(10.0, 4.5),
    dpi=100,
    major_threshold=0.5,
    class_names=None,
    run=None,
):
    """Per-class accuracy bars of several runs side by side.

    Args:
        runs: dict from run name to a sequence of per-class accuracies (all
            of the same length), e.g. `{"plain": acc_a, "MajorMix": acc_b}`.
        path: where to write the PNG.
        class_counts: training counts (for the colours and tick labels).
        major_classes: explicit major classes.
        title, ylabel, figsize, dpi: figure options.
        major_threshold: the run's `MajorMix` threshold (see the module).
        class_names: names of the classes for the ticks (default the indices).
        run: a short description of the data, shown under the title.

    Each run has its own hatch and shade; within a run, major-class bars are
    blue and minor-class bars orange/red, as are the tick labels. The legend
    (right of the axes) names the runs and their mean (balanced) accuracy.
    """
    if not isinstance(runs, dict) or not runs:
        raise ValueError(
            "Argument `runs` must be a non-empty dict from run name to per-class "
            f"accuracies. Received: runs={runs!r}."
        )
    values = {
        name: np.asarray(v, dtype="float64").reshape(-1)
        for name, v in runs.items()
    }
    sizes = {len(v) for v in values.values()}
    if len(sizes) != 1:
        raise ValueError(
            "Argument `runs` must give every run the same number of classes. "
            f"Received lengths: { {k: len(v) for k, v in values.items()} }."
        )
    num_classes = sizes.pop()
    fig, ax = _figure(figsize, dpi)
    width = 0.8 / len(values)
    handles = []
    for r, (name, acc) in enumerate(values.items()):
        shade = r / max(len(values) - 1, 1)
        colors = class_colors(
            num_classes,
            class_counts,
            major_classes,
            major_threshold,
            shade=shade,
        )
        hatch = _HATCHES[r % len(_HATCHES)]
        x = np.arange(num_classes) - 0.4 + width * (r + 0.5)
        ax.bar(
            x,
            np.nan_to_num(acc),
            width=width,
            color=colors,
            hatch=hatch,
            edgecolor="white",
            linewidth=0.5,
        )
        handles.append(
            Patch(
                facecolor=colors[0],
                hatch=hatch,
                edgecolor="white",
                label=f"{name} (mean {np.nanmean(acc):.3f})",
            )
        )
    ax.set_xticks(np.arange(num_classes))
    _class_ticks(ax.xaxis, num_classes, class_names, class_counts)
    _color_tick_labels(
        ax.get_xticklabels(),
        num_classes,
        class_counts,
        major_classes,
        major_threshold,
    )
    ax.set_xlabel(
        "class (training images)" if class_counts is not None else "class"
    )
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.05)
    ax.grid(axis="y", alpha=0.3)
    if (
        _major_set(num_classes, class_counts, major_classes, major_threshold)
        is not None
    ):
        handles += _family_handles(
            num_classes, class_counts, major_classes, major_threshold
        )
    _legend_outside(ax, handles, [h.get_label() for h in handles])
    _set_title(ax, title or f"Per-class {ylabel}", run)
    return _save(fig, path, dpi)


def plot_confusion_matrix(
    y_true,
    y_pred,
    path,
    num_classes=None,
    class_counts=None,
    major_classes=None,
    normalize=True,
    title=None,
    figsize=(8.0, 6.4),
    dpi=100,
    major_threshold=0.5,
    class_names=None,
    run=None,
):
    """The confusion matrix (rows: true class, columns: predicted class).

    Args:
        y_true: integer labels `(n,)` or one-hot `(n, C)`.
        y_pred: scores `(n, C)` or predicted classes `(n,)`.
        path: where to write the PNG.
        num_classes: number of classes (default: inferred).
        class_counts, major_classes: for the colour of the tick labels
            (blue: major class, red: minor class; a legend says so).
        normalize: divide each row by its count (recall on the diagonal).
        title, figsize, dpi: figure options.
        major_threshold: the run's `MajorMix` threshold (see the module).
        class_names: names of the classes for the ticks (default the indices).
        run: a short description of the run, shown under the title.
    """
    matrix = confusion_matrix(y_true, y_pred, num_classes)
    num_classes = matrix.shape[0]
    if normalize:
        matrix = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig, ax = _figure(figsize, dpi)
    image = ax.imshow(
        matrix, cmap="Greys", vmin=0, vmax=1 if normalize else None
    )
    colorbar = fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    colorbar.set_label(
        "fraction of the true class's test images"
        if normalize
        else "test images"
    )
    if num_classes <= 20:
        for i in range(num_classes):
            for j in range(num_classes):
                value = matrix[i, j]
                text = f"{value:.2f}" if normalize else f"{int(value)}"
                ax.text(
                    j,
                    i,
                    text,
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if value > 0.5 * matrix.max() else "black",
                )
    ticks = np.arange(num_classes)
    ax.set_xticks(ticks)
    ax.set_yticks(ticks)
    _class_ticks(ax.xaxis, num_classes, class_names, None, rotate=True)
    _class_ticks(ax.yaxis, num_classes, class_names, class_counts)
    for labels in (ax.get_xticklabels(), ax.get_yticklabels()):
        _color_tick_labels(
            labels, num_classes, class_counts, major_classes, major_threshold
        )
    ax.set_xlabel("predicted class")
    ax.set_ylabel(
        "true class (training images)"
        if class_counts is not None
        else "true class"
    )
    default = (
        "Test confusion matrix, row-normalized (diagonal: each class's accuracy)"
        if normalize
        else "Test confusion matrix"
    )
    _set_title(ax, title or default, run)
    if (
        _major_set(num_classes, class_counts, major_classes, major_threshold)
        is not None
    ):
        handles = _family_handles(
            num_classes,
            class_counts,
            major_classes,
            major_threshold,
            what="tick labels",
        )
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=len(handles),
            fontsize="small",
            frameon=False,
        )
    return _save(fig, path, dpi)


def plot_class_histogram(
    class_counts,
    path,
    major_classes=None,
    log_y=None,
    title=None,
    figsize=(8.0, 4.5),
    dpi=100,
    major_threshold=0.5,
    class_names=None,
    run=None,
):
    """Bars of the training-set count of each class.

    `class_counts` is a sequence of counts; integer labels can be turned
    into counts with `numpy.bincount`. `log_y` defaults to a log scale when
    the largest count is over 20 times the smallest positive one. Major
    classes (by `major_threshold` or `major_classes`, see the module) are
    blue, and the legend counts both families. `class_names` label the
    bars; `run` is shown under the title.
    """
    counts = np.asarray(validation.check_class_counts(class_counts))
    num_classes = len(counts)
    colors = class_colors(num_classes, counts, major_classes, major_threshold)
    fig, ax = _figure(figsize, dpi)
    ax.bar(np.arange(num_classes), counts, color=colors)
    if log_y is None:
        log_y = counts.max() > 20 * counts[counts > 0].min()
    if log_y:
        ax.set_yscale("log")
        _readable_log_ticks(ax.yaxis, counts)
    ax.set_xticks(np.arange(num_classes))
    _class_ticks(
        ax.xaxis, num_classes, class_names, None, rotate=class_names is not None
    )
    _color_tick_labels(
        ax.get_xticklabels(),
        num_classes,
        counts,
        major_classes,
        major_threshold,
    )
    if num_classes <= 20:
        for c, count in enumerate(counts):
            ax.annotate(
                f"{count}",
                (c, count),
                xytext=(0, 2),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize="x-small",
            )
    ax.set_xlabel("class")
    ax.set_ylabel("training images" + (" (log scale)" if log_y else ""))
    ax.margins(y=0.12)
    ratio = counts.max() / max(counts[counts > 0].min(), 1)
    _set_title(
        ax,
        title or f"Training images per class (imbalance ratio {ratio:.0f})",
        run,
    )
    handles = _family_handles(
        num_classes, counts, major_classes, major_threshold
    )
    _legend_outside(ax, handles, [h.get_label() for h in handles])
    return _save(fig, path, dpi)


def confusion_matrix(y_true, y_pred, num_classes=None):
    """Integer confusion matrix `(C, C)`, rows true, columns predicted.

    Labels and predictions are read as `kmix.classes.integer_labels` reads
    them: integer classes `(n,)` / `(n, 1)`, or one-hot labels and scores
    `(n, C)` (their argmax). `num_classes` defaults to the scores' width,
    else 1 + the largest class seen.
    """
    scores_width = np.shape(y_pred)[-1] if np.ndim(y_pred) == 2 else 1
    if num_classes is None and scores_width != 1:
        num_classes = scores_width
    labels = _numpy_labels(y_true)
    predictions = _numpy_labels(y_pred)
    if num_classes is None:
        num_classes = (
            int(max(labels.max(initial=0), predictions.max(initial=0))) + 1
        )
    matrix = np.zeros((num_classes, num_classes), "int64")
    np.add.at(matrix, (labels, predictions), 1)
    return matrix


# ---------------------------------------------------------------- internals


def _plot_series(
    progress,
    path,
    quantity,
    class_counts,
    major_classes,
    major_threshold,
    grouped,
    title,
    figsize,
    dpi,
    log_y,
    class_names=None,
    run=None,
):
    history, recorded_counts = load_progress(progress)
    if class_counts is None:
        class_counts = recorded_counts
    if quantity not in history or not history[quantity]["epoch"]:
        raise ValueError(
            f"Argument `quantity` names nothing recorded: quantity={quantity!r}; "
            f"the recorded quantities are {sorted(history)}."
        )
    epochs = np.asarray(history[quantity]["epoch"])
    values = np.asarray(history[quantity]["value"], dtype="float64")
    num_classes = values.shape[1]
    names = _class_names(num_classes, class_names)
    fig, ax = _figure(figsize, dpi)
    majors = _major_set(
        num_classes, class_counts, major_classes, major_threshold
    )
    marker = "o" if len(epochs) <= 20 else None
    if grouped and majors is not None:
        minors = [c for c in range(num_classes) if c not in majors]
        for members, cmap_name, name in (
            (sorted(majors), "Blues", "major"),
            (minors, "OrRd", "minor"),
        ):
            if not members:
                continue
            color = colormaps[cmap_name](0.75)
            block = values[:, members]
            with np.errstate(all="ignore"):
                mean = np.nanmean(block, axis=1)
                low, high = np.nanmin(block, axis=1), np.nanmax(block, axis=1)
            ax.plot(
                epochs,
                mean,
                color=color,
                marker=marker,
                label=f"{name} classes ({len(members)}): mean",
            )
            ax.fill_between(
                epochs,
                low,
                high,
                color=color,
                alpha=0.2,
                label=f"{name} classes: range",
            )
        _legend_outside(ax)
    else:
        colors = class_colors(
            num_classes, class_counts, major_classes, major_threshold
        )
        order = list(range(num_classes))
        if majors is not None:
            order = sorted(majors) + [c for c in order if c not in majors]
        for c in order:
            label = names[c]
            if class_counts is not None:
                label += f" (n={class_counts[c]})"
            ax.plot(
                epochs,
                values[:, c],
                color=colors[c],
                marker=marker,
                markersize=3,
                linestyle="-" if majors is None or c in majors else "--",
                label=label,
            )
        if num_classes <= 20:
            handles, labels = ax.get_legend_handles_labels()
            if majors is not None:  # a heading before each family
                split = len(majors)
                heading = lambda text: Line2D(
                    [], [], linestyle="none", label=text
                )  # noqa: E731
                handles = (
                    [heading("major classes (solid, blues)")]
                    + handles[:split]
                    + [heading("minor classes (dashed, reds)")]
                    + handles[split:]
                )
                labels = [h.get_label() for h in handles]
            _legend_outside(ax, handles, labels)
    if log_y:
        ax.set_yscale("log")
        _readable_log_ticks(ax.yaxis, values)
    elif quantity != "feature_grad_norm":
        ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(_LABELS.get(quantity, quantity))
    ax.grid(alpha=0.3)
    _set_title(ax, title or _TITLES.get(quantity, quantity), run)
    if quantity in _NOTES:
        _footnote(fig, _NOTES[quantity])
    return _save(fig, path, dpi)


def _class_names(num_classes, class_names):
    """`class_names` as strings, checked against `num_classes`; default "class <c>"."""
    if class_names is None:
        return [f"class {c}" for c in range(num_classes)]
    names = [str(name) for name in class_names]
    if len(names) != num_classes:
        raise ValueError(
            f"Argument `class_names` must name the {num_classes} classes. "
            f"Received: class_names={list(class_names)!r}."
        )
    return names


def _legend_outside(ax, handles=None, labels=None, **kwargs):
    """The legend to the right of the axes, clear of the data."""
    if handles is None:
        handles, labels = ax.get_legend_handles_labels()
    return ax.legend(
        handles,
        labels,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        borderaxespad=0.0,
        fontsize="small",
        frameon=False,
        **kwargs,
    )


def _readable_log_ticks(axis, values):
    """Plain-number ticks (0.5, 1, 2, 5, ...) on a log axis instead of 10^k powers."""
    finite = np.asarray(values, dtype="float64")
    finite = finite[np.isfinite(finite) & (finite > 0)]
    span = np.log10(finite.max() / finite.min()) if finite.size else 1.0
    subs = (
        (1.0,)
        if span > 4
        else (1.0, 2.0, 5.0)
        if span > 1.3
        else (1.0, 1.5, 2.0, 3.0, 5.0, 7.0)
    )
    axis.set_major_locator(LogLocator(subs=subs))
    axis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
    axis.set_minor_formatter(NullFormatter())


def _set_title(ax, title, run):
    ax.set_title(title + (f"\n{run}" if run else ""), fontsize="medium")


def _footnote(fig, text):
    """A small note under the axes, wrapped to the figure's width (inside its layout)."""
    width = max(
        40, int(fig.get_figwidth() * 19)
    )  # characters of x-small text per line
    wrapped = "\n".join(textwrap.wrap(" ".join(text.split()), width))
    fig.supxlabel(
        wrapped,
        fontsize="x-small",
        color="0.3",
        ha="left",
        x=0.01,
        multialignment="left",
    )


def _major_set(num_classes, class_counts, major_classes, major_threshold):
    """The major classes (a set), or None when neither counts nor classes are given."""
    if class_counts is None:
        if major_classes is None:
            return None
        return set(classes.check_major_classes(major_classes))
    if len(class_counts) != num_classes:
        raise ValueError(
            f"Argument `class_counts` must have {num_classes} entries (one per "
            f"class). Received: class_counts={list(class_counts)!r}."
        )
    mask = classes.major_class_mask(
        class_counts, major_threshold, major_classes
    )
    return set(int(c) for c in np.flatnonzero(mask))


def _numpy_labels(values):
    """`kmix.classes.integer_labels` of `values`, as an int64 numpy array."""
    if np.size(values) == 0:
        return np.zeros((0,), "int64")
    return np.asarray(
        ops.convert_to_numpy(classes.integer_labels(values)), "int64"
    )


def _family_handles(
    num_classes, class_counts, major_classes, major_threshold, what=None
):
    """Legend patches of the major and minor families, with the rule that splits them."""
    majors = _major_set(
        num_classes, class_counts, major_classes, major_threshold
    )
    rule = (
        "listed as major"
        if major_classes is not None
        else f"n_c >= {major_threshold:g} * max n"
    )
    prefix = f"{what}: " if what else ""
    return [
        Patch(
            color=_MAJOR_COLOR,
            label=f"{prefix}major class ({len(majors)}; {rule})",
        ),
        Patch(
            color=_MINOR_COLOR,
            label=f"{prefix}minor class ({num_classes - len(majors)})",
        ),
    ]


def _class_ticks(axis, num_classes, class_names, class_counts, rotate=False):
    """Tick labels: class names (or indices), with the training count below when given."""
    named = class_names is not None
    names = (
        _class_names(num_classes, class_names)
        if named
        else [str(c) for c in range(num_classes)]
    )
    rotate = axis.axis_name == "x" and (rotate or (named and num_classes > 6))
    if class_counts is not None:
        stacked = axis.axis_name == "x" and not rotate
        names = [
            f"{name}\n({class_counts[c]})"
            if stacked
            else f"{name} ({class_counts[c]})"
            for c, name in enumerate(names)
        ]
    if num_classes > 30:  # too many to name: let matplotlib pick index ticks
        return
    axis.set_ticks(np.arange(num_classes), names)
    if rotate:
        for label in axis.get_ticklabels():
            label.set_rotation(35)
            label.set_horizontalalignment("right")
            label.set_rotation_mode("anchor")


def _color_tick_labels(
    labels, num_classes, class_counts, major_classes, major_threshold
):
    majors = _major_set(
        num_classes, class_counts, major_classes, major_threshold
    )
    if majors is None:
        return
    for c, label in enumerate(labels):
        label.set_color(_MAJOR_COLOR if c in majors else _MINOR_COLOR)


def _figure(figsize, dpi):
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot()


def _save(fig, path, dpi):
    path = os.fspath(path)
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    fig.savefig(path, dpi=dpi, format="png")
    return path


def plot_tuning_trials(
    trials,
    path,
    objective="val_balanced_accuracy",
    params=("strength", "major_threshold"),
    log_params=("major_threshold",),
    group_by="mix_at",
    best_trial=None,
    title=None,
    figsize=(10.0, 4.0),
    dpi=100,
):
    """The objective of every tuning trial against each searched parameter.

    One panel per parameter in `params` (log x axis for those in
    `log_params`); each trial is a dot coloured by its `group_by` value (for
    example the `mix_at` choice), and the best trial is a star. Made for
    the trial tables of `experiments/tune.py` (keras-tuner searches over
    MajorMix, "Procrustean Training for Imbalanced Deep Learning", Ye, Zhan &
    Chao, ICCV 2021).

    Args:
        trials: a list of dicts, one per trial, holding `objective`, the
            `params` and optionally `group_by` and `"trial_id"`. Trials
            without an objective value (failed or unfinished) are skipped.
        path: where to write the PNG.
        objective: the key of the objective value (the y axis).
        params: the keys of the parameters, one panel each.
        log_params: the parameters drawn on a log x axis.
        group_by: the key whose values colour the dots, or None.
        best_trial: the `"trial_id"` of the trial to star, or None.
        title, figsize, dpi: figure options.

    Example:

    >>> kmix.plots.plot_tuning_trials(
    ...     [
    ...         {
    ...             "trial_id": "0",
    ...             "strength": 0.3,
    ...             "major_threshold": 0.5,
    ...             "mix_at": "stage1",
    ...             "val_balanced_accuracy": 0.71,
    ...         }
    ...     ],
    ...     "runs/tuning/trials.png",
    ...     best_trial="0",
    ... )
    'runs/tuning/trials.png'
    """
    if not isinstance(trials, (list, tuple)):
        raise ValueError(
            "Argument `trials` must be a list of dicts, one per trial. "
            f"Received: trials={trials!r}."
        )
    if not params:
        raise ValueError(
            f"Argument `params` must name at least one parameter. Received: params={params!r}."
        )
    scored = [t for t in trials if t.get(objective) is not None]
    missing = sorted({p for t in scored for p in params if p not in t})
    if missing:
        raise ValueError(
            f"Argument `trials` must give every scored trial the `params` {list(params)}; "
            f"some lack {missing}."
        )
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, len(params), sharey=True))
    groups = (
        sorted({str(t.get(group_by)) for t in scored}) if group_by else [None]
    )
    palette = colormaps["tab10"]
    for ax, param in zip(axes, params):
        for g, group in enumerate(groups):
            members = [
                t
                for t in scored
                if group is None or str(t.get(group_by)) == group
            ]
            ax.scatter(
                [t[param] for t in members],
                [t[objective] for t in members],
                color=palette(g % 10),
                s=36,
                alpha=0.85,
                label=f"{group_by}={group}" if group is not None else None,
            )
        best = [
            t
            for t in scored
            if best_trial is not None
            and str(t.get("trial_id")) == str(best_trial)
        ]
        if best:
            ax.scatter(
                [best[0][param]],
                [best[0][objective]],
                marker="*",
                s=260,
                facecolor="none",
                edgecolor="black",
                linewidth=1.2,
                label="best trial",
            )
        if param in log_params:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel(param)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(objective)
    if scored:
        axes[-1].legend(fontsize="small", loc="best")
    fig.suptitle(title or f"{objective} of {len(scored)} tuning trials")
    return _save(fig, path, dpi)
