"""Bad inputs and faults of the library (issue 15): each gives a clear error or a kept state.

docs/reliability.md lists every case tested here and in tests/test_resume.py.
"""

import gzip
import json
import math
import os
import re
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import app
from absl.testing import flagsaver

import kmix
from helpers import use_flags
from kmix import records
from kmix.experiment import distribution
from kmix.experiment import flags as experiment_flags
from kmix.experiment import runs
from kmix.experiment import training

COUNTS = [60, 60, 6, 6]
FLAGS = use_flags(experiment_flags.define_flags)


def _data(n=32, seed=0, num_classes=4):
    rng = np.random.RandomState(seed)
    y = (np.arange(n) % num_classes).astype("int32")
    x = rng.normal(size=(n, 8)).astype("float32") + y[:, None]
    return x, y


def _model(mix=True, seed=1, loss=None, major_classes=None):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8,))
    h = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
    if mix:
        h = kmix.MajorMix(
            strength=0.5, seed=seed, name="mix", major_classes=major_classes
        )(h)
    outputs = keras.layers.Dense(4, name="logits")(h)
    model = kmix.MixModel(inputs, outputs, class_counts=COUNTS)
    model.compile(
        keras.optimizers.SGD(0.01),
        loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


# --------------------------------------------------------------- item 2


def _seed_state(model):
    return keras.ops.convert_to_numpy(
        model.get_layer("mix").seed_generator.state
    ).tolist()


class _KillAfterEpoch(keras.callbacks.Callback):
    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt(f"simulated kill after epoch {epoch + 1}")


def test_major_mix_random_stream_continues_after_backup_restore(tmp_path):
    x, y = _data()
    steps = 4  # 32 rows in batches of 8
    backup = str(tmp_path / "backup")
    first = _model()
    with pytest.raises(KeyboardInterrupt):
        first.fit(
            x,
            y,
            batch_size=8,
            epochs=3,
            shuffle=False,
            verbose=0,
            callbacks=[
                keras.callbacks.BackupAndRestore(backup),
                _KillAfterEpoch(1),
            ],
        )
    assert _seed_state(first) == [1, 2 * steps]
    resumed = _model()  # a new process: a fresh model, the stream at its seed
    assert _seed_state(resumed) == [1, 0]
    resumed.fit(
        x,
        y,
        batch_size=8,
        epochs=3,
        shuffle=False,
        verbose=0,
        callbacks=[keras.callbacks.BackupAndRestore(backup)],
    )
    # The uninterrupted run draws one seed per step: 3 epochs of 4 steps.
    assert _seed_state(resumed) == [1, 3 * steps]


def test_major_mix_random_stream_is_saved_in_keras_files_and_weights(tmp_path):
    x, y = _data()
    model = _model()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert _seed_state(model) == [1, 4]
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert _seed_state(loaded) == [1, 4]
    model.save_weights(tmp_path / "model.weights.h5")
    other = _model()
    other.load_weights(tmp_path / "model.weights.h5")
    assert _seed_state(other) == [1, 4]
    # The next mixing draws of the loaded layer are those of the original.
    h = np.random.RandomState(3).normal(size=(8, 8)).astype("float32")
    labels = np.zeros(8, "int32")
    mixed = [
        keras.ops.convert_to_numpy(
            m.get_layer("mix")(
                h, training=True, labels=labels, class_counts=COUNTS
            )
        )
        for m in (model, loaded)
    ]
    np.testing.assert_array_equal(mixed[0], mixed[1])


def test_major_mix_loads_weights_saved_without_the_stream_state(tmp_path):
    layer = kmix.MajorMix(strength=0.3, seed=2)
    layer.load_own_variables(
        {"0": np.float32(0.7)}
    )  # a file of an earlier kmix
    assert layer.strength == pytest.approx(0.7)
    assert keras.ops.convert_to_numpy(layer.seed_generator.state).tolist() == [
        2,
        0,
    ]


# --------------------------------------------------------------- item 7


def test_records_are_written_atomically_and_a_failed_write_keeps_the_old_file(
    tmp_path,
):
    rows = records.rows_for_epoch(1, "train_accuracy", [0.5, 0.25])
    csv_path, json_path = records.write_records(rows, tmp_path, [10, 1])
    before = (open(csv_path).read(), open(json_path).read())
    # Writes that fail half-way (here on a row that cannot be written, as a
    # kill or a full disk would): new rows first, then the bad one.
    new_rows = rows + records.rows_for_epoch(2, "train_accuracy", [0.75, 0.5])
    with pytest.raises(TypeError):
        records.write_records_json(
            new_rows + [dict(rows[0], note=object())], json_path, [10, 1]
        )
    with pytest.raises(ValueError):
        records.write_records_csv(new_rows + [dict(rows[0], note=1)], csv_path)
    assert (open(csv_path).read(), open(json_path).read()) == before
    assert sorted(os.listdir(tmp_path)) == [
        "class_progress.csv",
        "class_progress.json",
    ]


@pytest.mark.parametrize(
    "name, content",
    [
        (
            "class_progress.json",
            '{"class_counts": [10, 1], "columns": ["epoch", "cl',
        ),
        ("class_progress.json", "\x00\x01garbage"),
        (
            "class_progress.csv",
            "epoch,class,quantity,value\n1,0,train_accuracy,0.5\n1,1,train_acc",
        ),
    ],
)
def test_corrupt_records_file_raises_error_naming_it(tmp_path, name, content):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(
        ValueError,
        match=rf"records file '{path}' is corrupt or truncated.*delete it",
    ):
        records.read_records(path)


def test_class_progress_resume_with_corrupt_records_names_the_file(tmp_path):
    (tmp_path / "class_progress.json").write_text(
        '{"records": [{"epoch": 1, "cla'
    )
    x, y = _data()
    progress = kmix.callbacks.ClassProgress(
        output_dir=str(tmp_path), gradients=False
    )
    with pytest.raises(
        ValueError, match="class_progress.json' is corrupt or truncated"
    ):
        _model(mix=False).fit(
            x,
            y,
            batch_size=8,
            initial_epoch=1,
            epochs=2,
            verbose=0,
            callbacks=[progress],
        )


@pytest.mark.parametrize("corrupt", ["weights", "metadata"])
def test_corrupt_backup_raises_error_naming_its_folder(tmp_path, corrupt):
    x, y = _data()
    backup = tmp_path / "backup"
    _model().fit(
        x,
        y,
        batch_size=8,
        epochs=1,
        verbose=0,
        callbacks=[training.RunBackup(str(backup))],
    )
    assert sorted(os.listdir(backup)) == [
        "history.json",
        "latest.weights.h5",
        "training_metadata.json",
    ]
    if corrupt == "weights":
        path = backup / "latest.weights.h5"
        path.write_bytes(path.read_bytes()[:100])  # truncated
    else:
        (backup / "training_metadata.json").write_text('{"epo')
    with pytest.raises(
        RuntimeError,
        match=rf"backup in '{backup}'.*cannot be read.*Delete that folder",
    ):
        _model().fit(
            x,
            y,
            batch_size=8,
            epochs=2,
            verbose=0,
            callbacks=[training.RunBackup(str(backup))],
        )


def test_corrupt_seed_metrics_raise_error_naming_the_file(tmp_path):
    (tmp_path / "seed_0").mkdir()
    (tmp_path / "seed_0" / "metrics.json").write_text('{"accuracy": 0.5, "bal')
    config = kmix.ExperimentConfig(seed=0)
    with pytest.raises(
        ValueError,
        match=r"metrics of finished seed 0 '.*seed_0/metrics.json' is "
        r"corrupt or truncated.*Delete it to train seed 0 again",
    ):
        runs.run_seeds([config], str(tmp_path), verbose=0)


# --------------------------------------------------------------- item 9


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_check_number_rejects_non_finite_values(value):
    with pytest.raises(ValueError, match="`x` must be a finite number"):
        kmix.validation.check_number("x", value, 0.0)


def test_non_finite_arguments_are_rejected_everywhere():
    with pytest.raises(
        ValueError, match="`max_margin` must be a finite number"
    ):
        kmix.losses.LDAMLoss(COUNTS, max_margin=math.inf)
    with pytest.raises(ValueError, match="`scale` must be a finite number"):
        kmix.losses.LDAMLoss(COUNTS, scale=math.inf)
    with pytest.raises(ValueError, match="`tau` must be a finite number"):
        kmix.losses.LogitAdjustedLoss(COUNTS, tau=math.inf)
    with pytest.raises(ValueError, match="`alpha` must be a finite number"):
        kmix.MajorMix(alpha=math.inf)
    model = _model(mix=False)
    for weights in ([math.nan] * 4, [1.0, math.inf, 1.0, 1.0]):
        with pytest.raises(
            ValueError, match="one finite, non-negative weight per class"
        ):
            model.set_class_loss_weights(weights)
    np.testing.assert_array_equal(model.class_loss_weights.numpy(), np.ones(4))


# -------------------------------------------------------------- item 10


def test_major_classes_outside_the_model_classes_fail_at_the_first_step():
    x, y = _data()
    with pytest.raises(
        ValueError,
        match=r"`major_classes` must hold class indices below the number "
        r"of classes \(4\).*\[99\]",
    ):
        _model(major_classes=[99]).fit(x, y, batch_size=8, epochs=1, verbose=0)


def test_fractional_labels_are_rejected_by_major_mix_and_fit():
    h = np.ones((4, 8), "float32")
    layer = kmix.MajorMix(seed=0)
    with pytest.raises(
        ValueError,
        match=r"integer class indices.*fractional labels such as \[0.5",
    ):
        layer(
            h,
            training=True,
            labels=np.array([0.5, 1.0, 2.0, 3.0]),
            class_counts=COUNTS,
        )
    x, y = _data()
    fractional = y.astype("float32") + 0.5
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="fractional labels"
    ):
        _model().fit(x, fractional, batch_size=8, epochs=1, verbose=0)
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="fractional labels"
    ):
        _model(mix=False).fit(x, fractional, batch_size=8, epochs=1, verbose=0)
    # Whole-number float labels are fine (Keras' losses cast labels to float).
    _model().fit(x, y.astype("float32"), batch_size=8, epochs=1, verbose=0)


