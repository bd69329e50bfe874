"""The one home of kmix's class rules.

Which classes are major, how likely each class's rows are to be mixed, how
classes are grouped for reporting, and how labels are normalized: every
layer, metric, plot and benchmark of kmix asks this module, so a rule is
written once.

The rules on counts are plain numpy (the counts are global constants of a
training set); `integer_labels` works on tensors of any Keras backend.
"""

import numpy as np
from keras import ops

from kmix import validation

GROUP_SCHEMES = ("auto", "step", "long_tail", "shots")


def integer_labels(labels):
    """Integer class labels of shape `(batch,)`, int32.

    Accepts integer labels of shape `(batch,)` or `(batch, 1)` and one-hot
    (or soft) labels of shape `(batch, num_classes)`, which become their
    argmax.

    Example:

    >>> labels = kmix.classes.integer_labels([[0.0, 1.0], [1.0, 0.0]])
    >>> keras.ops.convert_to_numpy(labels).tolist()
    [1, 0]
    """
    labels = ops.convert_to_tensor(labels)
    if len(labels.shape) == 2 and labels.shape[-1] != 1:
        return ops.cast(ops.argmax(labels, axis=-1), "int32")
    return ops.cast(ops.reshape(labels, (-1,)), "int32")


def one_hot_labels(labels, num_classes, name="labels"):
    """Float32 label rows of shape `(batch, num_classes)`.

    Integer labels of shape `(batch,)` or `(batch, 1)` (of any dtype:
    `keras.losses.Loss` casts labels to float) become one-hot rows through
    `integer_labels`; one-hot or soft labels of shape `(batch, num_classes)`
    are returned as float32. `name` is the argument named in the error
    raised for any other shape.

    Example:

    >>> labels = kmix.classes.one_hot_labels([2, 0], 3)
    >>> keras.ops.convert_to_numpy(labels).tolist()
    [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]]
    """
    labels = ops.convert_to_tensor(labels)
    shape = tuple(labels.shape)
    if len(shape) == 2 and shape[-1] == num_classes and num_classes != 1:
        return ops.cast(labels, "float32")
    if len(shape) == 1 or (len(shape) == 2 and shape[-1] == 1):
        return ops.one_hot(integer_labels(labels), num_classes, dtype="float32")
    raise ValueError(
        f"Argument `{name}` must hold integer labels of shape (batch,) or "
        f"(batch, 1), or one-hot / soft labels of shape (batch, {num_classes}). "
        f"Received: {name} of shape {shape}."
    )


def major_class_mask(class_counts, major_threshold=0.5, major_classes=None):
    """Boolean numpy array, True for the major classes.

    A class is major when its training count is at least `major_threshold`
    times the largest count (`n_c >= t * max(n)`), or, when `major_classes`
    is given, exactly when it is listed there.

    Example:

    >>> import kmix
    >>> kmix.classes.major_class_mask([5000, 5000, 50, 50]).tolist()
    [True, True, False, False]
    """
    counts = np.asarray(validation.check_class_counts(class_counts), "float64")
    if major_classes is not None:
        major_classes = check_major_classes(major_classes)
        outside = [c for c in major_classes if c >= len(counts)]
        if outside:
            raise ValueError(
                f"Argument `major_classes` must hold class indices below the "
                f"number of classes ({len(counts)}). Received: "
                f"major_classes={major_classes!r}."
            )
        mask = np.zeros(len(counts), bool)
        mask[major_classes] = True
        return mask
    threshold = validation.check_number(
        "major_threshold", major_threshold, 0.0, 1.0, low_open=True
    )
    return counts >= threshold * counts.max()


def mixing_probabilities(
    class_counts,
    major_threshold=0.5,
    major_classes=None,
    mix_prob=1.0,
    frequency_gamma=None,
):
    """Per-class probability that a row of that class is mixed by `MajorMix`.

    - Threshold rule (default): `mix_prob` for the major classes of
      `major_class_mask`, 0 for the others.
    - Frequency-graded rule (`frequency_gamma=g`, a float >= 0):
      `mix_prob * (n_c / max(n)) ** g`. Every class may be mixed, the
      largest with probability `mix_prob`, a class ten times smaller with
      `mix_prob * 0.1 ** g`; no hard threshold is needed on long tails.
      `g = 0` mixes every row; large `g` approaches "only the largest class".

    Returns a float32 numpy array of one probability per class.

    Example:

    >>> import kmix
    >>> kmix.classes.mixing_probabilities(
    ...     [1000, 100, 10], frequency_gamma=1.0
    ... ).tolist()
    [1.0, 0.10000000149011612, 0.009999999776482582]
    """
    mix_prob = validation.check_number("mix_prob", mix_prob, 0.0, 1.0)
    if frequency_gamma is None:
        mask = major_class_mask(class_counts, major_threshold, major_classes)
        return (mask * mix_prob).astype("float32")
    if major_classes is not None:
        raise ValueError(
            "Arguments `major_classes` and `frequency_gamma` are two rules "
            "for which rows to mix; give one. Received: "
            f"major_classes={major_classes!r}, frequency_gamma={frequency_gamma!r}."
        )
    gamma = validation.check_number("frequency_gamma", frequency_gamma, 0.0)
    counts = np.asarray(validation.check_class_counts(class_counts), "float64")
    return (mix_prob * (counts / counts.max()) ** gamma).astype("float32")


