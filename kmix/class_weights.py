"""Per-class loss weights for class-imbalanced training (pure numpy).

Class weights, not model weights: one number per class that scales the loss
of that class's examples. (This module used to be `kmix.weights`; that
name still works but warns with a `DeprecationWarning`.)

Both functions take the per-class training counts and return one weight per
class, normalized so that the weights of the classes present sum to their
number (with no empty class: they sum to `C`, so uniform counts give all
ones and the loss keeps its usual scale).

A class with a zero count has no training example, so its weight can never
apply: kmix gives it weight `0.0` (not `inf`) and normalizes the remaining
weights to sum to the number of non-empty classes.

Use them with `kmix.MixModel.set_class_loss_weights` or, deferred, with
`kmix.callbacks.DeferredReweighting`:

>>> counts = [5000, 500, 50]
>>> kmix.class_weights.class_balanced(counts, beta=0.999).round(3)  # sums to 3
array([0.126, 0.317, 2.557])
>>> kmix.class_weights.inverse_frequency(counts).round(3)  # sums to 3
array([0.027, 0.27 , 2.703])
"""

import numpy as np

from kmix import validation


def inverse_frequency(counts):
    """Weights proportional to `1 / n_c`, normalized to sum to `C`.

    Classic inverse-frequency re-weighting (as used in, e.g., the re-weighting
    baselines of Cao et al., "Learning Imbalanced Datasets with
    Label-Distribution-Aware Margin Loss", NeurIPS 2019). Zero counts get
    weight 0 (see the module docstring).

    Example:

    >>> kmix.class_weights.inverse_frequency([3, 2, 1])
    array([0.54545455, 0.81818182, 1.63636364])

    Args:
        counts: per-class training counts, non-negative integers.

    Returns:
        A float64 numpy array of shape `(C,)`.
    """
    counts = np.asarray(
        validation.check_class_counts(counts, "counts"), "float64"
    )
    raw = np.zeros_like(counts)
    present = counts > 0
    raw[present] = 1.0 / counts[present]
    return _normalize(raw, present)


def class_balanced(counts, beta=0.9999):
    """Class-balanced weights from the effective number of samples.

    Cui, Jia, Lin, Song & Belongie, "Class-Balanced Loss Based on Effective
    Number of Samples", CVPR 2019: the effective number of samples of class
    `c` is `E_c = (1 - beta^n_c) / (1 - beta)` and its weight is `1 / E_c`,
    normalized to sum to `C`. `beta = 0` gives uniform weights; `beta -> 1`
    approaches inverse frequency. Zero counts get weight 0 (see the module
    docstring).

    Example:

    >>> kmix.class_weights.class_balanced(
    ...     [3, 2, 1], beta=0.5
    ... )  # = [36, 42, 63] / 47
    array([0.76595745, 0.89361702, 1.34042553])

    Args:
        counts: per-class training counts, non-negative integers.
        beta: float in [0, 1). Cui et al. use 0.9, 0.99, 0.999 or 0.9999.

    Returns:
        A float64 numpy array of shape `(C,)`.
    """
    counts = np.asarray(
        validation.check_class_counts(counts, "counts"), "float64"
    )
    beta = validation.check_number("beta", beta, 0.0, 1.0, high_open=True)
    present = counts > 0
    raw = np.zeros_like(counts)
    # 1 / E_c = (1 - beta) / (1 - beta^n_c); for n_c > 0 and beta < 1 the
    # denominator is positive. -expm1(n log beta) keeps precision near beta=1.
    if beta == 0.0:
        raw[present] = 1.0
    else:
        raw[present] = -np.expm1(np.log(beta)) / -np.expm1(
            counts[present] * np.log(beta)
        )
    return _normalize(raw, present)


def _normalize(raw, present):
    return raw * (np.count_nonzero(present) / raw.sum())
