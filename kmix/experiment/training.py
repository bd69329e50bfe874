"""Training an `ExperimentConfig`: callbacks, the training set, `fit`, one whole run."""

import os

import keras
import tensorflow as tf

from kmix import callbacks
from kmix.experiment import outputs
from kmix.experiment.building import build_compiled_model
from kmix.experiment.building import loss_weights
from kmix.experiment.evaluation import evaluate
from kmix.experiment.loading import load_data
from kmix.layers.remix import Remix
from kmix.layers.remix import mix_batches


def training_callbacks(config, class_counts, output_dir=None, clean_data=None):
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
                stop_epoch=config.mix_stop_at,
                decay_epochs=config.epochs if config.mix_schedule in ("linear", "cosine") else None,
            )
        )
    reweighting = loss_weights(config, class_counts)
    if reweighting is not None:
        result.append(callbacks.DeferredReweighting(reweighting, config.drw_start_at or 0))
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


def prepare_training_set(config, data):
    """`data.train` with one-hot labels and the MixUp / Remix batch mixing the config asks for."""
    dataset, num_classes = data.train, data.num_classes
    if config.batch_mixer == "mixup":
        return mix_batches(dataset, keras.layers.MixUp(alpha=config.mixup_alpha, seed=config.seed), num_classes)
    if config.batch_mixer == "remix":
        layer = Remix(
            data.class_counts, alpha=config.mixup_alpha, kappa=config.remix_kappa,
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
    train = prepare_training_set(config, data)
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
    # Held-out data for choosing (never the test set), and the final clean
    # training accuracy per class: the evidence that a budget converged.
    if data.validation is not None:
        result["validation"] = evaluate(model, data.validation, class_counts, config.major_threshold)[0]
    result["train_clean"] = evaluate(model, data.train_clean, class_counts, config.major_threshold)[0]
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
        outputs.write_plots(output_dir, labels, predictions, class_counts, config)
        outputs.write_json(os.path.join(output_dir, "metrics.json"), result)
    return result
