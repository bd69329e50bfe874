"""Deprecated: use `kmix.ExperimentConfig` (defined in `kmix.experiment.config`)."""

import warnings

from kmix.experiment.config import ExperimentConfig  # noqa: F401

warnings.warn(
    "kmix.experiment_config is deprecated: use kmix.ExperimentConfig "
    "(defined in kmix.experiment.config).",
    DeprecationWarning,
    stacklevel=2,
)
