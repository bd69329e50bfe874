"""The CIFAR ResNet-32 of the imbalanced-learning literature, as a `MixModel`."""

import keras
from keras import ops

from kmix.models.mix_model import MixModel
from kmix.models.mix_points import check_mix_at
from kmix.models.mix_points import classifier_head
from kmix.models.mix_points import mix_if_requested


def resnet32(
    num_classes,
    input_shape=(32, 32, 3),
    class_counts=None,
    mix_at=("stage1",),
    weight_decay=0.0,
    classifier="dense",
    name="resnet32",
    **mix_kwargs,
):
    """Builds the CIFAR ResNet-32 (He et al., CVPR 2016) as a `kmix.MixModel`.

    Three stages of five basic blocks with 16, 32 and 64 channels, a 3x3
    stem, global average pooling and a dense classifier, as used by LDAM-DRW
    (Cao et al., NeurIPS 2019) and "Procrustean Training for Imbalanced Deep
    Learning" (Ye, Zhan & Chao, ICCV 2021). Stage transitions use the
    parameter-free shortcut ("option A": stride-2 subsampling and zero
    channel padding) of the original CIFAR ResNets. Convolutions use He-normal
    initialization and no bias; `weight_decay` adds an L2 penalty of
    `weight_decay / 2 * ||w||^2` to every kernel, which matches SGD's coupled
    weight decay of PyTorch.

    Args:
        num_classes: number of output logits.
        input_shape: shape of one image.
        class_counts: training examples per class (see `kmix.MixModel`).
        mix_at: where to put `MajorMix` layers: any of `"input"`, `"stem"`,
            `"stage1"`, `"stage2"`, `"stage3"`, `"pool"` (after the layer of
            that name), or empty for no mixing.
        weight_decay: coupled weight decay of the kernels.
        classifier: `"dense"`, or `"normed"` for cosine logits
            (`kmix.layers.NormedDense`, the head LDAM uses).
        name: model name.
        **mix_kwargs: arguments of `kmix.MajorMix` (`strength`,
            `major_threshold`, ...).

    Returns:
        A `kmix.MixModel` returning logits.

    Example:

    >>> model = kmix.models.resnet32(
    ...     10,
    ...     class_counts=[5000] * 5 + [50] * 5,
    ...     mix_at=["stage1"],
    ...     strength=0.5,
    ... )
    >>> model.input_shape, model.output_shape
    ((None, 32, 32, 3), (None, 10))
    >>> [
    ...     layer.name
    ...     for layer in model.layers
    ...     if isinstance(layer, kmix.MajorMix)
    ... ]
    ['mix_stage1']
    """
    mix_at = check_mix_at(mix_at)
    regularizer = (
        keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    )
    conv_kwargs = dict(
        padding="same",
        use_bias=False,
        kernel_initializer="he_normal",
        kernel_regularizer=regularizer,
    )
    inputs = keras.Input(input_shape, name="images")
    x = mix_if_requested(inputs, "input", mix_at, mix_kwargs)
    x = keras.layers.Conv2D(16, 3, name="stem_conv", **conv_kwargs)(x)
    x = keras.layers.BatchNormalization(name="stem_bn")(x)
    x = keras.layers.ReLU(name="stem_relu")(x)
    x = mix_if_requested(x, "stem", mix_at, mix_kwargs)
    for stage, filters in enumerate((16, 32, 64), start=1):
        for block in range(5):
            stride = 2 if stage > 1 and block == 0 else 1
            x = _basic_block(
                x, filters, stride, f"stage{stage}_block{block}", conv_kwargs
            )
        x = mix_if_requested(x, f"stage{stage}", mix_at, mix_kwargs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = mix_if_requested(x, "pool", mix_at, mix_kwargs)
    outputs = classifier_head(x, num_classes, classifier, regularizer)
    return MixModel(inputs, outputs, class_counts=class_counts, name=name)


def _basic_block(x, filters, stride, name, conv_kwargs):
    shortcut = x
    y = keras.layers.Conv2D(
        filters, 3, strides=stride, name=f"{name}_conv1", **conv_kwargs
    )(x)
    y = keras.layers.BatchNormalization(name=f"{name}_bn1")(y)
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = keras.layers.Conv2D(filters, 3, name=f"{name}_conv2", **conv_kwargs)(y)
    y = keras.layers.BatchNormalization(name=f"{name}_bn2")(y)
    if stride != 1 or x.shape[-1] != filters:
        shortcut = _SubsampleAndPadChannels(
            filters, stride, name=f"{name}_shortcut"
        )(x)
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


@keras.saving.register_keras_serializable(package="kmix")
class _SubsampleAndPadChannels(keras.layers.Layer):
    """The parameter-free "option A" shortcut of CIFAR ResNets."""

    def __init__(self, filters, stride, **kwargs):
        super().__init__(**kwargs)
        self.filters = filters
        self.stride = stride

    def call(self, inputs):
        x = inputs[:, :: self.stride, :: self.stride, :]
        extra = self.filters - inputs.shape[-1]
        return ops.pad(
            x, [[0, 0], [0, 0], [0, 0], [extra // 2, extra - extra // 2]]
        )

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        size = lambda n: None if n is None else -(-n // self.stride)  # noqa: E731
        return (batch, size(height), size(width), self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "stride": self.stride,
        }