def class_groups(
    class_counts,
    scheme="auto",
    major_threshold=0.5,
    many_threshold=100,
    few_threshold=20,
):
    """Named groups of class indices for reporting accuracy.

    - `"step"`: `major` (the `major_class_mask` classes) and `minor`.
    - `"long_tail"`: the classes ranked by count (ties in label order) and
      cut into thirds: `many` (the `max(1, C // 3)` largest), `few` (as
      many of the smallest) and `medium` (the rest). Thirds of the ranking,
      not CIFAR-LT's absolute 100/20-image thresholds, so that a dataset of
      any size gets three groups (10 classes: 3 / 4 / 3).
    - `"shots"`: the absolute thresholds of the long-tailed literature
      (CIFAR-100-LT, ImageNet-LT): `many` when `n_c > many_threshold`
      (default 100), `few` when `n_c < few_threshold` (default 20),
      `medium` otherwise. Use it to compare with published many/medium/few
      numbers; on small datasets most classes fall in one group.
    - `"auto"`: `"step"` when the counts take exactly two distinct values,
      else `"long_tail"` (one value: one `major` group).

    `major_threshold` is read by `"step"` only, `many_threshold` and
    `few_threshold` by `"shots"` only.

    Returns a dict from group name to a sorted list of class indices;
    empty groups are left out.

    Example:

    >>> import kmix
    >>> kmix.classes.class_groups([5000] * 3 + [50] * 3)
    {'major': [0, 1, 2], 'minor': [3, 4, 5]}
    >>> kmix.classes.class_groups([500, 120, 80, 30, 10], scheme="shots")
    {'many': [0, 1], 'medium': [2, 3], 'few': [4]}
    """
    counts = np.asarray(validation.check_class_counts(class_counts))
    validation.check_choice("scheme", scheme, GROUP_SCHEMES)
    if scheme == "auto":
        scheme = "long_tail" if len(np.unique(counts)) > 2 else "step"
    if scheme == "step":
        mask = major_class_mask(counts, major_threshold)
        groups = {"major": np.flatnonzero(mask), "minor": np.flatnonzero(~mask)}
    elif scheme == "shots":
        many = validation.check_number("many_threshold", many_threshold, 0.0)
        few = validation.check_number("few_threshold", few_threshold, 0.0)
        if few > many:
            raise ValueError(
                "Argument `few_threshold` must not exceed `many_threshold`. "
                f"Received: few_threshold={few_threshold!r}, "
                f"many_threshold={many_threshold!r}."
            )
        groups = {
            "many": np.flatnonzero(counts > many),
            "medium": np.flatnonzero((counts >= few) & (counts <= many)),
            "few": np.flatnonzero(counts < few),
        }
    else:
        order = np.argsort(-counts, kind="stable")
        third = max(1, len(counts) // 3)
        cut = max(third, len(counts) - third)
        groups = {
            "many": order[:third],
            "medium": order[third:cut],
            "few": order[cut:],
        }
    return {
        name: sorted(int(c) for c in members)
        for name, members in groups.items()
        if len(members)
    }


def per_class_recall(labels, predictions, num_classes):
    """Per-class recall (accuracy on each true class), a float64 numpy array.

    `labels` and `predictions` are integer class indices of the same length;
    a class with no example gets NaN.

    Example:

    >>> import kmix
    >>> kmix.classes.per_class_recall([0, 0, 1, 2], [0, 1, 1, 0], 3).tolist()
    [0.5, 1.0, 0.0]
    """
    labels = np.asarray(labels).reshape(-1).astype("int64")
    predictions = np.asarray(predictions).reshape(-1).astype("int64")
    total = np.bincount(labels, minlength=num_classes)[:num_classes]
    correct = np.bincount(labels[labels == predictions], minlength=num_classes)[
        :num_classes
    ]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, correct / np.maximum(total, 1), np.nan)


def check_major_classes(major_classes):
    """`major_classes` as a sorted list of distinct class indices, or None."""
    if major_classes is None:
        return None
    try:
        classes = [c for c in major_classes]
    except TypeError:
        classes = None
    if not classes or any(
        isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0
        for c in classes
    ):
        raise ValueError(
            "Argument `major_classes` must be None or a non-empty list of "
            f"non-negative class indices. Received: major_classes={major_classes!r}."
        )
    return sorted(set(int(c) for c in classes))
