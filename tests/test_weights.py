"""`kmix.class_weights`: inverse-frequency and class-balanced per-class weights."""

import numpy as np
import pytest

import kmix


def test_inverse_frequency_matches_hand_values():
    # 1/n = [1/3, 1/2, 1], sum 11/6, times 3 / (11/6) -> [6, 9, 18] / 11.
    np.testing.assert_allclose(
        kmix.class_weights.inverse_frequency([3, 2, 1]),
        np.array([6, 9, 18]) / 11,
        rtol=1e-12,
    )


def test_class_balanced_matches_hand_values():
    # beta = 1/2: (1 - beta) / (1 - beta^n) = [4/7, 2/3, 1]; sum 47/21;
    # normalized to sum 3 -> [36, 42, 63] / 47.
    weights = kmix.class_weights.class_balanced([3, 2, 1], beta=0.5)
    np.testing.assert_allclose(weights, np.array([36, 42, 63]) / 47, rtol=1e-12)
    assert weights.sum() == pytest.approx(3.0)


def test_class_balanced_effective_numbers_of_cui_et_al():
    # beta = 0.9999: E_5000 = (1 - 0.9999^5000) / 1e-4 = 3934.85,
    # E_50 = 49.8778 (worked by hand); weights are 1 / E, summing to 2.
    weights = kmix.class_weights.class_balanced([5000, 50], beta=0.9999)
    assert weights[0] / weights[1] == pytest.approx(49.8778 / 3934.85, rel=1e-4)
    assert weights.sum() == pytest.approx(2.0)


def test_class_balanced_limits():
    np.testing.assert_allclose(
        kmix.class_weights.class_balanced([500, 50, 5], beta=0.0), [1, 1, 1]
    )
    np.testing.assert_allclose(
        kmix.class_weights.class_balanced([7, 7, 7, 7]), [1, 1, 1, 1]
    )
    np.testing.assert_allclose(
        kmix.class_weights.class_balanced([1000, 10], beta=1 - 1e-9),
        kmix.class_weights.inverse_frequency([1000, 10]),
        rtol=1e-4,
    )


def test_zero_counts_get_zero_weight():
    # Non-empty classes are normalized to sum to their number (2 here).
    np.testing.assert_allclose(
        kmix.class_weights.inverse_frequency([10, 0, 40]), [1.6, 0.0, 0.4]
    )
    np.testing.assert_allclose(
        kmix.class_weights.class_balanced([10, 0, 10]), [1.0, 0.0, 1.0]
    )


@pytest.mark.parametrize("beta", [1.0, -0.1, 1.5])
def test_beta_outside_unit_interval_is_rejected(beta):
    with pytest.raises(ValueError, match=r"`beta` must be in \[0.0, 1.0\)"):
        kmix.class_weights.class_balanced([10, 1], beta=beta)


def test_bad_counts_are_rejected():
    with pytest.raises(ValueError, match="`counts` must be non-negative"):
        kmix.class_weights.inverse_frequency([10, -1])
    with pytest.raises(ValueError, match="`counts` must be non-negative"):
        kmix.class_weights.class_balanced([10, -1])
    with pytest.raises(TypeError, match="`beta` must be a number"):
        kmix.class_weights.class_balanced([10, 1], beta="0.9")


def test_deprecated_weights_module_warns_and_returns_the_class_weights():
    import importlib
    import sys

    sys.modules.pop("kmix.weights", None)
    kmix.__dict__.pop("weights", None)
    with pytest.warns(DeprecationWarning, match="kmix.class_weights"):
        old = importlib.import_module("kmix.weights")
    with pytest.warns(DeprecationWarning, match="kmix.class_weights"):
        weights = kmix.weights.class_balanced([3, 2, 1], beta=0.5)
    np.testing.assert_allclose(weights, np.array([36, 42, 63]) / 47, rtol=1e-12)
    with pytest.warns(DeprecationWarning):
        from kmix.weights import inverse_frequency
    assert inverse_frequency is kmix.class_weights.inverse_frequency
    assert "class_balanced" in dir(old)


if __name__ == "__main__":
    import sys

    sys.exit(pytest.main([__file__, "-q"]))
