"""Tables and figures of the method study, from its committed run records only.

`benchmarks/study.py report` calls `report`; nothing here trains. Every choice
is made on validation balanced accuracy; test balanced accuracy is reported
for every method.
"""

import glob
import json
import os

import numpy as np

from kmix.classes import class_groups

# A recipe is chosen once every candidate of a cell has at least this many seeds.
MIN_SEEDS_TO_CHOOSE = 3
# The shipped recipes (experiments/configs/recipe_<kind>.cfg) and the cells
# whose validation accuracy chooses each.
RECIPE_CELLS = {"step": ["step100", "step10"], "longtail": ["exp100", "exp10"]}


def load_records(records_dir):
    """{cell: {method: {seed: record}}} of every record under `records_dir`."""
    records = {}
    for path in sorted(
        glob.glob(os.path.join(records_dir, "*", "*", "seed_*.json"))
    ):
        with open(path) as f:
            record = json.load(f)
        records.setdefault(record["cell"], {}).setdefault(record["method"], {})[
            record["seed"]
        ] = record
    return records


def method_summary(runs):
    """Per-seed values and mean/std of one (cell, method)'s runs."""
    seeds = sorted(runs)
    first = runs[seeds[0]]["metrics"]
    groups = class_groups(first["class_counts"])
    values = {"test": [], "validation": []}
    for seed in seeds:
        m = runs[seed]["metrics"]
        values["test"].append(m["balanced_accuracy"])
        values["validation"].append(m["validation"]["balanced_accuracy"])
        for split, key in (
            ("test", "per_class_accuracy"),
            ("train_clean", "per_class_accuracy"),
        ):
            per_class = np.asarray(
                m[key] if split == "test" else m["train_clean"][key]
            )
            for name, members in groups.items():
                values.setdefault(f"{split}_{name}", []).append(
                    float(per_class[members].mean())
                )
    return {
        "seeds": seeds,
        "groups": groups,
        "per_seed": values,
        "mean": {k: float(np.mean(v)) for k, v in values.items()},
        "std": {k: float(np.std(v)) for k, v in values.items()},
        "wall_s": float(np.mean([runs[s]["wall_s"] for s in seeds])),
        "per_class_test": np.mean(
            [runs[s]["metrics"]["per_class_accuracy"] for s in seeds], 0
        ).tolist(),
    }


def choose_recipe(summaries, methods):
    """The MajorMix-based method of a cell with the best mean validation balanced accuracy.

    None until every MajorMix-based method of the cell has
    `MIN_SEEDS_TO_CHOOSE` seeds, so that no method wins by being the only
    one with enough seeds.
    """
    candidates = [name for name in summaries if methods[name][1] == "majormix"]
    if not candidates or any(
        len(summaries[name]["seeds"]) < MIN_SEEDS_TO_CHOOSE
        for name in candidates
    ):
        return None
    return max(
        candidates, key=lambda name: summaries[name]["mean"]["validation"]
    )


def choose_shipped_recipes(results, methods):
    """Per recipe kind, the MajorMix-based method to ship, chosen on validation.

    The method with the best validation balanced accuracy averaged over the
    kind's cells (`RECIPE_CELLS`) whose own recipe is chosen (every
    MajorMix-based method there has `MIN_SEEDS_TO_CHOOSE` seeds), among the
    methods with records in every one of them; a cell still under way
    (`"pending"`) joins the choice once it is complete. With no cell
    complete, the choice compares the seeds each method has in every cell
    with records, and is provisional (`"final"` false; `"seeds"`: the
    fewest any candidate has).
    """
    choices = {}
    for kind, wanted in RECIPE_CELLS.items():
        present = [cell for cell in wanted if cell in results]
        complete = [c for c in present if results[c]["recipe"] is not None]
        cells = complete or present
        if not cells:
            continue
        candidates = {}
        for name, (_, family, _) in methods.items():
            if family != "majormix" or not all(
                name in results[cell]["methods"] for cell in cells
            ):
                continue
            summaries = [results[cell]["methods"][name] for cell in cells]
            candidates[name] = (
                min(len(s["seeds"]) for s in summaries),
                float(np.mean([s["mean"]["validation"] for s in summaries])),
            )
        if not candidates:
            continue
        seeds = min(count for count, _ in candidates.values())
        eligible = {name: value for name, (_, value) in candidates.items()}
        best = max(eligible, key=eligible.get)
        choices[kind] = {
            "method": best,
            "cells": cells,
            "seeds": seeds,
            "validation_balanced": eligible[best],
            "final": seeds >= MIN_SEEDS_TO_CHOOSE,
            "pending": [cell for cell in present if cell not in cells],
        }
    return choices


