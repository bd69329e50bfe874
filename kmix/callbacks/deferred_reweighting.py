"""`DeferredReweighting`: DRW, per-class loss weights switched on mid-training."""

import keras
import numpy as np


@keras.saving.register_keras_serializable(package="kmix")
class DeferredReweighting(keras.callbacks.Callback):
    """Deferred re-weighting (DRW) of the loss, per class.

    Cao, Wei, Gaidon, Arechiga & Ma, "Learning Imbalanced Datasets with
    Label-Distribution-Aware Margin Loss", NeurIPS 2019: train with uniform
    class weights first, then switch to re-weighting (they use the
    class-balanced weights of Cui et al. 2019, `beta = 0.9999`, from epoch 160
    of 200) once the features are learned.

    At the start of every epoch the callback assigns
    `model.class_loss_weights` of a `kmix.MixModel` (through
    `model.set_class_loss_weights`): all ones for epochs `< start_epoch`,
    `weights` from `start_epoch` on. Epochs are counted from 0, as Keras
    does, and `initial_epoch` of `fit` is respected. Because only a variable
    changes, the training step is neither recompiled nor retraced, on any
    Keras backend (on JAX the variable enters the step's state at the start
    of each epoch). The weights apply to training only (`evaluate` reports
    the plain loss), and the callback logs `class_loss_weights_active` (0 or
    1) per epoch.

    Args:
        weights: one non-negative weight per class, e.g.
            `kmix.class_weights.class_balanced(counts)`.
        start_epoch: int >= 0, the first (0-based) epoch that uses `weights`.

    Example:

    >>> weights = kmix.class_weights.class_balanced(class_counts, beta=0.9999)
    >>> # Cao et al. switch at epoch 160 of 200; here at epoch 2 of 3.
    >>> drw = kmix.callbacks.DeferredReweighting(weights, start_epoch=2)
    >>> model.compile("sgd", kmix.losses.LDAMLoss(class_counts))  # LDAM-DRW
    >>> history = model.fit(
    ...     x_train, y_train, epochs=3, callbacks=[drw], verbose=0
    ... )
    >>> history.history["class_loss_weights_active"]
    [0.0, 0.0, 1.0]
    """

    def __init__(self, weights, start_epoch):
        super().__init__()
        array = (
            np.asarray(weights, dtype="float64")
            if _is_sequence(weights)
            else None
        )
        if (
            array is None
            or array.ndim != 1
            or array.size == 0
            or not np.all(np.isfinite(array))
            or np.any(array < 0)
        ):
            raise ValueError(
                "Argument `weights` must be a non-empty 1-D sequence of finite, "
                f"non-negative per-class weights. Received: weights={weights!r}."
            )
        if isinstance(start_epoch, bool) or not isinstance(
            start_epoch, (int, np.integer)
        ):
            raise TypeError(
                "Argument `start_epoch` must be an int. "
                f"Received: start_epoch={start_epoch!r}."
            )
        if start_epoch < 0:
            raise ValueError(
                "Argument `start_epoch` must be >= 0. "
                f"Received: start_epoch={start_epoch!r}."
            )
        self.weights = [float(w) for w in array]
        self.start_epoch = int(start_epoch)
        self._active = None

    def set_model(self, model):
        if not hasattr(model, "set_class_loss_weights"):
            raise TypeError(
                "DeferredReweighting needs a `kmix.MixModel`, whose "
                "`class_loss_weights` variable it assigns (wrap a model with "
                "`kmix.MixModel.from_model(model, class_counts)`). Received: "
                f"model of type {type(model).__name__}."
            )
        super().set_model(model)

    def weights_at(self, epoch):
        """The per-class weights used in (0-based) `epoch`, as a list."""
        if epoch >= self.start_epoch:
            return list(self.weights)
        return [1.0] * len(self.weights)

    def on_epoch_begin(self, epoch, logs=None):
        self.model.set_class_loss_weights(self.weights_at(epoch))
        self._active = epoch >= self.start_epoch

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["class_loss_weights_active"] = float(self._active)

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_config(self):
        return {"weights": list(self.weights), "start_epoch": self.start_epoch}


def _is_sequence(value):
    return not isinstance(value, (str, bytes, dict)) and hasattr(
        value, "__len__"
    )
