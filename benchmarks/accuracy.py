r"""The accuracy benchmark: every method on imbalanced Fashion-MNIST, several seeds.

    .venv/bin/python benchmarks/accuracy.py --output_dir=runs/accuracy --docs_dir=docs/benchmark
    .venv/bin/python benchmarks/accuracy.py --cells=step100 --methods=ce,ce_majormix --epochs=10

For each cell (profile x ratio) and method it runs `experiments/run.py` once
with all seeds, in a subprocess, with the same training budget for every
method (`--epochs`, the small CNN, SGD with the scaled CIFAR-LT schedule, and
`--extra_flags`). Finished runs are kept (and checked to have that budget),
so the benchmark can be stopped and started again. At the end it writes, in
`--output_dir`:

    results.md, results.json   balanced test accuracy of every method in every
                               cell, then per cell the mean and std over seeds
                               of balanced and group accuracy (major/minor,
                               or many/medium/few: see `class_groups`)
    bars_<cell>.png            per-class test accuracy of every method
    curves_<cell>_*.png        per-class training accuracy (clean pass) and
                               feature-gradient curves, CE vs CE + MajorMix
                               (seed 0): the figures of Ye, Zhan & Chao,
                               "Procrustean Training for Imbalanced Deep
                               Learning", ICCV 2021

`--docs_dir` also receives the tables and figures.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
from absl import app
from absl import flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CELLS = {
    "step10": ["--profile=step", "--imbalance_ratio=10"],
    "step100": ["--profile=step", "--imbalance_ratio=100"],
    "exp10": ["--profile=exp", "--imbalance_ratio=10"],
    "exp100": ["--profile=exp", "--imbalance_ratio=100"],
}
MIX = ["--mix_at=stage1", "--strength=0.5", "--major_threshold=0.5"]
NO_MIX = ["--mix_at="]
METHODS = {
    "ce": ("CE", NO_MIX),
    "ce_majormix": ("CE + MajorMix", MIX),
    "mixup": ("input MixUp", NO_MIX + ["--batch_mixer=mixup"]),
    "remix": ("Remix", NO_MIX + ["--batch_mixer=remix"]),
    "ce_drw": (
        "CE + DRW (class-balanced)",
        NO_MIX + ["--reweight=cb", "--drw_start_epoch={drw}"],
    ),
    "ldam_drw": (
        "LDAM-DRW",
        NO_MIX + ["--loss=ldam", "--reweight=cb", "--drw_start_epoch={drw}"],
    ),
    "ldam_drw_majormix": (
        "LDAM-DRW + MajorMix",
        MIX + ["--loss=ldam", "--reweight=cb", "--drw_start_epoch={drw}"],
    ),
    "la": ("logit adjusted", NO_MIX + ["--loss=la"]),
    "la_majormix": ("logit adjusted + MajorMix", MIX + ["--loss=la"]),
    "tuned_majormix": ("CE + MajorMix (tuned)", None),
}

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "runs/accuracy", "Where runs and tables go.")
flags.DEFINE_list("cells", list(CELLS), f"Cells to run, from {list(CELLS)}.")
flags.DEFINE_list(
    "methods", list(METHODS), f"Methods to run, from {list(METHODS)}."
)
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of every run.")
flags.DEFINE_integer(
    "epochs", 30, "Training epochs of every run (DRW starts at 80% of them)."
)
flags.DEFINE_string(
    "tuned_flagfile",
    "docs/tuning/best.cfg",
    "best.cfg of experiments/tune.py, for the tuned MajorMix method.",
)
flags.DEFINE_string("docs_dir", None, "Also copy the tables and figures here.")
flags.DEFINE_list(
    "extra_flags", [], "More run.py flags for every run, e.g. --width=16."
)


def method_flags(method, epochs):
    """run.py flags of `method`, or None when it cannot run (no tuned config)."""
    flag_list = METHODS[method][1]
    if flag_list is None:
        path = os.path.join(REPO, FLAGS.tuned_flagfile)
        if not os.path.exists(path):
            return None
        return tuned_flags(path)
    return [f.format(drw=int(0.8 * epochs)) for f in flag_list]


def tuned_flags(path):
    """The MajorMix settings of a tune.py best.cfg (data, model, budget stay the benchmark's)."""
    keep = (
        "--mix_at=",
        "--strength=",
        "--major_threshold=",
        "--mix_prob=",
        "--distribution=",
        "--alpha=",
        "--loss=",
        "--reweight=",
        "--drw_start_epoch=",
    )
    with open(path) as f:
        return [line.strip() for line in f if line.strip().startswith(keep)]


def run_cell(cell, method, epochs, seeds):
    """Runs one (cell, method) with all seeds unless its metrics exist; returns its dir."""
    out = os.path.join(FLAGS.output_dir, cell, method)
    if os.path.exists(os.path.join(out, "metrics.json")):
        check_same_budget(out, epochs, seeds)
        return out
    extra = method_flags(method, epochs)
    if extra is None:
        print(
            f"{cell} {method}: skipped, no tuned config at {FLAGS.tuned_flagfile}"
        )
        return None
    command = [
        sys.executable,
        os.path.join(REPO, "experiments", "run.py"),
        "--flagfile=experiments/configs/base_fashion_mnist.cfg",
        *CELLS[cell],
        *extra,
        f"--epochs={epochs}",
        f"--seeds={','.join(seeds)}",
        f"--output_dir={out}",
        "--verbose=0",
        *FLAGS.extra_flags,
    ]
    start = time.time()
    print(f"{cell} {method}: " + " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True, cwd=REPO)
    print(f"{cell} {method}: done in {time.time() - start:.0f} s", flush=True)
    return out


def class_groups(counts, major_threshold=0.5):
    """Groups of class indices: major/minor on step data, many/medium/few on long tails.

    The groups of `kmix.classes.class_groups(counts, "auto")`, the same as
    `kmix.metrics.GroupAccuracy.from_class_counts` reports in every run's
    metrics.json. Step profiles (two distinct counts): major classes by
    MajorMix's rule (`n_c >= major_threshold * max(n)`), the others minor.
    Long tails: the classes ranked by count cut into thirds, "many",
    "medium" and "few" (10 classes: 3 / 4 / 3); CIFAR-LT's absolute
    thresholds of 100 and 20 images would put nearly every Fashion-MNIST
    class in "many".
    """
    from kmix import (
        classes,
    )  # imported on use, as this script's other kmix imports

    return classes.class_groups(
        counts, scheme="auto", major_threshold=major_threshold
    )


def summarize_run(summary):
    """Mean and std over seeds of balanced accuracy, group accuracies and per-class accuracy."""
    seeds = [summary["per_seed"][str(s)] for s in summary["seeds"]]
    groups = class_groups(seeds[0]["class_counts"])
    values = {"balanced_accuracy": [s["balanced_accuracy"] for s in seeds]}
    for name, members in groups.items():
        values[f"{name}_accuracy"] = [
            float(np.mean(np.asarray(s["per_class_accuracy"])[members]))
            for s in seeds
        ]
    per_class = np.asarray([s["per_class_accuracy"] for s in seeds])
    return {
        "seeds": summary["seeds"],
        "groups": {name: list(members) for name, members in groups.items()},
        "class_counts": seeds[0]["class_counts"],
        "mean": {k: float(np.mean(v)) for k, v in values.items()},
        "std": {k: float(np.std(v)) for k, v in values.items()},
        "per_seed": values,
        "per_class_accuracy": per_class.mean(axis=0).tolist(),
    }


def check_same_budget(out, epochs, seeds):
    """Refuses to reuse a finished run trained with another budget or other seeds."""
    with open(os.path.join(out, "flags.cfg")) as f:
        written = {line.strip() for line in f}
    expected = [
        f"--epochs={epochs}",
        f"--seeds={','.join(seeds)}",
        *FLAGS.extra_flags,
    ]
    missing = [flag for flag in expected if flag not in written]
    if missing:
        raise app.UsageError(
            f"{out} holds a finished run whose flags.cfg lacks {missing}: it was trained with "
            "another budget. Use another --output_dir, or delete that run to train it again."
        )


def aggregate(finished):
    """results.json and the markdown tables from the finished runs' metrics.json files."""
    results = {}
    for (cell, method), out in finished.items():
        with open(os.path.join(out, "metrics.json")) as f:
            results.setdefault(cell, {})[method] = {
                "name": METHODS[method][0],
                **summarize_run(json.load(f)),
            }
    lines = [
        "### Balanced test accuracy, every cell",
        "",
        "| method | " + " | ".join(results) + " |",
        "|---" * (len(results) + 1) + "|",
    ]
    best = {
        cell: max(r["mean"]["balanced_accuracy"] for r in methods.values())
        for cell, methods in results.items()
    }
    for method in METHODS:
        row = []
        for cell, methods in results.items():
            r = methods.get(method)
            text = "" if r is None else _mean_std(r, "balanced_accuracy")
            row.append(
                f"**{text}**"
                if r and r["mean"]["balanced_accuracy"] == best[cell]
                else text
            )
        if any(row):
            lines.append(f"| {METHODS[method][0]} | " + " | ".join(row) + " |")
    lines.append("")
    for cell, methods in results.items():
        groups = list(next(iter(methods.values()))["groups"])
        lines += [
            f"### Fashion-MNIST {cell}",
            "",
            "| method | balanced accuracy | " + " | ".join(groups) + " |",
            "|---" * (len(groups) + 2) + "|",
        ]
        for r in methods.values():
            cells = [
                _mean_std(r, k)
                for k in ["balanced_accuracy"]
                + [f"{g}_accuracy" for g in groups]
            ]
            lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
        lines.append("")
    return results, "\n".join(lines)


def seed0_progress(cell, method):
    """Seed 0's ClassProgress history, and its training-accuracy quantity.

    The clean pass (no mixing, no augmentation) when the run recorded it,
    else the accuracy on the batches as trained.
    """
    from kmix.records import history_from_records
    from kmix.records import read_records

    path = os.path.join(
        FLAGS.output_dir, cell, method, "seed_0", "class_progress.json"
    )
    history = history_from_records(read_records(path)[0])
    return (
        history,
        "clean_accuracy" if "clean_accuracy" in history else "train_accuracy",
    )


def progress_table(results):
    """Markdown: per epoch, group means of seed 0's training accuracy and feature-gradient norm.

    For every cell with CE and CE + MajorMix runs: the numbers behind the
    curves, and the ratio of the last group's gradient norm to the first's
    (minor/major or few/many: the gap the paper describes).
    """
    lines = []
    for cell, methods in results.items():
        if "ce" not in methods or "ce_majormix" not in methods:
            continue
        groups = methods["ce"]["groups"]
        first, last = list(groups)[0], list(groups)[-1]
        header, columns = ["epoch"], []
        for method in ("ce", "ce_majormix"):
            history, accuracy = seed0_progress(cell, method)
            name = methods[method]["name"]
            means = {
                q: {
                    g: np.asarray(history[q]["value"])[:, members].mean(axis=1)
                    for g, members in groups.items()
                }
                for q in (accuracy, "feature_grad_norm")
            }
            grads = means["feature_grad_norm"]
            header += [f"{name}: acc {g}" for g in groups] + [
                f"{name}: grad {g}" for g in groups
            ]
            header.append(f"{name}: grad {last}/{first}")
            columns += [
                (v, ".3f") for v in (*means[accuracy].values(), *grads.values())
            ]
            columns.append((grads[last] / grads[first], ".2f"))
        epochs = history["feature_grad_norm"]["epoch"]
        lines += [
            f"### Fashion-MNIST {cell}: seed 0 per epoch, group means of {accuracy} (acc) "
            "and feature-gradient norm (grad)",
            "",
            "| " + " | ".join(header) + " |",
            "|---" * len(header) + "|",
        ]
        for i, epoch in enumerate(epochs):
            lines.append(
                f"| {epoch} | "
                + " | ".join(format(v[i], f) for v, f in columns)
                + " |"
            )
        lines.append("")
    return "\n".join(lines)


def _mean_std(result, key):
    return f"{result['mean'][key]:.4f} ± {result['std'][key]:.4f}"


def write_figures(results):
    """Per-class accuracy bars per cell and the CE vs CE+MajorMix curves (seed 0)."""
    from kmix import plots

    paths = []
    for cell, methods in results.items():
        runs = {r["name"]: r["per_class_accuracy"] for r in methods.values()}
        counts = next(iter(methods.values()))["class_counts"]
        paths.append(
            plots.plot_accuracy_bars(
                runs,
                os.path.join(FLAGS.output_dir, f"bars_{cell}.png"),
                class_counts=counts,
                title=f"Fashion-MNIST {cell}: per-class test accuracy (mean over seeds)",
                figsize=(12.0, 4.5),
            )
        )
        for method in ("ce", "ce_majormix"):
            progress = os.path.join(
                FLAGS.output_dir, cell, method, "seed_0", "class_progress.json"
            )
            if method in methods and os.path.exists(progress):
                name = METHODS[method][0]
                quantity = seed0_progress(cell, method)[1]
                how = (
                    "clean pass"
                    if quantity == "clean_accuracy"
                    else "batches as trained"
                )
                paths.append(
                    plots.plot_class_accuracy(
                        progress,
                        os.path.join(
                            FLAGS.output_dir,
                            f"curves_{cell}_{method}_train_accuracy.png",
                        ),
                        quantity=quantity,
                        title=f"{cell}, {name}: training accuracy per class ({how})",
                    )
                )
                paths.append(
                    plots.plot_feature_gradients(
                        progress,
                        os.path.join(
                            FLAGS.output_dir,
                            f"curves_{cell}_{method}_feature_gradients.png",
                        ),
                        title=f"{cell}, {name}: feature-gradient norm per class",
                    )
                )
    return paths


def main(argv):
    del argv
    unknown = [c for c in FLAGS.cells if c not in CELLS] + [
        m for m in FLAGS.methods if m not in METHODS
    ]
    if unknown:
        raise app.UsageError(
            f"Unknown cells or methods: {unknown}; see --helpfull."
        )
    start = time.time()
    finished = {}
    for cell in FLAGS.cells:
        for method in FLAGS.methods:
            out = run_cell(cell, method, FLAGS.epochs, FLAGS.seeds)
            if out:
                finished[(cell, method)] = out
    results, table = aggregate(finished)
    table += "\n" + progress_table(results)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    settings = {
        "epochs": FLAGS.epochs,
        "seeds": FLAGS.seeds,
        "extra_flags": FLAGS.extra_flags,
        "base_flagfile": "experiments/configs/base_fashion_mnist.cfg",
        "methods": {m: method_flags(m, FLAGS.epochs) for m in FLAGS.methods},
    }
    with open(os.path.join(FLAGS.output_dir, "results.json"), "w") as f:
        json.dump({"settings": settings, "cells": results}, f, indent=2)
    with open(os.path.join(FLAGS.output_dir, "results.md"), "w") as f:
        f.write(table)
    figures = write_figures(results)
    if FLAGS.docs_dir:
        os.makedirs(FLAGS.docs_dir, exist_ok=True)
        for path in [
            os.path.join(FLAGS.output_dir, n)
            for n in ("results.md", "results.json")
        ] + figures:
            shutil.copy(path, FLAGS.docs_dir)
    print(table)
    print(
        f"accuracy benchmark: {len(finished)} runs aggregated in {time.time() - start:.0f} s"
    )


if __name__ == "__main__":
    app.run(main)
