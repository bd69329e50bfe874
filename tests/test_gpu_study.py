"""The GPU seed study's report (benchmarks/gpu_study.py): pairing and intervals."""

import json
import math
import os
import sys

import pytest

from helpers import REPO

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