def test_out_of_range_labels_fail_with_kmix_message_not_a_gather_error():
    x, y = _data()
    y = y.copy()
    y[5] = 7
    for mix in (True, False):
        with pytest.raises(tf.errors.InvalidArgumentError) as error:
            _model(mix=mix).fit(x, y, batch_size=8, epochs=1, verbose=0)
        assert "Argument `y` must hold class indices in [0, 4)" in str(
            error.value
        )
        assert "GatherV2" not in str(error.value)


def test_ldam_and_logit_adjusted_losses_reject_labels_outside_the_classes():
    logits = np.zeros((2, 4), "float32")
    for loss in (
        kmix.losses.LDAMLoss(COUNTS),
        kmix.losses.LogitAdjustedLoss(COUNTS),
    ):
        with pytest.raises(
            ValueError,
            match=r"`y_true` must hold class indices in \[0, 4\).*\[0, 4\]",
        ):
            loss(np.array([0, 4]), logits)
        with pytest.raises(
            ValueError,
            match=r"`y_true` must hold class indices in \[0, 4\).*\[-1, 1\]",
        ):
            loss(np.array([-1, 1]), logits)
        with pytest.raises(ValueError, match="fractional"):
            loss(np.array([0.5, 1.0]), logits)
        assert float(loss(np.array([0, 3]), logits)) > 0
    x, y = _data()
    y = y.copy()
    y[3] = 9
    with pytest.raises(
        tf.errors.InvalidArgumentError, match=r"class indices in \[0, 4\)"
    ):
        _model(mix=False, loss=kmix.losses.LDAMLoss(COUNTS)).fit(
            x, y, batch_size=8, epochs=1, verbose=0
        )


