"""The method study's choices (benchmarks/study_report.py) use validation data only."""

import os
import sys

import pytest

from helpers import REPO

sys.path.insert(0, os.path.join(REPO, "benchmarks"))
import study_report  # noqa: E402

METHODS = {
    "ce": ("CE", "baseline", []),
    "la": ("logit adjusted", "baseline", []),
    "mm": ("CE + MajorMix", "majormix", []),
    "mm_decay": ("MajorMix decaying", "majormix", []),
}
COUNTS = [500] * 5 + [5] * 5


def _record(seed, test, validation):
    return {
        "seed": seed,
        "wall_s": 100.0,
        "metrics": {
            "class_counts": COUNTS,
            "balanced_accuracy": test,
            "per_class_accuracy": [test] * 10,
            "validation": {"balanced_accuracy": validation},
            "train_clean": {"per_class_accuracy": [1.0] * 5 + [0.8] * 5},
        },
    }


def _summaries(scores):
    """{method: summary} from {method: [(test, validation) per seed]}."""
    return {
        name: study_report.method_summary(
            {s: _record(s, *pair) for s, pair in enumerate(pairs)}
        )
        for name, pairs in scores.items()
    }


def test_summary_groups_and_means():
    summary = _summaries({"ce": [(0.6, 0.5), (0.8, 0.7)]})["ce"]
    assert summary["seeds"] == [0, 1]
    assert summary["mean"]["test"] == pytest.approx(0.7)
    assert summary["std"]["validation"] == pytest.approx(0.1)
    assert summary["mean"]["train_clean_minor"] == pytest.approx(0.8)
    assert summary["per_seed"]["train_clean_major"] == [1.0, 1.0]


def test_recipe_is_chosen_on_validation_once_every_candidate_has_three_seeds():
    # mm has the better test accuracy, mm_decay the better validation accuracy.
    three = {
        "mm": [(0.9, 0.5)] * 3,
        "mm_decay": [(0.5, 0.9)] * 3,
        "ce": [(0.7, 0.7)] * 3,
    }
    assert study_report.choose_recipe(_summaries(three), METHODS) == "mm_decay"
    two = dict(three, mm=[(0.9, 0.5)] * 2)
    assert study_report.choose_recipe(_summaries(two), METHODS) is None


def test_best_baseline_is_the_best_baseline_on_validation():
    summaries = _summaries(
        {
            "ce": [(0.9, 0.6)],
            "la": [(0.6, 0.8)],
            "mm": [(0.9, 0.95)],
        }
    )
    assert study_report.best_baseline(summaries, METHODS) == "la"
    assert (
        study_report.best_baseline(_summaries({"mm": [(0.5, 0.5)]}), METHODS)
        is None
    )


def test_paired_differences_use_the_seeds_both_methods_have():
    summaries = _summaries(
        {
            "mm": [(0.7, 0.0), (0.6, 0.0), (0.9, 0.0)],
            "ce": [(0.6, 0.0), (0.65, 0.0)],
        }
    )
    pair = study_report.paired(summaries, "mm", "ce")
    assert pair["seeds"] == [0, 1]
    assert pair["diffs"] == pytest.approx([0.1, -0.05])
    assert pair["mean"] == pytest.approx(0.025)
    assert pair["wins"] == 1
    assert study_report.paired(summaries, "mm", "la") is None


def test_cell_section_pairs_each_method_with_ce_and_its_reference():
    summaries = _summaries(
        {
            "ce": [(0.60, 0.6), (0.70, 0.7)],
            "mm": [(0.65, 0.6), (0.70, 0.7)],
            "mm_decay": [(0.70, 0.6), (0.80, 0.7)],
            "la": [(0.70, 0.9), (0.70, 0.9)],  # the best baseline on validation
        }
    )
    text = study_report.cell_section(
        "step100", summaries, METHODS, None, references={"mm_decay": "mm"}
    )
    assert "| MajorMix decaying − CE | +10.0, +10.0 | +10.0 | 2/2 |" in text
    assert (
        "| MajorMix decaying − CE + MajorMix | +5.0, +10.0 | +7.5 | 2/2 |"
        in text
    )
    assert "| CE + MajorMix − CE | +5.0, +0.0 | +2.5 | 1/2 |" in text
    without = study_report.cell_section("step100", summaries, METHODS, None)
    assert "MajorMix decaying − CE + MajorMix" not in without


def test_a_cell_under_way_joins_the_shipped_choice_only_when_complete():
    def cell(scores):
        summaries = _summaries(scores)
        return {
            "recipe": study_report.choose_recipe(summaries, METHODS),
            "methods": summaries,
        }

    exp100 = cell({"mm": [(0.6, 0.6)] * 3, "mm_decay": [(0.6, 0.7)] * 3})
    # exp10 under way: mm_decay has no record yet, mm one seed.
    exp10 = cell({"ce": [(0.8, 0.8)], "mm": [(0.8, 0.9)]})
    choice = study_report.choose_shipped_recipes(
        {"exp100": exp100, "exp10": exp10}, METHODS
    )["longtail"]
    assert choice["method"] == "mm_decay" and choice["final"]
    assert choice["cells"] == ["exp100"] and choice["pending"] == ["exp10"]
    assert "| exp100 (exp10 under way) | 3 |" in study_report.recipes_section(
        {"longtail": choice}, METHODS
    )
    exp10 = cell({"mm": [(0.8, 0.9)] * 3, "mm_decay": [(0.8, 0.6)] * 3})
    choice = study_report.choose_shipped_recipes(
        {"exp100": exp100, "exp10": exp10}, METHODS
    )["longtail"]
    assert choice["method"] == "mm" and choice["cells"] == ["exp100", "exp10"]
    assert choice["pending"] == []
    # No cell complete: a provisional choice over the cells with records.
    choice = study_report.choose_shipped_recipes(
        {"exp10": cell({"mm": [(0.8, 0.9)], "mm_decay": [(0.8, 0.6)]})}, METHODS
    )["longtail"]
    assert choice["method"] == "mm" and not choice["final"]
