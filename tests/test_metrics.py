"""`kmix.metrics` against numpy on constructed predictions."""

import sys

import keras
import numpy as np
import pytest

import kmix

NUM_CLASSES = 4


def _batch(seed, n=40, absent=None):
    rng = np.random.RandomState(seed)
    classes = [c for c in range(NUM_CLASSES) if c != absent]
    y = rng.choice(classes, size=n).astype("int32")
    scores = rng.normal(size=(n, NUM_CLASSES)).astype("float32")
    right = rng.rand(n) < 0.6
    scores[right, y[right]] += 5.0  # about 60% (plus chance) correct
    return y, scores


def _numpy_recall(y, scores, weights=None):
    weights = (
        np.ones(len(y)) if weights is None else np.asarray(weights, "float64")
    )
    hit = scores.argmax(axis=1) == y
    total = np.array([weights[y == c].sum() for c in range(NUM_CLASSES)])
    correct = np.array(
        [weights[(y == c) & hit].sum() for c in range(NUM_CLASSES)]
    )
    with np.errstate(invalid="ignore"):
        return np.where(total > 0, correct / np.maximum(total, 1e-30), np.nan)


def _values(result):
    return np.array([float(v) for v in result.values()])


def test_per_class_accuracy_matches_numpy_over_batches():
    (y1, s1), (y2, s2) = _batch(0), _batch(1)
    metric = kmix.metrics.PerClassAccuracy(NUM_CLASSES)
    metric.update_state(y1, s1)
    metric.update_state(y2, s2)
    result = metric.result()
    assert list(result) == [f"acc_class_{c}" for c in range(NUM_CLASSES)]
    expected = _numpy_recall(np.concatenate([y1, y2]), np.concatenate([s1, s2]))
    np.testing.assert_allclose(_values(result), expected, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(metric.recall()), expected, rtol=1e-6)


def test_class_absent_from_every_batch_is_nan_and_left_out_of_balanced_mean():
    y, scores = _batch(2, absent=3)
    per_class = kmix.metrics.PerClassAccuracy(NUM_CLASSES)
    balanced = kmix.metrics.BalancedAccuracy(NUM_CLASSES)
    per_class.update_state(y, scores)
    balanced.update_state(y, scores)
    values = _values(per_class.result())
    assert np.isnan(values[3])
    expected = _numpy_recall(y, scores)
    np.testing.assert_allclose(values[:3], expected[:3], rtol=1e-6)
    np.testing.assert_allclose(
        float(balanced.result()), np.mean(expected[:3]), rtol=1e-6
    )


def test_balanced_accuracy_counts_a_class_once_it_appears():
    (y1, s1), (y2, s2) = _batch(3, absent=3), _batch(4)
    metric = kmix.metrics.BalancedAccuracy(NUM_CLASSES)
    metric.update_state(y1, s1)
    metric.update_state(y2, s2)
    expected = _numpy_recall(np.concatenate([y1, y2]), np.concatenate([s1, s2]))
    # Exact over both batches, not the mean of the two batch values.
    np.testing.assert_allclose(
        float(metric.result()), np.mean(expected), rtol=1e-6
    )
    metric.reset_state()
    assert float(metric.result()) == 0.0


def test_one_hot_labels_and_sample_weights():
    y, scores = _batch(5)
    weights = np.random.RandomState(5).rand(len(y)).astype("float32")
    metric = kmix.metrics.PerClassAccuracy(NUM_CLASSES)
    metric.update_state(
        np.eye(NUM_CLASSES, dtype="float32")[y], scores, sample_weight=weights
    )
    np.testing.assert_allclose(
        _values(metric.result()), _numpy_recall(y, scores, weights), rtol=1e-5
    )


def test_integer_predictions_and_labels_count_like_scores():
    y, scores = _batch(9)
    expected = kmix.classes.per_class_recall(
        y, scores.argmax(axis=1), NUM_CLASSES
    )
    np.testing.assert_allclose(expected, _numpy_recall(y, scores), rtol=1e-12)
    for labels, predictions in [
        (y, scores.argmax(axis=1)),  # (batch,) integer predictions
        (y[:, None], scores.argmax(axis=1)[:, None]),  # (batch, 1)
        (
            np.eye(NUM_CLASSES, dtype="float32")[y],
            scores,
        ),  # one-hot labels, scores
    ]:
        metric = kmix.metrics.PerClassAccuracy(NUM_CLASSES)
        metric.update_state(labels, predictions)
        np.testing.assert_allclose(
            _values(metric.result()), expected, rtol=1e-6
        )


def test_group_accuracy_step_groups_from_counts():
    metric = kmix.metrics.GroupAccuracy.from_class_counts(
        [500, 400, 5, 5], scheme="step"
    )
    assert metric.groups == {"major": [0, 1], "minor": [2, 3]}
    (y1, s1), (y2, s2) = _batch(6, absent=3), _batch(7)
    metric.update_state(y1, s1)
    metric.update_state(y2, s2)
    recall = _numpy_recall(np.concatenate([y1, y2]), np.concatenate([s1, s2]))
    result = {k: float(v) for k, v in metric.result().items()}
    assert list(result) == ["acc_major", "acc_minor"]
    np.testing.assert_allclose(
        result["acc_major"], recall[:2].mean(), rtol=1e-6
    )
    np.testing.assert_allclose(
        result["acc_minor"], recall[2:].mean(), rtol=1e-6
    )


