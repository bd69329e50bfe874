r"""Many seeds of the method study's cells on a GPU machine without TensorFlow.

The method study (`benchmarks/study.py`, `docs/results.md`) varies a lot from
seed to seed on step-100 Fashion-MNIST, so a handful of CPU seeds cannot say
whether MajorMix helps at its converged budget. This script trains many
seeds of a few fixed methods at exactly that budget on the lent GPU machine
(JAX, no TensorFlow, no internet), and reports paired differences. Nothing
is chosen from these runs; validation accuracy is recorded all the same.

    # here (TensorFlow present): the study's selection of every seed
    python benchmarks/gpu_study.py prepare --seeds=0-23 \
        [--profile=exp] [--imbalance_ratio=100]
    # there (bash benchmarks/gpu_checks.sh study runs this):
    python benchmarks/gpu_study.py run --seeds=0-23 [--profile=exp] \
        --methods=ce,mm,mm_tuned,mm_decay,la --workers=6 --out_dir=$OUT
    # here: the tables of what came back
    python benchmarks/gpu_study.py report --in_dir=DIR \
        [--md_out=gpu_study.md] [--json_out=gpu_study.json]

`prepare` computes each seed's training and validation images with kmix's
own rule (`kmix.data.loader.select_training_images`, with the flags of
`experiments/configs/study_fashion_mnist.cfg` and the cell's `--profile`
(step or exp) and `--imbalance_ratio`, as study.py's CELLS; the seed of
`--seeds=s` is the seed `kmix.data.load` gets) on the labels of the
Fashion-MNIST IDX files, checks seed 0 against `kmix.data.load`, and writes
the indices and counts to `.gpu_data/study_<profile><ratio>_indices.npz`
(e.g. `study_step100_indices.npz`, `study_exp100_indices.npz`; carried with
the IDX files). `run` reads the file of the same flags.

`run` (no TensorFlow: only `kmix.data.idx_files` and the model side of
kmix are imported) deals the jobs, seed-major (seed 0 with every method,
then seed 1, ...), round-robin to `--workers` subprocesses of itself. Each
worker trains its jobs one after the other with kmix's public API, as
`experiments/run.py` builds the study's runs: images scaled to float32 in
[0, 1] (no augmentation), `kmix.models.small_cnn` at width 16 with weight
decay 2e-4 (a cosine `normed` head under LDAM), `SGD(momentum=0.9)` under
`kmix.schedules.WarmupStepDecay(0.1)`, batch 128, 60 epochs,
`jit_compile=True`, `fit` on the NumPy arrays with shuffling; the method's
loss (cross-entropy, `kmix.losses.LogitAdjustedLoss` or `LDAMLoss`), its
`kmix.callbacks.MixSchedule` (linear decay, or a stop) and its deferred
class-balanced re-weighting (`kmix.callbacks.DeferredReweighting`). It
appends one JSON line per finished run to
`gpu_study_<worker>.jsonl` in `--out_dir` (flushed at once, so a cut run
keeps what finished) and prints one line per run. No job starts after
`--deadline_s` (from the start of `run`), nor one that would not end by
then at the pace of the worker's last job; training still going
`--grace_s` after the deadline is stopped (recorded as incomplete), and
workers still alive 30 s later are killed. Group accuracies use kmix's
groups (`kmix.classes.class_groups`, as the study's metrics do): major and
minor on a step cell, many, medium and few on an exp cell.

`report` reads the JSON lines: per method the mean and standard deviation
over seeds, then the paired differences against CE (and those of
EXTRA_PAIRS: MajorMix variants against `mm`, the best recipes against
LDAM-DRW, ...) over the seeds both have, with 95 % t confidence intervals.
"""

import glob
import json
import math
import os
import platform
import re
import subprocess
import sys
import time

