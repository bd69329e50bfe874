"""`kmix.losses`: LDAM and logit-adjusted losses, and Keras' focal loss."""

import keras
import numpy as np
import pytest

import kmix

COUNTS = [81, 16, 1]


def _logits(n=6, c=3, seed=0):
    return np.random.RandomState(seed).normal(size=(n, c)).astype("float32")


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _ce(targets, logits):
    return -(targets * _log_softmax(logits.astype("float64"))).sum(-1)


def test_ldam_margins_follow_quarter_power_of_counts():
    # n^(-1/4) = [1/3, 1/2, 1], scaled so the largest is max_margin.
    np.testing.assert_allclose(
        kmix.losses.LDAMLoss(COUNTS).margins, [1 / 6, 1 / 4, 1 / 2]
    )
    np.testing.assert_allclose(
        kmix.losses.LDAMLoss([16, 1], max_margin=1.0).margins, [0.5, 1.0]
    )
    # A class with no examples gets the largest margin.
    np.testing.assert_allclose(
        kmix.losses.LDAMLoss([16, 0, 1]).margins, [0.25, 0.5, 0.5]
    )


def test_ldam_matches_numpy_reference_for_every_label_format():
    y = np.array([0, 1, 2, 2, 1, 0])
    z = _logits()
    margins = np.array([1 / 6, 1 / 4, 1 / 2])
    onehot = np.eye(3)[y]
    expected = _ce(onehot, 30.0 * (z - onehot * margins))
    loss = kmix.losses.LDAMLoss(COUNTS, max_margin=0.5, scale=30)
    for labels in (y, y[:, None], y.astype("float32"), onehot):
        assert float(loss(labels, z)) == pytest.approx(
            expected.mean(), rel=1e-5
        )
    per_example = kmix.losses.LDAMLoss(COUNTS, reduction=None)(y, z)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(per_example), expected, rtol=1e-5, atol=1e-6
    )


def test_ldam_soft_labels_and_sample_weights():
    z = _logits()
    soft = np.random.RandomState(1).dirichlet([1, 1, 1], size=6)
    margins = np.array([1 / 6, 1 / 4, 1 / 2])
    expected = _ce(soft, 10.0 * (z - soft * margins))
    weights = np.array([1.0, 0.0, 2.0, 1.0, 0.5, 3.0])
    loss = kmix.losses.LDAMLoss(COUNTS, scale=10)
    # "sum_over_batch_size" divides the weighted sum by the batch size.
    assert float(loss(soft, z, sample_weight=weights)) == pytest.approx(
        (weights * expected).sum() / 6, rel=1e-5
    )


def test_logit_adjusted_matches_numpy_reference():
    y = np.array([0, 1, 2, 2, 1, 0])
    z = _logits()
    log_prior = np.log(np.array(COUNTS) / sum(COUNTS))
    for tau in (0.5, 1.0, 2.0):
        expected = _ce(np.eye(3)[y], z + tau * log_prior).mean()
        loss = kmix.losses.LogitAdjustedLoss(COUNTS, tau=tau)
        assert float(loss(y, z)) == pytest.approx(expected, rel=1e-5)
        assert float(loss(np.eye(3)[y], z)) == pytest.approx(expected, rel=1e-5)


def test_logit_adjusted_is_plain_crossentropy_for_uniform_counts_or_tau_zero():
    y = np.array([0, 1, 2, 2, 1, 0])
    z = _logits()
    plain = float(
        keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, z)
    )
    assert float(
        kmix.losses.LogitAdjustedLoss([50, 50, 50])(y, z)
    ) == pytest.approx(plain, rel=1e-6)
    assert float(
        kmix.losses.LogitAdjustedLoss(COUNTS, tau=0.0)(y, z)
    ) == pytest.approx(plain, rel=1e-6)


def test_logit_adjusted_zero_count_stays_finite():
    # A zero count is treated as one example: prior 1 / 11.
    loss = kmix.losses.LogitAdjustedLoss([10, 0], tau=1.0)
    np.testing.assert_allclose(
        loss.log_prior, np.log([10 / 10, 1 / 10]), rtol=1e-6
    )
    assert np.isfinite(
        float(loss(np.array([[0.5, 0.5]]), np.zeros((1, 2), "float32")))
    )


def test_keras_focal_loss_works_with_class_loss_weights():
    # kmix uses Keras' own focal loss; MixModel's class weights multiply it.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,))
    model = kmix.MixModel(
        inputs, keras.layers.Dense(3)(inputs), class_counts=COUNTS
    )
    focal = keras.losses.CategoricalFocalCrossentropy(
        alpha=0.25, gamma=2.0, from_logits=True
    )
    model.compile(keras.optimizers.SGD(0.0), loss=focal)
    model.set_class_loss_weights([1.0, 2.0, 4.0])
    x = np.random.RandomState(0).normal(size=(8, 4)).astype("float32")
    y = np.eye(3, dtype="float32")[[0, 1, 2, 0, 0, 1, 0, 2]]
    p = np.exp(_log_softmax(model.predict(x, verbose=0).astype("float64")))
    p_true = (y * p).sum(-1)
    per_example = -0.25 * (1 - p_true) ** 2 * np.log(p_true)
    expected = (np.array([1.0, 2.0, 4.0])[y.argmax(-1)] * per_example).mean()
    history = model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False)
    assert history.history["loss"][0] == pytest.approx(expected, rel=1e-4)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="`class_counts` must be non-negative"):
        kmix.losses.LDAMLoss([10, -1])
    with pytest.raises(ValueError, match="`class_counts` must be non-negative"):
        kmix.losses.LogitAdjustedLoss([10, -1])
    with pytest.raises(
        ValueError, match=r"`tau` must be in \[0.0, inf\]. Received: tau=-0.5"
    ):
        kmix.losses.LogitAdjustedLoss([10, 1], tau=-0.5)
    with pytest.raises(ValueError, match="`max_margin`"):
        kmix.losses.LDAMLoss([10, 1], max_margin=-0.1)
    with pytest.raises(ValueError, match="`scale`"):
        kmix.losses.LDAMLoss([10, 1], scale=0)
    with pytest.raises(
        ValueError, match=r"one-hot / soft labels of shape \(batch, 3\)"
    ):
        kmix.losses.LDAMLoss(COUNTS)(
            np.zeros((2, 4)), np.zeros((2, 3), "float32")
        )


if __name__ == "__main__":
    import sys

    sys.exit(pytest.main([__file__, "-q"]))
