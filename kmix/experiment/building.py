"""Models, losses, optimizers and loss weights of an `ExperimentConfig`."""

import math

import keras

from kmix import class_weights as weights
from kmix import losses
from kmix import metrics
from kmix import models
from kmix import schedules
from kmix.data.streaming_dataset import StreamingDataset
from kmix.models.mix_points import check_mix_at
from kmix.models.mix_points import classifier_head

# Where `--mix_at` puts MajorMix in ResNet-50: after these layers of
# `keras.applications.ResNet50` (its four stages are conv2..conv5; conv5's
# output, "conv5_block3_out", is reachable with `--mix_after`).
RESNET50_MIX_POINTS = {
    "input": "imagenet_normalization",
    "stem": "pool1_pool",
    "stage1": "conv2_block3_out",
    "stage2": "conv3_block4_out",
    "stage3": "conv4_block6_out",
    "pool": "avg_pool",
}
# ImageNet's channel statistics for images in [0, 1] (what kmix.data yields).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def build_model(config, data):
    """The `kmix.MixModel` of the config for `data` (an `ImbalancedDataset`), not compiled.

    `config.mix_after` puts a `MajorMix` after each named layer of the built
    model (`kmix.MixModel.from_model(..., mix_after=...)`), in addition to
    the points of `config.mix_at`.
    """
    _check_data_matches(config, data)
    mix_kwargs = dict(
        strength=config.strength,
        major_threshold=config.major_threshold,
        mix_prob=config.mix_prob,
        distribution=config.distribution,
        alpha=config.alpha,
        frequency_gamma=config.frequency_gamma,
        partners=config.mix_partners,
        seed=config.seed,
    )
    mix_after = list(getattr(config, "mix_after", None) or ())
    if config.model == "resnet50":
        return resnet50(
            data.num_classes,
            data.input_shape,
            data.class_counts,
            mix_at=list(config.mix_at),
            mix_after=mix_after,
            weight_decay=config.weight_decay,
            classifier=config.classifier_head,
            **mix_kwargs,
        )
    builder = {"small_cnn": models.small_cnn, "resnet32": models.resnet32}[
        config.model
    ]
    extra = {"width": config.width} if config.model == "small_cnn" else {}
    model = builder(
        data.num_classes,
        input_shape=data.input_shape,
        class_counts=data.class_counts,
        mix_at=list(config.mix_at),
        weight_decay=config.weight_decay,
        classifier=config.classifier_head,
        **mix_kwargs,
        **extra,
    )
    if mix_after:
        # Seeds offset past the mix_at layers' (which add their point's index).
        mix_kwargs["seed"] = config.seed + 100
        # From a plain functional view of the same layers: cloning a MixModel
        # itself would call its constructor without class counts.
        graph = keras.Model(model.inputs, model.outputs, name=model.name)
        model = models.MixModel.from_model(
            graph, data.class_counts, mix_after=mix_after, **mix_kwargs
        )
    return model


def resnet50(
    num_classes,
    input_shape,
    class_counts,
    mix_at=(),
    mix_after=(),
    weight_decay=0.0,
    classifier="dense",
    **mix_kwargs,
):
    """`keras.applications.ResNet50` (random weights) as a `kmix.MixModel`.

    The images (in [0, 1]) are normalized with ImageNet's channel mean and
    standard deviation (a `Normalization` layer named
    `"imagenet_normalization"`), go through ResNet-50 without its top and
    with global average pooling, and a `Dense` (or `NormedDense`) head
    named `"logits"` gives logits. `weight_decay` puts `L2(weight_decay /
    2)` on every convolution and dense kernel (SGD's coupled weight decay,
    as `kmix.models.resnet32` does). `MajorMix` layers go after the layers
    `mix_at` points to (`RESNET50_MIX_POINTS`: e.g. `"stage2"` is
    `"conv3_block4_out"`) and after the layers named in `mix_after`, via
    `kmix.MixModel.from_model`.

    Example:

    >>> model = kmix.experiment.building.resnet50(
    ...     10, (32, 32, 3), [500] * 5 + [5] * 5, mix_after=["conv3_block4_out"]
    ... )
    >>> model.get_layer("mix_after_conv3_block4_out").name
    'mix_after_conv3_block4_out'
    """
    check_mix_at(mix_at)
    inputs = keras.Input(tuple(input_shape), name="images")
    x = keras.layers.Normalization(
        mean=list(IMAGENET_MEAN),
        variance=[s**2 for s in IMAGENET_STD],
        name="imagenet_normalization",
    )(inputs)
    backbone = keras.applications.ResNet50(
        weights=None,
        include_top=False,
        input_tensor=x,
        input_shape=tuple(input_shape),
        pooling="avg",
    )
    regularizer = (
        keras.regularizers.L2(weight_decay / 2) if weight_decay else None
    )
    logits = classifier_head(
        backbone.output, num_classes, classifier, regularizer
    )
    base = keras.Model(inputs, logits, name="resnet50")
    if regularizer is not None:
        for layer in base.layers:
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense)):
                layer.kernel_regularizer = regularizer
                layer.kernel.regularizer = regularizer
    names = [RESNET50_MIX_POINTS[point] for point in check_mix_at(mix_at)]
    names += [name for name in mix_after if name not in names]
    if not names:
        return models.MixModel.from_model(base, class_counts)
    return models.MixModel.from_model(
        base, class_counts, mix_after=names, **mix_kwargs
    )