from absl import app
from absl import flags
from gpu_step100 import DATA_DIRS  # a sibling script: the same data
from gpu_step100 import IDX_FILES
from gpu_step100 import epoch_timer
from gpu_step100 import find_data_dir

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NUM_CLASSES = 10
# The study's cells' profiles (study.py's CELLS: step-100, step-10, exp-100, exp-10).
PROFILES = ("step", "exp")
# The study's data flags (study_fashion_mnist.cfg, cell step100; --profile and
# --imbalance_ratio pick another cell), as `kmix.data.load` takes them;
# minor_fraction, class_order and train_fraction keep their defaults.
SELECTION = {
    "profile": "step",
    "imbalance_ratio": 100.0,
    "minor_fraction": 0.5,
    "class_order": "natural",
    "validation": 100,
    "train_fraction": 1.0,
    "max_per_class": 500,
}
# The study's training budget (study_fashion_mnist.cfg).
BUDGET = {
    "width": 16,
    "epochs": 60,
    "batch_size": 128,
    "learning_rate": 0.1,
    "momentum": 0.9,
    "weight_decay": 2e-4,
}
# run.py's defaults of the settings the methods leave alone
# (kmix/experiment/config.py): LDAM's margin and scale, logit adjustment's
# tau, class-balanced beta, the major threshold of the reported groups.
LDAM_MAX_MARGIN = 0.5
LDAM_SCALE = 30.0
LA_TAU = 1.0
CB_BETA = 0.9999
MAJOR_THRESHOLD = 0.5
# benchmarks/study.py's METHODS, as settings (run.py's flags): mix_at,
# strength, major_threshold, frequency_gamma; "loss" (ce, la or ldam; ldam
# takes the normed head); "mix_schedule" ("linear": strength to 0 over the
# epochs, "stop": mixing off from round(stop_fraction * epochs)); "reweight"
# ("cb": class-balanced weights, deferred to min(round(drw_fraction *
# epochs), epochs - 1)).
_MIX = {"mix_at": ["stage1"], "strength": 0.5, "major_threshold": 0.5}
_DRW = {"reweight": "cb", "drw_fraction": 0.8}
METHODS = {
    "ce": {"label": "CE"},
    "ce_drw": {"label": "CE + DRW", **_DRW},
    "ldam_drw": {"label": "LDAM-DRW", "loss": "ldam", **_DRW},
    "la": {"label": "logit adjusted", "loss": "la"},
    "mm": {"label": "CE + MajorMix", **_MIX},
    "mm_stop50": {
        "label": "MajorMix for the first 50 %, then CE",
        **_MIX,
        "mix_schedule": "stop",
        "stop_fraction": 0.5,
    },
    "mm_decay": {
        "label": "MajorMix, strength decaying linearly to 0",
        **_MIX,
        "mix_schedule": "linear",
    },
    "mm_then_drw": {
        "label": "MajorMix for 80 %, then DRW",
        **_MIX,
        "mix_schedule": "stop",
        "stop_fraction": 0.8,
        **_DRW,
    },
    "ldam_drw_mm": {
        "label": "LDAM-DRW + MajorMix off at DRW",
        **_MIX,
        "mix_schedule": "stop",
        "stop_fraction": 0.8,
        "loss": "ldam",
        **_DRW,
    },
    "mm_graded": {
        "label": "MajorMix, frequency-graded (gamma 1)",
        **_MIX,
        "frequency_gamma": 1.0,
    },
    "mm_s075": {
        "label": "MajorMix strength 0.75",
        **_MIX,
        "strength": 0.75,
    },
    "mm_stem": {"label": "MajorMix at stem", **_MIX, "mix_at": ["stem"]},
    "mm_tuned": {
        "label": "MajorMix tuned (strength 0.35, stage2)",
        "mix_at": ["stage2"],
        "strength": 0.35,
        "major_threshold": 0.5,
    },
}
# Paired differences the report gives beside each method's against CE:
# (method, reference). The shipped recipes (mm_graded for step cells,
# ldam_drw_mm for exp cells) and MajorMix-then-DRW against the re-weighting
# baselines, the MajorMix variants against plain MajorMix.
EXTRA_PAIRS = (
    ("mm_graded", "ldam_drw"),
    ("ldam_drw_mm", "ldam_drw"),
    ("mm_then_drw", "ldam_drw"),
    ("mm_then_drw", "ce_drw"),
    ("mm_tuned", "mm"),
    ("mm_decay", "mm"),
    ("mm_stop50", "mm"),
    ("mm_graded", "mm"),
    ("mm_s075", "mm"),
    ("mm_stem", "mm"),
)
# Metrics of the paired differences, record key -> label: balanced accuracy,
# and (paired_metrics) that of each group but the first (kmix's groups:
# minor on a step cell, medium and few on an exp cell).
PAIRED_METRICS = {"test_balanced_accuracy": "test balanced accuracy"}
# The groups of a record written before records named theirs (step cells).
STEP_GROUPS = ("major", "minor")
# Two-sided 95 % quantiles of Student's t, by degrees of freedom; beyond 30
# the nearest smaller tabulated df is used (a slightly wider interval).
T_975 = {
    1: 12.706,
    2: 4.303,
    3: 3.182,
    4: 2.776,
    5: 2.571,
    6: 2.447,
    7: 2.365,
    8: 2.306,
    9: 2.262,
    10: 2.228,
    11: 2.201,
    12: 2.179,
    13: 2.160,
    14: 2.145,
    15: 2.131,
    16: 2.120,
    17: 2.110,
    18: 2.101,
    19: 2.093,
    20: 2.086,
    21: 2.080,
    22: 2.074,
    23: 2.069,
    24: 2.064,
    25: 2.060,
    26: 2.056,
    27: 2.052,
    28: 2.048,
    29: 2.045,
    30: 2.042,
    40: 2.021,
    60: 2.000,
    120: 1.980,
}
COMMANDS = ("prepare", "run", "report", "worker")
FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_string(
        "seeds", "0-23", "Seeds: ranges and lists, e.g. 0-23 or 0,2,5-7."
    )
    flags.DEFINE_list(
        "methods",
        ["ce", "mm", "mm_tuned", "mm_decay", "la"],
        f"Methods, of {sorted(METHODS)}.",
    )
    flags.DEFINE_integer("workers", 4, "run: worker processes (1 to 6).")
    flags.DEFINE_string("out_dir", None, "run: where the JSON lines go.")
    flags.DEFINE_integer(
        "epochs",
        BUDGET["epochs"],
        "Epochs per run (the study's 60; fewer only for smoke tests).",
    )
    flags.DEFINE_float(
        "deadline_s",
        330.0,
        "run: no job starts after this many seconds from the start.",
    )
    flags.DEFINE_float(
        "grace_s",
        20.0,
        "run: training still going this long after the deadline is stopped.",
    )
    flags.DEFINE_string(
        "data_dir",
        None,
        f"Folder of the Fashion-MNIST IDX files; default: the first of {DATA_DIRS} that exists.",
    )
    flags.DEFINE_string(
        "profile",
        SELECTION["profile"],
        f"The cell's imbalance profile, of {PROFILES} (prepare: the selection; "
        "run: the default --indices).",
    )
    flags.DEFINE_float(
        "imbalance_ratio",
        SELECTION["imbalance_ratio"],
        "The cell's imbalance ratio (100: step-100 or exp-100, 10: step-10 or exp-10).",
    )
    flags.DEFINE_string(
        "indices",
        None,
        "The .npz of `prepare`; default .gpu_data/study_<profile><ratio>_indices.npz.",
    )
    flags.DEFINE_string(
        "in_dir", None, "report: folder of the gpu_study_*.jsonl files."
    )
    flags.DEFINE_string("md_out", None, "report: also write the markdown here.")
    flags.DEFINE_string("json_out", None, "report: also write the JSON here.")
    flags.DEFINE_string(
        "compile_cache",
        os.path.join("/tmp", "gpu_study_jax_cache"),
        "run: JAX's persistent compilation cache, shared by the workers (empty: none).",
    )
    # The worker's own flags, set by `run`.
    flags.DEFINE_integer("worker", 0, "worker: its index.")
    flags.DEFINE_float(
        "deadline_at", None, "worker: the deadline, in seconds since the epoch."
    )