def recipes_section(choices, methods):
    """Markdown: which method each shipped recipe holds, and why."""
    lines = [
        "### The shipped recipes",
        "",
        "| recipe | method | chosen on | seeds per cell | mean validation balanced |",
        "|---|---|---|---|---|",
    ]
    for kind, choice in choices.items():
        status = "" if choice["final"] else " (provisional)"
        lines.append(
            f"| `recipe_{kind}.cfg` | {methods[choice['method']][0]}{status} | "
            f"{', '.join(choice['cells'])}{_pending(choice)} | {choice['seeds']} | "
            f"{100 * choice['validation_balanced']:.1f} |"
        )
    return "\n".join(lines + [""])


def _pending(choice):
    pending = choice.get("pending")
    return f" ({', '.join(pending)} under way)" if pending else ""


def best_baseline(summaries, methods):
    """The baseline of a cell with the best mean validation balanced accuracy, or None."""
    baselines = [name for name in summaries if methods[name][1] == "baseline"]
    if not baselines:
        return None
    return max(
        baselines, key=lambda name: summaries[name]["mean"]["validation"]
    )


def paired(summaries, a, b):
    """Per-seed differences a - b of test balanced accuracy over the seeds both have."""
    if a not in summaries or b not in summaries:
        return None
    seeds = [s for s in summaries[a]["seeds"] if s in summaries[b]["seeds"]]
    if not seeds:
        return None
    test = lambda name, s: summaries[name]["per_seed"]["test"][
        summaries[name]["seeds"].index(s)
    ]  # noqa: E731
    diffs = [test(a, s) - test(b, s) for s in seeds]
    return {
        "seeds": seeds,
        "diffs": diffs,
        "mean": float(np.mean(diffs)),
        "wins": int(sum(d > 0 for d in diffs)),
    }


def _pm(summary, key, scale=100.0):
    return f"{scale * summary['mean'][key]:.1f} ± {scale * summary['std'][key]:.1f}"


def cell_section(cell, summaries, methods, recipe, references=None):
    """Markdown of one cell: convergence, the table of every method, the paired differences."""
    any_summary = next(iter(summaries.values()))
    groups = list(any_summary["groups"])
    lines = [f"### {cell}", ""]
    if "ce" in summaries:
        ce = summaries["ce"]
        convergence = ", ".join(
            f"{g} {_pm(ce, f'train_clean_{g}')} % (per seed: "
            + ", ".join(
                f"{100 * v:.0f}" for v in ce["per_seed"][f"train_clean_{g}"]
            )
            + ")"
            for g in groups
        )
        lines += [
            f"Convergence: plain CE ends with clean training accuracy {convergence} "
            f"(mean ± std over {len(ce['seeds'])} seeds).",
            "",
        ]
    header = (
        ["method", "seeds", "validation balanced", "**test balanced**"]
        + [f"test {g}" for g in groups]
        + [f"clean train {g}" for g in groups]
        + ["s/run"]
    )
    lines += ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    order = sorted(summaries, key=lambda n: list(methods).index(n))
    for name in order:
        s = summaries[name]
        label = methods[name][0] + (
            " ← chosen on validation" if name == recipe else ""
        )
        row = [
            label,
            str(len(s["seeds"])),
            _pm(s, "validation"),
            _pm(s, "test"),
        ]
        row += [_pm(s, f"test_{g}") for g in groups] + [
            _pm(s, f"train_clean_{g}") for g in groups
        ]
        row.append(f"{s['wall_s']:.0f}")
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    baseline = best_baseline(summaries, methods)
    pairs = [(recipe, baseline), (recipe, "ldam_drw")]
    pairs += [
        (name, "ce")
        for name in order
        if methods[name][1] in ("majormix", "tuned")
    ]
    pairs += [
        (name, references[name]) for name in order if name in (references or {})
    ]
    rows = []
    for a, b in dict.fromkeys(pairs):
        if a is None or b is None:
            continue
        p = paired(summaries, a, b)
        if p is None:
            continue
        diffs = ", ".join(f"{100 * d:+.1f}" for d in p["diffs"])
        b_label = methods[b][0] + (
            " (best baseline on validation)" if b == baseline else ""
        )
        rows.append(
            f"| {methods[a][0]} − {b_label} | {diffs} | {100 * p['mean']:+.1f} | "
            f"{p['wins']}/{len(p['seeds'])} |"
        )
    if rows:
        lines += [
            "Paired differences of test balanced accuracy (points), seed by seed:",
            "",
            "| pair | per seed | mean | seeds won |",
            "|---|---|---|---|",
            *rows,
            "",
        ]
    return "\n".join(lines)


