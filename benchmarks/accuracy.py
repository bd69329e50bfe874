r"""The accuracy benchmark: every method on imbalanced Fashion-MNIST, several seeds.

    .venv/bin/python benchmarks/accuracy.py --output_dir=runs/accuracy
    .venv/bin/python benchmarks/accuracy.py --cells=step100 --methods=ce,ce_majormix --epochs=10

For each cell (profile x ratio) and method it runs `experiments/run.py` once
with all seeds, in a subprocess, with the same training budget for every
method (`--epochs`, the small CNN, SGD with the scaled CIFAR-LT schedule).
Runs that finished are kept, so the benchmark can be stopped and started
again. At the end it writes, in `--output_dir`:

    results.md, results.json   mean and std of balanced accuracy and group
                               accuracy per cell and method
    bars_<cell>.png            per-class test accuracy of every method
    curves_<cell>_*.png        training accuracy and feature-gradient curves
                               per class, CE vs CE+MajorMix (seed 0)

`--docs_dir` (e.g. docs/results) also receives the tables and figures.
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
    "ce_drw": ("CE + DRW (class-balanced)", NO_MIX + ["--reweight=cb", "--drw_start_epoch={drw}"]),
    "ldam_drw": ("LDAM-DRW", NO_MIX + ["--loss=ldam", "--reweight=cb", "--drw_start_epoch={drw}"]),
    "ldam_drw_majormix": ("LDAM-DRW + MajorMix", MIX + ["--loss=ldam", "--reweight=cb", "--drw_start_epoch={drw}"]),
    "la": ("logit adjusted", NO_MIX + ["--loss=la"]),
    "la_majormix": ("logit adjusted + MajorMix", MIX + ["--loss=la"]),
    "tuned_majormix": ("CE + MajorMix (tuned)", None),
}

FLAGS = flags.FLAGS
flags.DEFINE_string("output_dir", "runs/accuracy", "Where runs and tables go.")
flags.DEFINE_list("cells", list(CELLS), f"Cells to run, from {list(CELLS)}.")
flags.DEFINE_list("methods", list(METHODS), f"Methods to run, from {list(METHODS)}.")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds of every run.")
flags.DEFINE_integer("epochs", 30, "Training epochs of every run (DRW starts at 80% of them).")
flags.DEFINE_string("tuned_flagfile", "docs/tuning/best.cfg",
                    "best.cfg of experiments/tune.py, for the tuned MajorMix method.")
flags.DEFINE_string("docs_dir", None, "Also copy the tables and figures here.")
flags.DEFINE_list("extra_flags", [], "More run.py flags for every run, e.g. --width=16.")


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
    keep = ("--mix_at=", "--strength=", "--major_threshold=", "--mix_prob=", "--distribution=",
            "--alpha=", "--loss=", "--reweight=", "--drw_start_epoch=")
    with open(path) as f:
        return [line.strip() for line in f if line.strip().startswith(keep)]


def run_cell(cell, method, epochs, seeds):
    """Runs one (cell, method) with all seeds unless its metrics exist; returns its dir."""
    out = os.path.join(FLAGS.output_dir, cell, method)
    if os.path.exists(os.path.join(out, "metrics.json")):
        return out
    extra = method_flags(method, epochs)
    if extra is None:
        print(f"{cell} {method}: skipped, no tuned config at {FLAGS.tuned_flagfile}")
        return None
    command = [
        sys.executable, os.path.join(REPO, "experiments", "run.py"),
        "--flagfile=experiments/configs/base_fashion_mnist.cfg",
        *CELLS[cell], *extra, f"--epochs={epochs}", f"--seeds={','.join(seeds)}",
        f"--output_dir={out}", "--verbose=0", *FLAGS.extra_flags,
    ]
    start = time.time()
    print(f"{cell} {method}: " + " ".join(command[2:]), flush=True)
    subprocess.run(command, check=True, cwd=REPO)
    print(f"{cell} {method}: done in {time.time() - start:.0f} s", flush=True)
    return out


def aggregate(finished):
    """results.json and results.md from the finished runs' metrics.json files."""
    results = {}
    for (cell, method), out in finished.items():
        with open(os.path.join(out, "metrics.json")) as f:
            summary = json.load(f)
        results.setdefault(cell, {})[method] = {
            "name": METHODS[method][0], "seeds": summary["seeds"],
            "mean": summary["mean"], "std": summary["std"],
        }
    lines = []
    for cell, methods in results.items():
        groups = [k for k in next(iter(methods.values()))["mean"]
                  if k.endswith("_accuracy") and k not in ("balanced_accuracy", "per_class_accuracy")]
        lines += [f"### Fashion-MNIST {cell}", "",
                  "| method | balanced accuracy | " + " | ".join(g.replace("_", " ") for g in groups) + " |",
                  "|---" * (len(groups) + 2) + "|"]
        for method, r in methods.items():
            cells = [f"{r['mean'][k]:.4f} ± {r['std'][k]:.4f}" for k in ["balanced_accuracy"] + groups]
            lines.append(f"| {r['name']} | " + " | ".join(cells) + " |")
        lines.append("")
    return results, "\n".join(lines)