def parse_seeds(text):
    """`"0-3,7"` -> `[0, 1, 2, 3, 7]` (sorted, distinct); raises `ValueError`."""
    seeds = set()
    for part in str(text).split(","):
        part = part.strip()
        if not part:
            continue
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise ValueError(f"Bad seed range {part!r} in --seeds={text!r}.")
        low = int(match.group(1))
        high = int(match.group(2) or low)
        if high < low:
            raise ValueError(f"Empty seed range {part!r} in --seeds={text!r}.")
        seeds.update(range(low, high + 1))
    if not seeds:
        raise ValueError(f"--seeds names no seed: {text!r}.")
    return sorted(seeds)


def read_arrays(data_dir, keys=tuple(IDX_FILES)):
    """The IDX arrays of `keys` (uint8 images, labels) from `data_dir`."""
    from kmix.data.idx_files import read_idx

    arrays = {}
    for key in keys:
        stem = IDX_FILES[key]
        found = [
            n
            for n in (stem + ".gz", stem)
            if os.path.isfile(os.path.join(data_dir, n))
        ]
        if not found:
            raise FileNotFoundError(
                f"{data_dir!r} lacks {stem}(.gz); it holds {sorted(os.listdir(data_dir))}."
            )
        arrays[key] = read_idx(os.path.join(data_dir, found[0]))
    return arrays


def labels_digest(labels):
    import hashlib

    import numpy as np

    return hashlib.sha256(np.asarray(labels, "int64").tobytes()).hexdigest()


# ----------------------------------------------------------------- prepare


def indices_path(profile, imbalance_ratio):
    """Where `prepare` writes the selection of the cell `profile`, `imbalance_ratio`.

    `.gpu_data/study_<profile><ratio>_indices.npz`, e.g. `study_step100_indices.npz`.
    """
    return os.path.join(
        REPO, ".gpu_data", f"study_{profile}{imbalance_ratio:g}_indices.npz"
    )


def prepare(seeds, data_dir, path, selection):
    """Writes each seed's study selection (indices and counts) to `path`."""
    import numpy as np

    from kmix.data.loader import select_training_images

    labels = read_arrays(data_dir, ["train_labels"])["train_labels"].astype(
        "int64"
    )
    names = [str(c) for c in range(NUM_CLASSES)]
    arrays = {"seeds": np.asarray(seeds, "int64")}
    for seed in seeds:
        _, train, validation = select_training_images(
            labels,
            names,
            selection["profile"],
            selection["imbalance_ratio"],
            selection["minor_fraction"],
            selection["class_order"],
            seed,
            selection["validation"],
            selection["train_fraction"],
            selection["max_per_class"],
        )
        arrays[f"train_{seed}"] = np.asarray(train, "int32")
        arrays[f"validation_{seed}"] = np.asarray(validation, "int32")
        arrays[f"counts_{seed}"] = np.bincount(
            labels[train], minlength=NUM_CLASSES
        )
    meta = {
        "selection": selection,
        "data_dir": data_dir,
        "train_labels_sha256": labels_digest(labels),
        "num_train_images": len(labels),
    }
    arrays["meta"] = np.asarray(json.dumps(meta))
    check_against_load(seeds[0], arrays, selection)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    np.savez_compressed(path, **arrays)
    size = os.path.getsize(path)
    print(f"prepare: {len(seeds)} seeds -> {path} ({size} bytes)")
    first = seeds[0]
    print(
        f"prepare: seed {first}: counts {arrays[f'counts_{first}'].tolist()}, "
        f"{len(arrays[f'validation_{first}'])} validation images"
    )


