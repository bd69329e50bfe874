"""The GPU seed study (benchmarks/gpu_study.py): methods as run.py builds them, cells, report."""

import dataclasses
import json
import math
import os
import sys

import numpy as np
import pytest

from helpers import REPO
from helpers import run_python

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import gpu_study  # noqa: E402


def _record(seed, method, test, minor=0.5, complete=True):
    return {
        "seed": seed,
        "method": method,
        "complete": complete,
        "test_balanced_accuracy": test,
        "test_minor_accuracy": minor,
        "test_major_accuracy": 0.9,
        "validation_balanced_accuracy": test - 0.01,
        "train_clean_major_accuracy": 1.0,
        "train_clean_minor_accuracy": 0.96,
        "wall_s": 30.0,
        "device": "gpu: NVIDIA H200",
    }


def _write(folder, name, records, extra_lines=()):
    with open(os.path.join(folder, name), "w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
        for line in extra_lines:
            f.write(line + "\n")


def test_parse_seeds_ranges_and_lists():
    assert gpu_study.parse_seeds("0-3,7,2") == [0, 1, 2, 3, 7]
    assert gpu_study.parse_seeds("5") == [5]
    for bad in ("", "3-1", "a", "1-"):
        with pytest.raises(ValueError):
            gpu_study.parse_seeds(bad)


def test_jobs_are_seed_major_and_dealt_round_robin():
    jobs = gpu_study.job_list([0, 1], ["ce", "mm", "la"])
    assert jobs == [
        (0, "ce"),
        (0, "mm"),
        (0, "la"),
        (1, "ce"),
        (1, "mm"),
        (1, "la"),
    ]
    assert jobs[1::4] == [(0, "mm"), (1, "la")]  # worker 1 of 4


def test_t_quantile_table():
    assert gpu_study.t_quantile(1) == pytest.approx(12.706)
    assert gpu_study.t_quantile(23) == pytest.approx(2.069)
    # Beyond the table's rows: the nearest smaller tabulated df (wider).
    assert gpu_study.t_quantile(35) == pytest.approx(2.042)
    assert gpu_study.t_quantile(1000) == pytest.approx(1.980)
    with pytest.raises(ValueError):
        gpu_study.t_quantile(0)


def test_paired_differences_use_common_seeds_only(tmp_path):
    ce = [_record(s, "ce", t) for s, t in enumerate([0.70, 0.66, 0.68, 0.71])]
    # mm lacks seed 3 and has seed 9, which ce lacks.
    mm = [
        _record(0, "mm", 0.72),
        _record(1, "mm", 0.65),
        _record(2, "mm", 0.71),
        _record(9, "mm", 0.99),
    ]
    _write(tmp_path, "gpu_study_0.jsonl", ce[:2] + mm[:2])
    _write(tmp_path, "gpu_study_1.jsonl", ce[2:] + mm[2:])
    by_method, skipped = gpu_study.read_records(str(tmp_path))
    assert skipped == 0
    diff = gpu_study.paired(by_method, "mm", "ce", "test_balanced_accuracy")
    assert diff["seeds"] == [0, 1, 2]
    expected = [0.02, -0.01, 0.03]
    assert diff["differences"] == pytest.approx(expected)
    assert diff["n"] == 3
    assert diff["mean"] == pytest.approx(sum(expected) / 3)
    std = math.sqrt(
        sum((d - diff["mean"]) ** 2 for d in expected) / (len(expected) - 1)
    )
    assert diff["std"] == pytest.approx(std)
    half = 4.303 * std / math.sqrt(3)  # t(0.975, 2 df)
    assert diff["ci95"] == pytest.approx(
        [diff["mean"] - half, diff["mean"] + half]
    )
    assert diff["wins"] == 2


def test_incomplete_and_cut_lines_are_left_out(tmp_path):
    records = [
        _record(0, "ce", 0.7),
        _record(1, "ce", 0.1, complete=False),
        _record(0, "mm", 0.8),
    ]
    _write(tmp_path, "gpu_study_0.jsonl", records, ['{"seed": 2, "meth'])
    by_method, skipped = gpu_study.read_records(str(tmp_path))
    assert skipped == 2
    assert sorted(by_method["ce"]) == [0]
    diff = gpu_study.paired(by_method, "mm", "ce", "test_balanced_accuracy")
    # One pair: a mean, but no spread and no interval.
    assert diff["n"] == 1
    assert diff["mean"] == pytest.approx(0.1)
    assert diff["std"] is None and diff["ci95"] is None
    assert diff["wins"] == 1


def test_report_pairs_against_ce_and_mm(tmp_path):
    records = []
    for seed in range(4):
        records += [
            _record(seed, "ce", 0.70 + 0.01 * seed, minor=0.40),
            _record(seed, "mm", 0.69 + 0.01 * seed, minor=0.42),
            _record(seed, "mm_decay", 0.71, minor=0.45),
            _record(seed, "mm_tuned", 0.70, minor=None),
        ]
    _write(tmp_path, "gpu_study_0.jsonl", records)
    by_method, skipped = gpu_study.read_records(str(tmp_path))
    result = gpu_study.report(by_method, skipped)
    assert list(result["methods"]) == ["ce", "mm", "mm_decay", "mm_tuned"]
    ce = result["methods"]["ce"]["test_balanced_accuracy"]
    assert ce["n"] == 4 and ce["mean"] == pytest.approx(0.715)
    pairs = {
        (d["method"], d["reference"], d["metric"]): d for d in result["paired"]
    }
    mm_ce = pairs[("mm", "ce", "test_balanced_accuracy")]
    assert mm_ce["mean"] == pytest.approx(-0.01)
    assert mm_ce["std"] == pytest.approx(0.0, abs=1e-12)
    assert mm_ce["wins"] == 0
    assert ("mm_tuned", "mm", "test_balanced_accuracy") in pairs
    assert ("mm_decay", "mm", "test_minor_accuracy") in pairs
    # A metric missing from every record pairs nothing.
    assert pairs[("mm_tuned", "ce", "test_minor_accuracy")]["n"] == 0
    text = gpu_study.markdown(result)
    assert "| mm − ce | 4 | -1.00 |" in text
    assert "gpu: NVIDIA H200" in text


# ------------------------------------------------- methods, cells, errors

NEW_METHODS = ("ce_drw", "ldam_drw", "mm_stop50", "mm_then_drw", "ldam_drw_mm")


def _study_methods():
    """benchmarks/study.py's METHODS, from a subprocess (study.py defines
    absl flags on import, which must not reach this test process)."""
    code = (
        "import json, sys; sys.path.insert(0, 'benchmarks'); import study; "
        "print(json.dumps({k: v[2] for k, v in study.METHODS.items()}))"
    )
    output = run_python(code)
    return json.loads(output)


def _config(run_flags, epochs=None):
    """The `ExperimentConfig` run.py makes of study_fashion_mnist.cfg and
    study.py's flags of a method (`epochs`: instead of the flagfile's)."""
    from kmix.experiment.config import ExperimentConfig

    with open(
        os.path.join(REPO, "experiments/configs/study_fashion_mnist.cfg")
    ) as f:
        base = [line.strip() for line in f if line.startswith("--")]
    types = {f.name: f.type for f in dataclasses.fields(ExperimentConfig)}
    values = {}
    for flag in base + list(run_flags):
        name, value = flag.removeprefix("--").split("=", 1)
        kind = types[name]
        if kind is tuple:
            values[name] = tuple(v for v in value.split(",") if v)
        elif kind in (int, float):
            values[name] = kind(value)
        else:
            values[name] = value
    if epochs is not None:
        values["epochs"] = epochs
    return ExperimentConfig(**values)


def test_methods_are_study_py_methods_as_run_py_builds_them():
    study_methods = _study_methods()
    assert set(NEW_METHODS) <= set(gpu_study.METHODS)
    defaults = _config([])
    for key, value in gpu_study.BUDGET.items():
        assert getattr(defaults, key) == value, key
    assert (defaults.lr_schedule, defaults.optimizer) == ("warmup_step", "sgd")
    assert (defaults.augment, defaults.model) == ("none", "small_cnn")
    for key in (
        "max_per_class",
        "validation",
        "minor_fraction",
        "train_fraction",
    ):
        assert getattr(defaults, key) == gpu_study.SELECTION[key], key
    assert gpu_study.LDAM_MAX_MARGIN == defaults.ldam_max_margin == 0.5
    assert gpu_study.LDAM_SCALE == defaults.ldam_scale == 30.0
    assert gpu_study.CB_BETA == defaults.cb_beta == 0.9999
    assert gpu_study.LA_TAU == defaults.la_tau
    assert gpu_study.MAJOR_THRESHOLD == defaults.major_threshold
    assert defaults.mix_final_strength == 0.0  # MixSchedule's final_strength
    for method, settings in gpu_study.METHODS.items():
        for epochs in (60, 2, 3):
            config = _config(study_methods[method], epochs)
            config.validate()
            got = {
                "mix_at": list(settings.get("mix_at", [])),
                "strength": settings.get("strength", 0.5),
                "major_threshold": settings.get("major_threshold", 0.5),
                "frequency_gamma": settings.get("frequency_gamma"),
                "loss": settings.get("loss", "ce"),
                "reweight": settings.get("reweight") or "none",
                "mix_schedule": settings.get("mix_schedule", "constant"),
                "classifier_head": gpu_study.classifier_head(settings),
                "drw_start_at": gpu_study.drw_start_epoch(settings, epochs),
                "mix_stop_at": gpu_study.mix_stop_epoch(settings, epochs),
            }
            expected = {
                key: list(getattr(config, key))
                if key == "mix_at"
                else getattr(config, key)
                for key in got
            }
            assert got == expected, (method, epochs)


def test_drw_and_stop_epochs_of_the_new_methods():
    methods = gpu_study.METHODS
    assert gpu_study.classifier_head(methods["ldam_drw"]) == "normed"
    assert gpu_study.classifier_head(methods["ldam_drw_mm"]) == "normed"
    assert gpu_study.classifier_head(methods["ce_drw"]) == "dense"
    for method in ("ce_drw", "ldam_drw", "mm_then_drw", "ldam_drw_mm"):
        assert gpu_study.drw_start_epoch(methods[method], 60) == 48
        assert gpu_study.drw_start_epoch(methods[method], 2) == 1  # the last
    for method in ("ce", "mm", "mm_stop50", "la"):
        assert gpu_study.drw_start_epoch(methods[method], 60) is None
    assert gpu_study.mix_stop_epoch(methods["mm_stop50"], 60) == 30
    assert gpu_study.mix_stop_epoch(methods["mm_then_drw"], 60) == 48
    assert gpu_study.mix_stop_epoch(methods["ldam_drw_mm"], 60) == 48
    assert gpu_study.mix_stop_epoch(methods["mm_decay"], 60) is None
    names = set(gpu_study.EXTRA_PAIRS)
    assert {("mm_graded", "ldam_drw"), ("ldam_drw_mm", "ldam_drw")} <= names
    assert ("mm_then_drw", "ce_drw") in names
    for method, reference in gpu_study.EXTRA_PAIRS:
        assert method in gpu_study.METHODS and reference in gpu_study.METHODS


def test_model_loss_and_callbacks_of_ldam_drw_mm():
    import kmix

    counts = [500] * 5 + [5] * 5
    model = gpu_study.build_model("ldam_drw_mm", counts, seed=0)
    assert isinstance(model.get_layer("logits"), kmix.layers.NormedDense)
    plain = gpu_study.build_model("ce_drw", counts, seed=0)
    assert type(plain.get_layer("logits")).__name__ == "Dense"
    loss = gpu_study.build_loss("ldam_drw_mm", counts)
    assert isinstance(loss, kmix.losses.LDAMLoss)
    assert (loss.max_margin, loss.scale) == (0.5, 30.0)
    schedule, drw = gpu_study.method_callbacks("ldam_drw_mm", counts, 60)
    assert isinstance(schedule, kmix.callbacks.MixSchedule)
    assert (schedule.schedule, schedule.stop_epoch) == ("stop", 48)
    assert isinstance(drw, kmix.callbacks.DeferredReweighting)
    assert drw.start_epoch == 48
    assert drw.weights == pytest.approx(
        kmix.class_weights.class_balanced(counts, beta=0.9999)
    )
    (decay,) = gpu_study.method_callbacks("mm_decay", counts, 60)
    assert (decay.schedule, decay.decay_epochs) == ("linear", 60)
    assert gpu_study.method_callbacks("mm", counts, 60) == []


def test_indices_path_names_profile_and_ratio():
    data = os.path.join(REPO, ".gpu_data")
    assert gpu_study.indices_path("step", 100.0) == os.path.join(
        data, "study_step100_indices.npz"
    )
    assert gpu_study.indices_path("step", 10.0) == os.path.join(
        data, "study_step10_indices.npz"
    )
    assert gpu_study.indices_path("exp", 100.0) == os.path.join(
        data, "study_exp100_indices.npz"
    )


def test_unknown_profile_or_method_names_flag_value_and_choices():
    gpu_study.check_profile("exp")
    with pytest.raises(ValueError, match=r"--profile.*'step', 'exp'.*'expo'"):
        gpu_study.check_profile("expo")
    gpu_study.check_methods(["ce", "ldam_drw_mm"])
    with pytest.raises(ValueError, match=r"--methods.*unknown: \['ldam'\]"):
        gpu_study.check_methods(["ce", "ldam"])
    with pytest.raises(ValueError, match="--methods"):
        gpu_study.check_methods([])


def test_exp_records_report_kmix_long_tail_groups(tmp_path):
    import kmix

    counts = [500, 299, 179, 107, 64, 38, 23, 13, 8, 5]
    groups = kmix.classes.class_groups(counts)
    assert list(groups) == ["many", "medium", "few"]
    labels = np.repeat(np.arange(10), 2)
    predictions = labels.copy()
    predictions[labels >= 7] = 0  # the three smallest classes all wrong
    values = gpu_study.accuracies(labels, predictions, groups)
    assert values["many_accuracy"] == 1.0 and values["few_accuracy"] == 0.0
    assert values["balanced_accuracy"] == pytest.approx(0.7)

    def record(seed, method, test):
        return {
            "seed": seed,
            "method": method,
            "complete": True,
            "profile": "exp",
            "imbalance_ratio": 100.0,
            "groups": groups,
            "test_balanced_accuracy": test,
            "validation_balanced_accuracy": test,
            "test_few_accuracy": test - 0.2,
            "test_medium_accuracy": test - 0.1,
            "test_many_accuracy": test + 0.1,
            "train_clean_many_accuracy": 1.0,
            "train_clean_few_accuracy": 0.9,
            "wall_s": 30.0,
        }

    records = []
    for seed in range(3):
        records += [
            record(seed, "ldam_drw", 0.70),
            record(seed, "ldam_drw_mm", 0.71 + 0.01 * seed),
        ]
    _write(tmp_path, "gpu_study_0.jsonl", records)
    result = gpu_study.report(*gpu_study.read_records(str(tmp_path)))
    assert result["cells"] == ["exp-100"]
    assert result["groups"] == ["many", "medium", "few"]
    pairs = {
        (d["method"], d["reference"], d["metric"]) for d in result["paired"]
    }
    for metric in ("balanced", "medium", "few"):
        key = ("ldam_drw_mm", "ldam_drw", f"test_{metric}_accuracy")
        assert key in pairs
    text = gpu_study.markdown(result)
    assert "Fashion-MNIST exp-100" in text
    assert "| test many | test medium | test few |" in text
    assert "| ldam_drw_mm − ldam_drw | 3 | +2.00 |" in text
    line = gpu_study.run_line(0, records[1])
    assert "ldam_drw_mm" in line and "few 0.5100" in line


TINY_RUN = """
import json, sys
import numpy as np
sys.path.insert(0, "benchmarks")
import gpu_study

rng = np.random.default_rng(0)
counts = [40, 40, 20, 10, 6, 4, 3, 2, 2, 1]
labels = np.concatenate([np.full(n + 2, c) for c, n in enumerate(counts)])
images = rng.integers(0, 256, (len(labels), 28, 28), dtype=np.uint8)
train = np.concatenate(
    [np.flatnonzero(labels == c)[:n] for c, n in enumerate(counts)]
)
validation = np.concatenate(
    [np.flatnonzero(labels == c)[-2:] for c in range(10)]
)

def scaled(x):
    return x[..., None].astype("float32") / np.float32(255.0)

data = {
    "profile": "exp",
    "imbalance_ratio": 40.0,
    "train_images": images,
    "labels": labels,
    "x_test": scaled(images[validation]),
    "y_test": labels[validation],
    "selection": {0: (train, validation, counts)},
    "scaled": scaled,
}
record = gpu_study.train_one(0, "ldam_drw_mm", data, 2, None)
print("RECORD " + json.dumps(record))
"""


@pytest.mark.slow  # ~25 s of CPU (JAX's compiles), ~50 s on a busy 2-core machine
def test_train_one_ldam_drw_mm_two_epochs_on_jax():
    """Two epochs of ldam_drw_mm on tiny synthetic data, on JAX in a subprocess."""
    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    output = run_python(TINY_RUN, env)
    (line,) = [x for x in output.splitlines() if x.startswith("RECORD ")]
    record = json.loads(line.removeprefix("RECORD "))
    assert record["complete"] and record["epochs_done"] == 2
    assert record["classifier"] == "normed"
    # 2 epochs: DRW from the last epoch, mixing on throughout.
    assert record["drw_start_epoch"] == 1 and record["mix_stop_epoch"] == 2
    assert list(record["groups"]) == ["many", "medium", "few"]
    assert math.isfinite(record["final_train_loss"])
    assert 0.0 <= record["test_few_accuracy"] <= 1.0
