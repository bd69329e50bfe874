"""`GroupAccuracy`: balanced accuracy within named groups of classes."""

import keras
import numpy as np
from keras import ops

from kmix import classes
from kmix.metrics._per_class_counts import PerClassCounts
from kmix.metrics._per_class_counts import check_num_classes

SCHEMES = classes.GROUP_SCHEMES


@keras.saving.register_keras_serializable(package="kmix")
class GroupAccuracy(PerClassCounts):
    """Accuracy within named groups of classes, e.g. major/minor or many/medium/few.

    For each group the value is the mean per-class recall over the group's
    classes (the classes seen so far; NaN while none of them has been seen).
    On a balanced test set this equals the plain accuracy on the group's
    examples, the "many-shot / medium-shot / few-shot accuracy" of the
    long-tailed literature; on imbalanced data (e.g. training batches) it
    still weighs each class of the group equally. `result()` returns a dict
    `{prefix}{group}` (by default `acc_major`, `acc_minor`), which Keras 3
    flattens into `fit`'s logs.

    Build the groups yourself, or from training counts with
    `GroupAccuracy.from_class_counts`, which asks `kmix.classes.class_groups`
    (the groups `kmix` reports everywhere, the benchmark included):
    major/minor classes for step imbalance (the rule of `kmix.MajorMix`:
    major when `n_c >= major_threshold * max(n)`), or many/medium/few for
    long-tailed data (thirds of the count ranking; `scheme="shots"` for the
    literature's absolute 100/20-example thresholds). The state is
    per-class counts summed over replicas under `tf.distribute`, exact over
    an epoch.

    Args:
        groups: dict from group name to a list of class indices. A class may
            belong to several groups or to none.
        num_classes: number of classes; defaults to 1 + the largest index.
        prefix: the start of each logged name; the group name follows.
        name: name of the metric.
        dtype: dtype of the metric (the state is float32).

    Example:

    >>> counts = [5000] * 5 + [50] * 5
    >>> metric = kmix.metrics.GroupAccuracy.from_class_counts(
    ...     counts, scheme="step"
    ... )
    >>> metric.groups
    {'major': [0, 1, 2, 3, 4], 'minor': [5, 6, 7, 8, 9]}
    >>> kmix.metrics.GroupAccuracy.from_class_counts(
    ...     [500, 120, 80, 30, 10], scheme="long_tail"
    ... ).groups
    {'many': [0], 'medium': [1, 2, 3], 'few': [4]}
    """

    def __init__(
        self,
        groups,
        num_classes=None,
        prefix="acc_",
        name="group_accuracy",
        dtype=None,
    ):
        groups = _check_groups(groups)
        largest = max(c for classes in groups.values() for c in classes)
        if num_classes is None:
            num_classes = largest + 1
        num_classes = check_num_classes(num_classes)
        if largest >= num_classes:
            raise ValueError(
                f"Argument `groups` must hold class indices below num_classes="
                f"{num_classes}. Received: groups={groups!r}."
            )
        super().__init__(num_classes, name=name, dtype=dtype)
        if not isinstance(prefix, str):
            raise TypeError(
                f"Argument `prefix` must be a string. Received: prefix={prefix!r}."
            )
        self.groups = groups
        self.prefix = prefix
        membership = np.zeros((len(groups), num_classes), "float32")
        for row, members in enumerate(groups.values()):
            membership[row, members] = 1.0
        self._membership = membership

    @classmethod
    def from_class_counts(
        cls,
        class_counts,
        scheme="auto",
        major_threshold=0.5,
        many_threshold=100,
        few_threshold=20,
        **kwargs,
    ):
        """Groups classes by their training counts, as `kmix.classes.class_groups`.

        Args:
            class_counts: training examples per class.
            scheme: `"step"` (groups `major` and `minor`), `"long_tail"`
                (groups `many`, `medium`, `few`: thirds of the classes
                ranked by count), `"shots"` (`many`, `medium`, `few` by the
                absolute thresholds below), or `"auto"`: `"step"` when the
                counts take exactly two distinct values, else
                `"long_tail"`. Empty groups are left out.
            major_threshold: step scheme: a class is major when its count is
                at least this fraction of the largest count (as in
                `kmix.MajorMix`).
            many_threshold: shots scheme: classes with more than this many
                examples are "many".
            few_threshold: shots scheme: classes with fewer than this many
                examples are "few"; the rest are "medium".
            **kwargs: other arguments of `GroupAccuracy` (`prefix`, `name`).
        """
        groups = classes.class_groups(
            class_counts,
            scheme=scheme,
            major_threshold=major_threshold,
            many_threshold=many_threshold,
            few_threshold=few_threshold,
        )
        kwargs.setdefault("num_classes", len(class_counts))
        return cls(groups, **kwargs)

    def result(self):
        recall, seen = self.seen_recall()
        membership = ops.convert_to_tensor(self._membership)
        seen_members = ops.matmul(membership, seen[:, None])[:, 0]
        recall_sums = ops.matmul(membership, recall[:, None])[:, 0]
        values = ops.where(
            seen_members > 0,
            recall_sums / ops.maximum(seen_members, 1.0),
            float("nan"),
        )
        return {
            f"{self.prefix}{name}": values[i]
            for i, name in enumerate(self.groups)
        }

    def get_config(self):
        config = super().get_config()
        config.update({"groups": self.groups, "prefix": self.prefix})
        return config


def _check_groups(groups):
    message = (
        "Argument `groups` must be a non-empty dict from group name (str) to "
        "a non-empty list of non-negative class indices, e.g. "
        "{'major': [0, 1], 'minor': [2, 3]}. "
        f"Received: groups={groups!r}."
    )
    if not isinstance(groups, dict) or not groups:
        raise ValueError(message)
    checked = {}
    for name, members in groups.items():
        if not isinstance(name, str):
            raise ValueError(message)
        try:
            members = [c for c in members]
        except TypeError:
            raise ValueError(message) from None
        if not members or any(
            isinstance(c, bool) or not isinstance(c, (int, np.integer)) or c < 0
            for c in members
        ):
            raise ValueError(message)
        checked[name] = sorted(set(int(c) for c in members))
    return checked
