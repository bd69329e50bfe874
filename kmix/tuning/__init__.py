"""Hyper-parameter search over major-class feature mixing with keras-tuner.

`MajorMixHyperModel` builds and trains a kmix model from a base
`kmix.ExperimentConfig` and a search space over MajorMix's `strength`,
`major_threshold` and `mix_at` (optionally the `loss` and the deferred
re-weighting start `drw_start_epoch`), scored by balanced accuracy on a
validation split of the training data. `experiments/tune.py` runs it from
flags, locally or distributed (docs/tuning.md). The method is "Procrustean
Training for Imbalanced Deep Learning" (Ye, Zhan & Chao, ICCV 2021).

Example:

>>> config = kmix.ExperimentConfig(epochs=5, validation=200)
>>> hypermodel = kmix.tuning.MajorMixHyperModel(
...     config, space={"strength": (0.0, 1.0), "major_threshold": (0.01, 1.0)}
... )
>>> tuner = keras_tuner.RandomSearch(
...     hypermodel,
...     objective=kmix.tuning.objective(),
...     max_trials=8,
...     directory="runs/tuning",
... )
Data: fashion_mnist from ...
>>> [hp.name for hp in tuner.oracle.get_space().space]
['strength', 'major_threshold']

`tuner.search()` then trains 8 models on Fashion-MNIST (the config's
default data set); `kmix.tuning.MajorMixHyperModel` shows a search on small
data, end to end.
"""

from kmix.tuning.major_mix_hyper_model import OBJECTIVE
from kmix.tuning.major_mix_hyper_model import MajorMixHyperModel
from kmix.tuning.major_mix_hyper_model import objective
from kmix.tuning.search_space import DEFAULT_SPACE
from kmix.tuning.search_space import check_space
from kmix.tuning.search_space import (
    mix_points,
)  # deprecated name of parse_mix_at
from kmix.tuning.search_space import parse_mix_at