def test_group_accuracy_long_tail_groups_are_thirds_of_the_ranking():
    # Fashion-MNIST exp-100-like counts: CIFAR-LT's 100/20 thresholds put 8 of 10 in "many".
    counts = [6000, 3594, 2153, 1290, 773, 463, 277, 166, 99, 60]
    metric = kmix.metrics.GroupAccuracy.from_class_counts(counts)
    assert metric.groups == {
        "many": [0, 1, 2],
        "medium": [3, 4, 5, 6],
        "few": [7, 8, 9],
    }
    assert metric.groups == kmix.classes.class_groups(counts)
    shots = kmix.metrics.GroupAccuracy.from_class_counts(counts, scheme="shots")
    assert shots.groups == {"many": [0, 1, 2, 3, 4, 5, 6, 7], "medium": [8, 9]}


def test_group_accuracy_shots_thresholds_and_unseen_group():
    counts = [1000, 300, 100, 50, 20, 19, 3]
    default = kmix.metrics.GroupAccuracy.from_class_counts(
        counts, scheme="shots"
    )
    assert default.groups == {
        "many": [0, 1],
        "medium": [2, 3, 4],
        "few": [5, 6],
    }
    custom = kmix.metrics.GroupAccuracy.from_class_counts(
        counts, scheme="shots", many_threshold=60, few_threshold=50
    )
    assert custom.groups == {"many": [0, 1, 2], "medium": [3], "few": [4, 5, 6]}
    custom.update_state([0, 1, 3], np.eye(7, dtype="float32")[[0, 0, 3]])
    result = {k: float(v) for k, v in custom.result().items()}
    assert result["acc_many"] == pytest.approx(
        0.5
    )  # class 0: 1/1, class 1: 0/1
    assert result["acc_medium"] == pytest.approx(1.0)
    assert np.isnan(result["acc_few"])


def test_fit_logs_one_scalar_per_class():
    keras.utils.set_random_seed(0)
    rng = np.random.RandomState(0)
    x = rng.normal(size=(64, 6)).astype("float32")
    y = rng.randint(0, NUM_CLASSES, size=64)
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(NUM_CLASSES)]
    )
    model.compile(
        "sgd",
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            kmix.metrics.PerClassAccuracy(NUM_CLASSES),
            kmix.metrics.BalancedAccuracy(NUM_CLASSES),
            kmix.metrics.GroupAccuracy({"major": [0, 1], "minor": [2, 3]}),
        ],
    )
    history = model.fit(
        x, y, epochs=1, batch_size=64, verbose=0, validation_data=(x, y)
    )
    for key in (
        "acc_class_3",
        "val_acc_class_3",
        "balanced_accuracy",
        "acc_minor",
    ):
        assert key in history.history
    scores = model.predict(x, verbose=0)
    recall = _numpy_recall(y, scores)
    logged = [
        history.history[f"val_acc_class_{c}"][0] for c in range(NUM_CLASSES)
    ]
    np.testing.assert_allclose(logged, recall, rtol=1e-6)
    np.testing.assert_allclose(
        history.history["val_balanced_accuracy"][0], recall.mean(), rtol=1e-6
    )


def test_metrics_under_mirrored_strategy_sum_replicas(two_cpu_strategy):
    strategy = two_cpu_strategy
    assert strategy.num_replicas_in_sync == 2
    y, scores = _batch(8, n=96, absent=2)
    with strategy.scope():
        inputs = keras.Input((NUM_CLASSES,))
        model = keras.Model(inputs, keras.layers.Identity()(inputs))
        model.compile(
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[
                kmix.metrics.PerClassAccuracy(NUM_CLASSES),
                kmix.metrics.BalancedAccuracy(NUM_CLASSES),
                kmix.metrics.GroupAccuracy({"a": [0, 1], "b": [2, 3]}),
            ],
        )
    logs = model.evaluate(scores, y, batch_size=32, verbose=0, return_dict=True)
    recall = _numpy_recall(y, scores)
    logged = np.array([logs[f"acc_class_{c}"] for c in range(NUM_CLASSES)])
    np.testing.assert_allclose(logged[[0, 1, 3]], recall[[0, 1, 3]], rtol=1e-6)
    assert np.isnan(logged[2])
    np.testing.assert_allclose(
        logs["balanced_accuracy"], np.nanmean(recall), rtol=1e-6
    )
    np.testing.assert_allclose(logs["acc_a"], recall[:2].mean(), rtol=1e-6)
    np.testing.assert_allclose(logs["acc_b"], recall[3], rtol=1e-6)


def test_argument_errors_name_the_argument():
    with pytest.raises(ValueError, match="num_classes=0"):
        kmix.metrics.BalancedAccuracy(0)
    with pytest.raises(ValueError, match="groups="):
        kmix.metrics.GroupAccuracy({"a": []})
    with pytest.raises(ValueError, match="scheme"):
        kmix.metrics.GroupAccuracy.from_class_counts([5, 1], scheme="steps")
    with pytest.raises(ValueError, match="few_threshold"):
        kmix.metrics.GroupAccuracy.from_class_counts(
            [5, 1, 3], scheme="shots", many_threshold=2, few_threshold=3
        )


if __name__ == "__main__":
    import sys

    import pytest

    sys.exit(pytest.main([__file__, "-q"]))
