"""Per-class progress records: the CSV and JSON files and their reading.

`kmix.callbacks.ClassProgress` writes its per-epoch, per-class series as
tidy rows, one per epoch, class and quantity:

    {"epoch": 3, "class": 7, "quantity": "train_accuracy", "value": 0.42}

in two files of a run's folder: `class_progress.csv` (a header
`epoch,class,quantity,value`, then the rows; NaN written as `nan`) and
`class_progress.json` (`{"class_counts": [...], "columns": [...],
"records": [...]}`, NaN written as `null`). `kmix.plots` and the benchmarks
read them back with `read_records` and `history_from_records`. Pure Python:
no TensorFlow, no Keras.

Example:

>>> from kmix import records
>>> rows = [
...     {"epoch": 1, "class": 0, "quantity": "train_accuracy", "value": 0.5},
...     {"epoch": 1, "class": 1, "quantity": "train_accuracy", "value": 0.25},
... ]
>>> records.history_from_records(rows)
{'train_accuracy': {'epoch': [1], 'value': [[0.5, 0.25]]}}
"""

import csv
import json
import math
import os
import tempfile

COLUMNS = ("epoch", "class", "quantity", "value")
CSV_NAME = "class_progress.csv"
JSON_NAME = "class_progress.json"


def rows_for_epoch(epoch, quantity, values):
    """The tidy rows of one quantity at one epoch, one per class.

    Example:

    >>> kmix.records.rows_for_epoch(2, "val_accuracy", [1.0, 0.5])[1]
    {'epoch': 2, 'class': 1, 'quantity': 'val_accuracy', 'value': 0.5}
    """
    return [
        {
            "epoch": int(epoch),
            "class": c,
            "quantity": quantity,
            "value": float(v),
        }
        for c, v in enumerate(values)
    ]


def write_records_csv(records, path):
    """Writes tidy rows (`epoch, class, quantity, value`) to a CSV file.

    Returns `path`.

    Example:

    >>> rows = kmix.records.rows_for_epoch(1, "train_accuracy", [0.5, 0.25])
    >>> kmix.records.write_records_csv(rows, "class_progress.csv")
    'class_progress.csv'
    >>> print(open("class_progress.csv").read())
    epoch,class,quantity,value
    1,0,train_accuracy,0.5
    1,1,train_accuracy,0.25
    """

    def write(f):
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(records)

    write_atomically(path, write, newline="")
    return path


def write_records_json(records, path, class_counts=None):
    """Writes tidy rows and the training `class_counts` to a JSON file.

    NaN values are written as `null` (JSON has no NaN). Returns `path`.

    Example:

    >>> rows = kmix.records.rows_for_epoch(
    ...     1, "val_accuracy", [0.5, float("nan")]
    ... )
    >>> kmix.records.write_records_json(rows, "class_progress.json", [600, 6])
    'class_progress.json'
    >>> import json
    >>> content = json.load(open("class_progress.json"))
    >>> (
    ...     content["class_counts"],
    ...     content["records"][1]["value"],
    ... )  # NaN became null
    ([600, 6], None)
    """
    content = {
        "class_counts": None
        if class_counts is None
        else [int(n) for n in class_counts],
        "columns": list(COLUMNS),
        "records": [
            dict(r, value=None if math.isnan(r["value"]) else r["value"])
            for r in records
        ],
    }
    write_atomically(path, lambda f: json.dump(content, f))
    return path


def write_atomically(path, write, newline=None):
    """Calls `write(f)` on a temporary file next to `path`, then renames it to `path`.

    A process killed while writing leaves the old file (or none), never a
    truncated one: the rename is atomic on POSIX file systems.

    Example:

    >>> kmix.records.write_atomically("notes.txt", lambda f: f.write("done"))
    >>> open("notes.txt").read()
    'done'
    """
    path = os.fspath(path)
    directory, name = os.path.split(os.path.abspath(path))
    descriptor, temporary = tempfile.mkstemp(
        prefix=f".{name}.", suffix=".tmp", dir=directory
    )
    try:
        with os.fdopen(descriptor, "w", newline=newline) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise


