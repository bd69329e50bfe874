r"""The method study: every method at a converged budget, chosen on validation data.

    .venv/bin/python benchmarks/study.py run                  # train what is missing
    .venv/bin/python benchmarks/study.py run --phases=1 --max_runs=4
    .venv/bin/python benchmarks/study.py run --cells=exp100   # only one cell
    .venv/bin/python benchmarks/study.py report               # tables and figures
    .venv/bin/python benchmarks/study.py recipes              # report, then the recipes

`run` trains, one subprocess of `experiments/run.py` per (cell, method, seed),
every run of the plan whose record is missing from `--records_dir`
(`docs/benchmark/study/<cell>/<method>/seed_<s>.json`), in the order of the
plan's phases, and writes each run's record as soon as it finishes: its
`metrics.json` (test, validation and clean-training accuracy per class and
group), its flags, its wall time, and (seed 0) its per-epoch curves. The
records are small and committed, so a study stopped anywhere continues from
any checkout; a killed run is simply trained again. Several drivers may
share a machine, a `--runs_dir` and a `--records_dir` (one per core, say):
each run is locked while a driver trains it, and the others skip it.

`report` reads the records only (it trains nothing) and writes
`results.md`, `results.json` and the figures into `--records_dir`. Every
choice (the best MajorMix recipe of a cell, the ablation winners) is made on
the validation split; test accuracy is reported for every method, once.

`recipes` runs `report` and writes the two shipped flagfiles,
`experiments/configs/recipe_step.cfg` and `recipe_longtail.cfg`: each holds
the flags of the MajorMix-based method with the best validation balanced
accuracy over its cells (step-100 and step-10; exp-100 and exp-10), method
settings only, so they combine with any `--dataset` and `--epochs`.

The budget (`experiments/configs/study_fashion_mnist.cfg`) is one where
plain cross-entropy over-fits: Fashion-MNIST with the largest class capped at
500 training images (CIFAR-100-LT's per-class counts: step-100 keeps
5 x 500 + 5 x 5), no augmentation, the small CNN at width 16, 60 epochs.
"""

import contextlib
import fcntl
import json
import os
import platform
import subprocess
import sys
import time

from absl import app
from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE_FLAGFILE = "experiments/configs/study_fashion_mnist.cfg"

CELLS = {
    "step100": ["--profile=step", "--imbalance_ratio=100"],
    "step10": ["--profile=step", "--imbalance_ratio=10"],
    "exp100": ["--profile=exp", "--imbalance_ratio=100"],
    "exp10": ["--profile=exp", "--imbalance_ratio=10"],
}
SEEDS = {"step100": 5, "step10": 5, "exp100": 3, "exp10": 3}