def check_against_load(seed, arrays, selection):
    """Prints and compares seed's counts and indices with `kmix.data.load`'s."""
    import numpy as np

    from kmix import data as kdata

    data = kdata.load(
        "fashion_mnist",
        seed=seed,
        augment="none",
        verbose=0,
        **selection,
    )
    ours = arrays[f"counts_{seed}"].tolist()
    print(
        f"check, seed {seed}: kmix.data.load ({data.origin}) class_counts {data.class_counts}"
    )
    print(f"check, seed {seed}: gpu_study prepare      class_counts {ours}")
    same = (
        data.class_counts == ours
        and np.array_equal(data.train_indices, arrays[f"train_{seed}"])
        and np.array_equal(
            data.validation_indices, arrays[f"validation_{seed}"]
        )
    )
    print(
        f"check, seed {seed}: counts, training and validation indices identical: {same}"
    )
    if not same:
        raise RuntimeError(
            f"The selection of seed {seed} differs from kmix.data.load's."
        )


# ------------------------------------------------------------------- run


def job_list(seeds, methods):
    """`(seed, method)` jobs, seed-major."""
    return [(seed, method) for seed in seeds for method in methods]


def run(seeds, methods, workers, out_dir, epochs, deadline_s, grace_s):
    """Spawns the workers, waits for them (killing them past the deadline)."""
    start = time.time()
    deadline_at = start + deadline_s
    os.makedirs(out_dir, exist_ok=True)
    env = dict(os.environ)
    env["XLA_PYTHON_CLIENT_PREALLOCATE"] = "false"
    env.setdefault("KERAS_BACKEND", "jax")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"
    if FLAGS.compile_cache:
        # Every run compiles the same few programs: later runs (and the
        # other workers) read them from JAX's persistent cache.
        env["JAX_COMPILATION_CACHE_DIR"] = FLAGS.compile_cache
        env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
        env["JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES"] = "-1"
    print(
        f"run: {len(seeds) * len(methods)} jobs ({len(seeds)} seeds x {methods}), "
        f"{workers} workers, {epochs} epochs, deadline {deadline_s:.0f} s, out {out_dir}",
        flush=True,
    )
    processes = []
    for worker in range(workers):
        command = [
            sys.executable,
            os.path.abspath(__file__),
            "worker",
            f"--worker={worker}",
            f"--workers={workers}",
            f"--seeds={','.join(map(str, seeds))}",
            f"--methods={','.join(methods)}",
            f"--out_dir={out_dir}",
            f"--epochs={epochs}",
            f"--deadline_at={deadline_at}",
            f"--grace_s={grace_s}",
            f"--indices={FLAGS.indices}",
        ]
        if FLAGS.data_dir:
            command.append(f"--data_dir={FLAGS.data_dir}")
        processes.append(subprocess.Popen(command, env=env))
    kill_at = deadline_at + grace_s + 30
    while any(p.poll() is None for p in processes):
        if time.time() > kill_at:
            for worker, process in enumerate(processes):
                if process.poll() is None:
                    print(
                        f"run: worker {worker} still running past the deadline: killed",
                        flush=True,
                    )
                    process.kill()
            break
        time.sleep(1)
    for process in processes:
        process.wait()
    codes = [p.returncode for p in processes]
    done = sum(
        len(_read_lines(path)[0])
        for path in glob.glob(os.path.join(out_dir, "gpu_study_*.jsonl"))
    )
    print(
        f"run: {done} runs recorded in {time.time() - start:.0f} s; worker exit statuses {codes}",
        flush=True,
    )
    return 0 if all(c == 0 for c in codes) else 1


def load_run_data(data_dir, indices_path, seeds):
    """Test images and, per seed, the training and validation arrays."""
    import numpy as np

    arrays = read_arrays(data_dir)
    labels = arrays["train_labels"].astype("int64")
    with np.load(indices_path) as stored:
        meta = json.loads(str(stored["meta"]))
        if meta["train_labels_sha256"] != labels_digest(labels):
            raise ValueError(
                f"The training labels in {data_dir} are not those {indices_path} was prepared from."
            )
        missing = [s for s in seeds if f"train_{s}" not in stored]
        if missing:
            raise ValueError(
                f"{indices_path} lacks seeds {missing}: run `prepare --seeds=...` first."
            )
        selection = {
            s: (
                stored[f"train_{s}"].astype("int64"),
                stored[f"validation_{s}"].astype("int64"),
                stored[f"counts_{s}"].tolist(),
            )
            for s in seeds
        }

    def scaled(images):  # as kmix.data.pipeline does: float32 in [0, 1]
        return images[..., None].astype("float32") / np.float32(255.0)

    return {
        "profile": meta["selection"].get("profile", "step"),
        "imbalance_ratio": meta["selection"]["imbalance_ratio"],
        "train_images": arrays["train_images"],
        "labels": labels,
        "x_test": scaled(arrays["test_images"]),
        "y_test": arrays["test_labels"].astype("int64"),
        "selection": selection,
        "scaled": scaled,
    }


def classifier_head(settings):
    """`"normed"` (cosine logits) under LDAM, as run.py's `--classifier=auto`; else `"dense"`."""
    return "normed" if settings.get("loss") == "ldam" else "dense"


