"""experiments/run.py end to end, its configs, flag checks, resume and aggregation."""

import glob
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds
from absl import app
from absl.testing import flagsaver

import kmix
from helpers import REPO
from helpers import needs_fashion_mnist
from helpers import use_flags
from kmix import experiment
from kmix.data.file_source import FILE_DATASETS
from kmix.data.sources import DEBIAN_FASHION_MNIST_DIR
from kmix.experiment import flags as experiment_flags

FLAGS = use_flags(experiment_flags.define_flags)

TINY = dict(
    dataset="fashion_mnist",
    profile="step",
    imbalance_ratio=10.0,
    train_fraction=0.01,
    epochs=2,
    batch_size=64,
    model="small_cnn",
    width=8,
    mix_at=["stage1"],
    lr_schedule="constant",
    learning_rate=0.05,
    verbose=0,
)


def _run(output_dir, **overrides):
    with flagsaver.flagsaver(
        **{**TINY, "output_dir": str(output_dir), **overrides}
    ):
        seeds = experiment_flags.check_flags()
        return experiment.run_seeds(
            [experiment_flags.config_from_flags(s) for s in seeds],
            str(output_dir),
            flags_text=experiment_flags.resolved_flags(),
            verbose=0,
        )


@needs_fashion_mnist
def test_two_seeds_end_to_end_write_consistent_outputs(tmp_path):
    summary = _run(tmp_path, seeds=["0", "1"])
    for name in ("flags.cfg", "metrics.json", "results.md"):
        assert (tmp_path / name).stat().st_size > 0
    for seed in (0, 1):
        seed_dir = tmp_path / f"seed_{seed}"
        for name in (
            "metrics.json",
            "model.keras",
            "class_progress.csv",
            "class_progress.json",
            "confusion_matrix.png",
            "train_accuracy.png",
            "clean_accuracy.png",
            "feature_gradients.png",
        ):
            assert (seed_dir / name).stat().st_size > 0, name
        assert glob.glob(
            str(seed_dir / "logs" / "**" / "events.out.tfevents*"),
            recursive=True,
        )
        assert not (
            seed_dir / "backup"
        ).exists()  # removed once training finished
        records = json.loads((seed_dir / "class_progress.json").read_text())[
            "records"
        ]
        clean = [r for r in records if r["quantity"] == "clean_accuracy"]
        assert [(r["epoch"], r["class"]) for r in clean] == [
            (e, c) for e in (1, 2) for c in range(10)
        ]
        assert all(0.0 <= r["value"] <= 1.0 for r in clean)
    written = json.loads((tmp_path / "metrics.json").read_text())
    assert written["seeds"] == [0, 1]
    per_seed = [written["per_seed"][s] for s in ("0", "1")]
    for key in ("accuracy", "balanced_accuracy"):
        values = [p[key] for p in per_seed]
        assert written["mean"][key] == pytest.approx(np.mean(values))
        assert written["std"][key] == pytest.approx(np.std(values))
    first = per_seed[0]
    assert first["class_counts"] == [60] * 5 + [6] * 5
    assert len(first["per_class_accuracy"]) == 10
    # Balanced test set: balanced accuracy equals plain accuracy.
    assert first["balanced_accuracy"] == pytest.approx(
        first["accuracy"], abs=1e-6
    )
    assert first["group_accuracy"]["major"] == pytest.approx(
        np.mean(first["per_class_accuracy"][:5])
    )
    assert "| mean |" in (tmp_path / "results.md").read_text()
    assert summary == written
    # The saved model loads back and is a MixModel with a MajorMix after stage 1.
    model = keras.saving.load_model(tmp_path / "seed_0" / "model.keras")
    assert isinstance(model, kmix.MixModel)
    assert [l.name for l in model.major_mix_layers] == ["mix_stage1"]


@needs_fashion_mnist
def test_flags_cfg_repeats_the_run(tmp_path):
    _run(tmp_path / "first", seeds=["3"], strength=0.25, mix_at=["pool"])
    text = (tmp_path / "first" / "flags.cfg").read_text()
    assert (
        "--strength=0.25" in text
        and "--mix_at=pool" in text
        and "--seeds=3" in text
    )
    with flagsaver.flagsaver():
        FLAGS(["run.py", f"--flagfile={tmp_path / 'first' / 'flags.cfg'}"])
        config = experiment_flags.config_from_flags(3)
    assert (
        config.strength == 0.25
        and config.mix_at == ("pool",)
        and config.train_fraction == 0.01
    )