_MIX = ["--mix_at=stage1", "--strength=0.5", "--major_threshold=0.5"]
_DRW = ["--reweight=cb", "--drw_start_fraction=0.8"]
# name: (label, kind, run.py flags). Kinds: "baseline", "majormix" (every
# MajorMix-based method is a candidate for a cell's best recipe), "tuned"
# (the best trial of tune_study_step100.cfg, reported but not a candidate:
# it was picked on this validation split already).
METHODS = {
    "ce": ("CE", "baseline", []),
    "ce_drw": ("CE + DRW", "baseline", _DRW),
    "ldam_drw": ("LDAM-DRW", "baseline", ["--loss=ldam", *_DRW]),
    "la": ("logit adjusted", "baseline", ["--loss=la"]),
    "mixup": ("input MixUp", "baseline", ["--batch_mixer=mixup"]),
    "remix": ("Remix", "baseline", ["--batch_mixer=remix"]),
    "mm": ("CE + MajorMix", "majormix", _MIX),
    "mm_stop50": (
        "MajorMix for the first 50 %, then CE",
        "majormix",
        _MIX + ["--mix_schedule=stop", "--mix_stop_fraction=0.5"],
    ),
    "mm_decay": (
        "MajorMix, strength decaying linearly to 0",
        "majormix",
        _MIX + ["--mix_schedule=linear", "--mix_final_strength=0"],
    ),
    "mm_then_drw": (
        "MajorMix for 80 %, then DRW",
        "majormix",
        _MIX + ["--mix_schedule=stop", "--mix_stop_fraction=0.8", *_DRW],
    ),
    "ldam_drw_mm": (
        "LDAM-DRW + MajorMix off at DRW",
        "majormix",
        _MIX
        + [
            "--mix_schedule=stop",
            "--mix_stop_fraction=0.8",
            "--loss=ldam",
            *_DRW,
        ],
    ),
    "mm_graded": (
        "MajorMix, frequency-graded (gamma 1)",
        "majormix",
        _MIX + ["--frequency_gamma=1"],
    ),
    "mm_stem": ("MajorMix at stem", "majormix", _MIX[1:] + ["--mix_at=stem"]),
    "mm_stage2": (
        "MajorMix at stage2",
        "majormix",
        _MIX[1:] + ["--mix_at=stage2"],
    ),
    "mm_stage3": (
        "MajorMix at stage3",
        "majormix",
        _MIX[1:] + ["--mix_at=stage3"],
    ),
    "mm_pool": ("MajorMix at pool", "majormix", _MIX[1:] + ["--mix_at=pool"]),
    "mm_s025": (
        "MajorMix strength 0.25",
        "majormix",
        [_MIX[0], _MIX[2], "--strength=0.25"],
    ),
    "mm_s075": (
        "MajorMix strength 0.75",
        "majormix",
        [_MIX[0], _MIX[2], "--strength=0.75"],
    ),
    "mm_s100": (
        "MajorMix strength 1",
        "majormix",
        [_MIX[0], _MIX[2], "--strength=1"],
    ),
    "mm_beta": (
        "MajorMix, u ~ Beta(0.5, 0.5)",
        "majormix",
        _MIX + ["--distribution=beta", "--alpha=0.5"],
    ),
    "mm_t02": (
        "MajorMix threshold 0.2",
        "majormix",
        _MIX[:2] + ["--major_threshold=0.2"],
    ),
    "mm_graded05": (
        "MajorMix, frequency-graded (gamma 0.5)",
        "majormix",
        _MIX + ["--frequency_gamma=0.5"],
    ),
    "mm_graded2": (
        "MajorMix, frequency-graded (gamma 2)",
        "majormix",
        _MIX + ["--frequency_gamma=2"],
    ),
    "mm_partners": (
        "MajorMix, partners of major classes only",
        "majormix",
        _MIX + ["--mix_partners=major"],
    ),
    "mm_tuned": (
        "MajorMix tuned (strength 0.35, stage2)",
        "tuned",
        ["--mix_at=stage2", "--strength=0.35", "--major_threshold=0.5"],
    ),
}
KEY_METHODS = [
    "ce",
    "ce_drw",
    "ldam_drw",
    "la",
    "mixup",
    "remix",
    "mm",
    "mm_stop50",
    "mm_decay",
    "mm_then_drw",
    "ldam_drw_mm",
    "mm_graded",
]
ABLATIONS = {
    "step100": [
        "mm_stem",
        "mm_stage2",
        "mm_stage3",
        "mm_pool",
        "mm_s025",
        "mm_s075",
        "mm_s100",
        "mm_beta",
    ],
    # Gamma either side of 1: at gamma 1 the medium classes are mixed often
    # enough to fit late (phase 1), gamma 2 mixes them less, 0.5 more.
    "exp100": ["mm_t02", "mm_graded05", "mm_graded2"],
}
# Paired in the report with the method each changes one setting of (beside
# CE, with which every MajorMix-based method is paired).
REFERENCES = {
    **{name: "mm" for name in ABLATIONS["step100"]},
    "mm_t02": "mm",
    "mm_graded05": "mm_graded",
    "mm_graded2": "mm_graded",
    "mm_partners": "mm",
    "mm_tuned": "mm",
}
# The plan's phases, run in this order: (cells, methods, seeds).
PHASES = {
    1: (["step100", "step10", "exp100"], KEY_METHODS, [0, 1, 2]),
    2: (["step100"], ABLATIONS["step100"], [0, 1, 2]),
    3: (["exp100"], ABLATIONS["exp100"], [0, 1, 2]),
    4: (["step100", "step10"], KEY_METHODS, [3, 4]),
    5: (["step100"], ABLATIONS["step100"], [3, 4]),
    6: (["exp10"], KEY_METHODS, [0, 1, 2]),
    7: (["step100"], ["mm_tuned"], [0, 1, 2]),
    8: (["step100", "step10"], ["mm_partners"], [0, 1, 2]),
    # The best step-100 ablations on validation (3 seeds: strength 0.75, the
    # stem) on step-10 too, so they can be a step recipe or a default.
    9: (["step10"], ["mm_s075", "mm_stem"], [0, 1, 2, 3, 4]),
}