def drw_start_epoch(settings, epochs):
    """The first (0-based) epoch of deferred re-weighting, or None (none).

    run.py's `drw_start_at`: `min(round(drw_fraction * epochs), epochs - 1)`.
    """
    if settings.get("reweight") is None:
        return None
    return min(int(round(settings["drw_fraction"] * epochs)), epochs - 1)


def mix_stop_epoch(settings, epochs):
    """The first (0-based) epoch without mixing under `mix_schedule="stop"`, or None.

    run.py's `mix_stop_at`: `round(stop_fraction * epochs)`.
    """
    if settings.get("mix_schedule") != "stop":
        return None
    return int(round(settings["stop_fraction"] * epochs))


def build_model(method, class_counts, seed):
    """The study's model for `method`, built as `experiments/run.py` builds it."""
    import kmix

    settings = METHODS[method]
    return kmix.models.small_cnn(
        NUM_CLASSES,
        input_shape=(28, 28, 1),
        class_counts=class_counts,
        mix_at=list(settings.get("mix_at", [])),
        weight_decay=BUDGET["weight_decay"],
        classifier=classifier_head(settings),
        width=BUDGET["width"],
        strength=settings.get("strength", 0.5),
        major_threshold=settings.get("major_threshold", MAJOR_THRESHOLD),
        mix_prob=1.0,
        distribution="uniform",
        alpha=1.0,
        frequency_gamma=settings.get("frequency_gamma"),
        partners="any",
        seed=seed,
    )


def build_loss(method, class_counts):
    """The training loss of `method`, as run.py's `build_loss`."""
    import keras

    import kmix

    loss = METHODS[method].get("loss", "ce")
    if loss == "ldam":
        return kmix.losses.LDAMLoss(
            class_counts, max_margin=LDAM_MAX_MARGIN, scale=LDAM_SCALE
        )
    if loss == "la":
        return kmix.losses.LogitAdjustedLoss(class_counts, tau=LA_TAU)
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def method_callbacks(method, class_counts, epochs):
    """The strength schedule and deferred re-weighting of `method`, as run.py's."""
    import kmix

    settings = METHODS[method]
    result = []
    schedule = settings.get("mix_schedule", "constant")
    if settings.get("mix_at") and schedule != "constant":
        result.append(
            kmix.callbacks.MixSchedule(
                schedule=schedule,
                final_strength=0.0,
                stop_epoch=mix_stop_epoch(settings, epochs),
                decay_epochs=epochs
                if schedule in ("linear", "cosine")
                else None,
            )
        )
    reweight = settings.get("reweight")
    if reweight is not None:
        if reweight != "cb":
            raise ValueError(
                f"METHODS[{method!r}]: reweight must be 'cb' (class-balanced). "
                f"Received: {reweight!r}."
            )
        result.append(
            kmix.callbacks.DeferredReweighting(
                kmix.class_weights.class_balanced(class_counts, beta=CB_BETA),
                drw_start_epoch(settings, epochs),
            )
        )
    return result


def accuracies(labels, predictions, groups):
    """Balanced accuracy, per class, and per group of `groups` (name -> classes)."""
    import numpy as np

    per_class = [
        float(np.mean(predictions[labels == c] == c))
        for c in range(NUM_CLASSES)
    ]
    per_class = np.asarray(per_class)
    result = {
        "balanced_accuracy": float(per_class.mean()),
        "per_class_accuracy": [round(float(v), 6) for v in per_class],
    }
    for name, members in groups.items():
        result[f"{name}_accuracy"] = float(per_class[members].mean())
    return result


