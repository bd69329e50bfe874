"""The shipped recipes (experiments/configs/recipe_*.cfg) combine with any data and budget."""

import json
import os
import subprocess
import sys

import pytest
from absl.testing import flagsaver

from helpers import REPO
from helpers import needs_fashion_mnist
from helpers import use_flags
from kmix.experiment import flags as experiment_flags

FLAGS = use_flags(experiment_flags.define_flags)
RECIPES = ("recipe_step.cfg", "recipe_longtail.cfg")
# The flags a recipe may set: the method's settings, nothing about the data,
# the network or the budget.
METHOD_FLAGS = {
    "mix_at",
    "strength",
    "major_threshold",
    "mix_prob",
    "distribution",
    "alpha",
    "frequency_gamma",
    "mix_partners",
    "mix_schedule",
    "mix_stop_fraction",
    "mix_final_strength",
    "loss",
    "reweight",
    "drw_start_fraction",
    "batch_mixer",
}


def _recipe_path(name):
    return os.path.join(REPO, "experiments", "configs", name)


def _recipe_flags(name):
    with open(_recipe_path(name)) as f:
        lines = [line.strip() for line in f]
    return [line for line in lines if line and not line.startswith("#")]


@pytest.mark.parametrize("name", RECIPES)
def test_recipe_holds_method_settings_only(name):
    names = {line[2:].split("=")[0] for line in _recipe_flags(name)}
    assert names, name
    assert names <= METHOD_FLAGS, names - METHOD_FLAGS
    assert "mix_at" in names  # a MajorMix recipe


@pytest.mark.parametrize("name", RECIPES)
@pytest.mark.parametrize(
    "dataset,profile", [("fashion_mnist", "step"), ("cifar100", "exp")]
)
@pytest.mark.parametrize("epochs", [1, 2, 7, 60, 200])
def test_recipe_parses_with_any_dataset_and_budget(
    name, dataset, profile, epochs, tmp_path
):
    with flagsaver.flagsaver():
        FLAGS(
            [
                "run.py",
                f"--flagfile={_recipe_path(name)}",
                f"--dataset={dataset}",
                f"--profile={profile}",
                f"--epochs={epochs}",
                f"--output_dir={tmp_path}",
            ]
        )
        seeds = experiment_flags.check_flags()
        config = experiment_flags.config_from_flags(seeds[0])
    assert config.dataset == dataset and config.epochs == epochs
    if config.drw_start_fraction is not None:
        assert 0 <= config.drw_start_at <= epochs - 1
        if epochs >= 5:  # the phase boundary scales with the budget
            assert config.drw_start_at == round(
                config.drw_start_fraction * epochs
            )
    if config.mix_stop_fraction is not None:
        assert 0 <= config.mix_stop_at <= epochs


@pytest.mark.slow
@needs_fashion_mnist
@pytest.mark.parametrize("name", RECIPES)
def test_recipe_trains_through_run_py(name, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "experiments", "run.py"),
            f"--flagfile={_recipe_path(name)}",
            "--dataset=fashion_mnist",
            "--profile=step",
            "--imbalance_ratio=10",
            "--train_fraction=0.02",
            "--model=small_cnn",
            "--width=8",
            "--epochs=3",
            "--batch_size=64",
            f"--output_dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "metrics.json") as f:
        metrics = json.load(f)
    run = metrics["per_seed"]["0"]
    assert 0.0 < metrics["mean"]["balanced_accuracy"] <= 1.0
    assert run["epochs"] == 3 and 0.0 < run["final_train_loss"] < 1e3
    with open(tmp_path / "flags.cfg") as f:
        resolved = f.read()
    for line in _recipe_flags(name):
        assert line in resolved
