"""Several seeds of one configuration: resume, train, and aggregate over seeds."""

import json
import os

import numpy as np

from kmix.experiment import outputs
from kmix.experiment.training import train_and_evaluate


def run_seeds(configs, output_dir, flags_text="", strategy=None, verbose=1):
    """Trains and evaluates each config (one per seed); aggregates the results.

    Seeds whose `seed_<s>/metrics.json` exists are not run again; an
    unfinished seed resumes from its backup. Writes `flags.cfg`,
    `metrics.json` and `results.md` in `output_dir` and returns the summary.
    """
    os.makedirs(output_dir, exist_ok=True)
    if flags_text:
        outputs.write_text(os.path.join(output_dir, "flags.cfg"), flags_text)
    per_seed = {}
    for config in configs:
        seed_dir = os.path.join(output_dir, f"seed_{config.seed}")
        metrics_path = os.path.join(seed_dir, "metrics.json")
        if os.path.exists(metrics_path):
            with open(metrics_path) as f:
                per_seed[config.seed] = json.load(f)
            print(f"seed {config.seed}: finished earlier, kept {metrics_path}")
            continue
        result = train_and_evaluate(config, seed_dir, verbose=verbose, strategy=strategy)
        per_seed[config.seed] = result
        groups = ", ".join(f"{k} {v:.4f}" for k, v in result["group_accuracy"].items())
        print(
            f"seed {config.seed}: accuracy {result['accuracy']:.4f}, balanced accuracy "
            f"{result['balanced_accuracy']:.4f}, {groups}"
        )
    summary = summarize(per_seed)
    outputs.write_json(os.path.join(output_dir, "metrics.json"), summary)
    outputs.write_text(os.path.join(output_dir, "results.md"), results_table(summary))
    return summary


def summarize(per_seed):
    """Per-seed metrics with their mean and (population) std over seeds."""
    seeds = sorted(per_seed)
    scalars = {"accuracy": [], "balanced_accuracy": []}
    for seed in seeds:
        for key in ("accuracy", "balanced_accuracy"):
            scalars[key].append(per_seed[seed][key])
        for group, value in per_seed[seed]["group_accuracy"].items():
            scalars.setdefault(f"{group}_accuracy", []).append(value)
    per_class = np.array([per_seed[s]["per_class_accuracy"] for s in seeds])
    return {
        "seeds": seeds,
        "per_seed": {str(s): per_seed[s] for s in seeds},
        "mean": {k: float(np.mean(v)) for k, v in scalars.items()}
        | {"per_class_accuracy": per_class.mean(axis=0).tolist()},
        "std": {k: float(np.std(v)) for k, v in scalars.items()}
        | {"per_class_accuracy": per_class.std(axis=0).tolist()},
    }


def results_table(summary):
    """A markdown table: one row per seed, then mean and std."""
    keys = [k for k in summary["mean"] if k != "per_class_accuracy"]
    lines = ["| seed | " + " | ".join(keys) + " |", "|---" * (len(keys) + 1) + "|"]
    for seed in summary["seeds"]:
        row = summary["per_seed"][str(seed)]
        values = [row[k] if k in row else row["group_accuracy"][k.removesuffix("_accuracy")] for k in keys]
        lines.append(f"| {seed} | " + " | ".join(f"{v:.4f}" for v in values) + " |")
    lines.append("| mean | " + " | ".join(f"{summary['mean'][k]:.4f}" for k in keys) + " |")
    lines.append("| std | " + " | ".join(f"{summary['std'][k]:.4f}" for k in keys) + " |")
    names = summary["per_seed"][str(summary["seeds"][0])]["class_names"]
    lines += ["", "Per-class test accuracy (mean over seeds):", "",
              "| class | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|",
              "| accuracy | " + " | ".join(f"{v:.4f}" for v in summary["mean"]["per_class_accuracy"]) + " |"]
    return "\n".join(lines) + "\n"
