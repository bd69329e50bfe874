"""Every public kmix layer, metric and loss keeps Keras' contracts.

The checks are those of tests/layer_testing.py.
"""

import sys

import numpy as np
import pytest

import kmix
from layer_testing import check_config
from layer_testing import run_layer_test
from layer_testing import run_loss_test
from layer_testing import run_metric_test

COUNTS = [100, 80, 10, 5]  # classes 0 and 1 are major at threshold 0.5
LABELS = np.array([0, 1, 2, 3, 0, 1, 2, 3], dtype="int32")


def _features(shape, seed=0):
    return np.random.RandomState(seed).normal(size=shape).astype("float32")


@pytest.mark.parametrize(
    "init_kwargs",
    [
        {"strength": 0.7, "seed": 3},
        {
            "strength": 1.0,
            "major_threshold": 0.2,
            "major_classes": [0, 2],
            "mix_prob": 0.5,
            "distribution": "beta",
            "alpha": 2.0,
            "seed": 4,
        },
        {"strength": 0.5, "frequency_gamma": 1.0, "seed": 5},
    ],
    ids=["uniform", "beta_explicit_classes", "frequency_graded"],
)
def test_major_mix_keeps_layer_contracts(init_kwargs, tmp_path):
    h = _features((8, 3, 3, 2))
    layer = run_layer_test(
        kmix.layers.MajorMix,
        init_kwargs,
        h,
        tmp_path,
        call_kwargs={"labels": LABELS, "class_counts": COUNTS},
        expected_mixed_precision_dtype="float16",
        random=True,
        inference_identity=True,
        training_changes_output=True,
        seed_state_saved=True,
    )
    assert layer.trainable_weights == []


def test_remix_keeps_layer_contracts(tmp_path):
    data = {"images": _features((8, 4, 4, 3)), "labels": LABELS}
    run_layer_test(
        kmix.layers.Remix,
        {
            "class_counts": COUNTS,
            "alpha": 0.5,
            "kappa": 2.0,
            "tau": 0.4,
            "seed": 2,
        },
        data,
        tmp_path,
        expected_output_shape={"images": (8, 4, 4, 3), "labels": (8, 4)},
        expected_output_dtype={"images": "float32", "labels": "float32"},
        expected_num_trainable_weights=0,
        random=True,
        inference_identity=True,
        training_changes_output=True,
        # A tf.data preprocessing layer: called on batches, not in a model.
        symbolic=False,
    )


def test_normed_dense_keeps_layer_contracts(tmp_path):
    layer = run_layer_test(
        kmix.layers.NormedDense,
        {
            "units": 5,
            "kernel_initializer": "he_normal",
            "kernel_regularizer": None,
        },
        _features((6, 7)),
        tmp_path,
        expected_output_shape=(6, 5),
        expected_num_trainable_weights=1,
        expected_num_non_trainable_weights=0,
        expected_mixed_precision_dtype="float16",
    )
    logits = np.asarray(layer(_features((6, 7), seed=1)))
    assert np.all(np.abs(logits) <= 1.0 + 1e-6)  # cosines


def test_feature_probe_keeps_layer_contracts(tmp_path):
    run_layer_test(
        kmix.layers.FeatureProbe,
        {"name": "features"},
        _features((5, 6)),
        tmp_path,
        expected_num_trainable_weights=0,
        expected_num_non_trainable_weights=0,
        # autocast=False: the probe hands its inputs on in their own dtype.
        expected_mixed_precision_dtype="float16",
        inference_identity=True,
    )


def _scores(seed, rows=12, classes=4):
    rng = np.random.RandomState(seed)
    return rng.randint(0, classes, size=rows), rng.uniform(
        size=(rows, classes)
    ).astype("float32")


