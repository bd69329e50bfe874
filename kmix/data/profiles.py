"""Imbalance profiles and the image selection rule, in pure numpy.

These functions decide how many training images each class keeps and which
ones. They import no TensorFlow, so they can be used (and tested) anywhere.
"""

import numbers

import numpy as np

from kmix.validation import check_choice
from kmix.validation import check_class_counts
from kmix.validation import check_number

PROFILES = ("exp", "step", "none")
CLASS_ORDERS = ("natural", "reversed", "random")


def imbalance_counts(
    n_per_class, profile, imbalance_ratio=1.0, minor_fraction=0.5, order=None
):
    """Per-class training counts of an imbalance profile.

    `n_max = max(n_per_class)` is the count of the largest class before
    subsampling. With `order` the head-to-tail rank of each class (see
    `class_order`), the class at rank `i` of `C` keeps:

    - `"exp"` (long-tailed):
      `int(n_max * (1 / imbalance_ratio) ** (i / (C - 1.0)))`, evaluated in
      exactly this order so that the counts match the CIFAR-LT benchmarks of
      LDAM-DRW (CIFAR-10 at ratio 100: 12,406 images; CIFAR-100: 10,847).
    - `"step"`: the first `C - round(minor_fraction * C)` ranks keep `n_max`,
      the others `int(n_max / imbalance_ratio)`.
    - `"none"`: every image.
    - a list of `C` counts (label order), or a dict `{label: count}` (the
      classes it leaves out keep every image).

    No class keeps more images than it has, and every class keeps at least
    one; a profile that would leave a class empty raises an error.

    Args:
        n_per_class: sequence of `C` ints, the images of each class (label
            order) before subsampling.
        profile: `"exp"`, `"step"`, `"none"`, a list or a dict of counts.
        imbalance_ratio: float >= 1, `n_max` over the smallest count asked
            for by `"exp"` and `"step"`.
        minor_fraction: float in (0, 1), the fraction of minor classes of
            `"step"`.
        order: permutation of `range(C)`, `order[i]` being the label of the
            class at rank `i` (rank 0 is the head). Defaults to label order.

    Returns:
        A list of `C` ints in label order.

    Example:

    >>> kmix.data.imbalance_counts([5000] * 10, "step", imbalance_ratio=100)
    [5000, 5000, 5000, 5000, 5000, 50, 50, 50, 50, 50]
    """
    available = check_class_counts(n_per_class, name="n_per_class")
    num_classes = len(available)
    imbalance_ratio = check_number("imbalance_ratio", imbalance_ratio, low=1.0)
    minor_fraction = check_number(
        "minor_fraction",
        minor_fraction,
        0.0,
        1.0,
        low_open=True,
        high_open=True,
    )
    order = class_order(num_classes, "natural" if order is None else order)
    n_max = max(available)

    if isinstance(profile, dict):
        counts = _explicit_dict_counts(profile, available)
    elif isinstance(profile, str):
        check_choice("profile", profile, PROFILES)
        by_rank = _counts_by_rank(
            profile, n_max, num_classes, imbalance_ratio, minor_fraction
        )
        counts = [0] * num_classes
        for rank, label in enumerate(order):
            counts[label] = by_rank[rank]
    else:
        counts = check_class_counts(profile, name="profile")
        if len(counts) != num_classes:
            raise ValueError(
                f"Argument `profile` must hold one count per class "
                f"({num_classes} classes). Received: profile={profile!r}."
            )
    counts = [min(count, n) for count, n in zip(counts, available)]
    empty = [label for label, count in enumerate(counts) if count == 0]
    if empty:
        raise ValueError(
            f"The profile leaves classes {empty} with zero training images: "
            f"every class needs at least one. Received: profile={profile!r}, "
            f"imbalance_ratio={imbalance_ratio!r}, n_per_class={available!r}. "
            f"Use a smaller `imbalance_ratio` or larger counts."
        )
    return counts


def _counts_by_rank(
    profile, n_max, num_classes, imbalance_ratio, minor_fraction
):
    if profile == "none":
        return [n_max] * num_classes
    if profile == "exp":
        if num_classes == 1:
            return [n_max]
        return [
            int(n_max * (1 / imbalance_ratio) ** (rank / (num_classes - 1.0)))
            for rank in range(num_classes)
        ]
    num_minor = round(minor_fraction * num_classes)
    num_major = num_classes - num_minor
    if num_minor == 0 or num_major == 0:
        raise ValueError(
            f"Argument `minor_fraction` must leave at least one major and one "
            f"minor class: round(minor_fraction * {num_classes}) = {num_minor}. "
            f"Received: minor_fraction={minor_fraction!r}."
        )
    return [n_max] * num_major + [int(n_max / imbalance_ratio)] * num_minor


