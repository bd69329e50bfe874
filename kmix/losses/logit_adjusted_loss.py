"""`LogitAdjustedLoss`: softmax crossentropy on prior-shifted logits."""

import keras
import numpy as np
from keras import ops

from kmix import validation
from kmix.classes import one_hot_labels


@keras.saving.register_keras_serializable(package="kmix")
class LogitAdjustedLoss(keras.losses.Loss):
    """Logit-adjusted softmax crossentropy, from logits.

    Menon, Jayasumana, Rawat, Jain, Veit & Kumar, "Long-tail learning via
    logit adjustment", ICLR 2021: the logits are shifted by `tau` times the
    log of the training class prior `pi_c = n_c / sum(n)` before the softmax
    crossentropy,

        loss = CE(softmax(z + tau * log(pi)), y).

    With `tau = 1` this is the balanced softmax of Ren et al., "Balanced
    Meta-Softmax for Long-Tailed Visual Recognition", NeurIPS 2020. `tau = 0`
    or uniform counts give plain crossentropy. Predict with the raw logits
    `z` (the adjustment is for training only).

    A class with a zero count would get `log(0) = -inf`; kmix treats it as
    having one example (prior `1 / sum(n)`) so the loss stays finite, e.g.
    for soft labels that put mass on it.

    Per-class weights from `kmix.MixModel.class_loss_weights`, sample weights
    and reductions work as in any `keras.losses.Loss`.

    Args:
        class_counts: per-class training counts, in label order.
        tau: float >= 0, the strength of the adjustment.
        reduction, name, dtype: as in `keras.losses.Loss`.

    Call arguments:
        y_true: integer labels `(batch,)` / `(batch, 1)` (whole class
            indices in `[0, C)`, else an error), or one-hot / soft labels
            `(batch, C)`.
        y_pred: logits `(batch, C)` (no softmax).

    Example:

    >>> loss = kmix.losses.LogitAdjustedLoss(
    ...     class_counts=[5000, 500, 50], tau=1.0
    ... )
    >>> y_true = np.array([0, 2])
    >>> logits = np.array([[2.0, 0.0, 0.0], [0.0, 0.0, 2.0]])
    >>> float(
    ...     loss(y_true, logits)
    ... )  # plain cross-entropy: 0.24 (class 2 is rare)
    1.39
    >>> model.compile("sgd", loss=kmix.losses.LogitAdjustedLoss(class_counts))
    """

    def __init__(
        self,
        class_counts,
        tau=1.0,
        reduction="sum_over_batch_size",
        name="logit_adjusted_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_counts = validation.check_class_counts(class_counts)
        self.tau = validation.check_number("tau", tau, 0.0)
        counts = np.maximum(np.asarray(self.class_counts, "float64"), 1.0)
        self.log_prior = np.log(counts / np.sum(self.class_counts)).astype(
            "float32"
        )

    def call(self, y_true, y_pred):
        num_classes = len(self.class_counts)
        # A label outside [0, C) would select no class: a loss of 0.
        y_true = validation.check_label_values(
            y_true, num_classes, name="y_true"
        )
        targets = one_hot_labels(y_true, num_classes, name="y_true")
        logits = ops.cast(y_pred, "float32")
        adjusted = logits + self.tau * ops.convert_to_tensor(self.log_prior)
        return -ops.sum(targets * ops.log_softmax(adjusted, axis=-1), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"class_counts": list(self.class_counts), "tau": self.tau}
        )
        return config
