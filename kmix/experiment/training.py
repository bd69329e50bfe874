"""Training an `ExperimentConfig`: callbacks, the training set, `fit`, one whole run."""

import contextlib
import json
import math
import os
import shutil
import tempfile
import warnings

import keras
import tensorflow as tf

from kmix import callbacks
from kmix.experiment import distribution
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

    Over several processes (`distribution.initialize_processes`) every
    process gets the callbacks that take part in training (schedules,
    re-weighting, the divergence stop, `RunBackup`, which only process 0
    writes); TensorBoard logs are written by process 0 alone, and
    `ClassProgress` is left out.
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
    chief = distribution.is_chief()
    if output_dir:
        if config.diagnostics and distribution.process_count() > 1:
            if chief:
                warnings.warn(
                    "--diagnostics: per-class progress (ClassProgress) is not "
                    "recorded when training over several processes; "
                    "metrics.json and the plots of the test set are.",
                    stacklevel=2,
                )
        elif config.diagnostics:
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
        if chief:
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

    Over several processes only process 0 writes the backup; when a run
    resumes, process 0 sends its backup to the others (which restore it from
    a temporary folder), so that all restore the same weights and epoch
    without a shared file system.
    """

    HISTORY = "history.json"

    def __init__(self, backup_dir):
        super().__init__(backup_dir, delete_checkpoint=False)
        self.history = []  # one logs dict per epoch, from the first

    def on_train_begin(self, logs=None):
        if distribution.is_chief():
            self._share_backup()
            return self._restore(logs)
        with tempfile.TemporaryDirectory(prefix="kmix_backup_") as folder:
            self._share_backup(folder)
            with self._reading_from(folder):
                self._restore(logs)

    def _restore(self, logs):
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
        if distribution.is_chief():
            outputs.write_json(
                os.path.join(self.backup_dir, self.HISTORY), self.history
            )

    def _save_model(self):
        if distribution.is_chief():
            with distribution.local_only():  # process 0 alone
                super()._save_model()

    def _share_backup(self, folder=None):
        """Process 0 sends the files of its backup; the others write them to `folder`."""
        if distribution.process_count() == 1:
            return
        names = []
        if distribution.is_chief() and os.path.isdir(self.backup_dir):
            names = sorted(
                name
                for name in os.listdir(self.backup_dir)
                if os.path.isfile(os.path.join(self.backup_dir, name))
            )
        names = json.loads(
            distribution.broadcast_bytes(json.dumps(names).encode())
        )
        for name in names:
            data = None
            if distribution.is_chief():
                with open(os.path.join(self.backup_dir, name), "rb") as f:
                    data = f.read()
            data = distribution.broadcast_bytes(data)
            if folder is not None:
                with open(
                    os.path.join(folder, os.path.basename(name)), "wb"
                ) as f:
                    f.write(data)

    @contextlib.contextmanager
    def _reading_from(self, folder):
        """Points the callback's paths at `folder` (a copy of the backup) for a while."""
        names = (
            "backup_dir",
            "_weights_path",
            "_training_metadata_path",
            "_prev_weights_path",
            "_prev_training_metadata_path",
        )
        saved = {name: getattr(self, name) for name in names}
        for name in names:
            setattr(
                self, name, saved[name].replace(saved["backup_dir"], folder, 1)
            )
        try:
            yield
        finally:
            for name, value in saved.items():
                setattr(self, name, value)

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
    and `kmix.tuning.MajorMixHyperModel.fit` both train here. Over several
    processes each feeds its part of every global batch
    (`distribution.shard_batches`; `config.batch_size` stays the global
    batch), so the `val_*` logs leave out up to one image per device of a
    last, partial validation batch.
    """
    distribution.check_batch_size(config.batch_size)
    train = prepare_training_set(config, data)
    validation_data = data.validation
    if validation_data is not None and config.needs_one_hot_labels:
        validation_data = one_hot(validation_data, data.num_classes)
    # Several processes: each feeds its part of every global batch.
    train = distribution.shard_batches(
        train, config.batch_size, sum(data.class_counts)
    )
    validation_data = distribution.shard_batches(
        validation_data,
        config.batch_size,
        sum(getattr(data, "validation_counts", None) or ()) or None,
    )
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

    Over several processes (`distribution.initialize_processes`) every
    process calls it with the same arguments: they train one model
    together and evaluate it together; only process 0 writes to
    `output_dir`. The metrics then also hold `weights_fingerprint`
    (`distribution.weights_fingerprint`), the same on every process.

    Args:
        config: an `ExperimentConfig`.
        output_dir: where to write; None writes nothing.
        data: an already loaded `ImbalancedDataset` (else loaded from config).
        verbose: Keras' `fit` verbosity.
        strategy: a `tf.distribute.Strategy` to build and train under
            (TensorFlow backend; None: the default strategy).

    Returns:
        The metrics dict written to `metrics.json`.
    """
    config.validate()
    keras.utils.set_random_seed(config.seed)
    data = data or load_data(config)
    class_counts = data.class_counts
    writes = bool(output_dir) and distribution.is_chief()
    if writes:
        os.makedirs(output_dir, exist_ok=True)
    with _scope(strategy):
        model = build_compiled_model(config, data)
    history = fit_model(model, config, data, output_dir, verbose=verbose)
    losses = history.history.get("loss") or []
    if writes and config.epochs > len(losses):
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
    if distribution.process_count() > 1:
        # Every process prints it (run_seeds): they must hold the same weights.
        result["weights_fingerprint"] = distribution.weights_fingerprint(model)
    result = outputs.round_floats(result)  # as metrics.json holds it
    if writes:
        with distribution.local_only():  # process 0 alone
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


def _scope(strategy):
    """The scope of `strategy`: TensorFlow's default strategy when None, or none
    on another backend."""
    if strategy is not None:
        return strategy.scope()
    if keras.backend.backend() == "tensorflow":
        return tf.distribute.get_strategy().scope()
    return contextlib.nullcontext()


def _backed_up_history(output_dir):
    """The per-epoch logs `RunBackup` kept for the run in `output_dir`."""
    path = os.path.join(backup_dir(output_dir), RunBackup.HISTORY)
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return json.load(f)
