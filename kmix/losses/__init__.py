"""Losses for class-imbalanced training.

- `kmix.losses.LDAMLoss`: label-distribution-aware margins (Cao et al. 2019).
- `kmix.losses.LogitAdjustedLoss`: logit adjustment (Menon et al. 2021);
  `tau=1` is the balanced softmax (Ren et al. 2020).
- Focal loss (Lin et al., "Focal Loss for Dense Object Detection", ICCV
  2017): kmix uses Keras' own `keras.losses.CategoricalFocalCrossentropy`
  (one-hot or soft labels; use `from_logits=True` with logit outputs). Keras
  has no sparse focal loss, so feed it one-hot labels, e.g. with
  `kmix.layers.mix_batches` or `ds.map(lambda x, y: (x, tf.one_hot(y, C)))`.

All of them compose with `kmix.MixModel` (major-class feature mixing and its
per-class loss weights) and with `kmix.callbacks.DeferredReweighting`.
"""

from kmix.losses.ldam_loss import LDAMLoss
from kmix.losses.logit_adjusted_loss import LogitAdjustedLoss
