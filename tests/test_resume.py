"""Kill, resume and rerun of experiments/run.py and tune.py (issue 15): nothing lost, nothing stale.

Runs train on a small synthetic .npz dataset (4 classes of 12x12 images),
so they take seconds. docs/reliability.md lists every case.
"""

import json
import os
import sys

import keras
import numpy as np
import pytest
from absl import app
from absl.testing import flagsaver

import kmix
import run
import tune
from helpers import use_flags
from kmix.experiment import flags as experiment_flags
from kmix.experiment import runs
from kmix.experiment import training

FLAGS = use_flags(tune.define_flags)  # run.py's flags and tune.py's


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """A .npz of 4 classes, 40 training and 10 test images each, that a tiny CNN learns."""
    path = tmp_path_factory.mktemp("data") / "blobs.npz"
    rng = np.random.RandomState(0)

    def split(per_class):
        y = np.repeat(np.arange(4), per_class)
        x = (
            rng.rand(len(y), 12, 12, 1) * 60 + y[:, None, None, None] * 40
        ).astype("uint8")
        return x, y

    (x_train, y_train), (x_test, y_test) = split(40), split(10)
    np.savez(
        path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test
    )
    return str(path)


def tiny(dataset, **overrides):
    """run.py's flags for 3 epochs of a 4-channel small CNN on `dataset`."""
    return {
        **dict(
            dataset=dataset,
            profile="step",
            imbalance_ratio=4.0,
            epochs=3,
            batch_size=16,
            width=4,
            mix_at=["stage1"],
            lr_schedule="constant",
            learning_rate=0.05,
            verbose=0,
            seeds=["0"],
        ),
        **overrides,
    }


def _run(output_dir, values, overwrite=False):
    with flagsaver.flagsaver(**{**values, "output_dir": str(output_dir)}):
        seeds = experiment_flags.check_flags()
        return kmix.experiment.run_seeds(
            [experiment_flags.config_from_flags(s) for s in seeds],
            str(output_dir),
            flags_text=experiment_flags.resolved_flags(),
            verbose=0,
            overwrite=overwrite,
        )


def _epochs(path, quantity="train_accuracy"):
    rows, _ = kmix.records.read_records(path)
    return [(r["epoch"], r["class"]) for r in rows if r["quantity"] == quantity]


class Probe(keras.callbacks.Callback):
    """Records the epochs run, the loss and MajorMix's random-stream state after each."""

    def __init__(self, kill_after=None):
        super().__init__()
        self.kill_after = kill_after
        self.epochs, self.losses, self.states = [], {}, {}

    def on_epoch_begin(self, epoch, logs=None):
        self.epochs.append(epoch)

    def on_epoch_end(self, epoch, logs=None):
        self.losses[epoch] = logs["loss"]
        layer = self.model.major_mix_layers[0]
        self.states[epoch] = keras.ops.convert_to_numpy(
            layer.seed_generator.state
        ).tolist()
        if epoch == self.kill_after:
            raise KeyboardInterrupt(f"simulated kill after epoch {epoch + 1}")


def _with_probe(monkeypatch, probe):
    original = training.training_callbacks
    monkeypatch.setattr(
        training,
        "training_callbacks",
        lambda *a, **k: original(*a, **k) + [probe],
    )


# ----------------------------------------------------- items 1, 2 and 3