def test_major_mix_labels_and_features_of_different_batch_sizes():
    layer = kmix.MajorMix(seed=0)
    h = np.ones((8, 5), "float32")
    with pytest.raises(
        ValueError,
        match=r"labels for a batch of 3 rows and features for a batch of 8",
    ):
        layer(h, training=True, labels=np.array([0, 1, 2]), class_counts=COUNTS)

    @tf.function(
        input_signature=[
            tf.TensorSpec((None, 5)),
            tf.TensorSpec((None,), tf.int32),
        ]
    )
    def traced(features, labels):
        return layer(
            features, training=True, labels=labels, class_counts=COUNTS
        )

    with pytest.raises(
        tf.errors.InvalidArgumentError,
        match="labels and features of different batch sizes",
    ):
        traced(h, np.array([0, 1, 2], "int32"))


def test_keras_file_without_import_kmix_names_the_public_class(tmp_path):
    path = tmp_path / "model.keras"
    _model().save(path)
    code = f"import keras, sys\nkeras.saving.load_model({str(path)!r})\n"
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=300,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
    )
    assert done.returncode != 0
    assert "Could not locate class 'MixModel'" in done.stderr
    assert "_FunctionalMixModel" not in done.stderr
    loaded = keras.saving.load_model(
        path
    )  # with kmix imported, it loads as MixModel
    assert (
        isinstance(loaded, kmix.MixModel)
        and type(loaded).__name__ == "MixModel"
    )


# -------------------------------------------------------------- item 11


BASE = dict(dataset="fashion_mnist", output_dir="/tmp/kmix_unused", epochs=10)