FLAGS = flags.FLAGS
flags.DEFINE_string(
    "records_dir",
    os.path.join(REPO, "docs", "benchmark", "study"),
    "Where each finished run's record goes (committed), and the report.",
)
flags.DEFINE_string(
    "runs_dir",
    os.path.join(REPO, "runs", "study"),
    "Where the runs themselves go (models, logs; not committed).",
)
flags.DEFINE_list(
    "phases", [str(p) for p in PHASES], "Phases of the plan to run, in order."
)
flags.DEFINE_list(
    "cells",
    list(CELLS),
    "Train only the runs of these cells.",
)
flags.DEFINE_integer("max_runs", None, "Stop after training this many runs.")
flags.DEFINE_string(
    "machine", platform.node(), "Name of this machine, stored in each record."
)


def plan(phases, only_cells=tuple(CELLS)):
    """The (cell, method, seed) runs of `phases` in `only_cells`, in order, without repeats."""
    jobs = []
    for phase in phases:
        cells, methods, seeds = PHASES[int(phase)]
        for seed in seeds:
            for cell in (c for c in cells if c in only_cells):
                for method in methods:
                    if (cell, method, seed) not in jobs:
                        jobs.append((cell, method, seed))
    return jobs


def record_path(cell, method, seed):
    return os.path.join(FLAGS.records_dir, cell, method, f"seed_{seed}.json")


def run_flags(cell, method, seed, output_dir):
    """The run.py command line of one run."""
    return [
        f"--flagfile={BASE_FLAGFILE}",
        *CELLS[cell],
        *METHODS[method][2],
        f"--seeds={seed}",
        f"--output_dir={output_dir}",
        "--verbose=0",
    ]


@contextlib.contextmanager
def claimed(cell, method, seed):
    """Yields whether this process holds the run's lock (else another driver trains it).

    The lock is `fcntl.flock` on `<runs_dir>/<cell>/<method>/seed_<s>.lock`:
    the system releases it when the driver ends, killed or not, so drivers
    sharing a machine and a `--runs_dir` never train one run twice and leave
    nothing stale behind.
    """
    path = os.path.join(FLAGS.runs_dir, cell, method, f"seed_{seed}.lock")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def train(cell, method, seed):
    """Trains one run in a subprocess and writes its record; returns the record."""
    output_dir = os.path.join(FLAGS.runs_dir, cell, method, f"seed_{seed}")
    command_flags = run_flags(cell, method, seed, output_dir)
    start = time.time()
    subprocess.run(
        [
            sys.executable,
            os.path.join(REPO, "experiments", "run.py"),
            *command_flags,
        ],
        check=True,
        cwd=REPO,
    )
    wall = time.time() - start
    run_dir = os.path.join(output_dir, f"seed_{seed}")
    with open(os.path.join(run_dir, "metrics.json")) as f:
        metrics = json.load(f)
    record = {
        "cell": cell,
        "method": method,
        "seed": seed,
        "flags": command_flags[:-2],
        "wall_s": round(wall, 1),
        "machine": FLAGS.machine,
        "metrics": metrics,
    }
    if seed == 0:
        record["curves"] = curves(os.path.join(run_dir, "class_progress.json"))
    write_json(record_path(cell, method, seed), record)
    return record


def curves(progress_path):
    """Per-epoch, per-class series of a run's ClassProgress records, rounded."""
    from kmix.callbacks import class_progress

    history = class_progress.history_from_records(
        class_progress.read_records(progress_path)[0]
    )
    return {
        quantity: {
            "epoch": [int(e) for e in series["epoch"]],
            "value": [
                [round(float(v), 5) for v in row] for row in series["value"]
            ],
        }
        for quantity, series in history.items()
    }


