"""kmix models: `MixModel` and builders that return one."""

from kmix.models.major_mix_insertion import insert_major_mix
from kmix.models.mix_model import MixModel
from kmix.models.mix_points import MIX_POINTS
from kmix.models.resnet_cifar import resnet32
from kmix.models.small_cnn import small_cnn