@pytest.mark.slow
def test_killed_runs_resume_with_every_record_the_mixing_stream_and_no_retraining(
    tmp_path, dataset, monkeypatch
):
    values = tiny(dataset)
    seed_dir = tmp_path / "seed_0"
    # 1. Killed after epoch 2 of 3 (the backup holds epoch 2).
    first = Probe(kill_after=1)
    _with_probe(monkeypatch, first)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, values)
    monkeypatch.undo()
    start, steps = (
        first.states[0][0],
        first.states[0][1],
    )  # one draw per training step
    assert first.states[1] == [start, 2 * steps]
    assert _epochs(seed_dir / "class_progress.json") == [
        (e, c) for e in (1, 2) for c in range(4)
    ]

    # 2. Resumed: epoch 3 runs; then killed after the last epoch, before metrics.json.
    second = Probe()
    _with_probe(monkeypatch, second)

    def killed_evaluation(*args, **kwargs):
        raise KeyboardInterrupt("simulated kill during evaluation")

    monkeypatch.setattr(training, "evaluate", killed_evaluation)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, values)
    monkeypatch.undo()
    assert second.epochs == [2]
    # Item 2: the stream went on from epoch 2's state, as without the kill.
    assert second.states[2] == [start, 3 * steps]
    # Item 1: the records of epochs 1 and 2 are kept, epoch 3 appended.
    for name in ("class_progress.json", "class_progress.csv"):
        assert _epochs(seed_dir / name) == [
            (e, c) for e in (1, 2, 3) for c in range(4)
        ], name
    assert (seed_dir / "backup").is_dir() and not (
        seed_dir / "metrics.json"
    ).exists()

    # 3. Item 3: restarted again, no epoch trains; the results are written, then the backup goes.
    third = Probe()
    _with_probe(monkeypatch, third)
    summary = _run(tmp_path, values)
    assert third.epochs == []
    metrics = json.loads((seed_dir / "metrics.json").read_text())
    assert metrics["final_train_loss"] == pytest.approx(second.losses[2])
    assert summary["per_seed"]["0"] == metrics
    assert not (seed_dir / "backup").exists()
    assert _epochs(seed_dir / "class_progress.json") == [
        (e, c) for e in (1, 2, 3) for c in range(4)
    ]
    history = kmix.records.history_from_records(
        kmix.records.read_records(seed_dir / "class_progress.json")[0]
    )
    assert history["clean_accuracy"]["epoch"] == [1, 2, 3]
    model = keras.saving.load_model(seed_dir / "model.keras")
    state = model.major_mix_layers[0].seed_generator.state
    assert keras.ops.convert_to_numpy(state).tolist() == [start, 3 * steps]


def test_run_killed_after_its_last_epoch_writes_its_results_without_retraining(
    tmp_path, dataset, monkeypatch
):
    values = tiny(dataset, epochs=2, diagnostics=False)
    first = Probe()
    _with_probe(monkeypatch, first)

    def killed_evaluation(*args, **kwargs):
        raise KeyboardInterrupt("simulated kill during evaluation")

    monkeypatch.setattr(training, "evaluate", killed_evaluation)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, values)
    monkeypatch.undo()
    assert first.epochs == [0, 1] and (tmp_path / "seed_0" / "backup").is_dir()
    second = Probe()
    _with_probe(monkeypatch, second)
    _run(tmp_path, values)
    assert second.epochs == []  # no epoch trained again
    metrics = json.loads((tmp_path / "seed_0" / "metrics.json").read_text())
    assert metrics["final_train_loss"] == pytest.approx(first.losses[1])
    assert not (tmp_path / "seed_0" / "backup").exists()


