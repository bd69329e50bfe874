"""kmix.tuning and experiments/tune.py.

Search space, a real search, best.cfg, resume, distributed.
"""

import csv
import dataclasses
import os
import re
import socket
import subprocess
import sys
from unittest import mock

import keras_tuner
import pytest
from absl import app
from absl.testing import flagsaver

import kmix
import tune
from helpers import REPO
from helpers import needs_fashion_mnist
from helpers import use_flags
from kmix.experiment import flags as experiment_flags

FLAGS = use_flags(tune.define_flags)

# A tiny real subset: 120 images of each major class, 1 of each minor class,
# 10 held-out images per class, one epoch of a 4-channel small CNN.
TINY = dict(
    dataset="fashion_mnist",
    profile="step",
    imbalance_ratio=100.0,
    train_fraction=0.02,
    validation=10,
    epochs=1,
    batch_size=64,
    model="small_cnn",
    width=4,
    lr_schedule="constant",
    learning_rate=0.05,
    seeds=["3", "4"],
    verbose=0,
    tuner="random",
    executions_per_trial=2,
    search=["strength", "major_threshold", "mix_at"],
    mix_at_choices=["stem", "stage1+stage2", "none"],
)
FULL_SPACE = {
    "strength": (0.1, 0.9),
    "major_threshold": (0.01, 1.0),
    "mix_at": ("stem", "stage1+stage2", "none"),
    "loss": ("ce", "ldam"),
    "drw_start_epoch": (2, 8),
}


def _hyper_model(space=FULL_SPACE, seeds=(4, 7)):
    config = kmix.ExperimentConfig(validation=10, reweight="cb", epochs=10)
    return kmix.tuning.MajorMixHyperModel(config, space=space, seeds=seeds)


def test_search_space_declares_each_hyper_parameter_with_its_range():
    hp = keras_tuner.HyperParameters()
    _hyper_model().declare_hyperparameters(hp)
    declared = {p.name: p for p in hp.space}
    assert set(declared) == set(FULL_SPACE)
    strength, threshold = declared["strength"], declared["major_threshold"]
    assert (strength.min_value, strength.max_value, strength.sampling) == (
        0.1,
        0.9,
        "linear",
    )
    assert (threshold.min_value, threshold.max_value, threshold.sampling) == (
        0.01,
        1.0,
        "log",
    )
    assert isinstance(
        declared["mix_at"], keras_tuner.engine.hyperparameters.Choice
    )
    assert list(declared["mix_at"].values) == ["stem", "stage1+stage2", "none"]
    assert list(declared["loss"].values) == ["ce", "ldam"]
    drw = declared["drw_start_epoch"]
    assert isinstance(drw, keras_tuner.engine.hyperparameters.Int)
    assert (drw.min_value, drw.max_value) == (2, 8)


def test_default_space_is_strength_threshold_and_mix_point():
    hp = keras_tuner.HyperParameters()
    kmix.tuning.MajorMixHyperModel(
        kmix.ExperimentConfig(validation=0.1)
    ).declare_hyperparameters(hp)
    assert {p.name: p for p in hp.space}.keys() == {
        "strength",
        "major_threshold",
        "mix_at",
    }
    assert kmix.tuning.DEFAULT_SPACE["major_threshold"] == (0.01, 1.0)


def test_search_space_from_flags_follows_search_and_range_flags():
    with flagsaver.flagsaver(
        search=["strength", "loss", "drw_start_epoch"],
        strength_range=["0.2", "0.6"],
        loss_choices=["ce", "la"],
        drw_start_epoch_range=["3", "9"],
    ):
        assert tune.search_space_from_flags() == {
            "strength": (0.2, 0.6),
            "loss": ["ce", "la"],
            "drw_start_epoch": (3, 9),
        }


def test_parse_mix_at_splits_choices_and_the_old_name_warns():
    assert kmix.tuning.parse_mix_at("stage1+stage2") == ("stage1", "stage2")
    assert kmix.tuning.parse_mix_at("stem") == ("stem",)
    assert kmix.tuning.parse_mix_at("none") == ()
    with pytest.raises(ValueError, match="stage9"):
        kmix.tuning.parse_mix_at("stage1+stage9")
    with pytest.warns(DeprecationWarning, match="parse_mix_at"):
        assert kmix.tuning.mix_points("stage1+stage2") == ("stage1", "stage2")


def test_config_for_sets_the_trial_values_and_the_execution_seed():
    hypermodel = _hyper_model()
    hp = keras_tuner.HyperParameters()
    hypermodel.declare_hyperparameters(hp)
    hp.values.update(
        strength=0.25,
        major_threshold=0.03,
        mix_at="stage1+stage2",
        loss="ldam",
        drw_start_epoch=6,
    )
    config = hypermodel.config_for(hp, execution=1)
    assert (
        config.strength,
        config.major_threshold,
        config.loss,
        config.drw_start_epoch,
    ) == (0.25, 0.03, "ldam", 6)
    assert config.mix_at == ("stage1", "stage2")
    assert (
        config.seed == 7 and config.validation == 10 and config.reweight == "cb"
    )
    hp.values["mix_at"] = "none"
    assert (
        hypermodel.config_for(hp).mix_at == ()
        and hypermodel.config_for(hp).seed == 4
    )
    with pytest.raises(ValueError, match=r"execution=2"):
        hypermodel.config_for(hp, execution=2)