@needs_fashion_mnist
def test_finished_seeds_are_not_rerun_and_interrupted_seed_resumes(
    tmp_path, monkeypatch
):
    _run(tmp_path, seeds=["0"])
    finished = (tmp_path / "seed_0" / "metrics.json").stat().st_mtime_ns

    from kmix.experiment import training

    original = training.training_callbacks

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 0:
                raise KeyboardInterrupt("simulated kill after epoch 1")

    monkeypatch.setattr(
        training,
        "training_callbacks",
        lambda *a, **k: original(*a, **k) + [Interrupt()],
    )
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, seeds=["0", "1"])
    assert (tmp_path / "seed_1" / "backup").exists()
    assert not (tmp_path / "seed_1" / "metrics.json").exists()
    monkeypatch.setattr(training, "training_callbacks", original)

    epochs_run = []

    class CountEpochs(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            epochs_run.append(epoch)

    monkeypatch.setattr(
        training,
        "training_callbacks",
        lambda *a, **k: original(*a, **k) + [CountEpochs()],
    )
    summary = _run(tmp_path, seeds=["0", "1"])
    assert epochs_run == [
        1
    ]  # seed 0 skipped, seed 1 resumed at its second epoch
    assert (tmp_path / "seed_0" / "metrics.json").stat().st_mtime_ns == finished
    assert summary["seeds"] == [0, 1]
    assert sorted(os.listdir(tmp_path / "seed_1")) == sorted(
        os.listdir(tmp_path / "seed_0")
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"output_dir": None}, "output_dir"),
        ({"seeds": ["0", "0"]}, "distinct"),
        ({"seeds": ["a"]}, "integers"),
        ({"drw_start_epoch": 5}, "reweight"),
        ({"mix_at": ["stage7"]}, "mix_at"),
        ({"mix_schedule": "stop"}, "mix_stop_epoch"),
        ({"mix_schedule": "linear", "mix_at": []}, "mix_at"),
        ({"imbalance_ratio": 0.5}, "imbalance_ratio"),
        ({"strength": 2.0}, "strength"),
    ],
)
def test_bad_flag_combinations_raise_usage_error(overrides, message):
    values = {**TINY, "output_dir": "/tmp/unused", **overrides}
    with flagsaver.flagsaver(**values):
        with pytest.raises(app.UsageError, match=message):
            experiment_flags.check_flags()


def _configs():
    return sorted(
        glob.glob(os.path.join(REPO, "experiments", "configs", "*.cfg"))
    )


def _parse(path):
    """Parses a run.py flagfile; returns (seeds, config of the first seed)."""
    cwd = os.getcwd()
    os.chdir(
        REPO
    )  # nested --flagfile paths are relative to the repository root
    try:
        FLAGS(["run.py", f"--flagfile={path}"])
    finally:
        os.chdir(cwd)
    seeds = experiment_flags.check_flags()
    return seeds, experiment_flags.config_from_flags(seeds[0])


@pytest.mark.slow
def test_every_config_parses_and_builds_model_and_data(tmp_path):
    # Configs that share data settings share one dataset, and configs that
    # build the same network share one build: the builds are identical.
    datasets, models, checked = {}, {}, 0
    for path in _configs():
        if os.path.basename(path).startswith(
            ("base_", "tune_", "study_", "recipe_")
        ):
            continue
        with flagsaver.flagsaver():
            seeds, config = _parse(path)
        assert seeds
        if config.dataset in FILE_DATASETS:  # on-disk data the user provides
            continue
        data_key = (
            config.dataset,
            config.profile,
            config.imbalance_ratio,
            config.batch_size,
            config.max_per_class,
            config.validation,
            config.augment,
        )
        if data_key not in datasets:
            if config.dataset.startswith("cifar"):
                num_classes = 100 if config.dataset == "cifar100" else 10
                with tfds.testing.mock_data(
                    num_examples=num_classes * 120, data_dir=str(tmp_path)
                ):
                    datasets[data_key] = kmix.experiment.load_data(config)
            elif os.path.isdir(DEBIAN_FASHION_MNIST_DIR):
                datasets[data_key] = kmix.experiment.load_data(config)
            else:
                continue
        data = datasets[data_key]
        model_key = (
            config.model,
            data.num_classes,
            config.mix_at,
            config.classifier_head,
        )
        if model_key not in models:
            models[model_key] = kmix.experiment.build_model(config, data)
        model = models[model_key]
        kmix.experiment.compile_model(model, config, data)
        images, labels = next(iter(data.train))
        assert (
            images.shape[1:] == data.input_shape
            and model.output_shape[-1] == data.num_classes
        )
        assert bool(config.mix_at or config.mix_after) == bool(
            model.major_mix_layers
        )
        assert isinstance(
            model.get_layer("logits"), kmix.layers.NormedDense
        ) == (config.loss == "ldam")
        checked += 1
    assert checked >= 36


def test_every_run_config_parses_and_passes_the_flag_checks():
    names = [os.path.basename(p) for p in _configs()]
    assert "quickstart.cfg" in names
    for path in _configs():
        name = os.path.basename(path)
        if name.startswith(
            ("base_", "tune_", "study_", "recipe_")
        ):  # included by others / for tune.py
            continue
        with flagsaver.flagsaver():
            seeds, config = _parse(path)
        assert seeds == ([0] if name == "quickstart.cfg" else [0, 1, 2]), name
        assert config.dataset in name or name == "quickstart.cfg"


@pytest.mark.slow
@needs_fashion_mnist
def test_same_seed_gives_identical_metrics_twice(tmp_path):
    command = [
        sys.executable,
        os.path.join(REPO, "experiments", "run.py"),
        "--dataset=fashion_mnist",
        "--profile=step",
        "--imbalance_ratio=10",
        "--train_fraction=0.01",
        "--epochs=1",
        "--batch_size=64",
        "--width=8",
        "--lr_schedule=constant",
        "--seeds=5",
        "--verbose=0",
    ]
    for name in ("a", "b"):
        subprocess.run(
            command + [f"--output_dir={tmp_path / name}"],
            check=True,
            cwd=REPO,
            capture_output=True,
        )
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert a == b


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