@pytest.mark.parametrize(
    "overrides, flag",
    [
        ({"reweight": "cb", "drw_start_epoch": 12}, "--drw_start_epoch"),
        ({"mix_stop_epoch": 3}, "--mix_stop_epoch"),
        ({"mix_schedule": "stop", "mix_stop_epoch": 11}, "--mix_stop_epoch"),
        ({"focal_gamma": -1.0}, "--focal_gamma"),
        ({"seeds": ["-1"]}, "--seeds"),
        ({"mix_prob": 1.5}, "--mix_prob"),
        ({"minor_fraction": 1.0}, "--minor_fraction"),
        ({"dataset": ""}, "--dataset"),
        ({"dataset": "./no/such/data.npz"}, "--dataset"),
        ({"dataset": "Not A Name!"}, "--dataset"),
        ({"momentum": 1.5}, "--momentum"),
        ({"cb_beta": 1.0}, "--cb_beta"),
        ({"remix_kappa": 0.5}, "--remix_kappa"),
        ({"la_tau": -0.1}, "--la_tau"),
        ({"la_tau": math.inf}, "--la_tau"),
        ({"ldam_scale": 0.0}, "--ldam_scale"),
        ({"ldam_max_margin": -1.0}, "--ldam_max_margin"),
        ({"mix_final_strength": 2.0}, "--mix_final_strength"),
        ({"train_fraction": 0.0}, "--train_fraction"),
        ({"train_fraction": 1.5}, "--train_fraction"),
        ({"validation": 0.0}, "--validation"),
        ({"learning_rate": math.inf}, "--learning_rate"),
        ({"weight_decay": math.nan}, "--weight_decay"),
        ({"alpha": 0.0}, "--alpha"),
        ({"mixup_alpha": 0.0}, "--mixup_alpha"),
        ({"remix_tau": 2.0}, "--remix_tau"),
    ],
)
def test_bad_flags_are_refused_at_parsing_naming_the_flag(overrides, flag):
    with flagsaver.flagsaver(**{**BASE, **overrides}):
        with pytest.raises(app.UsageError) as error:
            experiment_flags.check_flags()
    message = str(error.value)
    assert flag in message, message
    # The library's own argument names (`tau`, `kappa`, `beta`, ...) do not appear.
    assert not re.search(r"`\w+`", message), message


def test_existing_local_dataset_paths_and_tfds_names_pass(tmp_path):
    path = tmp_path / "data.npz"
    path.write_bytes(b"")
    for dataset in (
        str(path),
        "cifar10",
        "svhn_cropped",
        "cifar10:3.0.2",
        "emnist/letters",
    ):
        kmix.ExperimentConfig(dataset=dataset).validate()


# -------------------------------------------------------------- item 12


def _npz(path):
    rng = np.random.RandomState(0)
    np.savez(
        path,
        x_train=rng.randint(0, 255, (8, 4, 4), dtype=np.uint8),
        y_train=np.arange(8) % 2,
        x_test=rng.randint(0, 255, (4, 4, 4), dtype=np.uint8),
        y_test=np.arange(4) % 2,
    )
    return path