def _check_data_matches(config, data):
    """Errors for data that do not match the config's image size or streaming setting."""
    image_size = getattr(config, "image_size", None)
    if image_size is not None and tuple(data.input_shape[:2]) != (
        image_size,
        image_size,
    ):
        raise ValueError(
            f"The config asks for image_size={image_size}, but the data have images of "
            f"shape {tuple(data.input_shape)}: load them with "
            f"kmix.data.load(..., image_size={image_size}) (the streaming path)."
        )
    streaming = getattr(config, "streaming", "auto")
    streamed = isinstance(data, StreamingDataset)
    if (streaming == "always" and not streamed) or (
        streaming == "never" and streamed
    ):
        raise ValueError(
            f"The config asks for streaming={streaming!r}, but the data were loaded "
            f"{'by' if streamed else 'without'} the streaming path: load them with "
            f"kmix.data.load(..., streaming={streaming!r})."
        )


def build_loss(config, class_counts):
    """The training loss: crossentropy, focal, LDAM or logit-adjusted."""
    if config.loss == "ldam":
        return losses.LDAMLoss(
            class_counts,
            max_margin=config.ldam_max_margin,
            scale=config.ldam_scale,
        )
    if config.loss == "la":
        return losses.LogitAdjustedLoss(class_counts, tau=config.la_tau)
    if config.loss == "focal":
        return keras.losses.CategoricalFocalCrossentropy(
            gamma=config.focal_gamma, from_logits=True
        )
    if config.needs_one_hot_labels:
        return keras.losses.CategoricalCrossentropy(from_logits=True)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def build_optimizer(config, steps_per_epoch):
    """SGD (with momentum) or Adam under the config's learning-rate schedule."""
    if config.lr_schedule == "warmup_step":
        rate = schedules.WarmupStepDecay(
            config.learning_rate, steps_per_epoch, epochs=config.epochs
        )
    elif config.lr_schedule == "cosine":
        rate = keras.optimizers.schedules.CosineDecay(
            config.learning_rate, decay_steps=steps_per_epoch * config.epochs
        )
    else:
        rate = config.learning_rate
    if config.optimizer == "adam":
        return keras.optimizers.Adam(rate)
    return keras.optimizers.SGD(rate, momentum=config.momentum)


def loss_weights(config, class_counts):
    """Per-class loss weights of `config.reweight`, or None."""
    if config.reweight == "inverse":
        return weights.inverse_frequency(class_counts)
    if config.reweight == "cb":
        return weights.class_balanced(class_counts, beta=config.cb_beta)
    return None


def compile_model(model, config, data):
    """Compiles with the config's loss, optimizer and per-class metrics for `data`.

    On the JAX backend the steps are always compiled (`jit_compile=True`):
    uncompiled, JAX runs them an operation at a time, many times slower.
    """
    steps_per_epoch = math.ceil(sum(data.class_counts) / config.batch_size)
    model.compile(
        optimizer=build_optimizer(config, steps_per_epoch),
        loss=build_loss(config, data.class_counts),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy")
            if config.needs_one_hot_labels
            else keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            metrics.BalancedAccuracy(data.num_classes),
        ],
        jit_compile=config.jit_compile or keras.backend.backend() == "jax",
    )
    return model


def build_compiled_model(config, data):
    """The config's `kmix.MixModel` for `data`, built and compiled.

    Call it inside a `tf.distribute` strategy's scope to build a replicated
    model. `train_and_evaluate` and `kmix.tuning.MajorMixHyperModel.build`
    both build their models here.
    """
    return compile_model(build_model(config, data), config, data)