def train_one(seed, method, data, epochs, hard_stop_at):
    """Trains and evaluates one run; returns its record."""
    import keras
    import numpy as np

    import kmix

    start = time.perf_counter()
    keras.backend.clear_session()  # same layer names, so the same programs
    train_idx, validation_idx, counts = data["selection"][seed]
    x_train = data["scaled"](data["train_images"][train_idx])
    y_train = data["labels"][train_idx].astype("int32")
    x_validation = data["scaled"](data["train_images"][validation_idx])
    y_validation = data["labels"][validation_idx]
    keras.utils.set_random_seed(seed)
    model = build_model(method, counts, seed)
    batch_size = BUDGET["batch_size"]
    steps_per_epoch = math.ceil(len(y_train) / batch_size)
    settings = METHODS[method]
    # No metrics: they do not change training, and cost time every step.
    model.compile(
        optimizer=keras.optimizers.SGD(
            kmix.schedules.WarmupStepDecay(
                BUDGET["learning_rate"], steps_per_epoch, epochs=epochs
            ),
            momentum=BUDGET["momentum"],
        ),
        loss=build_loss(method, counts),
        jit_compile=True,
    )
    timer = epoch_timer(hard_stop_at)
    callbacks = [timer, *method_callbacks(method, counts, epochs)]
    history = model.fit(
        x_train,
        y_train,
        batch_size=batch_size,
        epochs=epochs,
        shuffle=True,
        callbacks=callbacks,
        verbose=0,
    )
    fit_s = time.perf_counter() - start
    losses = history.history.get("loss") or []
    # One prediction pass over test, validation and training images, padded
    # to whole batches so that a single program serves them all.
    evaluated = np.concatenate([data["x_test"], x_validation, x_train])
    eval_batch = 2000
    padded = -len(evaluated) % eval_batch
    if padded:
        evaluated = np.concatenate(
            [
                evaluated,
                np.zeros((padded, *evaluated.shape[1:]), evaluated.dtype),
            ]
        )
    predicted = np.argmax(
        model.predict(evaluated, batch_size=eval_batch, verbose=0), axis=-1
    )
    n_test, n_validation = len(data["y_test"]), len(y_validation)
    # The groups the study's metrics report (run.py's evaluate, through
    # GroupAccuracy.from_class_counts): major/minor on a step cell,
    # many/medium/few on an exp cell.
    groups = kmix.classes.class_groups(
        counts,
        major_threshold=settings.get("major_threshold", MAJOR_THRESHOLD),
    )
    splits = {
        "test": (data["y_test"], predicted[:n_test]),
        "validation": (
            y_validation,
            predicted[n_test : n_test + n_validation],
        ),
        "train_clean": (
            y_train.astype("int64"),
            predicted[
                n_test + n_validation : n_test + n_validation + len(y_train)
            ],
        ),
    }
    record = {
        "seed": seed,
        "method": method,
        "profile": data.get("profile", "step"),
        "imbalance_ratio": data["imbalance_ratio"],
        "complete": len(losses) == epochs,
        "epochs": epochs,
        "epochs_done": len(losses),
        "groups": groups,
        "classifier": classifier_head(settings),
        "mix_stop_epoch": mix_stop_epoch(settings, epochs),
        "drw_start_epoch": drw_start_epoch(settings, epochs),
    }
    for split, (labels, predictions) in splits.items():
        values = accuracies(labels, predictions, groups)
        record[f"{split}_balanced_accuracy"] = values["balanced_accuracy"]
        for name in groups:
            record[f"{split}_{name}_accuracy"] = values[f"{name}_accuracy"]
        if split == "test":
            record["test_per_class_accuracy"] = values["per_class_accuracy"]
    record.update(
        {
            "final_train_loss": float(losses[-1]) if losses else None,
            "class_counts": [int(c) for c in counts],
            "first_epoch_s": round(timer.seconds[0], 3)
            if timer.seconds
            else None,
            "median_epoch_s": round(float(np.median(timer.seconds[1:])), 4)
            if len(timer.seconds) > 1
            else None,
            "fit_s": round(fit_s, 2),
            "wall_s": round(time.perf_counter() - start, 2),
        }
    )
    return record


def worker_main(
    worker, workers, seeds, methods, out_dir, epochs, deadline_at, grace_s
):
    """Trains this worker's share of the jobs; one JSON line per run."""
    jobs = job_list(seeds, methods)[worker::workers]
    if not jobs:
        return 0
    import jax
    import keras

    device = jax.devices()[0]
    device_name = f"{device.platform}: {device.device_kind}"
    data = load_run_data(
        find_data_dir(FLAGS.data_dir),
        FLAGS.indices,
        sorted({s for s, _ in jobs}),
    )
    path = os.path.join(out_dir, f"gpu_study_{worker}.jsonl")
    last_s = None
    with open(path, "a") as out:
        for number, (seed, method) in enumerate(jobs):
            now = time.time()
            if deadline_at is not None and (
                now > deadline_at
                or (last_s is not None and now + last_s > deadline_at)
            ):
                print(
                    f"[w{worker}] deadline: {len(jobs) - number} of {len(jobs)} jobs not started",
                    flush=True,
                )
                break
            try:
                hard_stop = (
                    None if deadline_at is None else deadline_at + grace_s
                )
                record = train_one(seed, method, data, epochs, hard_stop)
            except Exception as error:  # report, go on with the next job
                print(
                    f"[w{worker}] seed {seed} {method}: FAILED {type(error).__name__}: {error}",
                    flush=True,
                )
                continue
            last_s = record["wall_s"]
            record.update(
                {
                    "worker": worker,
                    "device": device_name,
                    "jax": jax.__version__,
                    "keras": keras.__version__,
                    "python": platform.python_version(),
                }
            )
            out.write(json.dumps(record) + "\n")
            out.flush()
            print(run_line(worker, record), flush=True)
    return 0


def run_line(worker, record):
    """The one line printed per finished run."""
    groups = record_groups(record)
    first, last = groups[0], groups[-1]
    line = (
        f"[w{worker}] seed {record['seed']:2d} {record['method']:11s} "
        f"test bal {record['test_balanced_accuracy']:.4f} "
        f"{last} {_fmt(record.get(f'test_{last}_accuracy'))} "
        f"val {record['validation_balanced_accuracy']:.4f} "
        f"clean {first}/{last} "
        f"{_fmt(record.get(f'train_clean_{first}_accuracy'), 3)}/"
        f"{_fmt(record.get(f'train_clean_{last}_accuracy'), 3)} "
        f"{record['wall_s']:.1f} s"
    )
    return line if record["complete"] else line + " INCOMPLETE"


def record_groups(record):
    """The names of a record's class groups, in kmix's order (older records: major, minor)."""
    return list(record.get("groups") or STEP_GROUPS)


