"""kmix models."""

from kmix.models.mix_model import MixModel
