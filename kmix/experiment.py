"""One training run from an `ExperimentConfig`: data, model, fit, evaluation.

`experiments/run.py` and the keras-tuner `HyperModel` of `kmix.tuning` both go
through these functions, so an experiment and a tuning trial train the same
way.

Example:

>>> config = kmix.ExperimentConfig(epochs=2, train_fraction=0.05)
>>> result = kmix.experiment.train_and_evaluate(config, "runs/demo/seed_0")
>>> result["balanced_accuracy"]
"""

import json
import math
import os

import keras
import numpy as np
import tensorflow as tf

from kmix import callbacks
from kmix import data as kdata
from kmix import losses
from kmix import metrics
from kmix import models
from kmix import plots
from kmix import schedules
from kmix import weights
from kmix.layers.remix import Remix
from kmix.layers.remix import mix_batches


def load_data(config):
    """The `kmix.data.ImbalancedDataset` the config describes."""
    return kdata.load(
        config.dataset,
        profile=config.profile,
        imbalance_ratio=config.imbalance_ratio,
        minor_fraction=config.minor_fraction,
        seed=config.seed,
        batch_size=config.batch_size,
        augment=config.augment,
        validation=config.validation,
        train_fraction=config.train_fraction,
        data_dir=config.data_dir,
    )


def build_model(config, num_classes, input_shape, class_counts):
    """The `kmix.MixModel` of the config, not compiled."""
    builder = {"small_cnn": models.small_cnn, "resnet32": models.resnet32}[config.model]
    extra = {"width": config.width} if config.model == "small_cnn" else {}
    return builder(
        num_classes,
        input_shape=input_shape,
        class_counts=class_counts,
        mix_at=list(config.mix_at),
        weight_decay=config.weight_decay,
        classifier=config.classifier_head,
        strength=config.strength,
        major_threshold=config.major_threshold,
        mix_prob=config.mix_prob,
        distribution=config.distribution,
        alpha=config.alpha,
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


def class_weights(config, class_counts):
    """Per-class loss weights of `config.reweight`, or None."""
    if config.reweight == "inverse":
        return weights.inverse_frequency(class_counts)
    if config.reweight == "cb":
        return weights.class_balanced(class_counts, beta=config.cb_beta)
    return None


def training_callbacks(config, class_counts, output_dir, clean_data=None):
    """Schedules, diagnostics, TensorBoard and resumption for one run.

    With `output_dir` and `config.diagnostics`, `kmix.callbacks.ClassProgress`
    records per-class progress; given `clean_data` (e.g. an
    `ImbalancedDataset`'s `train_clean`), it also records the accuracy of a
    clean pass over up to 100 training images per class every
    `max(1, config.epochs // 10)` epochs.
    """
    result = []
    if config.mix_at and config.mix_schedule != "constant":
        result.append(
            callbacks.MixSchedule(
                schedule=config.mix_schedule,
                final_strength=config.mix_final_strength,
                stop_epoch=config.mix_stop_epoch,
                decay_epochs=config.epochs if config.mix_schedule in ("linear", "cosine") else None,
            )
        )
    reweighting = class_weights(config, class_counts)
    if reweighting is not None:
        result.append(callbacks.DeferredReweighting(reweighting, config.drw_start_epoch or 0))
    if output_dir:
        if config.diagnostics:
            result.append(
                callbacks.ClassProgress(
                    output_dir=output_dir,
                    log_dir=os.path.join(output_dir, "logs"),
                    class_counts=class_counts,
                    clean_data=clean_data,
                    clean_every=max(1, config.epochs // 10),
                    clean_per_class=100,
                    seed=config.seed,
                )
            )
        result.append(keras.callbacks.TensorBoard(os.path.join(output_dir, "logs")))
        result.append(keras.callbacks.BackupAndRestore(os.path.join(output_dir, "backup")))
    return result


def prepare_training_set(config, dataset, num_classes, class_counts):
    """Adds one-hot labels and the MixUp / Remix batch mixing the config asks for."""
    if config.batch_mixer == "mixup":
        return mix_batches(dataset, keras.layers.MixUp(alpha=config.mixup_alpha, seed=config.seed), num_classes)
    if config.batch_mixer == "remix":
        layer = Remix(
            class_counts, alpha=config.mixup_alpha, kappa=config.remix_kappa,
            tau=config.remix_tau, seed=config.seed,
        )
        return mix_batches(dataset, layer, num_classes)
    if config.needs_one_hot_labels:
        return one_hot(dataset, num_classes)
    return dataset


def one_hot(dataset, num_classes):
    """`(x, y)` batches with integer labels as one-hot float32 labels."""
    return dataset.map(
        lambda x, y: (x, tf.one_hot(tf.cast(y, "int32"), num_classes)),
        num_parallel_calls=tf.data.AUTOTUNE,
    )


def compile_model(model, config, steps_per_epoch, class_counts):
    """Compiles with the config's loss, optimizer and per-class metrics."""
    num_classes = len(class_counts)
    model.compile(
        optimizer=build_optimizer(config, steps_per_epoch),
        loss=build_loss(config, class_counts),
        metrics=[
            keras.metrics.CategoricalAccuracy(name="accuracy")
            if config.needs_one_hot_labels
            else keras.metrics.SparseCategoricalAccuracy(name="accuracy"),
            metrics.BalancedAccuracy(num_classes),
        ],
        jit_compile=config.jit_compile,
    )
    return model


def evaluate(model, dataset, class_counts, major_threshold=0.5):
    """Accuracy, balanced accuracy, per-class and group accuracy on `dataset`.

    Returns a dict of floats and lists, the labels and the predicted classes.
    """
    num_classes = len(class_counts)
    labels, predictions = [], []
    for x, y in dataset:
        labels.append(y.numpy())
        predictions.append(np.argmax(model.predict_on_batch(x), axis=-1))
    labels = np.concatenate(labels).astype("int64")
    predictions = np.concatenate(predictions)
    one_hot_predictions = np.eye(num_classes, dtype="float32")[predictions]
    per_class = metrics.PerClassAccuracy(num_classes)
    balanced = metrics.BalancedAccuracy(num_classes)
    groups = metrics.GroupAccuracy.from_class_counts(class_counts, major_threshold=major_threshold)
    for metric in (per_class, balanced, groups):
        metric.update_state(labels, one_hot_predictions)
    per_class_values = [float(v) for v in per_class.result().values()]
    return {
        "accuracy": float(np.mean(labels == predictions)),
        "balanced_accuracy": float(balanced.result()),
        "per_class_accuracy": per_class_values,
        "group_accuracy": {
            name.removeprefix("acc_"): float(value) for name, value in groups.result().items()
        },
    }, labels, predictions


def build_compiled_model(config, data):
    """The config's `kmix.MixModel` for `data`, built and compiled.

    Call it inside a `tf.distribute` strategy's scope to build a replicated
    model. `train_and_evaluate` and `kmix.tuning.MajorMixHyperModel.build`
    both build their models here.
    """
    steps_per_epoch = math.ceil(sum(data.class_counts) / config.batch_size)
    model = build_model(config, data.num_classes, data.input_shape, data.class_counts)
    return compile_model(model, config, steps_per_epoch, data.class_counts)


def fit_model(model, config, data, output_dir=None, extra_callbacks=(), verbose=1,
              epochs=None, initial_epoch=0):
    """Trains `model` on `data.train` as the config says; returns the `History`.

    Validates on `data.validation` when the data has one (its metrics are
    logged as `val_*`, e.g. `val_balanced_accuracy`). `extra_callbacks` run
    after the config's own (schedules, re-weighting, and with `output_dir`
    diagnostics, TensorBoard and resumption). `epochs` (default
    `config.epochs`) and `initial_epoch` are `fit`'s. `train_and_evaluate`
    and `kmix.tuning.MajorMixHyperModel.fit` both train here.
    """
    train = prepare_training_set(config, data.train, data.num_classes, data.class_counts)
    validation_data = data.validation
    if validation_data is not None and config.needs_one_hot_labels:
        validation_data = one_hot(validation_data, data.num_classes)
    return model.fit(
        train,
        epochs=epochs or config.epochs,
        initial_epoch=initial_epoch,
        validation_data=validation_data,
        callbacks=training_callbacks(config, data.class_counts, output_dir, data.train_clean)
        + list(extra_callbacks),
        shuffle=False,  # the tf.data pipeline shuffles
        verbose=verbose,
    )


def train_and_evaluate(config, output_dir=None, data=None, verbose=1, strategy=None):
    """Trains one model as `config` says and evaluates it on the test split.

    With `output_dir`, writes `metrics.json`, `model.keras`, the diagnostics
    (`class_progress.csv/.json` and plots), TensorBoard logs, and a
    `backup/` that lets an interrupted call resume where it stopped.

    Args:
        config: an `ExperimentConfig`.
        output_dir: where to write; None writes nothing.
        data: an already loaded `ImbalancedDataset` (else loaded from config).
        verbose: Keras' `fit` verbosity.
        strategy: a `tf.distribute.Strategy` to build and train under.

    Returns:
        The metrics dict written to `metrics.json`.
    """
    config.validate()
    keras.utils.set_random_seed(config.seed)
    data = data or load_data(config)
    class_counts = data.class_counts
    if output_dir:
        os.makedirs(output_dir, exist_ok=True)
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        model = build_compiled_model(config, data)
    history = fit_model(model, config, data, output_dir, verbose=verbose)
    result, labels, predictions = evaluate(model, data.test, class_counts, config.major_threshold)
    result.update(
        {
            "seed": config.seed,
            "class_counts": list(class_counts),
            "class_names": list(data.class_names),
            "epochs": config.epochs,
            "final_train_loss": float(history.history["loss"][-1]) if history.history.get("loss") else None,
        }
    )
    if output_dir:
        model.save(os.path.join(output_dir, "model.keras"))
        write_plots(output_dir, labels, predictions, class_counts, config)
        with open(os.path.join(output_dir, "metrics.json"), "w") as f:
            json.dump(result, f, indent=2)
    return result


def write_plots(output_dir, labels, predictions, class_counts, config):
    """The confusion matrix, class histogram and progress curves of one run."""
    join = lambda name: os.path.join(output_dir, name)  # noqa: E731
    plots.plot_confusion_matrix(labels, predictions, join("confusion_matrix.png"),
                                num_classes=len(class_counts), class_counts=class_counts)
    plots.plot_class_histogram(class_counts, join("class_histogram.png"))
    progress = join("class_progress.json")
    if config.diagnostics and os.path.exists(progress):
        plots.plot_class_accuracy(progress, join("train_accuracy.png"), class_counts=class_counts)
        plots.plot_class_accuracy(progress, join("clean_accuracy.png"), quantity="clean_accuracy",
                                  class_counts=class_counts)
        plots.plot_feature_gradients(progress, join("feature_gradients.png"), class_counts=class_counts)