def _progress_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    h = kmix.MajorMix(seed=0, name="mix")(
        keras.layers.Dense(8, name="hidden")(inputs)
    )
    model = kmix.MixModel(
        inputs,
        keras.layers.Dense(4, name="logits")(h),
        class_counts=[20, 20, 4, 4],
    )
    model.compile(
        "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return model


def test_class_progress_resumed_fit_keeps_earlier_epochs_and_replaces_rerun_ones(
    tmp_path,
):
    x = np.random.RandomState(0).normal(size=(32, 8)).astype("float32")
    y = np.arange(32) % 4
    marker = 123.0  # values no real epoch gives, to see which rows are kept
    earlier = [
        r
        for e in (1, 2, 3)
        for r in kmix.records.rows_for_epoch(e, "train_accuracy", [marker] * 4)
    ]
    kmix.records.write_records(earlier, tmp_path, [20, 20, 4, 4])
    progress = kmix.callbacks.ClassProgress(
        output_dir=str(tmp_path), gradients=False
    )
    # A new process resuming after epoch 2 (epoch 3 was recorded but not backed up).
    _progress_model().fit(
        x,
        y,
        batch_size=8,
        initial_epoch=2,
        epochs=4,
        verbose=0,
        callbacks=[progress],
    )
    for name in ("class_progress.json", "class_progress.csv"):
        rows, _ = kmix.records.read_records(tmp_path / name)
        assert [(r["epoch"], r["class"]) for r in rows] == [
            (e, c) for e in (1, 2, 3, 4) for c in range(4)
        ]
        assert [r["value"] == marker for r in rows] == [True] * 8 + [False] * 8
    epochs, values = progress.series("train_accuracy")
    assert (
        epochs.tolist() == [1, 2, 3, 4]
        and values[:2].tolist() == [[marker] * 4] * 2
    )


def test_class_progress_refuses_records_of_another_run(tmp_path):
    kmix.records.write_records(
        kmix.records.rows_for_epoch(1, "train_accuracy", [1.0] * 4),
        tmp_path,
        [9, 9, 9, 9],
    )
    progress = kmix.callbacks.ClassProgress(
        output_dir=str(tmp_path), gradients=False
    )
    x, y = np.zeros((8, 8), "float32"), np.arange(8) % 4
    with pytest.raises(
        ValueError, match=r"class_counts=\[9, 9, 9, 9\].*records of another run"
    ):
        _progress_model().fit(
            x,
            y,
            batch_size=8,
            initial_epoch=1,
            epochs=2,
            verbose=0,
            callbacks=[progress],
        )


# ------------------------------------------------------------- item 4


def _fake_result(seed):
    return {
        "accuracy": 0.5,
        "balanced_accuracy": 0.5,
        "group_accuracy": {"major": 0.5},
        "per_class_accuracy": [0.5] * 4,
        "class_names": list("abcd"),
        "seed": seed,
    }


def _finished(output_dir, values, seeds=(0,)):
    """`output_dir` as a finished run of `values` leaves it (no training)."""
    with flagsaver.flagsaver(**{**values, "output_dir": str(output_dir)}):
        text = experiment_flags.resolved_flags()
    os.makedirs(output_dir, exist_ok=True)
    (output_dir / "flags.cfg").write_text(text)
    for seed in seeds:
        os.makedirs(output_dir / f"seed_{seed}", exist_ok=True)
        (output_dir / f"seed_{seed}" / "metrics.json").write_text(
            json.dumps(_fake_result(seed))
        )


def test_rerun_with_other_flags_is_refused_naming_the_flags(tmp_path, dataset):
    values = tiny(dataset)
    _finished(tmp_path, values)
    before = (tmp_path / "flags.cfg").read_text()
    with pytest.raises(runs.StaleOutputError) as error:
        _run(tmp_path, {**values, "strength": 0.25, "epochs": 5})
    message = str(error.value)
    assert (
        "--epochs was 3, now 5" in message
        and "--strength was 0.5, now 0.25" in message
    )
    assert "new --output_dir" in message and "--overwrite" in message
    assert (tmp_path / "flags.cfg").read_text() == before
    # A killed run (a backup, no metrics yet) is not resumed with other flags either.
    unfinished = tmp_path / "unfinished"
    _finished(unfinished, values, seeds=())
    os.makedirs(unfinished / "seed_0" / "backup")
    with pytest.raises(
        runs.StaleOutputError, match="--mix_at was stage1, now pool"
    ):
        _run(unfinished, {**values, "mix_at": ["pool"]})


def test_rerun_with_the_same_flags_resumes_and_may_add_seeds(
    tmp_path, dataset, monkeypatch
):
    values = tiny(dataset)
    _finished(tmp_path, values)
    trained = []
    monkeypatch.setattr(
        runs,
        "train_and_evaluate",
        lambda config, *a, **k: (
            trained.append(config.seed) or _fake_result(config.seed)
        ),
    )
    summary = _run(tmp_path, {**values, "seeds": ["0", "1"], "verbose": 2})
    assert trained == [1] and summary["seeds"] == [0, 1]
    assert summary["per_seed"]["0"] == _fake_result(0)  # kept, not retrained


def test_overwrite_deletes_the_results_of_other_flags(
    tmp_path, dataset, monkeypatch
):
    values = tiny(dataset)
    _finished(tmp_path, values, seeds=(0, 7))
    (tmp_path / "notes.txt").write_text("the user's own file")
    trained = []
    monkeypatch.setattr(
        runs,
        "train_and_evaluate",
        lambda config, *a, **k: (
            trained.append(config.seed) or _fake_result(config.seed)
        ),
    )
    _run(tmp_path, {**values, "strength": 0.25}, overwrite=True)
    assert trained == [0]
    assert sorted(os.listdir(tmp_path)) == [
        "flags.cfg",
        "metrics.json",
        "notes.txt",
        "results.md",
    ]
    assert "--strength=0.25" in (tmp_path / "flags.cfg").read_text()
    assert (
        "overwrite\n" not in (tmp_path / "flags.cfg").read_text()
    )  # a flagfile never deletes


def test_run_py_passes_overwrite_to_run_seeds(tmp_path, dataset, monkeypatch):
    if hasattr(run, "define_flags"):
        use_flags(run.define_flags)
    calls = []

    class Called(Exception):
        pass

    def run_seeds(*args, **kwargs):
        calls.append(kwargs)
        raise Called()

    monkeypatch.setattr(kmix.experiment, "run_seeds", run_seeds)
    with flagsaver.flagsaver(
        **tiny(dataset),
        output_dir=str(tmp_path),
        overwrite=True,
        deterministic=False,
    ):
        with pytest.raises(Called):
            run.main(["run.py"])
    assert calls[0]["overwrite"] is True


@pytest.mark.parametrize(
    "error, expected",
    [
        (
            runs.StaleOutputError("--mix_at was stage1, now pool"),
            app.UsageError,
        ),
        (training.NonFiniteLossError("loss is nan at epoch 2"), SystemExit),
    ],
)
def test_run_py_reports_refusals_and_divergence_without_a_traceback(
    tmp_path, dataset, monkeypatch, error, expected
):
    if hasattr(run, "define_flags"):
        use_flags(run.define_flags)

    def run_seeds(*args, **kwargs):
        raise error

    monkeypatch.setattr(kmix.experiment, "run_seeds", run_seeds)
    with flagsaver.flagsaver(
        **tiny(dataset), output_dir=str(tmp_path), deterministic=False
    ):
        with pytest.raises(expected) as raised:
            run.main(["run.py"])
    assert str(error) in str(raised.value)
    if expected is SystemExit:  # a message, so the exit status is 1
        assert str(raised.value).startswith("run.py: ")


# ------------------------------------------------------------- item 8


def test_run_whose_loss_diverges_stops_naming_the_epoch_and_settings(
    tmp_path, dataset
):
    values = tiny(dataset, learning_rate=1e30, epochs=2, diagnostics=False)
    with pytest.raises(training.NonFiniteLossError) as error:
        _run(tmp_path, values)
    message = str(error.value)
    assert (
        "in epoch 1 of 2 (seed 0)" in message
        and "--learning_rate=1e+30" in message
    )
    assert "no metrics are written" in message
    assert not (tmp_path / "seed_0" / "metrics.json").exists()
    assert not (tmp_path / "metrics.json").exists()


# --------------------------------------------------------- items 5 and 6


def _tune_values(dataset, directory, **overrides):
    return {
        **tiny(dataset, epochs=1, validation=2.0),
        "directory": str(directory),
        "project_name": "p",
        "output_dir": str(directory / "best"),
        "max_trials": 2,
        "search": ["strength", "major_threshold"],
        "seeds": ["0", "1"],  # tune.py averages each trial over >= 2 seeds
        **overrides,
    }


def _tuner(values):
    with flagsaver.flagsaver(**values):
        tune.check_flags()
        hypermodel = tune.hyper_model_from_flags()
        return tune.make_tuner(hypermodel)


def test_resumed_search_with_another_space_is_refused_naming_the_differences(
    tmp_path, dataset
):
    values = _tune_values(dataset, tmp_path)
    _tuner(values)
    assert json.loads((tmp_path / "p" / "search.json").read_text())["space"][
        "strength"
    ] == [0.0, 1.0]
    _tuner(
        {**values, "max_trials": 5}
    )  # more trials of the same search: resumed
    with pytest.raises(app.UsageError) as error:
        _tuner(
            {
                **values,
                "strength_range": ["0.1", "0.9"],
                "epochs": 2,
                "search": ["strength"],
            }
        )
    message = str(error.value)
    assert "--strength_range was [0.0, 1.0], now [0.1, 0.9]" in message
    assert (
        "--search: major_threshold was searched over [0.01, 1.0], now fixed"
        in message
    )
    assert "--epochs was 1, now 2" in message
    assert "--overwrite" in message and "--project_name" in message
    _tuner(
        {**values, "strength_range": ["0.1", "0.9"], "overwrite": True}
    )  # afresh


def test_tuner_seed_zero_draws_the_same_trials_twice(tmp_path, dataset):
    drawn = []
    for name in ("a", "b"):
        tuner = _tuner(
            _tune_values(
                dataset, tmp_path / name, seeds=["0", "1"], max_trials=5
            )
        )
        trials = [tuner.oracle.create_trial(f"tuner{i}") for i in range(3)]
        drawn.append([trial.hyperparameters.values for trial in trials])
    assert drawn[0] == drawn[1]
    assert len({json.dumps(values, sort_keys=True) for values in drawn[0]}) == 3
    assert tune.tuner_seed(0) == 1


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