def paired_metrics(groups):
    """Record key -> label of the paired differences: balanced accuracy, then
    the test accuracy of each group of `groups` but the first (the largest
    classes), e.g. minor on a step cell, medium and few on an exp cell."""
    return {
        **PAIRED_METRICS,
        **{f"test_{g}_accuracy": f"test {g} accuracy" for g in groups[1:]},
    }


def accuracy_keys(groups):
    """The record keys of the report's accuracy columns, in table order."""
    return (
        "test_balanced_accuracy",
        "validation_balanced_accuracy",
        *(f"test_{g}_accuracy" for g in groups),
        *(f"train_clean_{g}_accuracy" for g in groups),
    )


def _fmt(value, digits=4):
    return "n/a" if value is None else f"{value:.{digits}f}"


# ---------------------------------------------------------------- report


def _read_lines(path):
    """`(records, bad)`: the complete records of a JSON-lines file, and the count of the others."""
    records, bad = [], 0
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                bad += 1
                continue
            if (
                record.get("complete")
                and "seed" in record
                and "method" in record
            ):
                records.append(record)
            else:
                bad += 1
    return records, bad


def read_records(in_dir):
    """`({method: {seed: record}}, skipped lines)` of the gpu_study_*.jsonl files in `in_dir`."""
    by_method, skipped = {}, 0
    for path in sorted(glob.glob(os.path.join(in_dir, "gpu_study_*.jsonl"))):
        records, bad = _read_lines(path)
        skipped += bad
        for record in records:
            by_method.setdefault(record["method"], {})[int(record["seed"])] = (
                record
            )
    return by_method, skipped


def t_quantile(df):
    """Student's t two-sided 95 % quantile for `df` >= 1 degrees of freedom."""
    if df < 1:
        raise ValueError(f"df must be >= 1. Received: df={df}.")
    return T_975[max(k for k in T_975 if k <= df)]


def summary(values):
    """n, mean, sample std (None for n < 2) of `values`."""
    import numpy as np

    values = np.asarray([v for v in values if v is not None], "float64")
    n = len(values)
    return {
        "n": n,
        "mean": float(values.mean()) if n else None,
        "std": float(values.std(ddof=1)) if n > 1 else None,
    }


def paired(by_method, method, reference, key):
    """Paired differences `method - reference` of `key` over their common seeds."""
    import numpy as np

    a, b = by_method.get(method, {}), by_method.get(reference, {})
    seeds = sorted(
        s
        for s in set(a) & set(b)
        if a[s].get(key) is not None and b[s].get(key) is not None
    )
    diffs = np.asarray([a[s][key] - b[s][key] for s in seeds], "float64")
    result = {
        "method": method,
        "reference": reference,
        "metric": key,
        "seeds": seeds,
        **summary(diffs),
    }
    n = len(diffs)
    result["ci95"] = None
    if n > 1:
        half = t_quantile(n - 1) * result["std"] / math.sqrt(n)
        result["ci95"] = [result["mean"] - half, result["mean"] + half]
    result["wins"] = int(np.sum(diffs > 0))
    result["differences"] = [float(d) for d in diffs]
    return result


def report(by_method, skipped=0):
    """The report's JSON: per-method summaries and paired differences."""
    order = [m for m in METHODS if m in by_method] + sorted(
        m for m in by_method if m not in METHODS
    )
    every = [r for recs in by_method.values() for r in recs.values()]
    groups = []
    for record in every:
        groups += [g for g in record_groups(record) if g not in groups]
    keys = (*accuracy_keys(groups), "wall_s")
    methods = {}
    for method in order:
        records = by_method[method]
        methods[method] = {
            "seeds": sorted(records),
            **{
                key: summary([records[s].get(key) for s in sorted(records)])
                for key in keys
            },
        }
    pairs = [(m, "ce") for m in order if m != "ce" and "ce" in by_method]
    pairs += [
        (m, r) for m, r in EXTRA_PAIRS if m in by_method and r in by_method
    ]
    metrics = paired_metrics(groups)
    differences = [
        paired(by_method, m, r, key) for key in metrics for m, r in pairs
    ]
    devices = sorted({r.get("device", "?") for r in every})
    epochs = sorted({r.get("epochs") for r in every}, key=str)
    ratios = sorted({r.get("imbalance_ratio", 100.0) for r in every})
    cells = sorted(
        {
            f"{r.get('profile', 'step')}-{r.get('imbalance_ratio', 100.0):g}"
            for r in every
        }
    )
    return {
        "cells": cells,
        "imbalance_ratios": ratios,
        "groups": groups,
        "paired_metrics": metrics,
        "epochs": epochs,
        "methods": methods,
        "paired": differences,
        "devices": devices,
        "skipped_lines": skipped,
    }


def _pct(stats):
    if stats["mean"] is None:
        return "n/a"
    std = "" if stats["std"] is None else f" ± {100 * stats['std']:.2f}"
    return f"{100 * stats['mean']:.2f}{std}"


