"""Where the model builders of `kmix.models` can place `MajorMix` layers."""

import keras

from kmix.layers.major_mix import MajorMix
from kmix.layers.normed_dense import NormedDense

MIX_POINTS = ("input", "stem", "stage1", "stage2", "stage3", "pool")
CLASSIFIERS = ("dense", "normed")


def check_mix_at(mix_at):
    """Returns `mix_at` as a list of known mixing points, in network order."""
    if mix_at is None:
        return []
    if isinstance(mix_at, str):
        mix_at = [p for p in mix_at.split(",") if p]
    unknown = [p for p in mix_at if p not in MIX_POINTS]
    if unknown:
        raise ValueError(
            f"Argument `mix_at` must list points from {list(MIX_POINTS)} (or be "
            f"empty for no mixing). Received: mix_at={list(mix_at)!r}."
        )
    return [p for p in MIX_POINTS if p in mix_at]


def mix_if_requested(x, point, mix_at, mix_kwargs):
    """Applies a `MajorMix` named `mix_<point>` to `x` when `point` is in `mix_at`.

    A `seed` in `mix_kwargs` is offset by the point's index so each layer
    draws its own stream.
    """
    if point not in mix_at:
        return x
    kwargs = dict(mix_kwargs)
    if kwargs.get("seed") is not None:
        kwargs["seed"] = kwargs["seed"] + MIX_POINTS.index(point)
    return MajorMix(name=f"mix_{point}", **kwargs)(x)


def classifier_head(x, num_classes, classifier, regularizer):
    """The final layer `logits`: a `Dense` or a cosine `kmix.layers.NormedDense`."""
    if classifier == "normed":
        return NormedDense(
            num_classes, kernel_regularizer=regularizer, name="logits"
        )(x)
    if classifier != "dense":
        raise ValueError(
            f"Argument `classifier` must be one of {list(CLASSIFIERS)}. "
            f"Received: classifier={classifier!r}."
        )
    return keras.layers.Dense(
        num_classes, kernel_regularizer=regularizer, name="logits"
    )(x)