def write_figures(finished):
    """Per-class accuracy bars per cell and the CE vs CE+MajorMix curves."""
    from kmix import plots

    paths = []
    for cell in {c for c, _ in finished}:
        runs, counts = {}, None
        for (c, method), out in finished.items():
            if c != cell:
                continue
            with open(os.path.join(out, "metrics.json")) as f:
                summary = json.load(f)
            runs[METHODS[method][0]] = summary["mean"]["per_class_accuracy"]
            counts = summary["per_seed"][str(summary["seeds"][0])]["class_counts"]
        paths.append(plots.plot_accuracy_bars(
            runs, os.path.join(FLAGS.output_dir, f"bars_{cell}.png"), class_counts=counts,
            title=f"Fashion-MNIST {cell}: per-class test accuracy (mean over seeds)"))
        for method in ("ce", "ce_majormix"):
            progress = os.path.join(FLAGS.output_dir, cell, method, "seed_0", "class_progress.json")
            if os.path.exists(progress):
                name = METHODS[method][0]
                paths.append(plots.plot_class_accuracy(
                    progress, os.path.join(FLAGS.output_dir, f"curves_{cell}_{method}_train_accuracy.png"),
                    title=f"{cell}, {name}: training accuracy per class"))
                paths.append(plots.plot_feature_gradients(
                    progress, os.path.join(FLAGS.output_dir, f"curves_{cell}_{method}_feature_gradients.png"),
                    title=f"{cell}, {name}: feature-gradient norm per class"))
    return paths


def main(argv):
    del argv
    unknown = [c for c in FLAGS.cells if c not in CELLS] + [m for m in FLAGS.methods if m not in METHODS]
    if unknown:
        raise app.UsageError(f"Unknown cells or methods: {unknown}; see --helpfull.")
    start = time.time()
    finished = {}
    for cell in FLAGS.cells:
        for method in FLAGS.methods:
            out = run_cell(cell, method, FLAGS.epochs, FLAGS.seeds)
            if out:
                finished[(cell, method)] = out
    results, table = aggregate(finished)
    os.makedirs(FLAGS.output_dir, exist_ok=True)
    with open(os.path.join(FLAGS.output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(FLAGS.output_dir, "results.md"), "w") as f:
        f.write(table)
    figures = write_figures(finished)
    if FLAGS.docs_dir:
        os.makedirs(FLAGS.docs_dir, exist_ok=True)
        for path in [os.path.join(FLAGS.output_dir, n) for n in ("results.md", "results.json")] + figures:
            shutil.copy(path, FLAGS.docs_dir)
    print(table)
    print(f"accuracy benchmark: {len(finished)} runs aggregated in {time.time() - start:.0f} s")


if __name__ == "__main__":
    app.run(main)
