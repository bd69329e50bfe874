"""`ClassProgress`: per-class training progress and feature gradients, per epoch."""

import math
import os
import sys
import warnings

import keras
import numpy as np
from keras import ops

from kmix import records as records_lib
from kmix import validation
from kmix._keras_compat import flatten_layers
from kmix.callbacks._per_class_sums import PerClassSums
from kmix.classes import integer_labels
from kmix.classes import per_class_recall
from kmix.layers.feature_probe import FeatureProbe
from kmix.metrics._per_class_counts import batch_counts
from kmix.metrics._per_class_counts import per_class_sums
from kmix.models.mix_model import MixModel

# The records' file format lives in `kmix.records`; these names stay
# importable from here for code written before it moved.
from kmix.records import COLUMNS  # noqa: F401
from kmix.records import history_from_records  # noqa: F401
from kmix.records import read_records  # noqa: F401
from kmix.records import write_records_csv  # noqa: F401

QUANTITIES = (
    "train_accuracy",
    "feature_grad_norm",
    "clean_accuracy",
    "val_accuracy",
)


class ClassProgress(keras.callbacks.Callback):
    """Records, per epoch and per class, how far training has got.

    "Procrustean Training for Imbalanced Deep Learning" (Ye, Zhan & Chao,
    ICCV 2021) rests on two curves: per-class training accuracy over epochs
    (minor classes are fitted late, then over-fitted) and per-class
    feature-gradient magnitude (much larger for minor classes). This callback
    records them, with or without `kmix.MajorMix` in the model, as quantities
    (one value per class per epoch):

    - `train_accuracy`: accuracy on the training batches *as the model saw
      them*, i.e. the mixed forward pass of `MixModel.train_step`, counted
      over the whole epoch (unweighted by sample weights).
    - `feature_grad_norm`: the mean, over the epoch's examples of each class,
      of the L2 norm of the gradient of the example's loss with respect to a
      feature tensor: the output of the model's `kmix.layers.FeatureProbe`
      when it has one, else by default the input of the model's last
      top-level layer with weights (the classifier, so the penultimate
      features); or, with `feature_layer`, the output of the probe of that
      name or the input of the layer of that name. It is taken from the
      training step's own backward pass (see below); no second pass is run.
    - `clean_accuracy` (when `clean_data` is given): accuracy of a clean
      pass (inference mode: no mixing, BatchNorm moving statistics, no
      dropout) over `clean_data`, every `clean_every` epochs. This costs one
      extra inference pass over that data.
    - `val_accuracy`: per-class accuracy on `fit`'s `validation_data`, taken
      from the validation pass `fit` runs anyway.

    Epochs are counted from 1 (the value after epoch 1 is recorded at
    `epoch=1`). A class with no examples in an epoch gets NaN for that epoch.

    **How the gradient is captured.** Only through public hooks; no layer or
    model attribute is replaced. While `fit` runs, the callback adds a
    gradient observer to a `kmix.layers.FeatureProbe`: the model's own
    probe (the one named `feature_layer`, or its only probe), else a probe
    that `MixModel.insert_feature_probe` puts on the input of the chosen
    layer for the training forward pass (functional models; a subclassed
    model needs a `FeatureProbe` in its `call`). The probe is the identity
    with a custom gradient inside `MixModel.train_step`. On the backward
    pass the observer receives the gradient `g` of the batch loss with
    respect to the features; it adds the per-example norms
    `||g_i|| * global_batch_size / loss_scale` (the gradient of each
    example's own loss, for the default `"sum_over_batch_size"` reduction,
    undoing mixed-precision loss scaling and the `1 / num_replicas` of
    `tf.distribute`) into per-class sums and counts; `g` passes on
    unchanged. Where the sums live depends on the Keras backend, the numbers
    do not:

    - TensorFlow: non-trainable, sum-aggregated variables; the updates are
      stateful ops of the traced training step, so `tf.function`'s
      automatic control dependencies run them, with and without
      `jit_compile`, and under `tf.distribute` the replicas' sums add up.
    - PyTorch: the same variables, updated as the step runs.
    - JAX: the training step is a pure function (`jax.value_and_grad`
      under `jit`), and a variable assigned in its backward pass would be
      in no state Keras returns. The sums are numpy arrays on the host
      instead, added to by `jax.experimental.io_callback` from the step
      (the batch's `(num_classes,)` sums cross to the host once per step;
      the callback waits for them with `jax.effects_barrier()` before
      reading). Under a `keras.distribution` the step sees the global
      batch and the sums are exact. With several processes (multi-host)
      the step's host callbacks run on the process holding the mesh's
      first device (process 0 with the default device order): only that
      process records; the others warn at the start of `fit` and record
      NaN. A dynamic loss scale (`keras.optimizers.LossScaleOptimizer`,
      e.g. `mixed_float16` with `compile(auto_scale_loss=True)`) lives in
      the optimizer's state, which the backward pass cannot read on JAX:
      `ClassProgress` then refuses to record `feature_grad_norm` (pass
      `gradients=False`, train without loss scaling, e.g. with
      `mixed_bfloat16`, or use the TensorFlow or PyTorch backend).

    The loss includes `MixModel`'s per-class loss weights and
    sample weights: the norms are those of the loss that is trained. The
    gradient only exists when training back-propagates through the feature
    tensor, i.e. some layer below it is trainable; with a frozen backbone no
    gradient reaches it and `feature_grad_norm` is NaN.

    The labels and predictions reach the callback through
    `MixModel.add_batch_observer`, so the model must be a `kmix.MixModel` (a
    plain model can be wrapped with
    `kmix.MixModel.from_model(model, class_counts)`; without `MajorMix`
    layers it trains exactly like the plain model). Adding and removing the
    observers and the probe retraces the model's train and test functions
    once per `fit`.

    The series are kept in `history` (`{quantity: {"epoch": [...], "value":
    [[one value per class], ...]}}`, also `series(quantity)` as arrays) and
    in `records` (tidy rows `epoch, class, quantity, value`). With
    `output_dir`, `class_progress.csv` and `class_progress.json` (the rows,
    plus `class_counts`) are rewritten there after every epoch; with
    `log_dir`, TensorBoard scalars `class_progress/<quantity>/class_<c>` are
    written at step `epoch`. The file format is `kmix.records`'. The files
    are written atomically (a temporary file, then a rename). A `fit` that
    starts after epoch 0, e.g. a run resumed by
    `keras.callbacks.BackupAndRestore` in a new process, first reads the
    records of the earlier epochs back from `output_dir` and appends to
    them, so the files keep every epoch; rows of epochs that run again are
    replaced.

    Args:
        feature_layer: name of a `kmix.layers.FeatureProbe` of the model
            (its output is the feature tensor) or of another layer (its
            input is), or None for the model's only `FeatureProbe` or, when
            it has none, the last top-level layer with weights.
        gradients: whether to record `feature_grad_norm`.
        clean_data: optional `(x, y)` arrays or a `tf.data.Dataset` of
            `(x, y)` batches for the clean pass, e.g. the training set.
        clean_every: int >= 1, run the clean pass after every
            `clean_every`-th epoch.
        clean_per_class: optional int >= 1: use a fixed sample of at most
            this many examples of each class from `clean_data` (drawn once,
            with `seed`), so minor classes are covered at a small cost.
        clean_batch_size: batch size of the clean pass on arrays.
        output_dir: optional directory for the CSV and JSON files.
        log_dir: optional TensorBoard log directory.
        class_counts: training counts per class, stored with the records for
            the plots; defaults to the model's `class_counts`.
        seed: seed of the `clean_per_class` sample.

    Example:

    >>> progress = kmix.callbacks.ClassProgress(
    ...     clean_data=(x_train, y_train),
    ...     clean_every=2,
    ...     clean_per_class=5,
    ...     output_dir="runs/mix",
    ... )
    >>> model.compile(
    ...     "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    ... )
    >>> history = model.fit(
    ...     x_train,
    ...     y_train,
    ...     epochs=2,
    ...     validation_data=(x_test, y_test),
    ...     callbacks=[progress],
    ...     verbose=0,
    ... )
    >>> epochs, norms = progress.series("feature_grad_norm")
    >>> epochs.tolist(), norms.shape  # one norm per class and epoch
    ([1, 2], (2, 10))
    >>> import os
    >>> sorted(os.listdir("runs/mix"))
    ['class_progress.csv', 'class_progress.json']
    >>> kmix.plots.plot_feature_gradients(progress, "grad.png")
    'grad.png'
    """

    def __init__(
        self,
        feature_layer=None,
        gradients=True,
        clean_data=None,
        clean_every=1,
        clean_per_class=None,
        clean_batch_size=256,
        output_dir=None,
        log_dir=None,
        class_counts=None,
        seed=0,
    ):
        super().__init__()
        if feature_layer is not None and not isinstance(feature_layer, str):
            raise TypeError(
                "Argument `feature_layer` must be a layer name (str) or None. "
                f"Received: feature_layer={feature_layer!r}."
            )
        self.feature_layer = feature_layer
        self.gradients = bool(gradients)
        self.clean_data = clean_data
        self.clean_every = validation.check_int("clean_every", clean_every, 1)
        self.clean_per_class = (
            None
            if clean_per_class is None
            else validation.check_int("clean_per_class", clean_per_class, 1)
        )
        self.clean_batch_size = validation.check_int(
            "clean_batch_size", clean_batch_size, 1
        )
        self.output_dir = output_dir
        self.log_dir = log_dir
        self.class_counts = (
            None
            if class_counts is None
            else validation.check_class_counts(class_counts)
        )
        self.seed = seed
        self.history = {}
        self.records = []
        self._state_model = None
        self._installed = None
        self._num_replicas = 1
        self._writer = None
        self._clean = None
        self._first_epoch_of_fit = False
        self._optimizer = None

    # ----------------------------------------------------------------- fit

    def on_train_begin(self, logs=None):
        model = self.model
        if not isinstance(model, MixModel):
            raise TypeError(
                "ClassProgress needs a `kmix.MixModel` (its training step hands "
                "the batch labels and predictions to the callback). Received: "
                f"model={model.name!r} of type {type(model).__name__}. Wrap it with "
                "`kmix.MixModel.from_model(model, class_counts)`."
            )
        if self.class_counts is None:
            self.class_counts = list(model.class_counts)
        self.num_classes = len(model.class_counts)
        if len(self.class_counts) != self.num_classes:
            raise ValueError(
                "Argument `class_counts` must have one count per model class "
                f"({self.num_classes}). Received: class_counts={self.class_counts!r}."
            )
        self._create_state(model)
        _warn_if_not_recording()
        self._install(model)
        # The first epoch `fit` runs is known only at `on_epoch_begin`
        # (`keras.callbacks.BackupAndRestore` may move it after this call).
        self._first_epoch_of_fit = True
        if self.clean_data is not None and self._clean is None:
            self._clean = self._prepare_clean_data(self.clean_data)
        if self.log_dir is not None and self._writer is None:
            # TensorBoard's writer is TensorFlow's (always installed with
            # kmix); it only ever receives Python floats.
            import tensorflow as tf

            self._writer = tf.summary.create_file_writer(self.log_dir)

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch_of_fit:
            self._first_epoch_of_fit = False
            self._resume(epoch)
        for state in self._states():
            state.reset()

    def on_epoch_end(self, epoch, logs=None):
        epoch_number = epoch + 1
        recorded = {}
        recorded["train_accuracy"] = self._train_counts.means()
        if self.gradients:
            recorded["feature_grad_norm"] = self._gradient_sums.means()
        if self._clean is not None and epoch_number % self.clean_every == 0:
            recorded["clean_accuracy"] = self._clean_accuracy()
        if float(np.sum(self._val_counts.read()[1])) > 0:
            recorded["val_accuracy"] = self._val_counts.means()
        for quantity in QUANTITIES:
            if quantity in recorded:
                self._record(epoch_number, quantity, recorded[quantity])
        self._write(epoch_number, recorded)

    def on_train_end(self, logs=None):
        self._uninstall()
        if self._writer is not None:
            self._writer.flush()

    # ------------------------------------------------------------- results

    def series(self, quantity):
        """Returns `(epochs, values)`: int `(E,)` and float `(E, num_classes)`."""
        validation.check_choice("quantity", quantity, QUANTITIES)
        entry = self.history.get(quantity, {"epoch": [], "value": []})
        values = np.asarray(entry["value"], dtype="float64")
        if not entry["epoch"]:
            values = np.zeros((0, getattr(self, "num_classes", 0)))
        return np.asarray(entry["epoch"], dtype="int64"), values

    # ------------------------------------------------------------ internals

    def _states(self):
        return (self._train_counts, self._val_counts, self._gradient_sums)

    def _create_state(self, model):
        if self._state_model is model:
            return
        strategy = _strategy(model)
        self._train_counts = PerClassSums(
            self.num_classes, "class_progress_train", strategy
        )
        self._val_counts = PerClassSums(
            self.num_classes, "class_progress_val", strategy
        )
        self._gradient_sums = PerClassSums(
            self.num_classes, "class_progress_grad", strategy
        )
        self._state_model = model

    def _observe_batch(self, y, y_pred, sample_weight, training):
        """`MixModel` batch observer: per-class accuracy of train/test steps."""
        if y is None:
            return
        y_pred = keras.tree.flatten(y_pred)[0]
        y = keras.tree.flatten(y)[0]
        total, correct = batch_counts(y, y_pred, self.num_classes)
        (self._train_counts if training else self._val_counts).add(
            correct, total
        )

    def _observe_gradient(self, gradient, labels):
        """`FeatureProbe` gradient observer: per-class sums of per-example norms."""
        batch_size = ops.shape(gradient)[0]
        flat = ops.reshape(ops.cast(gradient, "float32"), (batch_size, -1))
        # The gradient of each example's own loss: undo the 1 / batch size of
        # "sum_over_batch_size" (over all replicas) and the loss scale.
        scale = ops.cast(batch_size * self._num_replicas, "float32")
        norms = ops.sqrt(ops.sum(ops.square(flat), axis=1)) * scale
        norms = norms / self._loss_scale_value()
        self._gradient_sums.add(
            per_class_sums(labels, norms, self.num_classes),
            per_class_sums(labels, ops.ones_like(norms), self.num_classes),
        )

    def _loss_scale_value(self):
        """The factor the optimizer scales the loss by, read in the step."""
        # Not `self.model.optimizer`: on JAX, `Callback.model` syncs the
        # training state into the variables, which must not happen in a step.
        optimizer = self._optimizer
        if optimizer is None:
            return 1.0
        return ops.cast(
            optimizer.scale_loss(ops.ones((), dtype="float32")), "float32"
        )

    def _check_backend(self, model):
        if (
            self.gradients
            and keras.backend.backend() == "jax"
            and isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        ):
            raise ValueError(
                "ClassProgress cannot record `feature_grad_norm` on the JAX "
                "backend with a dynamic loss scale: the scale lives in the "
                "optimizer's state, which the backward pass cannot read there, "
                "so the norms would be off by it. Received: model "
                f"{model.name!r} compiled with optimizer of type "
                f"{type(model.optimizer).__name__}. Pass "
                "`ClassProgress(gradients=False)`, train without loss scaling "
                "(e.g. the `mixed_bfloat16` policy, or "
                "`compile(auto_scale_loss=False)`), or use "
                "KERAS_BACKEND=tensorflow or torch."
            )

    def _install(self, model):
        self._uninstall()
        self._check_backend(model)
        probe, inserted = None, False
        if self.gradients:
            probe, inserted = self._feature_probe(model)
            strategy = _strategy(model)
            self._num_replicas = (
                1 if strategy is None else strategy.num_replicas_in_sync
            )
            self._optimizer = model.optimizer
            probe.add_gradient_observer(self._observe_gradient)
        model.add_batch_observer(self._observe_batch)
        self._installed = (model, probe, inserted)
        model.make_train_function(force=True)
        model.make_test_function(force=True)

    def _uninstall(self):
        if self._installed is None:
            return
        model, probe, inserted = self._installed
        self._installed = None
        model.remove_batch_observer(self._observe_batch)
        if probe is not None:
            probe.remove_gradient_observer(self._observe_gradient)
            if inserted:
                model.remove_feature_probe(probe)
        model.make_train_function(force=True)
        model.make_test_function(force=True)

    def _feature_probe(self, model):
        """Returns `(probe, inserted)`: the `FeatureProbe` to observe."""
        layers = flatten_layers(model, include_self=False)
        if self.feature_layer is not None:
            named = [
                layer for layer in layers if layer.name == self.feature_layer
            ]
            if not named:
                raise ValueError(
                    "Argument `feature_layer` must name a layer of the model. "
                    f"Received: feature_layer={self.feature_layer!r}; the model's "
                    f"layers are {[layer.name for layer in model.layers]}."
                )
            layer = named[0]
            if isinstance(layer, FeatureProbe):
                return layer, False
        else:
            probes = [
                layer for layer in layers if isinstance(layer, FeatureProbe)
            ]
            if len(probes) > 1:
                raise ValueError(
                    f"Model {model.name!r} has several `FeatureProbe` layers "
                    f"({[probe.name for probe in probes]}); pass "
                    "`feature_layer=<name>` to say which one ClassProgress reads."
                )
            if probes:
                return probes[0], False
            with_weights = [layer for layer in model.layers if layer.weights]
            if not with_weights:
                raise ValueError(
                    f"Model {model.name!r} has no layer with weights, so "
                    "ClassProgress cannot find its classifier. Pass "
                    "`feature_layer=<layer name>` or `gradients=False`."
                )
            layer = with_weights[-1]
        try:
            return model.insert_feature_probe(layer), True
        except TypeError as error:
            raise TypeError(
                f"ClassProgress cannot measure feature gradients of model "
                f"{model.name!r}: {error} Or pass `gradients=False`."
            ) from error

    def _prepare_clean_data(self, data):
        if _is_dataset(data):
            if self.clean_per_class is None:
                return data
            batches = list(data.as_numpy_iterator())
            data = (
                np.concatenate([x for x, _ in batches]),
                np.concatenate([y for _, y in batches]),
            )
        if not isinstance(data, (tuple, list)) or len(data) != 2:
            raise ValueError(
                "Argument `clean_data` must be `(x, y)` arrays or a tf.data.Dataset "
                f"of `(x, y)` batches. Received: clean_data of type {type(data).__name__}."
            )
        x, y = np.asarray(data[0]), np.asarray(data[1])
        if self.clean_per_class is not None:
            labels = keras.ops.convert_to_numpy(integer_labels(y))
            order = np.random.RandomState(self.seed).permutation(len(labels))
            keep = np.concatenate(
                [
                    order[labels[order] == c][: self.clean_per_class]
                    for c in range(self.num_classes)
                ]
            )
            keep.sort()
            x, y = x[keep], y[keep]
        return (x, y)

    def _clean_accuracy(self):
        if _is_dataset(self._clean):
            labels, predictions = [], []
            for x, y in self._clean:
                predictions.append(np.asarray(self.model.predict_on_batch(x)))
                labels.append(np.asarray(y))
            labels, predictions = (
                np.concatenate(labels),
                np.concatenate(predictions),
            )
        else:
            x, labels = self._clean
            # predict_on_batch, not predict: under op determinism (run.py's
            # default) Keras' array pipeline makes TensorFlow log a harmless
            # C++ error line ("NodeDef mentions attribute ...") every call.
            step = self.clean_batch_size
            predictions = np.concatenate(
                [
                    np.asarray(
                        self.model.predict_on_batch(x[start : start + step])
                    )
                    for start in range(0, len(x), step)
                ]
            )
        return per_class_recall(
            keras.ops.convert_to_numpy(integer_labels(labels)),
            keras.ops.convert_to_numpy(integer_labels(predictions)),
            self.num_classes,
        )

    def _resume(self, initial_epoch):
        """Keeps the records of the epochs before `initial_epoch`, and only those.

        A run resumed by `keras.callbacks.BackupAndRestore` starts a new
        process with empty records: they are read back from the
        `output_dir` files, so the files keep every epoch. Rows of epochs
        after the restored one (written before a kill but not backed up) are
        dropped, since those epochs run again.
        """
        if (
            not self.records
            and initial_epoch > 0
            and self.output_dir is not None
        ):
            self.records = self._read_earlier_records()
        kept = [r for r in self.records if r["epoch"] <= initial_epoch]
        if len(kept) != len(self.records) or not self.history:
            self.records = kept
            self.history = records_lib.history_from_records(kept)

    def _read_earlier_records(self):
        paths = [
            os.path.join(self.output_dir, name)
            for name in (records_lib.JSON_NAME, records_lib.CSV_NAME)
        ]
        existing = [path for path in paths if os.path.exists(path)]
        if not existing:
            return []
        rows, class_counts = records_lib.read_records(existing[0])
        if class_counts is not None and list(class_counts) != list(
            self.class_counts
        ):
            raise ValueError(
                f"The records file {existing[0]!r} of the run being resumed holds "
                f"class_counts={class_counts}, this run trains with "
                f"class_counts={list(self.class_counts)}: they are records of another "
                "run. Use a new `output_dir`, or delete the file to start the records "
                "afresh."
            )
        return rows

    def _record(self, epoch, quantity, values):
        entry = self.history.setdefault(quantity, {"epoch": [], "value": []})
        entry["epoch"].append(epoch)
        entry["value"].append([float(v) for v in values])
        self.records.extend(records_lib.rows_for_epoch(epoch, quantity, values))

    def _write(self, epoch, recorded):
        if self._writer is not None:
            import tensorflow as tf

            with self._writer.as_default():
                for quantity, values in recorded.items():
                    for c, v in enumerate(values):
                        if not math.isnan(v):
                            tf.summary.scalar(
                                f"class_progress/{quantity}/class_{c}",
                                float(v),
                                step=epoch,
                            )
        if self.output_dir is not None:
            records_lib.write_records(
                self.records, self.output_dir, self.class_counts
            )


def _strategy(model):
    """The model's `tf.distribute` strategy on TensorFlow, else None."""
    if keras.backend.backend() != "tensorflow":
        return None
    return model.distribute_strategy


def _is_dataset(data):
    """Whether `data` is a `tf.data.Dataset` (without importing TensorFlow)."""
    tf = sys.modules.get("tensorflow")
    return tf is not None and isinstance(data, tf.data.Dataset)


def _warn_if_not_recording():
    """On multi-process JAX, says that processes other than 0 record nothing."""
    if keras.backend.backend() != "jax":
        return
    import jax

    if jax.process_count() > 1 and jax.process_index() != 0:
        warnings.warn(
            "ClassProgress on the JAX backend with several processes records "
            "only on the process that runs the training step's host callbacks "
            "(the one holding the mesh's first device, process 0 by default); "
            f"this process ({jax.process_index()} of {jax.process_count()}) "
            "will record NaN. Read the records of process 0.",
            stacklevel=2,
        )
