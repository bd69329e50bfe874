"""`kmix.records`: the CSV / JSON files of per-class progress."""

import csv
import json
import math
import sys

import numpy as np
import pytest

from kmix import records

ROWS = (
    records.rows_for_epoch(1, "train_accuracy", [0.5, 0.25, float("nan")])
    + records.rows_for_epoch(2, "train_accuracy", [0.75, 0.5, 0.0])
    + records.rows_for_epoch(2, "feature_grad_norm", [1.5, 3.0, 12.0])
)


def _same(a, b):
    assert [(r["epoch"], r["class"], r["quantity"]) for r in a] == [
        (r["epoch"], r["class"], r["quantity"]) for r in b
    ]
    np.testing.assert_array_equal(
        [r["value"] for r in a], [r["value"] for r in b]
    )


def test_rows_for_epoch_are_one_tidy_row_per_class():
    assert records.rows_for_epoch(3, "val_accuracy", [1.0, 0.5]) == [
        {"epoch": 3, "class": 0, "quantity": "val_accuracy", "value": 1.0},
        {"epoch": 3, "class": 1, "quantity": "val_accuracy", "value": 0.5},
    ]


def test_csv_and_json_round_trip_with_nan(tmp_path):
    csv_path, json_path = records.write_records(
        ROWS, tmp_path / "run", class_counts=[600, 60, 6]
    )
    assert csv_path.endswith("class_progress.csv") and json_path.endswith(
        "class_progress.json"
    )
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert (
        list(rows[0]) == ["epoch", "class", "quantity", "value"]
        and len(rows) == 9
    )
    with open(json_path) as f:
        content = json.load(f)
    assert content["class_counts"] == [600, 60, 6]
    assert content["columns"] == ["epoch", "class", "quantity", "value"]
    assert content["records"][2]["value"] is None  # JSON has no NaN
    read_csv, csv_counts = records.read_records(csv_path)
    read_json, json_counts = records.read_records(json_path)
    assert csv_counts is None and json_counts == [600, 60, 6]
    _same(read_csv, ROWS)
    _same(read_json, ROWS)
    assert math.isnan(read_json[2]["value"])


def test_history_from_records_gives_one_row_per_epoch():
    history = records.history_from_records(ROWS)
    assert history["train_accuracy"]["epoch"] == [1, 2]
    np.testing.assert_array_equal(
        history["train_accuracy"]["value"],
        [[0.5, 0.25, np.nan], [0.75, 0.5, 0.0]],
    )
    assert history["feature_grad_norm"] == {
        "epoch": [2],
        "value": [[1.5, 3.0, 12.0]],
    }


def test_missing_class_at_an_epoch_reads_as_nan():
    rows = records.rows_for_epoch(1, "val_accuracy", [0.5, 1.0])[:1]
    rows += records.rows_for_epoch(2, "val_accuracy", [0.25, 0.75])
    np.testing.assert_array_equal(
        records.history_from_records(rows)["val_accuracy"]["value"],
        [[0.5, np.nan], [0.25, 0.75]],
    )


def test_class_progress_module_still_exports_the_readers():
    from kmix.callbacks import class_progress

    assert class_progress.read_records is records.read_records
    assert class_progress.history_from_records is records.history_from_records
    assert class_progress.write_records_csv is records.write_records_csv


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