def report(records_dir, methods, cells, references=None):
    """Writes results.md and results.json (and the figures) into `records_dir`.

    Each cell's table pairs every MajorMix-based method with CE, the chosen
    recipe with the best baseline and LDAM-DRW, and each method of
    `references` (name -> name) with its reference, e.g. an ablation with
    the default it changes.
    """
    records = load_records(records_dir)
    results, sections = {}, []
    for cell in [c for c in cells if c in records]:
        summaries = {
            name: method_summary(runs) for name, runs in records[cell].items()
        }
        recipe = choose_recipe(summaries, methods)
        results[cell] = {"recipe": recipe, "methods": summaries}
        sections.append(
            cell_section(cell, summaries, methods, recipe, references)
        )
    total = sum(
        len(runs) for cell in records.values() for runs in cell.values()
    )
    choices = choose_shipped_recipes(results, methods)
    text = (
        f"<!-- written by `python benchmarks/study.py report` from {total} run records -->\n\n"
        + "\n".join(sections)
        + "\n"
        + recipes_section(choices, methods)
    )
    with open(os.path.join(records_dir, "results.md"), "w") as f:
        f.write(text)
    with open(os.path.join(records_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    with open(os.path.join(records_dir, "recipes.json"), "w") as f:
        json.dump(choices, f, indent=1)
    figures = write_curves(records, results, methods, records_dir)
    print(text)
    print(f"study report: {total} runs, figures: {figures}")
    return results


def write_curves(records, results, methods, records_dir):
    """Per cell, CE vs the chosen recipe (seed 0): the paper's three curves."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    paths = []
    for cell, result in results.items():
        recipe = result["recipe"]
        runs = {
            name: records[cell].get(name, {}).get(0)
            for name in ("ce", recipe)
            if name
        }
        runs = {
            name: run for name, run in runs.items() if run and "curves" in run
        }
        if len(runs) < 2:
            continue
        groups = class_groups(
            next(iter(runs.values()))["metrics"]["class_counts"]
        )
        first, last = list(groups)[0], list(groups)[-1]
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        for (name, run), style in zip(runs.items(), ("-", "--")):
            c = run["curves"]
            label = methods[name][0]
            for g, members in groups.items():
                # Per-group accuracy: clean training (left), test (right).
                for key, axis in (("clean_accuracy", 0), ("val_accuracy", 2)):
                    if key in c:
                        values = np.asarray(c[key]["value"])[:, members]
                        axes[axis].plot(
                            c[key]["epoch"],
                            values.mean(1),
                            style,
                            label=f"{label}: {g}",
                        )
            grad = np.asarray(c["feature_grad_norm"]["value"])
            ratio = grad[:, groups[last]].mean(1) / grad[:, groups[first]].mean(
                1
            )
            axes[1].plot(
                c["feature_grad_norm"]["epoch"], ratio, style, label=label
            )
        axes[0].set_title("clean training accuracy per group")
        axes[1].set_title(f"feature-gradient norm, {last} / {first}")
        axes[1].set_yscale("log")
        axes[2].set_title("held-out (validation) accuracy per group")
        for ax in axes:
            ax.set_xlabel("epoch")
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize="small")
        axes[1].legend(fontsize="small")
        fig.suptitle(
            f"Fashion-MNIST {cell}, seed 0: CE vs {methods[recipe][0]} (chosen on validation)"
        )
        fig.tight_layout()
        path = os.path.join(records_dir, f"curves_{cell}.png")
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
