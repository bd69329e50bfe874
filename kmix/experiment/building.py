"""Models, losses, optimizers and loss weights of an `ExperimentConfig`."""

import math

import keras

from kmix import class_weights as weights
from kmix import losses
from kmix import metrics
from kmix import models
from kmix import schedules


def build_model(config, data):
    """The `kmix.MixModel` of the config for `data` (an `ImbalancedDataset`), not compiled."""
    builder = {"small_cnn": models.small_cnn, "resnet32": models.resnet32}[config.model]
    extra = {"width": config.width} if config.model == "small_cnn" else {}
    return builder(
        data.num_classes,
        input_shape=data.input_shape,
        class_counts=data.class_counts,
        mix_at=list(config.mix_at),
        weight_decay=config.weight_decay,
        classifier=config.classifier_head,
        strength=config.strength,
        major_threshold=config.major_threshold,
        mix_prob=config.mix_prob,
        distribution=config.distribution,
        alpha=config.alpha,
        frequency_gamma=config.frequency_gamma,
        seed=config.seed,
        **extra,
    )


def build_loss(config, class_counts):
    """The training loss: crossentropy, focal, LDAM or logit-adjusted."""
    if config.loss == "ldam":
        return losses.LDAMLoss(class_counts, max_margin=config.ldam_max_margin, scale=config.ldam_scale)
    if config.loss == "la":
        return losses.LogitAdjustedLoss(class_counts, tau=config.la_tau)
    if config.loss == "focal":
        return keras.losses.CategoricalFocalCrossentropy(gamma=config.focal_gamma, from_logits=True)
    if config.needs_one_hot_labels:
        return keras.losses.CategoricalCrossentropy(from_logits=True)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def build_optimizer(config, steps_per_epoch):
    """SGD (with momentum) or Adam under the config's learning-rate schedule."""
    if config.lr_schedule == "warmup_step":
        rate = schedules.WarmupStepDecay(config.learning_rate, steps_per_epoch, epochs=config.epochs)
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
    """Compiles with the config's loss, optimizer and per-class metrics for `data`."""
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
        jit_compile=config.jit_compile,
    )
    return model


def build_compiled_model(config, data):
    """The config's `kmix.MixModel` for `data`, built and compiled.

    Call it inside a `tf.distribute` strategy's scope to build a replicated
    model. `train_and_evaluate` and `kmix.tuning.MajorMixHyperModel.build`
    both build their models here.
    """
    return compile_model(build_model(config, data), config, data)
