"""Several seeds of one configuration: resume, train, and aggregate over seeds."""

import os
import re
import shutil

import numpy as np

from kmix.experiment import console
from kmix.experiment import distribution
from kmix.experiment import outputs
from kmix.experiment.training import train_and_evaluate

# Flags that say how to run, not what: a rerun may change them and resume.
RUN_ONLY_FLAGS = (
    "output_dir",
    "seeds",
    "verbose",
    "overwrite",
    "strategy",
    "deterministic",
    "num_processes",
    "process_id",
    "coordinator",
)


class StaleOutputError(ValueError):
    """`output_dir` holds the results of other flags."""


def run_seeds(
    configs,
    output_dir,
    flags_text="",
    strategy=None,
    verbose=1,
    overwrite=False,
):
    """Trains and evaluates each config (one per seed); aggregates the results.

    Seeds whose `seed_<s>/metrics.json` exists are not run again; an
    unfinished seed resumes from its backup. Writes `flags.cfg`,
    `metrics.json` and `results.md` in `output_dir` and returns the summary.

    With `flags_text` (the resolved flags), an `output_dir` whose
    `flags.cfg` holds other flags (`RUN_ONLY_FLAGS` aside: other seeds, say,
    may be added) raises `StaleOutputError` naming the differing flags,
    since its results and backups belong to those flags; with
    `overwrite=True` the earlier results (`seed_*/`, `metrics.json`,
    `results.md`, `flags.cfg`) are deleted instead and the seeds run
    afresh. A corrupt or truncated `seed_<s>/metrics.json` raises an error
    naming it.

    Over several processes (`distribution.initialize_processes`) every
    process calls it with the same arguments and they train each seed
    together; process 0 alone reads and writes `output_dir` (the others
    follow its decisions: which seeds are finished, or its error) and
    returns the summary; the others return None.
    """
    chief = distribution.is_chief()

    def prepare():  # process 0 alone: its output_dir, the seeds it finished
        _make_output_dir(output_dir)
        if flags_text:
            _check_earlier_flags(output_dir, flags_text, overwrite)
            outputs.write_text(
                os.path.join(output_dir, "flags.cfg"), flags_text
            )
        return {
            str(config.seed): _finished_metrics(output_dir, config.seed)
            for config in configs
            if os.path.exists(_metrics_path(output_dir, config.seed))
        }

    finished = distribution.run_on_chief(
        prepare, errors=(StaleOutputError, ValueError)
    )
    per_seed = {}
    for config in configs:
        if str(config.seed) in finished:
            per_seed[config.seed] = finished[str(config.seed)]
            if chief:
                print(
                    f"seed {config.seed}: finished earlier, kept "
                    f"{_metrics_path(output_dir, config.seed)}"
                )
            continue
        seed_dir = os.path.join(output_dir, f"seed_{config.seed}")
        result = train_and_evaluate(
            config, seed_dir, verbose=verbose, strategy=strategy
        )
        per_seed[config.seed] = result
        if "weights_fingerprint" in result:
            print(
                f"seed {config.seed}: weights fingerprint "
                f"{result['weights_fingerprint']} (process "
                f"{distribution.process_index()} of {distribution.process_count()}; "
                "the same on every process)"
            )
        if not chief:
            continue
        groups = ", ".join(
            f"{k} {v:.4f}" for k, v in result["group_accuracy"].items()
        )
        print(
            f"seed {config.seed}: accuracy {result['accuracy']:.4f}, balanced accuracy "
            f"{result['balanced_accuracy']:.4f}, {groups}"
        )
    if not chief:
        return None
    summary = summarize(per_seed)
    outputs.write_json(os.path.join(output_dir, "metrics.json"), summary)
    outputs.write_text(
        os.path.join(output_dir, "results.md"),
        results_table(summary, configs[0]),
    )
    return summary


def _metrics_path(output_dir, seed):
    return os.path.join(output_dir, f"seed_{seed}", "metrics.json")


def _finished_metrics(output_dir, seed):
    """The `metrics.json` of a finished seed; a corrupt one raises an error naming it."""
    return outputs.read_json(
        _metrics_path(output_dir, seed),
        what=f"metrics of finished seed {seed}",
        remedy=f"Delete it to train seed {seed} again (or restore it from a copy).",
    )


