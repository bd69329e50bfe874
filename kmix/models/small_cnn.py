"""A small CNN for 28x28 images that trains fast on a few CPU cores."""

import keras

from kmix.models.mix_model import MixModel
from kmix.models.mix_points import check_mix_at
from kmix.models.mix_points import classifier_head
from kmix.models.mix_points import mix_if_requested


def small_cnn(
    num_classes,
    input_shape=(28, 28, 1),
    class_counts=None,
    mix_at=("stage1",),
    weight_decay=0.0,
    classifier="dense",
    width=16,
    name="small_cnn",
    **mix_kwargs,
):
    """Builds a small CNN (about 26k weights at `width=16`) as a `kmix.MixModel`.

    A 3x3 convolutional stem, three stages (conv-BN-ReLU, the first two
    followed by 2x2 max pooling) of `width`, `2 * width` and `4 * width`
    channels, global average pooling and a dense classifier. It is kmix's
    model for Fashion-MNIST and MNIST-sized data, where a ResNet-32 would be
    slow on a laptop CPU. The mixing points, `weight_decay` and `classifier`
    mean what they mean in `kmix.models.resnet32`.

    Example:

    >>> model = kmix.models.small_cnn(
    ...     10,
    ...     class_counts=[6000] * 5 + [60] * 5,
    ...     mix_at=["stage1"],
    ...     strength=0.5,
    ... )
    >>> model.input_shape, model.output_shape
    ((None, 28, 28, 1), (None, 10))
    >>> model.get_layer("mix_stage1").strength  # the MajorMix after stage 1
    0.5
    """
    mix_at = check_mix_at(mix_at)
    regularizer = (
        keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    )

    def conv_bn_relu(x, filters, layer_name):
        x = keras.layers.Conv2D(
            filters,
            3,
            padding="same",
            use_bias=False,
            kernel_initializer="he_normal",
            kernel_regularizer=regularizer,
            name=f"{layer_name}_conv",
        )(x)
        x = keras.layers.BatchNormalization(name=f"{layer_name}_bn")(x)
        return keras.layers.ReLU(name=f"{layer_name}_relu")(x)

    inputs = keras.Input(input_shape, name="images")
    x = mix_if_requested(inputs, "input", mix_at, mix_kwargs)
    x = conv_bn_relu(x, width, "stem")
    x = mix_if_requested(x, "stem", mix_at, mix_kwargs)
    for stage, filters in enumerate((width, 2 * width, 4 * width), start=1):
        x = conv_bn_relu(x, filters, f"stage{stage}")
        if stage < 3:
            x = keras.layers.MaxPooling2D(2, name=f"stage{stage}_pool")(x)
        x = mix_if_requested(x, f"stage{stage}", mix_at, mix_kwargs)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    x = mix_if_requested(x, "pool", mix_at, mix_kwargs)
    outputs = classifier_head(x, num_classes, classifier, regularizer)
    return MixModel(inputs, outputs, class_counts=class_counts, name=name)