def test_garbage_truncated_or_pickled_npz_files_name_the_file(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"this is not a zip archive at all")
    truncated = tmp_path / "truncated.npz"
    full = _npz(tmp_path / "full.npz").read_bytes()
    truncated.write_bytes(full[: len(full) // 2])
    for path in (garbage, truncated):
        with pytest.raises(
            ValueError, match=rf"Cannot read the .npz file '{path}'.*np.savez"
        ) as error:
            kmix.data.load(str(path), verbose=0)
        assert "allow_pickle" not in str(error.value)
    pickled = tmp_path / "pickled.npz"
    np.savez(
        pickled,
        x_train=np.array([object()] * 2),
        y_train=np.zeros(2),
        x_test=np.zeros(2),
        y_test=np.zeros(2),
    )
    with pytest.raises(ValueError, match=rf"'{pickled}' holds Python objects"):
        kmix.data.load(str(pickled), verbose=0)


def _idx(path, array, code=0x08, compress=True):
    header = (
        bytes([0, 0, code, array.ndim])
        + np.asarray(array.shape, ">u4").tobytes()
    )
    content = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if compress:
        content = gzip.compress(content)
    path.write_bytes(content)
    return path


def test_truncated_or_non_gzip_idx_files_name_the_file(tmp_path):
    labels = np.arange(10, dtype=np.uint8)
    good = _idx(tmp_path / "good.gz", labels)
    np.testing.assert_array_equal(kmix.data.read_idx(str(good)), labels)
    truncated = tmp_path / "truncated.gz"
    truncated.write_bytes(good.read_bytes()[:-12])
    not_gzip = tmp_path / "plain.gz"
    not_gzip.write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x02ab")
    for path in (truncated, not_gzip):
        with pytest.raises(
            ValueError, match=rf"Cannot read the IDX file '{path}'.*gzip"
        ):
            kmix.data.read_idx(str(path))
    short = _idx(tmp_path / "short.gz", labels)
    short.write_bytes(gzip.compress(gzip.decompress(short.read_bytes())[:-3]))
    with pytest.raises(
        ValueError,
        match=rf"'{short}' is truncated or corrupt.*10 bytes of data",
    ):
        kmix.data.read_idx(str(short))


def test_read_idx_caps_the_size_it_decompresses(tmp_path):
    images = np.zeros((100, 28, 28), np.uint8)
    path = _idx(tmp_path / "images.gz", images)
    assert kmix.data.read_idx(str(path)).shape == (100, 28, 28)
    with pytest.raises(
        ValueError,
        match=r"announces shape \(100, 28, 28\) \(78400 bytes.*more than kmix reads",
    ):
        kmix.data.read_idx(str(path), max_bytes=10_000)
    # A 6-byte header announcing 2**32 - 1 rows of 2**32 - 1 bytes is refused before any read.
    bomb = tmp_path / "bomb.gz"
    bomb.write_bytes(gzip.compress(b"\x00\x00\x08\x02" + b"\xff" * 8))
    with pytest.raises(
        ValueError, match="more than kmix reads from one IDX file"
    ):
        kmix.data.read_idx(str(bomb))


def test_class_names_of_the_wrong_length_on_an_idx_directory(tmp_path):
    rng = np.random.RandomState(0)
    for name, count in (("train", 40), ("t10k", 20)):
        _idx(
            tmp_path / f"{name}-images-idx3-ubyte.gz",
            rng.randint(0, 255, (count, 4, 4)).astype(np.uint8),
        )
        _idx(
            tmp_path / f"{name}-labels-idx1-ubyte.gz",
            (np.arange(count) % 10).astype(np.uint8),
        )
    with pytest.raises(
        ValueError,
        match=r"`class_names` has 5 names, so it allows labels in \[0, 5\), "
        r"but IDX files in .* has labels \[5, 6, 7, 8, 9\]: it has 10 classes",
    ):
        kmix.data.load(str(tmp_path), class_names=list("abcde"), verbose=0)
    with pytest.raises(
        ValueError,
        match="`class_names` has 12 names, but .* has labels 0 to 9 only",
    ):
        kmix.data.load(
            str(tmp_path), class_names=list("abcdefghijkl"), verbose=0
        )


def test_output_dir_or_tune_directory_under_a_regular_file(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a directory")
    with flagsaver.flagsaver(**{**BASE, "output_dir": str(blocker / "run")}):
        with pytest.raises(
            app.UsageError,
            match=rf"--output_dir={blocker}/run cannot be a directory: "
            rf"{blocker} is a regular file",
        ):
            experiment_flags.check_flags()
    with pytest.raises(ValueError, match=rf"'{blocker}' is a regular file"):
        runs.run_seeds([kmix.ExperimentConfig()], str(blocker / "run"))
    import tune

    use_flags(tune.define_flags)
    with flagsaver.flagsaver(**{**BASE, "directory": str(blocker / "tuning")}):
        with pytest.raises(
            app.UsageError,
            match=rf"--directory={blocker}/tuning cannot be a directory",
        ):
            tune.check_flags()


# -------------------------------------------------------------- item 14


def test_multi_worker_strategy_warns_that_it_listens_on_every_interface(
    monkeypatch,
):
    made = []
    monkeypatch.setattr(
        tf.distribute,
        "MultiWorkerMirroredStrategy",
        lambda: made.append(1) or "strategy",
    )
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps(
            {
                "cluster": {"worker": ["127.0.0.1:23456", "127.0.0.1:23457"]},
                "task": {"type": "worker", "index": 1},
            }
        ),
    )
    with pytest.warns(
        distribution.UnauthenticatedServerWarning,
        match=r"127.0.0.1:23457 in TF_CONFIG\) listens on port 23457 of EVERY network interface",
    ):
        assert distribution.make_strategy("multi_worker") == "strategy"
    assert made == [1]
    monkeypatch.setenv(
        "TF_CONFIG",
        '{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}',
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(
            ValueError, match="TF_CONFIG environment variable must be JSON"
        ):
            distribution.make_strategy("multi_worker")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
