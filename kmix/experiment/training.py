"""Training an `ExperimentConfig`: callbacks, the training set, `fit`, one whole run."""

import json
import math
import os
import shutil

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


def training_callbacks(
    config, class_counts, output_dir=None, clean_data=None, clean_sampled=False
):
    """Schedules, diagnostics, TensorBoard, resumption and a divergence stop for one run.

    With `output_dir` and `config.diagnostics`, `kmix.callbacks.ClassProgress`
    records per-class progress; given `clean_data` (e.g. an
    `ImbalancedDataset`'s `train_clean`), it also records the accuracy of a
    clean pass over up to 100 training images per class every
    `max(1, config.epochs // 10)` epochs. With `output_dir`, an epoch whose
    training loss is not finite stops `fit` with a `NonFiniteLossError`
    (`StopOnNonFiniteLoss`), and `RunBackup` lets an interrupted run resume.
    """
    # First: a diverged epoch stops a run before any later callback (the
    # backup above all) records it. (A tuning trial, without `output_dir`,
    # is left to finish and be scored.)
    result = [StopOnNonFiniteLoss(config)] if output_dir else []
    if config.mix_at and config.mix_schedule != "constant":
        result.append(
            callbacks.MixSchedule(
                schedule=config.mix_schedule,
                final_strength=config.mix_final_strength,
                stop_epoch=config.mix_stop_at,
                decay_epochs=config.epochs
                if config.mix_schedule in ("linear", "cosine")
                else None,
            )
        )
    reweighting = loss_weights(config, class_counts)
    if reweighting is not None:
        result.append(
            callbacks.DeferredReweighting(reweighting, config.drw_start_at or 0)
        )
    if output_dir:
        if config.diagnostics:
            result.append(
                callbacks.ClassProgress(
                    output_dir=output_dir,
                    log_dir=os.path.join(output_dir, "logs"),
                    class_counts=class_counts,
                    clean_data=clean_data,
                    clean_every=max(1, config.epochs // 10),
                    # A streamed dataset hands over its own per-class sample
                    # (`clean_subset`), so nothing large is gathered in memory.
                    clean_per_class=None if clean_sampled else 100,
                    seed=config.seed,
                )
            )
        result.append(
            keras.callbacks.TensorBoard(os.path.join(output_dir, "logs"))
        )
        result.append(RunBackup(backup_dir(output_dir)))
    return result


def backup_dir(output_dir):
    """The folder of a run's `RunBackup`: `output_dir/backup`."""
    return os.path.join(output_dir, "backup")


class NonFiniteLossError(RuntimeError):
    """The training loss of a run became NaN or infinite."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops `fit` with a `NonFiniteLossError` when an epoch's loss is not finite.

    `keras.callbacks.TerminateOnNaN` stops quietly and `fit` returns as if
    training had finished, so a run would go on to evaluate and write
    metrics of a diverged model. This callback raises instead, naming the
    epoch and the settings of `config` that usually make a loss diverge.
    """

    def __init__(self, config):
        super().__init__()
        self.config = config

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or math.isfinite(float(loss)):
            return
        raise NonFiniteLossError(
            f"The training loss became {float(loss)} in epoch {epoch + 1} of "
            f"{self.config.epochs} (seed {self.config.seed}): the run diverged, so it "
            "is stopped and no metrics are written for it. Settings that make a loss "
            f"diverge: {suspicious_settings(self.config)}. Lower the learning rate "
            "(or the setting at fault) and run again."
        )


def suspicious_settings(config):
    """The settings of `config` that can make a training loss diverge, as flag text."""
    names = ["learning_rate", "lr_schedule", "optimizer", "weight_decay"]
    if config.optimizer == "sgd":
        names.append("momentum")
    names += {
        "la": ["la_tau"],
        "ldam": ["ldam_scale", "ldam_max_margin"],
        "focal": ["focal_gamma"],
    }.get(config.loss, [])
    if config.reweight != "none":
        names += ["reweight"] + (["cb_beta"] if config.reweight == "cb" else [])
    if config.mix_at:
        names.append("strength")
    return ", ".join(f"--{name}={getattr(config, name)!r}" for name in names)


class RunBackup(keras.callbacks.BackupAndRestore):
    """`keras.callbacks.BackupAndRestore` that a run deletes only once its results are written.

    The backup (weights, optimizer and `MajorMix` random-stream state, the
    epoch) is kept when `fit` ends (`delete_checkpoint=False`):
    `train_and_evaluate` removes it after `metrics.json` is written, so a
    run killed during evaluation or plotting resumes after its last epoch
    instead of training again. It also keeps each epoch's logs in
    `history.json` next to the weights, so the final training loss of a
    run resumed after its last epoch is known. A backup that cannot be read
    (corrupt, truncated, or of another model) raises an error naming its
    folder.
    """

    HISTORY = "history.json"

    def __init__(self, backup_dir):
        super().__init__(backup_dir, delete_checkpoint=False)
        self.history = []  # one logs dict per epoch, from the first

    def on_train_begin(self, logs=None):
        try:
            super().on_train_begin(logs)
            self.history = self._read_history()
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise RuntimeError(
                f"The backup in {self.backup_dir!r} (written while this run trained) "
                f"cannot be read: {type(error).__name__}: {error}. It is corrupt or "
                "truncated, or it was written by another model. Delete that folder "
                "to train this run again from its first epoch."
            ) from error
        initial_epoch = self.model._initial_epoch or 0
        self.history = self.history[:initial_epoch]

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        self.history = self.history[:epoch] + [
            {key: float(value) for key, value in (logs or {}).items()}
        ]
        outputs.write_json(
            os.path.join(self.backup_dir, self.HISTORY), self.history
        )

    def _read_history(self):
        path = os.path.join(self.backup_dir, self.HISTORY)
        if not os.path.exists(path):
            return []
        with open(path) as f:
            history = json.load(f)
        if not isinstance(history, list):
            raise ValueError(f"{path} holds no list of epoch logs")
        return history


def _clean_data(data, config):
    """`(clean_data, clean_sampled)` for ClassProgress.

    A streamed dataset's per-class sample, or the whole `train_clean`.
    """
    if hasattr(data, "clean_subset"):
        return data.clean_subset(100, config.seed), True
    return data.train_clean, False


def prepare_training_set(config, data):
    """`data.train` with one-hot labels and the MixUp / Remix batch mixing the config asks for."""
    dataset, num_classes = data.train, data.num_classes
    if config.batch_mixer == "mixup":
        return mix_batches(
            dataset,
            keras.layers.MixUp(alpha=config.mixup_alpha, seed=config.seed),
            num_classes,
        )
    if config.batch_mixer == "remix":
        layer = Remix(
            data.class_counts,
            alpha=config.mixup_alpha,
            kappa=config.remix_kappa,
            tau=config.remix_tau,
            seed=config.seed,
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


def fit_model(
    model,
    config,
    data,
    output_dir=None,
    extra_callbacks=(),
    verbose=1,
    epochs=None,
    initial_epoch=0,
):
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
        callbacks=training_callbacks(
            config, data.class_counts, output_dir, *_clean_data(data, config)
        )
        + list(extra_callbacks),
        shuffle=False,  # the tf.data pipeline shuffles
        verbose=verbose,
    )


def train_and_evaluate(
    config, output_dir=None, data=None, verbose=1, strategy=None
):
    """Trains one model as `config` says and evaluates it on the test split.

    With `output_dir`, writes `metrics.json`, `model.keras`, the diagnostics
    (`class_progress.csv/.json` and plots), TensorBoard logs, and a
    `backup/` that lets an interrupted call resume where it stopped; the
    backup is removed only after `metrics.json` is written. A run whose
    training loss becomes NaN or infinite raises `NonFiniteLossError` and
    writes no metrics.

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
    losses = history.history.get("loss") or []
    if output_dir and config.epochs > len(losses):
        # Resumed from the backup: the losses of earlier epochs are there.
        losses = [logs.get("loss") for logs in _backed_up_history(output_dir)]
    result, labels, predictions = evaluate(
        model, data.test, class_counts, config.major_threshold
    )
    # Held-out data for choosing (never the test set), and the final clean
    # training accuracy per class: the evidence that a budget converged.
    if data.validation is not None:
        result["validation"] = evaluate(
            model, data.validation, class_counts, config.major_threshold
        )[0]
    result["train_clean"] = evaluate(
        model, data.train_clean, class_counts, config.major_threshold
    )[0]
    result.update(
        {
            "seed": config.seed,
            "class_counts": list(class_counts),
            "class_names": list(data.class_names),
            "epochs": config.epochs,
            "final_train_loss": float(losses[-1])
            if losses and losses[-1] is not None
            else None,
        }
    )
    result = outputs.round_floats(result)  # as metrics.json holds it
    if output_dir:
        model.save(os.path.join(output_dir, "model.keras"))
        outputs.write_plots(
            output_dir,
            labels,
            predictions,
            class_counts,
            config,
            class_names=data.class_names,
        )
        outputs.write_json(os.path.join(output_dir, "metrics.json"), result)
        # Only now: a run killed before this point resumes after its last epoch.
        shutil.rmtree(backup_dir(output_dir), ignore_errors=True)
    return result


def _backed_up_history(output_dir):
    """The per-epoch logs `RunBackup` kept for the run in `output_dir`."""
    path = os.path.join(backup_dir(output_dir), RunBackup.HISTORY)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)
