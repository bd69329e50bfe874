"""`kmix.classes`: the one home of the class rules (labels, major classes, groups, recall)."""

import numpy as np
import pytest
from keras import ops

import kmix
from kmix import classes


def _numpy(x):
    return np.asarray(ops.convert_to_numpy(x))


# ------------------------------------------------------------------ labels


@pytest.mark.parametrize(
    "labels",
    [
        np.array([2, 0, 1, 1]),
        np.array([[2], [0], [1], [1]], "int64"),
        np.array([2.0, 0.0, 1.0, 1.0], "float32"),  # Loss casts labels to float
        np.eye(3, dtype="float32")[[2, 0, 1, 1]],  # one-hot
        np.array(
            [[0.1, 0.2, 0.7], [0.6, 0.3, 0.1], [0.2, 0.5, 0.3], [0, 1, 0]]
        ),  # soft / scores
    ],
)
def test_integer_labels_read_every_label_layout_the_same(labels):
    result = classes.integer_labels(labels)
    assert result.dtype == "int32"
    np.testing.assert_array_equal(_numpy(result), [2, 0, 1, 1])


def test_one_hot_labels_make_float32_rows_and_keep_soft_labels():
    np.testing.assert_array_equal(
        _numpy(classes.one_hot_labels([2, 0], 3)), [[0, 0, 1], [1, 0, 0]]
    )
    np.testing.assert_array_equal(
        _numpy(classes.one_hot_labels(np.array([[1], [2]]), 3)),
        [[0, 1, 0], [0, 0, 1]],
    )
    soft = np.array([[0.25, 0.75, 0.0]], "float64")
    result = classes.one_hot_labels(soft, 3)
    assert result.dtype == "float32"
    np.testing.assert_allclose(_numpy(result), soft)
    with pytest.raises(
        ValueError,
        match=r"`y_true` must hold .* Received: y_true of shape \(2, 4\)",
    ):
        classes.one_hot_labels(np.zeros((2, 4)), 3, name="y_true")


# ------------------------------------------------------------ major classes


def test_major_class_mask_is_counts_at_least_threshold_times_largest():
    counts = [1000, 500, 499, 10]
    np.testing.assert_array_equal(
        classes.major_class_mask(counts), [1, 1, 0, 0]
    )
    np.testing.assert_array_equal(
        classes.major_class_mask(counts, 0.01), [1, 1, 1, 1]
    )
    np.testing.assert_array_equal(
        classes.major_class_mask(counts, 0.011), [1, 1, 1, 0]
    )
    np.testing.assert_array_equal(
        classes.major_class_mask(counts, 1.0), [1, 0, 0, 0]
    )
    np.testing.assert_array_equal(
        classes.major_class_mask([7, 7, 7]), [1, 1, 1]
    )


def test_explicit_major_classes_override_the_threshold():
    mask = classes.major_class_mask(
        [1000, 500, 10], major_threshold=0.5, major_classes=[2]
    )
    np.testing.assert_array_equal(mask, [False, False, True])
    assert classes.check_major_classes((3, 1, 3)) == [1, 3]
    assert classes.check_major_classes(None) is None


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"major_threshold": 0.0}, "major_threshold"),
        ({"major_threshold": 1.5}, "major_threshold"),
        ({"major_classes": [3]}, r"below the number of classes \(3\)"),
        ({"major_classes": []}, "major_classes"),
        ({"major_classes": [-1]}, "major_classes"),
        ({"major_classes": [True]}, "major_classes"),
    ],
)
def test_bad_major_arguments_raise_errors_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        classes.major_class_mask([10, 5, 1], **kwargs)


def test_major_rule_is_the_same_in_the_layer_metric_and_plots():
    rng = np.random.RandomState(0)
    for _ in range(20):
        counts = rng.randint(1, 1000, size=rng.randint(2, 12)).tolist()
        threshold = float(rng.choice([0.05, 0.2, 0.5, 0.9, 1.0]))
        expected = np.flatnonzero(
            classes.major_class_mask(counts, threshold)
        ).tolist()
        metric = kmix.metrics.GroupAccuracy.from_class_counts(
            counts, scheme="step", major_threshold=threshold
        )
        assert metric.groups.get("major", []) == expected
        assert kmix.plots.major_classes_of(counts, threshold) == expected
        probabilities = classes.mixing_probabilities(counts, threshold)
        assert np.flatnonzero(probabilities).tolist() == expected


# ---------------------------------------------------- mixing probabilities


def test_threshold_mixing_probabilities_are_mix_prob_on_major_classes():
    np.testing.assert_array_equal(
        classes.mixing_probabilities([1000, 600, 100], mix_prob=0.5),
        [0.5, 0.5, 0.0],
    )
    np.testing.assert_array_equal(
        classes.mixing_probabilities([1000, 600, 100], major_classes=[2]),
        [0, 0, 1],
    )
    result = classes.mixing_probabilities([4, 2])
    assert result.dtype == np.float32


