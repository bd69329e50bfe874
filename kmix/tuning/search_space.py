"""The hyper-parameters `kmix.tuning.MajorMixHyperModel` can search.

A search space is a dict from a hyper-parameter's name, which is also the
name of the `kmix.ExperimentConfig` field (and of the `experiments/run.py`
flag) it sets, to its range:

- `"strength"`: `(low, high)`, floats in [0, 1], sampled uniformly.
- `"major_threshold"`: `(low, high)`, floats in (0, 1], sampled on a log
  scale (a class is major when `n_c >= major_threshold * max(n)`).
- `"mix_at"`: a list of choices; a choice is one mixing point (`"stage1"`),
  several joined by `+` (`"stage1+stage2"`), or `"none"` for no `MajorMix`.
- `"loss"`: a list of `kmix.experiment.config.LOSSES` (`"ce"`, `"ldam"`, ...).
- `"drw_start_epoch"`: `(low, high)`, ints >= 0: the epoch from which
  deferred re-weighting applies (needs `reweight` other than `"none"`).

Settings not in the space keep the base config's values. The paper these
settle ("Procrustean Training for Imbalanced Deep Learning", Ye, Zhan & Chao,
ICCV 2021) gives no values kmix can copy, so they are searched per dataset.

Example:

>>> space = {"strength": (0.0, 1.0), "mix_at": ["stage1", "stage1+stage2"]}
>>> kmix.tuning.check_space(space)
{'strength': (0.0, 1.0), 'mix_at': ('stage1', 'stage1+stage2')}
>>> kmix.tuning.parse_mix_at("stage1+stage2")
('stage1', 'stage2')
"""

import warnings

from kmix import validation
from kmix.experiment.config import LOSSES
from kmix.models.mix_points import check_mix_at

DEFAULT_SPACE = {
    "strength": (0.0, 1.0),
    "major_threshold": (0.01, 1.0),
    "mix_at": ("stem", "stage1", "stage2"),
}
RANGES = ("strength", "major_threshold", "drw_start_epoch")
CHOICES = ("mix_at", "loss")
NO_MIXING = "none"


def parse_mix_at(choice):
    """The `mix_at` tuple of a `mix_at` choice: `"a+b"` -> `("a", "b")`, `"none"` -> `()`.

    Each point is checked against `kmix.models.MIX_POINTS`.
    """
    if choice == NO_MIXING:
        return ()
    return tuple(check_mix_at(choice.split("+")))


def mix_points(choice):
    """Deprecated name of `parse_mix_at` (it warns).

    The name clashed with `kmix.models.MIX_POINTS`, the constant listing
    where `MajorMix` may sit; this function parses a `mix_at` choice.
    """
    warnings.warn(
        "`kmix.tuning.mix_points` is deprecated: it parses a `mix_at` choice "
        "and is now `kmix.tuning.parse_mix_at`.",
        DeprecationWarning,
        stacklevel=2,
    )
    return parse_mix_at(choice)


def check_space(space):
    """Checks a search space; returns it as a dict of tuples.

    Raises `ValueError` naming the hyper-parameter, the value and what was
    expected.
    """
    if not isinstance(space, dict) or not space:
        raise ValueError(
            "Argument `space` must be a non-empty dict from hyper-parameter name "
            f"({list(RANGES + CHOICES)}) to its range. Received: space={space!r}."
        )
    unknown = [name for name in space if name not in RANGES + CHOICES]
    if unknown:
        raise ValueError(
            f"Argument `space` can search {list(RANGES + CHOICES)}. Received "
            f"unknown names {unknown} in space={space!r}."
        )
    checked = {}
    for name, spec in space.items():
        spec = tuple(spec) if isinstance(spec, (list, tuple)) else spec
        if name in RANGES:
            checked[name] = _check_range(name, spec)
        else:
            checked[name] = _check_choices(name, spec)
    return checked


def declare(hp, space):
    """Declares the space's hyper-parameters on `hp`; returns their values.

    `hp` is a `keras_tuner.HyperParameters`; the values are those of the
    current trial (or the defaults, the low ends and first choices).
    """
    values = {}
    for name, spec in space.items():
        if name == "drw_start_epoch":
            values[name] = hp.Int(name, spec[0], spec[1])
        elif name in RANGES:
            sampling = "log" if name == "major_threshold" else "linear"
            values[name] = hp.Float(name, spec[0], spec[1], sampling=sampling)
        else:
            values[name] = hp.Choice(name, list(spec))
    return values


def _check_range(name, spec):
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(
            f"Argument `space[{name!r}]` must be a pair (low, high). "
            f"Received: {name}={spec!r}."
        )
    low, high = spec
    if name == "drw_start_epoch":
        if any(
            isinstance(v, bool) or not isinstance(v, int) or v < 0 for v in spec
        ):
            raise ValueError(
                f"Argument `space[{name!r}]` must be two ints >= 0. Received: {name}={spec!r}."
            )
    else:
        low_open = name == "major_threshold"
        validation.check_number(name, low, 0.0, 1.0, low_open=low_open)
        validation.check_number(name, high, 0.0, 1.0, low_open=low_open)
    if low >= high:
        raise ValueError(
            f"Argument `space[{name!r}]` must have low < high. Received: {name}={spec!r}."
        )
    return (low, high)


def _check_choices(name, spec):
    if not isinstance(spec, tuple) or not spec or len(set(spec)) != len(spec):
        raise ValueError(
            f"Argument `space[{name!r}]` must be a non-empty list of distinct "
            f"choices. Received: {name}={spec!r}."
        )
    for choice in spec:
        if name == "loss":
            validation.check_choice(name, choice, LOSSES)
        elif not isinstance(choice, str):
            raise ValueError(
                f"Argument `space['mix_at']` must list strings such as 'stage1', "
                f"'stage1+stage2' or 'none'. Received: mix_at={spec!r}."
            )
        else:
            parse_mix_at(choice)
    return spec
