"""kmix layers."""

from kmix.layers.feature_probe import FeatureProbe
from kmix.layers.major_mix import MajorMix
from kmix.layers.mixing_context import mixing_context
from kmix.layers.normed_dense import NormedDense
from kmix.layers.remix import Remix
from kmix.layers.remix import mix_batches
