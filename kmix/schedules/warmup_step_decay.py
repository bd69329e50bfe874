"""`WarmupStepDecay`: the learning-rate schedule of the CIFAR-LT literature."""

import keras
from keras import ops

from kmix import validation


@keras.saving.register_keras_serializable(package="kmix")
class WarmupStepDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up, then step decay; steps-based and serializable.

    The schedule used for long-tailed CIFAR by Cao et al. ("Learning
    Imbalanced Datasets with Label-Distribution-Aware Margin Loss", NeurIPS
    2019) and the papers that follow it, including "Procrustean Training for
    Imbalanced Deep Learning" (Ye, Zhan & Chao, ICCV 2021): over 200 epochs,
    a linear warm-up during the first 5 epochs, then the base rate, times
    0.01 from epoch 160 and times 0.0001 from epoch 180.

    kmix scales every epoch boundary by `epochs / 200` unless given, so the
    same shape fits any training length (e.g. `epochs=20`: warm-up 0.5 epoch,
    decays at epochs 16 and 18). Boundaries are converted to optimizer steps
    with `round(epoch * steps_per_epoch)`. At (0-based) step `t`:

    - `t < W` (warm-up of `W` steps): `learning_rate * (t + 1) / W`;
    - otherwise `learning_rate * prod(f_k for each decay boundary <= t)`.

    Per epoch (`steps_per_epoch=1`) this is the original per-epoch rule:
    `lr * (e + 1) / 5` for `e < 5`, `lr * 0.01` for `e >= 160` and
    `lr * 0.0001` for `e >= 180`.

    Args:
        learning_rate: float > 0, the base learning rate (0.1 in the papers).
        steps_per_epoch: int >= 1, optimizer steps per epoch.
        epochs: int >= 1, the length of training in epochs.
        warmup_epochs: float >= 0 or None (`5 * epochs / 200`).
        decay_epochs: increasing epochs or None (`(160, 180) * epochs / 200`).
        decay_factors: the cumulative factors applied from each decay epoch
            on, one per entry of `decay_epochs` (default `(0.01, 0.0001)`).

    Example:

    >>> schedule = kmix.schedules.WarmupStepDecay(
    ...     0.1, steps_per_epoch=97, epochs=200
    ... )
    >>> optimizer = keras.optimizers.SGD(schedule, momentum=0.9, nesterov=True)
    >>> per_epoch = kmix.schedules.WarmupStepDecay(
    ...     0.1, steps_per_epoch=1, epochs=200
    ... )
    >>> [round(float(per_epoch(epoch)), 5) for epoch in (0, 4, 100, 160, 180)]
    [0.02, 0.1, 0.1, 0.001, 1e-05]
    """

    def __init__(
        self,
        learning_rate,
        steps_per_epoch,
        epochs=200,
        warmup_epochs=None,
        decay_epochs=None,
        decay_factors=(0.01, 0.0001),
    ):
        self.learning_rate = validation.check_number(
            "learning_rate", learning_rate, 0.0, low_open=True
        )
        self.steps_per_epoch = validation.check_int(
            "steps_per_epoch", steps_per_epoch, 1
        )
        self.epochs = validation.check_int("epochs", epochs, 1)
        self.warmup_epochs = (
            None
            if warmup_epochs is None
            else validation.check_number("warmup_epochs", warmup_epochs, 0.0)
        )
        self.decay_factors = [
            validation.check_number("decay_factors", f, 0.0)
            for f in decay_factors
        ]
        if decay_epochs is None:
            self.decay_epochs = None
            epochs_list = [e * self.epochs / 200.0 for e in (160, 180)]
        else:
            self.decay_epochs = [
                validation.check_number("decay_epochs", e, 0.0)
                for e in decay_epochs
            ]
            epochs_list = self.decay_epochs
        if any(b <= a for a, b in zip(epochs_list, epochs_list[1:])) or len(
            epochs_list
        ) != len(self.decay_factors):
            raise ValueError(
                "Arguments `decay_epochs` and `decay_factors` must have the same "
                "length and `decay_epochs` must increase. Received: "
                f"decay_epochs={decay_epochs!r}, decay_factors={decay_factors!r}."
            )
        warmup = (
            5.0 * self.epochs / 200.0
            if warmup_epochs is None
            else self.warmup_epochs
        )
        self.warmup_steps = int(round(warmup * self.steps_per_epoch))
        self.decay_steps = [
            int(round(e * self.steps_per_epoch)) for e in epochs_list
        ]

    def __call__(self, step):
        step = ops.cast(step, "float32")
        rate = ops.convert_to_tensor(self.learning_rate, "float32")
        for boundary, factor in zip(self.decay_steps, self.decay_factors):
            rate = ops.where(
                step >= boundary, self.learning_rate * factor, rate
            )
        if self.warmup_steps > 0:
            warm = self.learning_rate * (step + 1.0) / self.warmup_steps
            rate = ops.where(step < self.warmup_steps, warm, rate)
        return rate

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "steps_per_epoch": self.steps_per_epoch,
            "epochs": self.epochs,
            "warmup_epochs": self.warmup_epochs,
            "decay_epochs": self.decay_epochs,
            "decay_factors": list(self.decay_factors),
        }