@needs_fashion_mnist
def test_each_execution_of_a_trial_builds_with_its_own_seed():
    config = kmix.ExperimentConfig(train_fraction=0.02, validation=10, width=4)
    hypermodel = kmix.tuning.MajorMixHyperModel(
        config, space={"strength": (0.0, 1.0)}, seeds=(4, 7)
    )
    hp = keras_tuner.HyperParameters()
    hp.Float("strength", 0.0, 1.0, default=0.3)
    first, second = hypermodel.build(hp), hypermodel.build(hp)
    # MajorMix after stage1 is seeded with the config's seed + 2 (its mixing point's index).
    assert first.get_layer("mix_stage1").get_config()["seed"] == 4 + 2
    assert second.get_layer("mix_stage1").get_config()["seed"] == 7 + 2
    assert first.get_layer("mix_stage1").get_config()[
        "strength"
    ] == pytest.approx(0.3)
    assert first.optimizer is not None and second.compiled


@pytest.mark.parametrize(
    "space, config_changes, message",
    [
        ({"strength": (0.5, 2.0)}, {}, r"strength.*\[0.0, 1.0\].*2.0"),
        (
            {"major_threshold": (0.0, 1.0)},
            {},
            r"major_threshold.*\(0.0, 1.0\].*0.0",
        ),
        ({"strength": (0.8, 0.2)}, {}, r"low < high.*\(0.8, 0.2\)"),
        ({"mix_at": ["stage9"]}, {}, r"mix_at.*stage9"),
        ({"loss": ["ce", "hinge"]}, {}, r"loss.*hinge"),
        ({"width": (8, 32)}, {}, r"unknown names \['width'\]"),
        ({"drw_start_epoch": (1, 5)}, {}, r"drw_start_epoch.*reweight='none'"),
        ({"strength": (0.0, 1.0)}, {"validation": None}, r"validation=None"),
    ],
)
def test_bad_search_spaces_raise_errors_naming_the_value(
    space, config_changes, message
):
    config = dataclasses.replace(
        kmix.ExperimentConfig(validation=10), **config_changes
    )
    with pytest.raises(ValueError, match=message):
        kmix.tuning.MajorMixHyperModel(config, space=space)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"executions_per_trial": 3},
            r"--executions_per_trial must be at most the 2 seeds",
        ),
        ({"executions_per_trial": 1}, r"--executions_per_trial must be >= 2"),
        ({"search": ["strength", "width"]}, r"--search.*width"),
        ({"strength_range": ["0.1"]}, r"--strength_range must be two floats"),
        (
            {"search": ["drw_start_epoch"], "reweight": "cb"},
            r"--drw_start_epoch_range must be two ints",
        ),
        ({"validation": 2.5}, r"--validation.*2.5"),
        ({"max_trials": 0}, r"--max_trials"),
    ],
)
def test_bad_tune_flags_raise_usage_error(overrides, message):
    with flagsaver.flagsaver(
        **{**TINY, "output_dir": "/tmp/unused", **overrides}
    ):
        with pytest.raises(app.UsageError, match=message):
            tune.check_flags()


@pytest.mark.parametrize(
    "name, searched",
    [
        (
            "tune_fashion_mnist_step100.cfg",
            ["strength", "major_threshold", "mix_at"],
        ),
        (
            "tune_cifar10_step100.cfg",
            [
                "strength",
                "major_threshold",
                "mix_at",
                "loss",
                "drw_start_epoch",
            ],
        ),
    ],
)
def test_tune_configs_parse_and_pass_the_flag_checks(name, searched):
    cwd = os.getcwd()
    with flagsaver.flagsaver():
        os.chdir(
            REPO
        )  # nested --flagfile paths are relative to the repository root
        try:
            FLAGS(["tune.py", f"--flagfile=experiments/configs/{name}"])
        finally:
            os.chdir(cwd)
        tune.check_flags()
        hypermodel = tune.hyper_model_from_flags()
    assert list(hypermodel.space) == searched
    assert hypermodel.space["major_threshold"] == (0.01, 1.0)
    assert hypermodel.config.validation == 200 and hypermodel.seeds == [0, 1]
    assert hypermodel.config.dataset in name


def _search(directory, **overrides):
    values = {
        **TINY,
        "directory": str(directory),
        "project_name": "tiny",
        "output_dir": str(directory / "best_run"),
        **overrides,
    }
    with flagsaver.flagsaver(**values):
        tune.check_flags()
        hypermodel = tune.hyper_model_from_flags()
        tuner = tune.make_tuner(hypermodel)
        paths = tune.search(tuner, hypermodel, verbose=0)
    return hypermodel, tuner, paths