def markdown(result):
    """The report as markdown tables (percent)."""
    groups = result["groups"]
    header = [
        "method",
        "n",
        "test balanced",
        "validation balanced",
        *(f"test {g}" for g in groups),
        *(f"clean train {g}" for g in groups),
        "s/run",
    ]
    lines = [
        f"Fashion-MNIST {'/'.join(result['cells'])} at the study's budget "
        f"({'/'.join(map(str, result['epochs']))} epochs) on "
        f"{', '.join(result['devices'])}; mean ± std over seeds, in %.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for method, stats in result["methods"].items():
        wall = stats["wall_s"]["mean"]
        cells = [
            f"{METHODS.get(method, {}).get('label', method)} (`{method}`)",
            str(stats["test_balanced_accuracy"]["n"]),
            *(_pct(stats[key]) for key in accuracy_keys(groups)),
            "n/a" if wall is None else f"{wall:.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    for key, label in result["paired_metrics"].items():
        lines += [
            "",
            f"Paired differences of {label} over common seeds (points of %; "
            "95 % t interval; wins: seeds where the difference is > 0):",
            "",
            "| difference | n | mean | std | 95 % CI | wins |",
            "|---|---|---|---|---|---|",
        ]
        for diff in result["paired"]:
            if diff["metric"] != key:
                continue
            mean = (
                "n/a" if diff["mean"] is None else f"{100 * diff['mean']:+.2f}"
            )
            std = "n/a" if diff["std"] is None else f"{100 * diff['std']:.2f}"
            ci = (
                "n/a"
                if diff["ci95"] is None
                else f"[{100 * diff['ci95'][0]:+.2f}, {100 * diff['ci95'][1]:+.2f}]"
            )
            cells = [
                f"{diff['method']} − {diff['reference']}",
                str(diff["n"]),
                mean,
                std,
                ci,
                f"{diff['wins']}/{diff['n']}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    if result["skipped_lines"]:
        lines += [
            "",
            f"({result['skipped_lines']} incomplete or unreadable lines left out.)",
        ]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ main


def check_profile(profile):
    """Raises `ValueError` naming `--profile` unless it is one of PROFILES."""
    if profile not in PROFILES:
        raise ValueError(
            f"--profile must be one of {list(PROFILES)} (the study's cells: "
            f"step or exp). Received: --profile={profile!r}."
        )


def check_methods(methods):
    """Raises `ValueError` naming `--methods` unless each is one of METHODS."""
    unknown = [m for m in methods if m not in METHODS]
    if not methods or unknown:
        raise ValueError(
            f"--methods must name some of {sorted(METHODS)}; unknown: "
            f"{unknown or 'none given'}. Received: --methods={','.join(methods)!r}."
        )


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(
            f"Give one command of {COMMANDS[:3]}. Received: {argv[1:]}."
        )
    command = argv[1]
    if REPO not in sys.path:  # kmix, from this checkout
        sys.path.insert(0, REPO)
    if command == "report":
        if not FLAGS.in_dir:
            raise app.UsageError("report needs --in_dir.")
        by_method, skipped = read_records(FLAGS.in_dir)
        result = report(by_method, skipped)
        text = markdown(result)
        print(text, end="")
        if FLAGS.md_out:
            with open(FLAGS.md_out, "w") as f:
                f.write(text)
        if FLAGS.json_out:
            with open(FLAGS.json_out, "w") as f:
                json.dump(result, f, indent=2)
        return 0
    try:
        seeds = parse_seeds(FLAGS.seeds)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    try:
        data_dir = find_data_dir(FLAGS.data_dir)
    except FileNotFoundError as error:
        raise app.UsageError(str(error)) from error
    try:
        check_profile(FLAGS.profile)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    indices = FLAGS.indices = FLAGS.indices or indices_path(
        FLAGS.profile, FLAGS.imbalance_ratio
    )
    if command == "prepare":
        if FLAGS.imbalance_ratio < 1:
            raise app.UsageError(
                f"--imbalance_ratio must be >= 1. Received: {FLAGS.imbalance_ratio}."
            )
        selection = dict(
            SELECTION,
            profile=FLAGS.profile,
            imbalance_ratio=FLAGS.imbalance_ratio,
        )
        prepare(seeds, data_dir, indices, selection)
        return 0
    try:
        check_methods(FLAGS.methods)
    except ValueError as error:
        raise app.UsageError(str(error)) from error
    if not 1 <= FLAGS.workers <= 6:
        raise app.UsageError(
            f"--workers must be 1 to 6. Received: {FLAGS.workers}."
        )
    if FLAGS.epochs < 1:
        raise app.UsageError(
            f"--epochs must be >= 1. Received: {FLAGS.epochs}."
        )
    if not FLAGS.out_dir:
        raise app.UsageError(f"{command} needs --out_dir.")
    if command == "run":
        if not os.path.isfile(indices):
            raise app.UsageError(
                f"--indices={indices!r} does not exist: run `gpu_study.py "
                f"prepare --profile={FLAGS.profile} "
                f"--imbalance_ratio={FLAGS.imbalance_ratio:g}` first (where "
                "TensorFlow is), or name the file with --indices."
            )
        return run(
            seeds,
            FLAGS.methods,
            FLAGS.workers,
            FLAGS.out_dir,
            FLAGS.epochs,
            FLAGS.deadline_s,
            FLAGS.grace_s,
        )
    return worker_main(
        FLAGS.worker,
        FLAGS.workers,
        seeds,
        FLAGS.methods,
        FLAGS.out_dir,
        FLAGS.epochs,
        FLAGS.deadline_at,
        FLAGS.grace_s,
    )


if __name__ == "__main__":
    define_flags()
    app.run(main)