def _recall(batches, classes=4):
    y = np.concatenate([b[0] for b in batches])
    predicted = np.concatenate([b[1] for b in batches]).argmax(-1)
    return [
        float(np.mean(predicted[y == c] == c))
        if np.any(y == c)
        else float("nan")
        for c in range(classes)
    ]


BATCHES = [_scores(0), _scores(1)]
RECALL = _recall(BATCHES)


@pytest.mark.parametrize(
    "metric_cls, init_kwargs, expected",
    [
        (
            kmix.metrics.PerClassAccuracy,
            {"num_classes": 4, "prefix": "recall_", "name": "recall"},
            {f"recall_{c}": r for c, r in enumerate(RECALL)},
        ),
        (
            kmix.metrics.BalancedAccuracy,
            {"num_classes": 4, "name": "bacc"},
            float(np.nanmean(RECALL)),
        ),
        (
            kmix.metrics.GroupAccuracy,
            {
                "groups": {"head": [0, 1], "tail": [2, 3]},
                "num_classes": 4,
                "prefix": "g_",
            },
            {
                "g_head": float(np.mean(RECALL[:2])),
                "g_tail": float(np.mean(RECALL[2:])),
            },
        ),
    ],
    ids=["per_class_accuracy", "balanced_accuracy", "group_accuracy"],
)
def test_metrics_keep_metric_contracts(
    metric_cls, init_kwargs, expected, tmp_path
):
    run_metric_test(metric_cls, init_kwargs, BATCHES, expected, tmp_path)


def _ldam_reference(y, logits, counts, max_margin, scale):
    margins = 1.0 / np.asarray(counts, "float64") ** 0.25
    margins *= max_margin / margins.max()
    adjusted = logits.astype("float64").copy()
    adjusted[np.arange(len(y)), y] -= margins[y]
    adjusted *= scale
    log_softmax = adjusted - np.log(np.exp(adjusted).sum(-1, keepdims=True))
    return float(-log_softmax[np.arange(len(y)), y].mean())


def _logit_adjusted_reference(y, logits, counts, tau):
    prior = np.asarray(counts, "float64") / np.sum(counts)
    adjusted = logits.astype("float64") + tau * np.log(prior)
    log_softmax = adjusted - np.log(np.exp(adjusted).sum(-1, keepdims=True))
    return float(-log_softmax[np.arange(len(y)), y].mean())


LOGITS = np.random.RandomState(3).uniform(-1, 1, size=(8, 4)).astype("float32")


@pytest.mark.parametrize(
    "loss_cls, init_kwargs, expected",
    [
        (
            kmix.losses.LDAMLoss,
            {"class_counts": COUNTS, "max_margin": 0.3, "scale": 4.0},
            _ldam_reference(LABELS, LOGITS, COUNTS, 0.3, 4.0),
        ),
        (
            kmix.losses.LogitAdjustedLoss,
            {"class_counts": COUNTS, "tau": 0.7},
            _logit_adjusted_reference(LABELS, LOGITS, COUNTS, 0.7),
        ),
    ],
    ids=["ldam", "logit_adjusted"],
)
def test_losses_keep_loss_contracts(loss_cls, init_kwargs, expected, tmp_path):
    run_loss_test(
        loss_cls, init_kwargs, LABELS, LOGITS, tmp_path, expected_value=expected
    )


def test_learning_rate_schedule_keeps_config_contract():
    init_kwargs = {
        "learning_rate": 0.2,
        "steps_per_epoch": 3,
        "epochs": 20,
        "warmup_epochs": 1.0,
        "decay_epochs": [10, 15],
        "decay_factors": [0.1, 0.01],
    }
    schedule = kmix.schedules.WarmupStepDecay(**init_kwargs)
    config = check_config(schedule, init_kwargs)
    clone = kmix.schedules.WarmupStepDecay.from_config(config)
    steps = [0, 2, 3, 29, 30, 45, 59]
    assert [float(clone(t)) for t in steps] == [
        float(schedule(t)) for t in steps
    ]


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