@pytest.fixture(scope="module")
def resumed_search(tmp_path_factory):
    """A 1-trial random search, then the same search resumed with max_trials=2."""
    directory = tmp_path_factory.mktemp("tuning")
    _, first_tuner, _ = _search(directory, max_trials=1)
    first = {
        i: (t.score, dict(t.hyperparameters.values))
        for i, t in first_tuner.oracle.trials.items()
    }
    with mock.patch.object(
        kmix.experiment, "fit_model", wraps=kmix.experiment.fit_model
    ) as fit:
        hypermodel, tuner, paths = _search(directory, max_trials=2)
    return dict(
        first=first,
        fits=fit.call_count,
        hypermodel=hypermodel,
        tuner=tuner,
        paths=paths,
    )


@needs_fashion_mnist
def test_resumed_search_keeps_finished_trials_and_runs_only_new_ones(
    resumed_search,
):
    assert list(resumed_search["first"]) == ["0"]
    assert resumed_search["fits"] == 2  # one new trial, two executions
    trials = resumed_search["tuner"].oracle.trials
    assert sorted(trials) == ["0", "1"]
    assert all(t.status == "COMPLETED" for t in trials.values())
    score, values = resumed_search["first"]["0"]
    assert (
        trials["0"].score == score
        and trials["0"].hyperparameters.values == values
    )
    assert 0.0 <= score <= 1.0


@needs_fashion_mnist
def test_best_cfg_makes_run_py_reproduce_the_best_trial_config(resumed_search):
    tuner, hypermodel = resumed_search["tuner"], resumed_search["hypermodel"]
    best = tuner.oracle.get_best_trials(1)[0]
    assert best.score == max(t.score for t in tuner.oracle.trials.values())
    path = resumed_search["paths"]["best.cfg"]
    with flagsaver.flagsaver():
        FLAGS(["run.py", f"--flagfile={path}"])
        seeds = experiment_flags.check_flags()
        config = experiment_flags.config_from_flags(seeds[0])
    trial_config = hypermodel.config_for(best.hyperparameters)
    assert seeds == [3, 4]
    assert (
        config == trial_config
    )  # the held-out split too: the trial's exact training data
    assert (
        config.train_fraction == 0.02
        and config.width == 4
        and config.epochs == 1
    )
    assert f"trial {best.trial_id}," in open(path).read()


@needs_fashion_mnist
def test_reports_list_every_trial_best_first_and_plot_them(resumed_search):
    paths = resumed_search["paths"]
    with open(paths["trials.csv"]) as f:
        rows = list(csv.DictReader(f))
    assert [r["trial_id"] for r in rows] == ["0", "1"]
    assert set(rows[0]) >= {
        "val_balanced_accuracy",
        "strength",
        "major_threshold",
        "mix_at",
        "status",
    }
    for row in rows:
        assert (
            0.0 <= float(row["strength"]) <= 1.0
            and 0.01 <= float(row["major_threshold"]) <= 1.0
        )
        assert row["mix_at"] in TINY["mix_at_choices"]
    table = open(paths["trials.md"]).read().splitlines()
    best = resumed_search["tuner"].oracle.get_best_trials(1)[0]
    assert table[2].startswith(
        f"| 1 | **{best.trial_id}** | {best.score:.4g} |"
    )
    assert best.score == max(float(r["val_balanced_accuracy"]) for r in rows)
    assert os.path.getsize(paths["trials.png"]) > 10_000


@pytest.mark.slow
@needs_fashion_mnist
def test_distributed_chief_and_two_workers_finish_a_search(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    tiny = {
        **TINY,
        "max_trials": 3,
        "directory": str(tmp_path),
        "project_name": "dist",
        "output_dir": str(tmp_path / "best_run"),
        "verbose": 2,
    }
    args = [
        f"--{k}={','.join(v) if isinstance(v, list) else v}"
        for k, v in tiny.items()
    ]
    env = dict(
        os.environ,
        KERASTUNER_ORACLE_PORT=str(port),
        PYTHON=sys.executable,
        LOG_DIR=str(tmp_path / "logs"),
    )
    done = subprocess.run(
        ["bash", os.path.join(REPO, "scripts", "tune_distributed.sh"), *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    logs = {
        name: (tmp_path / "logs" / f"{name}.log").read_text()
        for name in ("chief", "tuner0", "tuner1")
    }
    assert done.returncode == 0, (
        done.stdout + done.stderr + "".join(logs.values())
    )
    # verbose=2: one line per epoch, so one per execution (3 trials x 2
    # seeds); the workers train, the chief does not.
    epoch_line = re.compile(r"(?m)^\d+/\d+ - .* - val_balanced_accuracy: ")
    assert "best trial" in logs["chief"] and not epoch_line.search(
        logs["chief"]
    )
    assert (
        sum(len(epoch_line.findall(logs[w])) for w in ("tuner0", "tuner1")) == 6
    )
    with open(tmp_path / "dist" / "trials.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 and all(r["status"] == "COMPLETED" for r in rows)
    assert (tmp_path / "dist" / "best.cfg").exists()


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
