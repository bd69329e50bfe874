"""kmix metrics: per-class diagnostics for class-imbalanced data."""

from kmix.metrics.balanced_accuracy import BalancedAccuracy
from kmix.metrics.group_accuracy import GroupAccuracy
from kmix.metrics.per_class_accuracy import PerClassAccuracy