def _explicit_dict_counts(profile, available):
    counts = list(available)
    for label, count in profile.items():
        if (
            isinstance(label, bool)
            or not isinstance(label, numbers.Integral)
            or not 0 <= label < len(available)
        ):
            raise ValueError(
                f"Argument `profile` must map labels in [0, {len(available)}) "
                f"to counts. Received the key {label!r} in profile={profile!r}."
            )
        counts[label] = check_class_counts([count], name=f"profile[{label}]")[0]
    return counts


def class_order(num_classes, order="natural", seed=0):
    """The head-to-tail order of the classes: a permutation of the labels.

    `order[i]` is the label of the class at rank `i`; rank 0 is the head
    (the class that keeps the most images).

    Args:
        num_classes: int >= 1.
        order: `"natural"` (label 0 is the head), `"reversed"` (the last
            label is the head), `"random"` (a permutation drawn with
            `np.random.RandomState(seed)`), or an explicit permutation.
        seed: int, used by `"random"`.

    Returns:
        A list of `num_classes` ints.

    Example:

    >>> kmix.data.class_order(4, "reversed")
    [3, 2, 1, 0]
    """
    if (
        isinstance(num_classes, bool)
        or not isinstance(num_classes, numbers.Integral)
        or num_classes < 1
    ):
        raise ValueError(
            f"Argument `num_classes` must be an int >= 1. "
            f"Received: num_classes={num_classes!r}."
        )
    if isinstance(order, str):
        check_choice("order", order, CLASS_ORDERS)
        if order == "natural":
            return list(range(num_classes))
        if order == "reversed":
            return list(range(num_classes))[::-1]
        return [
            int(label) for label in _random_state(seed).permutation(num_classes)
        ]
    explicit = np.asarray(order)
    if explicit.ndim != 1 or sorted(explicit.tolist()) != list(
        range(num_classes)
    ):
        raise ValueError(
            f"Argument `order` must be 'natural', 'reversed', 'random' or a "
            f"permutation of range({num_classes}). Received: order={order!r}."
        )
    return [int(label) for label in explicit]


def subsample_indices(labels, counts, seed=0):
    """Indices of the images an imbalanced training set keeps.

    The rule of the common CIFAR-LT builders, so that kmix keeps the same
    images as the PyTorch literature: one `np.random.RandomState(seed)`; for
    each class in ascending label order, the indices of that class in dataset
    order are shuffled in place with it and the first `counts[c]` are kept.
    Every class is shuffled, also those that keep all their images, so the
    random stream does not depend on the counts. The result is grouped by
    class, in that shuffled order, and is the same on every run and machine.

    Args:
        labels: 1-D array of integer labels in `[0, len(counts))`.
        counts: sequence of ints, the images to keep for each class.
        seed: int in `[0, 2**32)`.

    Returns:
        A 1-D int64 numpy array of indices into `labels`.

    Example:

    >>> kmix.data.subsample_indices([0, 1, 0, 1, 0], [2, 1], seed=0)
    array([4, 2, 1])
    """
    labels = check_labels(labels, len(counts), name="labels")
    counts = check_class_counts(counts, name="counts")
    rng = _random_state(seed)
    kept = []
    for label, count in enumerate(counts):
        indices = np.flatnonzero(labels == label)
        if count > indices.size:
            raise ValueError(
                f"Argument `counts` asks for {count} images of class {label}, "
                f"which has only {indices.size}. Received: counts={counts!r}."
            )
        rng.shuffle(indices)
        kept.append(indices[:count])
    return np.concatenate(kept).astype(np.int64)


def check_labels(labels, num_classes, name="labels"):
    """Checks integer labels in `[0, num_classes)`; returns a 1-D int64 array.

    Labels of shape `(n, 1)` are flattened.
    """
    array = np.asarray(labels)
    if array.ndim == 2 and array.shape[1] == 1:
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(
            f"Argument `{name}` must be a 1-D array of integer labels. "
            f"Received: {name} of shape {array.shape}."
        )
    if array.size and not np.issubdtype(array.dtype, np.integer):
        raise ValueError(
            f"Argument `{name}` must hold integer class labels. "
            f"Received: {name} of dtype {array.dtype} (first values "
            f"{array[:5].tolist()})."
        )
    array = array.astype(np.int64)
    bad = array[(array < 0) | (array >= num_classes)]
    if bad.size:
        raise ValueError(
            f"Argument `{name}` must hold labels in [0, {num_classes}). "
            f"Received: {name} containing {sorted(set(bad.tolist()))[:10]}."
        )
    return array


def _random_state(seed):
    if (
        isinstance(seed, bool)
        or not isinstance(seed, numbers.Integral)
        or not 0 <= seed < 2**32
    ):
        raise ValueError(
            f"Argument `seed` must be an int in [0, 2**32). Received: seed={seed!r}."
        )
    return np.random.RandomState(int(seed))