def _make_output_dir(output_dir):
    """Creates `output_dir`; a regular file in its way raises an error naming it."""
    try:
        os.makedirs(output_dir, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as error:
        blocking = blocking_file(output_dir)
        raise ValueError(
            f"Argument `output_dir` must be a directory path, but {blocking or output_dir!r} "
            f"is a regular file. Received: output_dir={output_dir!r}. Choose another "
            "--output_dir."
        ) from error


def blocking_file(path):
    """The regular file at `path` or at one of its parents, or None."""
    path = os.path.abspath(path)
    while True:
        if os.path.exists(path) and not os.path.isdir(path):
            return path
        parent = os.path.dirname(path)
        if parent == path:
            return None
        path = parent


def flag_values(text):
    """`{name: value}` of flagfile text (`--name=value`, `--name`, `--noname` lines)."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("--"):
            continue
        name, sep, value = line[2:].partition("=")
        if not sep:
            name, value = (
                (name[2:], "false") if name.startswith("no") else (name, "true")
            )
        values[name] = value
    return values


def flag_differences(old_text, new_text, ignore=RUN_ONLY_FLAGS):
    """`[(name, old value, new value)]` of the flags two flagfile texts set differently.

    A flag one text does not set reads as None. Flags in `ignore` are
    left out.
    """
    old, new = flag_values(old_text), flag_values(new_text)
    return [
        (name, old.get(name), new.get(name))
        for name in sorted(set(old) | set(new))
        if name not in ignore and old.get(name) != new.get(name)
    ]


def _check_earlier_flags(output_dir, flags_text, overwrite):
    """Refuses (or with `overwrite` clears) an `output_dir` written with other flags."""
    path = os.path.join(output_dir, "flags.cfg")
    if not os.path.exists(path):
        return
    with open(path) as f:
        differences = flag_differences(f.read(), flags_text)
    if not differences:
        return
    listed = "; ".join(
        f"--{name} was {'unset' if old is None else old}, now {'unset' if new is None else new}"
        for name, old, new in differences
    )
    if not overwrite:
        raise StaleOutputError(
            f"--output_dir={output_dir} holds the results (or the backups of an "
            f"unfinished run) of other flags: {listed}. They would be reported or "
            "resumed as if they came from these flags. Use a new --output_dir, or "
            "pass --overwrite to delete them (seed_*/, metrics.json, results.md, "
            "flags.cfg there) and start afresh. Restarting with the same flags "
            "resumes the run."
        )
    print(
        f"--overwrite: deleting the results of other flags in {output_dir} ({listed})"
    )
    for name in os.listdir(output_dir):
        full = os.path.join(output_dir, name)
        if re.fullmatch(r"seed_-?\d+", name) and os.path.isdir(full):
            shutil.rmtree(full)
        elif name in ("metrics.json", "results.md", "flags.cfg"):
            os.remove(full)


def summarize(per_seed):
    """Per-seed metrics with their mean and (population) std over seeds.

    Every float is rounded by `outputs.round_floats` (the per-seed metrics
    before the means, so a resumed run, which reads them back from
    `metrics.json`, summarizes to the same numbers).
    """
    per_seed = {
        seed: outputs.round_floats(result) for seed, result in per_seed.items()
    }
    seeds = sorted(per_seed)
    scalars = {"accuracy": [], "balanced_accuracy": []}
    for seed in seeds:
        for key in ("accuracy", "balanced_accuracy"):
            scalars[key].append(per_seed[seed][key])
        for group, value in per_seed[seed]["group_accuracy"].items():
            scalars.setdefault(f"{group}_accuracy", []).append(value)
    per_class = np.array([per_seed[s]["per_class_accuracy"] for s in seeds])
    return outputs.round_floats(
        {
            "seeds": seeds,
            "per_seed": {str(s): per_seed[s] for s in seeds},
            "mean": {k: float(np.mean(v)) for k, v in scalars.items()}
            | {"per_class_accuracy": per_class.mean(axis=0).tolist()},
            "std": {k: float(np.std(v)) for k, v in scalars.items()}
            | {"per_class_accuracy": per_class.std(axis=0).tolist()},
        }
    )


def results_table(summary, config=None):
    """`results.md`: what run it is (given its `config`), a table of one row
    per seed then mean and std, and the per-class accuracy with each class's
    group (`major`/`minor` or `many`/`medium`/`few`) and training count."""
    keys = [k for k in summary["mean"] if k != "per_class_accuracy"]
    lines = (
        console.results_header(summary, config) if config is not None else []
    )
    lines += [
        "| seed | " + " | ".join(keys) + " |",
        "|---" * (len(keys) + 1) + "|",
    ]
    for seed in summary["seeds"]:
        row = summary["per_seed"][str(seed)]
        values = [
            row[k]
            if k in row
            else row["group_accuracy"][k.removesuffix("_accuracy")]
            for k in keys
        ]
        lines.append(
            f"| {seed} | " + " | ".join(f"{v:.4f}" for v in values) + " |"
        )
    lines.append(
        "| mean | "
        + " | ".join(f"{summary['mean'][k]:.4f}" for k in keys)
        + " |"
    )
    lines.append(
        "| std | " + " | ".join(f"{summary['std'][k]:.4f}" for k in keys) + " |"
    )
    first = summary["per_seed"][str(summary["seeds"][0])]
    names, counts = first["class_names"], first.get("class_counts")
    groups = (
        console.class_group_of(
            counts, config.major_threshold if config else 0.5
        )
        if counts is not None
        else [""] * len(names)
    )
    several = len(summary["seeds"]) > 1
    lines += [
        "",
        "Per-class test accuracy"
        + (" (mean ± std over seeds)" if several else "")
        + "; the minor (or few-shot) classes in bold:",
        "",
        "| label | class | group | training images | test accuracy |",
        "|---|---|---|---|---|",
    ]
    for c, name in enumerate(names):
        value = f"{summary['mean']['per_class_accuracy'][c]:.4f}"
        if several:
            value += f" ± {summary['std']['per_class_accuracy'][c]:.4f}"
        group = groups[c] or ""
        if group in ("minor", "few"):
            name, group = f"**{name}**", f"**{group}**"
        count = counts[c] if counts is not None else ""
        lines.append(f"| {c} | {name} | {group} | {count} | {value} |")
    return "\n".join(lines) + "\n"