def test_frequency_graded_mixing_probabilities_follow_count_ratio_to_gamma():
    counts = [1000, 250, 10]
    np.testing.assert_allclose(
        classes.mixing_probabilities(counts, frequency_gamma=1.0),
        [1.0, 0.25, 0.01],
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        classes.mixing_probabilities(counts, frequency_gamma=0.5, mix_prob=0.8),
        [0.8, 0.4, 0.08],
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        classes.mixing_probabilities(counts, frequency_gamma=0.0),
        [1.0, 1.0, 1.0],
    )
    # The threshold plays no part in the graded rule.
    np.testing.assert_allclose(
        classes.mixing_probabilities(
            counts, major_threshold=1.0, frequency_gamma=2.0
        ),
        [1.0, 0.0625, 1e-4],
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="give one"):
        classes.mixing_probabilities(
            counts, major_classes=[0], frequency_gamma=1.0
        )
    with pytest.raises(ValueError, match="frequency_gamma"):
        classes.mixing_probabilities(counts, frequency_gamma=-1.0)
    with pytest.raises(ValueError, match="mix_prob"):
        classes.mixing_probabilities(counts, mix_prob=1.5)


# ------------------------------------------------------------------ groups


def test_step_groups_are_major_and_minor():
    assert classes.class_groups([5000] * 3 + [50] * 2) == {
        "major": [0, 1, 2],
        "minor": [3, 4],
    }
    assert classes.class_groups([50, 5000, 50], scheme="step") == {
        "major": [1],
        "minor": [0, 2],
    }
    # The step threshold moves classes between the groups.
    assert classes.class_groups(
        [100, 40, 30, 10], scheme="step", major_threshold=0.3
    ) == {"major": [0, 1, 2], "minor": [3]}
    # One distinct count: every class is major.
    assert classes.class_groups([7, 7, 7]) == {"major": [0, 1, 2]}


def test_long_tail_groups_are_thirds_of_the_count_ranking():
    counts = [6000, 3594, 2153, 1290, 773, 463, 277, 166, 99, 60]
    assert classes.class_groups(counts) == {
        "many": [0, 1, 2],
        "medium": [3, 4, 5, 6],
        "few": [7, 8, 9],
    }
    # The ranking is by count, not by label; ties keep label order.
    assert classes.class_groups(
        [5, 50, 500, 50, 5, 500], scheme="long_tail"
    ) == {"many": [2, 5], "medium": [1, 3], "few": [0, 4]}
    assert classes.class_groups([30, 20, 10]) == {
        "many": [0],
        "medium": [1],
        "few": [2],
    }
    assert classes.class_groups([30, 10], scheme="long_tail") == {
        "many": [0],
        "few": [1],
    }
    # Seven classes: 2 / 3 / 2.
    assert classes.class_groups([7, 6, 5, 4, 3, 2, 1]) == {
        "many": [0, 1],
        "medium": [2, 3, 4],
        "few": [5, 6],
    }


def test_shots_groups_use_the_absolute_thresholds():
    counts = [1000, 300, 100, 50, 20, 19, 3]
    assert classes.class_groups(counts, scheme="shots") == {
        "many": [0, 1],
        "medium": [2, 3, 4],
        "few": [5, 6],
    }
    assert classes.class_groups(
        counts, scheme="shots", many_threshold=60, few_threshold=50
    ) == {"many": [0, 1, 2], "medium": [3], "few": [4, 5, 6]}
    with pytest.raises(ValueError, match="few_threshold"):
        classes.class_groups(
            counts, scheme="shots", many_threshold=10, few_threshold=20
        )
    with pytest.raises(ValueError, match="scheme"):
        classes.class_groups(counts, scheme="thirds")


def test_group_accuracy_takes_its_groups_from_class_groups():
    for counts in (
        [5000] * 5 + [50] * 5,
        [6000, 3594, 2153, 1290, 773, 463, 277, 166, 99, 60],
    ):
        for scheme in classes.GROUP_SCHEMES:
            metric = kmix.metrics.GroupAccuracy.from_class_counts(
                counts, scheme=scheme
            )
            assert metric.groups == classes.class_groups(counts, scheme=scheme)


# ------------------------------------------------------------------ recall


def test_per_class_recall_is_accuracy_on_each_true_class():
    labels = [0, 0, 0, 1, 1, 3]
    predictions = [0, 0, 1, 1, 0, 2]
    recall = classes.per_class_recall(labels, predictions, 4)
    assert recall.dtype == np.float64
    np.testing.assert_allclose(recall[[0, 1, 3]], [2 / 3, 0.5, 0.0])
    assert np.isnan(recall[2])  # class 2 has no example
    np.testing.assert_allclose(
        classes.per_class_recall(
            np.array(labels)[:, None], np.array(predictions)[:, None], 4
        ),
        recall,
    )


if __name__ == "__main__":
    import sys

    sys.exit(pytest.main([__file__, "-q"]))
