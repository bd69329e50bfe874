"""Deprecated: `ExperimentConfig` lives in `kmix.experiment.config` (import `kmix.ExperimentConfig`)."""

import warnings

from kmix.experiment.config import ExperimentConfig  # noqa: F401

warnings.warn(
    "kmix.experiment_config is deprecated: use kmix.ExperimentConfig "
    "(defined in kmix.experiment.config).",
    DeprecationWarning,
    stacklevel=2,
)
