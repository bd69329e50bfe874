"""`LDAMLoss`: the label-distribution-aware margin loss."""

import keras
import numpy as np
from keras import ops

from kmix import validation
from kmix.classes import one_hot_labels


@keras.saving.register_keras_serializable(package="kmix")
class LDAMLoss(keras.losses.Loss):
    """Label-distribution-aware margin (LDAM) loss, from logits.

    Cao, Wei, Gaidon, Arechiga & Ma, "Learning Imbalanced Datasets with
    Label-Distribution-Aware Margin Loss", NeurIPS 2019. Class `c` gets the
    margin `m_c = K / n_c^(1/4)`, with `K` chosen so that the largest margin
    (that of the rarest class) equals `max_margin`. The margin is subtracted
    from the logit of the true class before a scaled softmax crossentropy:

        loss = CE(softmax(scale * (z - y * m)), y)

    For one-hot or integer labels this is exactly LDAM (`z_y - m_y`); soft
    labels (e.g. after `kmix.layers.Remix` or `keras.layers.MixUp`) subtract
    `y_c * m_c` from every logit `c`, which kmix chooses as the natural
    extension. A class with a zero count has no example to need a margin for;
    kmix gives it `max_margin` and normalizes `K` over the non-empty classes.

    Per-class weights (the DRW of the same paper) come from
    `kmix.MixModel.class_loss_weights` and `kmix.callbacks.DeferredReweighting`;
    sample weights and reductions work as in any `keras.losses.Loss`.

    Args:
        class_counts: per-class training counts, in label order.
        max_margin: float >= 0, the margin of the rarest class (paper: 0.5).
        scale: float > 0, the logit scale `s`. The paper's 30 assumes
            cosine logits (its classifier normalizes features and weights,
            so logits lie in [-1, 1]): use `kmix.layers.NormedDense` as the
            final layer (`classifier="normed"` in `kmix.models`, the default
            for LDAM in `experiments/run.py`). With a plain `Dense` head,
            whose logits carry their own scale, a scale near 1 is the
            sensible choice.
        reduction, name, dtype: as in `keras.losses.Loss`.

    Call arguments:
        y_true: integer labels `(batch,)` / `(batch, 1)` (whole class
            indices in `[0, C)`, else an error), or one-hot / soft labels
            `(batch, C)`.
        y_pred: logits `(batch, C)` (no softmax).

    Example:

    >>> loss = kmix.losses.LDAMLoss(
    ...     class_counts=[5000, 500, 50], max_margin=0.5
    ... )
    >>> [round(float(m), 3) for m in loss.margins]  # n^(-1/4), largest 0.5
    [0.158, 0.281, 0.5]
    >>> model.compile("sgd", loss=kmix.losses.LDAMLoss(class_counts))
    """

    def __init__(
        self,
        class_counts,
        max_margin=0.5,
        scale=30.0,
        reduction="sum_over_batch_size",
        name="ldam_loss",
        dtype=None,
    ):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.class_counts = validation.check_class_counts(class_counts)
        self.max_margin = validation.check_number("max_margin", max_margin, 0.0)
        self.scale = validation.check_number("scale", scale, 0.0, low_open=True)
        counts = np.asarray(self.class_counts, "float64")
        present = counts > 0
        raw = np.ones_like(counts)
        raw[present] = counts[present] ** -0.25
        raw[~present] = raw[present].max()
        self.margins = (raw * (self.max_margin / raw.max())).astype("float32")

    def call(self, y_true, y_pred):
        num_classes = len(self.class_counts)
        # A label outside [0, C) would select no class: a loss of 0.
        y_true = validation.check_label_values(
            y_true, num_classes, name="y_true"
        )
        targets = one_hot_labels(y_true, num_classes, name="y_true")
        logits = ops.cast(y_pred, "float32")
        margins = ops.convert_to_tensor(self.margins)
        adjusted = self.scale * (logits - targets * margins)
        return -ops.sum(targets * ops.log_softmax(adjusted, axis=-1), axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "class_counts": list(self.class_counts),
                "max_margin": self.max_margin,
                "scale": self.scale,
            }
        )
        return config
