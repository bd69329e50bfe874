"""`MixSchedule`: per-epoch strength of every `MajorMix` layer."""

import math

import keras

from kmix import validation
from kmix.layers.major_mix import MajorMix

SCHEDULES = ("constant", "stop", "linear", "cosine")


@keras.saving.register_keras_serializable(package="kmix")
class MixSchedule(keras.callbacks.Callback):
    """Sets the `strength` of every `kmix.MajorMix` layer at each epoch.

    Major-class feature mixing ("Procrustean Training for Imbalanced Deep
    Learning", Ye, Zhan & Chao, ICCV 2021) matters most early in training,
    when the network fits the major classes first; this callback schedules
    how strongly it mixes. At the start of each (0-based) epoch `e` it
    assigns, to every `MajorMix` layer of the model (nested models included):

    - `schedule="constant"`: `strength`;
    - `schedule="stop"`: `strength` until `stop_epoch`, then 0 (it needs
      `stop_epoch`; the same as `"constant"` with `stop_epoch`);
    - `schedule="linear"`: `strength + (final_strength - strength) * t`;
    - `schedule="cosine"`:
      `final_strength + (strength - final_strength) * (1 + cos(pi * t)) / 2`;
    - `schedule=callable`: `schedule(e)`, a float in [0, 1];

    with `t = min(e / decay_epochs, 1)`, and `decay_epochs` defaulting to
    `epochs - 1` of `fit` so the last epoch reaches `final_strength`. With
    `stop_epoch=E`, the strength is 0 (mixing off) from epoch `E` on, for any
    schedule: `MixSchedule(stop_epoch=E)` is "mix for the first E epochs".

    `strength=None` (the default) starts each layer from its own strength at
    the first `fit` that uses this callback (so layers may differ). The
    layers' strengths are variables, so nothing is retraced, on any Keras
    backend. The strength of the first layer is logged as
    `logs["mix_strength"]` (it shows up in `History`, CSV logs and
    TensorBoard), and each layer's as `logs["mix_strength/<layer name>"]`
    when the model has several.

    Args:
        schedule: `"constant"`, `"linear"`, `"cosine"`, or a callable
            `epoch -> strength`.
        strength: float in [0, 1] or None, the strength at epoch 0.
        final_strength: float in [0, 1], the end value of a decay.
        decay_epochs: int >= 1 or None, the epochs a decay takes.
        stop_epoch: int >= 0 or None, the first epoch without mixing.

    Example:

    >>> schedule = kmix.callbacks.MixSchedule(
    ...     "cosine", strength=1.0, final_strength=0.0
    ... )
    >>> model.compile(
    ...     "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    ... )
    >>> history = model.fit(
    ...     x_train, y_train, epochs=3, callbacks=[schedule], verbose=0
    ... )
    >>> [round(s, 2) for s in history.history["mix_strength"]]
    [1.0, 0.5, 0.0]
    >>> # Mix until epoch 160, then stop:
    >>> stop = kmix.callbacks.MixSchedule(stop_epoch=160)
    """

    def __init__(
        self,
        schedule="constant",
        strength=None,
        final_strength=0.0,
        decay_epochs=None,
        stop_epoch=None,
    ):
        super().__init__()
        if not callable(schedule):
            validation.check_choice("schedule", schedule, SCHEDULES)
        self.schedule = schedule
        self.strength = (
            None
            if strength is None
            else validation.check_number("strength", strength, 0.0, 1.0)
        )
        self.final_strength = validation.check_number(
            "final_strength", final_strength, 0.0, 1.0
        )
        self.decay_epochs = _check_epoch(
            "decay_epochs", decay_epochs, minimum=1
        )
        self.stop_epoch = _check_epoch("stop_epoch", stop_epoch, minimum=0)
        if schedule == "stop" and stop_epoch is None:
            raise ValueError(
                "Argument `schedule='stop'` mixes until `stop_epoch`, so it "
                "needs `stop_epoch` (an int >= 0). Received: stop_epoch=None."
            )
        self._initial = {}

    def strength_at(self, epoch, initial=None, epochs=None):
        """The strength of (0-based) `epoch` for a layer starting at `initial`.

        `initial` defaults to `strength`; `epochs` (the length of `fit`) sets
        the default `decay_epochs`.
        """
        if self.stop_epoch is not None and epoch >= self.stop_epoch:
            return 0.0
        if callable(self.schedule):
            return validation.check_number(
                f"schedule({epoch})", self.schedule(epoch), 0.0, 1.0
            )
        start = self.strength if initial is None else initial
        if start is None:
            raise ValueError(
                "MixSchedule needs `strength` (or a layer's own strength) to "
                "compute a schedule. Received: strength=None."
            )
        if self.schedule in ("constant", "stop"):
            return start
        decay = self.decay_epochs
        if decay is None:
            decay = max((epochs or 1) - 1, 1)
        t = min(epoch / decay, 1.0)
        if self.schedule == "linear":
            value = start + (self.final_strength - start) * t
        else:
            value = (
                self.final_strength
                + (start - self.final_strength)
                * (1.0 + math.cos(math.pi * t))
                / 2.0
            )
        return min(max(value, 0.0), 1.0)

    def _layers(self):
        layers = getattr(self.model, "major_mix_layers", None)
        if layers is None:
            from kmix._keras_compat import flatten_layers

            layers = [
                layer
                for layer in flatten_layers(self.model)
                if isinstance(layer, MajorMix)
            ]
        if not layers:
            raise ValueError(
                "MixSchedule found no `kmix.MajorMix` layer in model "
                f"'{self.model.name}': add `kmix.MajorMix` where features "
                "should be mixed, or drop the callback."
            )
        return layers

    def on_train_begin(self, logs=None):
        for layer in self._layers():
            self._initial.setdefault(
                id(layer.strength_variable), layer.strength
            )

    def on_epoch_begin(self, epoch, logs=None):
        epochs = (self.params or {}).get("epochs")
        for layer in self._layers():
            initial = self.strength
            if initial is None:
                initial = self._initial.get(
                    id(layer.strength_variable), layer.strength
                )
            layer.strength = self.strength_at(epoch, initial, epochs)

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        layers = self._layers()
        logs["mix_strength"] = layers[0].strength
        if len(layers) > 1:
            for layer in layers:
                logs[f"mix_strength/{layer.name}"] = layer.strength

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_config(self):
        if callable(self.schedule):
            raise NotImplementedError(
                "MixSchedule with a callable `schedule` cannot be serialized."
            )
        return {
            "schedule": self.schedule,
            "strength": self.strength,
            "final_strength": self.final_strength,
            "decay_epochs": self.decay_epochs,
            "stop_epoch": self.stop_epoch,
        }


def _check_epoch(name, value, minimum):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(
            f"Argument `{name}` must be an int or None. Received: {name}={value!r}."
        )
    if value < minimum:
        raise ValueError(
            f"Argument `{name}` must be >= {minimum}. Received: {name}={value!r}."
        )
    return value