def write_json(path, value):
    """Writes JSON through a temporary file and a rename, so a kill leaves no half file."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    temporary = path + ".tmp"
    with open(temporary, "w") as f:
        json.dump(value, f, indent=1)
    os.replace(temporary, path)


def run_plan():
    jobs = plan(FLAGS.phases, FLAGS.cells)
    todo = [job for job in jobs if not os.path.exists(record_path(*job))]
    print(
        f"study: {len(jobs) - len(todo)} of {len(jobs)} runs have records; "
        f"{len(todo)} to train",
        flush=True,
    )
    for count, job in enumerate(todo[: FLAGS.max_runs], start=1):
        name = " ".join(map(str, job))
        with claimed(*job) as mine:
            if not mine or os.path.exists(record_path(*job)):
                print(
                    f"study: [{count}/{len(todo)}] {name}: "
                    f"{'being trained' if not mine else 'trained'} by another driver, skipped",
                    flush=True,
                )
                continue
            print(f"study: [{count}/{len(todo)}] {name} ...", flush=True)
            record = train(*job)
        m = record["metrics"]
        print(
            f"study: {' '.join(map(str, job))}: test balanced {m['balanced_accuracy']:.4f}, "
            f"validation {m['validation']['balanced_accuracy']:.4f}, "
            f"clean train {m['train_clean']['group_accuracy']}, {record['wall_s']:.0f} s",
            flush=True,
        )


# Per recipe: what it is for, and the --profile of its example command.
RECIPE_HEADERS = {
    "step": ("step imbalance (large and small classes)", "step"),
    "longtail": ("long tails (counts falling off exponentially)", "exp"),
}


def write_recipes(choices):
    """Writes experiments/configs/recipe_<kind>.cfg from the study's choices."""
    for kind, choice in choices.items():
        label, _, method_flags = METHODS[choice["method"]]
        purpose, profile = RECIPE_HEADERS[kind]
        status = (
            ""
            if choice["final"]
            else " PROVISIONAL: fewer than 3 seeds per cell so far."
        )
        lines = [
            f"# kmix's recipe for {purpose}: the method's settings",
            "# only, phases as fractions of --epochs. Add the data and the budget:",
            f"#   python experiments/run.py --flagfile=experiments/configs/recipe_{kind}.cfg \\",
            f"#       --dataset=cifar10 --profile={profile} --imbalance_ratio=100 --epochs=200",
            "# Written by `python benchmarks/study.py recipes` from the method study",
            f"# (docs/results.md): {label}, the MajorMix-based",
            "# method with the best validation balanced accuracy averaged over",
            f"# {', '.join(choice['cells'])} ({100 * choice['validation_balanced']:.1f} %, "
            f"{choice['seeds']} seed(s) per cell).{status}",
            *method_flags,
        ]
        path = os.path.join(
            REPO, "experiments", "configs", f"recipe_{kind}.cfg"
        )
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        print(f"study: wrote {os.path.relpath(path, REPO)}: {label}")


def main(argv):
    if len(argv) != 2 or argv[1] not in ("run", "report", "recipes"):
        raise app.UsageError("Usage: study.py run|report|recipes [flags]")
    unknown = [
        p for p in FLAGS.phases if not p.isdigit() or int(p) not in PHASES
    ]
    if unknown:
        raise app.UsageError(
            f"--phases must list phases from {list(PHASES)}; got {FLAGS.phases!r}."
        )
    unknown = [c for c in FLAGS.cells if c not in CELLS]
    if unknown:
        raise app.UsageError(
            f"--cells must list cells from {list(CELLS)}; got {FLAGS.cells!r}."
        )
    if argv[1] == "run":
        run_plan()
    else:
        from study_report import choose_shipped_recipes
        from study_report import report

        results = report(FLAGS.records_dir, METHODS, CELLS, REFERENCES)
        if argv[1] == "recipes":
            write_recipes(choose_shipped_recipes(results, METHODS))


if __name__ == "__main__":
    app.run(main)