def write_records(records, output_dir, class_counts=None):
    """Writes `class_progress.csv` and `class_progress.json` into `output_dir`.

    Creates the folder if needed; returns the two paths.

    Example:

    >>> rows = kmix.records.rows_for_epoch(1, "train_accuracy", [0.5, 0.25])
    >>> kmix.records.write_records(rows, "runs/mix", [600, 6])
    ('runs/mix/class_progress.csv', 'runs/mix/class_progress.json')
    """
    os.makedirs(output_dir, exist_ok=True)
    return (
        write_records_csv(records, os.path.join(output_dir, CSV_NAME)),
        write_records_json(
            records, os.path.join(output_dir, JSON_NAME), class_counts
        ),
    )


def read_records(path):
    """Reads the rows of a `class_progress.csv` or `class_progress.json`.

    Returns `(records, class_counts)`; `class_counts` is None for a CSV.
    Values are floats, NaN where nothing was measured.

    Example:

    >>> rows = kmix.records.rows_for_epoch(1, "train_accuracy", [0.5, 0.25])
    >>> csv_path, json_path = kmix.records.write_records(
    ...     rows, "runs/mix", [600, 6]
    ... )
    >>> records, class_counts = kmix.records.read_records(json_path)
    >>> records[1], class_counts
    ({'epoch': 1, 'class': 1, 'quantity': 'train_accuracy', 'value': 0.25}, [600, 6])
    """
    path = os.fspath(path)
    try:
        if path.endswith(".json"):
            with open(path) as f:
                content = json.load(f)
            records = [
                dict(
                    r,
                    value=float("nan")
                    if r["value"] is None
                    else float(r["value"]),
                )
                for r in content["records"]
            ]
            return records, content.get("class_counts")
        with open(path, newline="") as f:
            records = [
                {
                    "epoch": int(row["epoch"]),
                    "class": int(row["class"]),
                    "quantity": row["quantity"],
                    "value": float(row["value"]),
                }
                for row in csv.DictReader(f)
            ]
        return records, None
    except (
        ValueError,
        KeyError,
        TypeError,
        AttributeError,
        csv.Error,
    ) as error:
        # json.JSONDecodeError and UnicodeDecodeError are ValueErrors.
        raise ValueError(
            f"The records file {path!r} is corrupt or truncated ({type(error).__name__}: "
            f"{error}): it is not a {'JSON' if path.endswith('.json') else 'CSV'} file of "
            f"kmix per-class records ({', '.join(COLUMNS)}). Restore it from a copy, or "
            "delete it (and its .csv/.json twin) to start the records afresh."
        ) from error


def history_from_records(records):
    """Rebuilds `ClassProgress.history` from tidy rows.

    Returns `{quantity: {"epoch": [...], "value": [[one value per class],
    ...]}}`, epochs sorted; a class missing at an epoch gets NaN.

    Example:

    >>> records = kmix.records.rows_for_epoch(
    ...     2, "feature_grad_norm", [0.1, 0.9]
    ... ) + kmix.records.rows_for_epoch(1, "feature_grad_norm", [0.2, 1.5])
    >>> history = kmix.records.history_from_records(records)
    >>> history["feature_grad_norm"]
    {'epoch': [1, 2], 'value': [[0.2, 1.5], [0.1, 0.9]]}
    """
    table = {}
    for r in records:
        table.setdefault(r["quantity"], {}).setdefault(r["epoch"], {})[
            r["class"]
        ] = r["value"]
    history = {}
    for quantity, by_epoch in table.items():
        num_classes = 1 + max(c for row in by_epoch.values() for c in row)
        epochs = sorted(by_epoch)
        history[quantity] = {
            "epoch": epochs,
            "value": [
                [by_epoch[e].get(c, float("nan")) for c in range(num_classes)]
                for e in epochs
            ],
        }
    return history
