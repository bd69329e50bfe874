"""Tests of kmix.data's imbalance profiles and selection rule (pure numpy)."""

import ast
import pathlib

import numpy as np
import pytest

from kmix.data import class_order
from kmix.data import imbalance_counts
from kmix.data import subsample_indices

# (classes, images per class, ratio) -> (total kept, smallest class). The exp
# totals at ratios 10, 100 and 200 are the published CIFAR-10-LT (20,431;
# 12,406) and CIFAR-100-LT (19,573; 10,847; 9,502) training-set sizes.
EXP_COUNTS = {
    (10, 5000, 1): (50000, 5000),
    (10, 5000, 10): (20431, 500),
    (10, 5000, 100): (12406, 50),
    (10, 5000, 200): (11203, 25),
    (100, 500, 1): (50000, 500),
    (100, 500, 10): (19573, 50),
    (100, 500, 100): (10847, 5),
    (100, 500, 200): (9502, 2),
}
STEP_COUNTS = {
    (10, 5000, 1): (50000, 5000),
    (10, 5000, 10): (27500, 500),
    (10, 5000, 100): (25250, 50),
    (10, 5000, 200): (25125, 25),
    (100, 500, 1): (50000, 500),
    (100, 500, 10): (27500, 50),
    (100, 500, 100): (25250, 5),
    (100, 500, 200): (25100, 2),
}


@pytest.mark.parametrize("key", sorted(EXP_COUNTS))
def test_exp_counts_match_cifar_lt(key):
    num_classes, per_class, ratio = key
    counts = imbalance_counts([per_class] * num_classes, "exp", ratio)
    assert len(counts) == num_classes
    assert (sum(counts), counts[-1]) == EXP_COUNTS[key]
    assert counts[0] == per_class
    assert counts == sorted(counts, reverse=True)


def test_exp_counts_cifar10_ratio_100_per_class():
    counts = imbalance_counts([5000] * 10, "exp", imbalance_ratio=100)
    assert counts == [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50]


@pytest.mark.parametrize("key", sorted(STEP_COUNTS))
def test_step_counts(key):
    num_classes, per_class, ratio = key
    counts = imbalance_counts([per_class] * num_classes, "step", ratio)
    half = num_classes // 2
    assert counts[:half] == [per_class] * half
    assert counts[half:] == [int(per_class / ratio)] * half
    assert (sum(counts), counts[-1]) == STEP_COUNTS[key]


def test_step_minor_fraction_rounds_the_number_of_minor_classes():
    counts = imbalance_counts([100] * 10, "step", 10, minor_fraction=0.26)
    assert counts == [100] * 7 + [10] * 3


def test_none_keeps_every_image():
    assert imbalance_counts([7, 3, 5], "none") == [7, 3, 5]


def test_no_class_gets_more_than_it_has():
    counts = imbalance_counts([6000, 100, 6000, 6000], "step", 10)
    assert counts == [6000, 100, 600, 600]


def test_order_decides_which_classes_are_the_head():
    counts = imbalance_counts([1000] * 4, "step", 10, order=[3, 1, 0, 2])
    assert counts == [100, 1000, 100, 1000]
    reversed_exp = imbalance_counts([1000] * 3, "exp", 4, order="reversed")
    assert reversed_exp == [250, 500, 1000]


def test_explicit_list_and_dict_profiles():
    assert imbalance_counts([50, 50, 50], [50, 20, 5]) == [50, 20, 5]
    assert imbalance_counts([50, 50, 50], {2: 5}) == [50, 50, 5]
    assert imbalance_counts([50, 50, 50], [80, 20, 5]) == [50, 20, 5]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"profile": "exp", "imbalance_ratio": 0.5}, "imbalance_ratio=0.5"),
        ({"profile": "step", "minor_fraction": 0.0}, "minor_fraction=0.0"),
        ({"profile": "step", "minor_fraction": 1.0}, "minor_fraction=1.0"),
        ({"profile": "step", "minor_fraction": 0.01}, "at least one major"),
        ({"profile": "long"}, "profile='long'"),
        ({"profile": [10, 10]}, "one count per class"),
        ({"profile": {5: 3}}, "Received the key 5"),
        ({"profile": "exp", "imbalance_ratio": 1000}, "zero training images"),
        ({"profile": [10, 0, 3, 3]}, "classes [1] with zero"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(
        ValueError, match=message.replace("[", r"\[").replace("]", r"\]")
    ):
        imbalance_counts([500, 500, 500, 500], **kwargs)


def test_class_order():
    assert class_order(4) == [0, 1, 2, 3]
    assert class_order(4, "reversed") == [3, 2, 1, 0]
    assert class_order(5, "random", seed=0) == [2, 0, 1, 3, 4]
    assert class_order(5, "random", seed=0) == class_order(5, "random", seed=0)
    assert sorted(class_order(100, "random", seed=3)) == list(range(100))
    assert class_order(3, [2, 0, 1]) == [2, 0, 1]
    with pytest.raises(ValueError, match="permutation of range"):
        class_order(3, [0, 0, 1])
    with pytest.raises(ValueError, match="order='sorted'"):
        class_order(3, "sorted")


def test_subsample_indices_follows_the_literature_rule():
    labels = np.array([0, 1, 2, 0, 1, 2, 0, 1, 2, 0, 1, 2, 2, 2])
    counts = [3, 1, 2]
    # The rule, step by step: one RandomState; classes in ascending order;
    # each class's indices (dataset order) shuffled in place; first n kept.
    rng = np.random.RandomState(7)
    expected = []
    for label, count in enumerate(counts):
        indices = np.flatnonzero(labels == label)
        rng.shuffle(indices)
        expected.extend(indices[:count])
    kept = subsample_indices(labels, counts, seed=7)
    np.testing.assert_array_equal(kept, expected)
    np.testing.assert_array_equal(kept, [6, 3, 0, 10, 12, 13])
    assert kept.dtype == np.int64


def test_subsample_indices_is_deterministic_and_seeded():
    labels = np.random.RandomState(0).randint(0, 10, size=5000)
    counts = imbalance_counts(np.bincount(labels), "exp", 20)
    first = subsample_indices(labels, counts, seed=11)
    np.testing.assert_array_equal(
        first, subsample_indices(labels, counts, seed=11)
    )
    assert not np.array_equal(first, subsample_indices(labels, counts, seed=12))
    assert len(np.unique(first)) == len(first) == sum(counts)
    np.testing.assert_array_equal(
        np.bincount(labels[first], minlength=10), counts
    )
    # Grouped by class, in ascending label order.
    assert np.all(np.diff(labels[first]) >= 0)


def test_subsample_indices_rejects_bad_labels():
    with pytest.raises(ValueError, match="integer class labels"):
        subsample_indices([0.0, 1.0], [1, 1])
    with pytest.raises(ValueError, match=r"labels in \[0, 2\).*\[2, 5\]"):
        subsample_indices([0, 1, 5, 2], [1, 1])
    with pytest.raises(ValueError, match="asks for 3 images of class 1"):
        subsample_indices([0, 1, 1], [1, 3])
    with pytest.raises(ValueError, match="seed=-1"):
        subsample_indices([0, 1], [1, 1], seed=-1)


def test_profiles_module_imports_no_tensorflow():
    path = pathlib.Path(__file__).parents[1] / "kmix" / "data" / "profiles.py"
    modules = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules.add(node.module.split(".")[0])
    assert modules <= {"numbers", "numpy", "kmix"}


if __name__ == "__main__":
    import sys

    sys.exit(pytest.main([__file__, "-q"]))
