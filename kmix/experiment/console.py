"""What a run says about itself: one-line descriptions, the results header, the closing summary.

`experiments/run.py` prints `final_summary` when its seeds are done, and
`results.md` opens with `results_header`; both describe the run from its
`ExperimentConfig` (`describe_data`, `describe_method`) and name the class
groups of `kmix.classes.class_groups` (major / minor on step-imbalanced
data, many / medium / few on long tails), the groups the run's
`group_accuracy` reports.

Example:

>>> config = kmix.ExperimentConfig(epochs=6)
>>> print(kmix.experiment.console.describe_method(config))
small_cnn (width 16), cross-entropy, MajorMix after stage1 (strength 0.5,
major classes: n_c >= 0.5 * max n); SGD (momentum 0.9), learning rate 0.1
(warmup_step), weight decay 0.0002, batch 128, 6 epochs
"""

import glob
import os

from kmix import classes

LOSS_NAMES = {
    "ce": "cross-entropy",
    "focal": "focal loss",
    "ldam": "LDAM loss",
    "la": "logit-adjusted loss",
}
GROUP_ORDER = ("major", "minor", "many", "medium", "few")


def describe_method(config):
    """The model, loss, re-weighting, mixing and optimization of `config`, in one line."""
    model = config.model + (
        f" (width {config.width})" if config.model == "small_cnn" else ""
    )
    loss = LOSS_NAMES[config.loss]
    if config.loss == "focal":
        loss += f" (gamma {config.focal_gamma:g})"
    elif config.loss == "ldam":
        loss += f" (max margin {config.ldam_max_margin:g}, scale {config.ldam_scale:g})"
    elif config.loss == "la":
        loss += f" (tau {config.la_tau:g})"
    if config.classifier_head == "normed":
        loss += " on a cosine classifier"
    parts = [model, loss]
    if config.reweight != "none":
        weights = (
            "inverse-frequency"
            if config.reweight == "inverse"
            else f"class-balanced (beta {config.cb_beta:g})"
        )
        start = config.drw_start_at
        parts.append(
            f"{weights} loss weights"
            + (f" from epoch {start}" if start else "")
        )
    if config.batch_mixer == "mixup":
        parts.append(f"input MixUp (alpha {config.mixup_alpha:g})")
    elif config.batch_mixer == "remix":
        parts.append(
            f"Remix (alpha {config.mixup_alpha:g}, kappa {config.remix_kappa:g}, "
            f"tau {config.remix_tau:g})"
        )
    if config.mix_at:
        parts.append(
            f"MajorMix after {'+'.join(config.mix_at)} ({_mixing(config)})"
        )
    else:
        parts.append("no MajorMix")
    optimizer = (
        f"SGD (momentum {config.momentum:g})"
        if config.optimizer == "sgd"
        else "Adam"
    )
    return (
        ", ".join(parts)
        + f"; {optimizer}, learning rate {config.learning_rate:g} "
        f"({config.lr_schedule}), weight decay {config.weight_decay:g}, "
        f"batch {config.batch_size}, {_epochs(config.epochs)}"
    )


def _epochs(count):
    return f"{count} epoch" if count == 1 else f"{count} epochs"


def _mixing(config):
    details = [f"strength {config.strength:g}"]
    if config.frequency_gamma is not None:
        details.append(
            f"class c mixed with probability (n_c / max n) ** {config.frequency_gamma:g}"
        )
    else:
        details.append(
            f"major classes: n_c >= {config.major_threshold:g} * max n"
        )
    if config.mix_prob != 1.0:
        details.append(f"mix_prob {config.mix_prob:g}")
    if config.distribution == "beta":
        details.append(f"u ~ Beta({config.alpha:g}, {config.alpha:g})")
    if config.mix_schedule == "stop":
        details.append(f"off from epoch {config.mix_stop_at}")
    elif config.mix_schedule != "constant":
        details.append(
            f"{config.mix_schedule} decay to {config.mix_final_strength:g}"
        )
    return ", ".join(details)


def run_label(config, seed=True):
    """A short name of the run for figure titles (and, without the seed, for `results.md`).

    Example: `fashion_mnist step-100, small_cnn, CE + MajorMix after stage1 (strength 0.5), seed 0`.
    """
    data = config.dataset
    if config.profile != "none":
        data += f" {config.profile}-{config.imbalance_ratio:g}"
    method = {
        "ce": "CE",
        "focal": "focal",
        "ldam": "LDAM",
        "la": "logit-adjusted",
    }[config.loss]
    if config.reweight != "none":
        method += (
            " + DRW" if config.drw_start_at else f" + {config.reweight} weights"
        )
    if config.batch_mixer != "none":
        method += (
            " + " + {"mixup": "MixUp", "remix": "Remix"}[config.batch_mixer]
        )
    if config.mix_at:
        method += f" + MajorMix after {'+'.join(config.mix_at)} (strength {config.strength:g})"
    return f"{data}, {config.model}, {method}" + (
        f", seed {config.seed}" if seed else ""
    )


def describe_data(config, class_counts=None):
    """The dataset, its imbalance and (given the counts) its class groups, in one line."""
    text = config.dataset
    if config.profile == "none":
        text += ", as it comes (no imbalance profile)"
    else:
        text += f", {config.profile} profile at imbalance ratio {config.imbalance_ratio:g}"
    if config.train_fraction != 1.0:
        text += f", {config.train_fraction:g} of each class"
    if config.max_per_class is not None:
        text += f", at most {config.max_per_class} images per class"
    if config.validation is not None:
        text += f", validation split {config.validation:g} held out"
    if class_counts is not None:
        groups = group_classes(class_counts, config.major_threshold)
        text += ": " + ", ".join(
            f"{len(members)} {name} classes ({_count_range(class_counts, members)} training images)"
            for name, members in groups.items()
        )
    return text


def _count_range(class_counts, members):
    counts = sorted(int(class_counts[c]) for c in members)
    return (
        f"{counts[0]}"
        if counts[0] == counts[-1]
        else f"{counts[0]}-{counts[-1]}"
    )


def group_classes(class_counts, major_threshold=0.5):
    """`kmix.classes.class_groups(class_counts, "auto", major_threshold)`, in report order.

    The groups of the run's `group_accuracy`: `major`/`minor` when the
    counts take two values, else `many`/`medium`/`few`.
    """
    groups = classes.class_groups(
        class_counts, "auto", major_threshold=major_threshold
    )
    return {name: groups[name] for name in sorted(groups, key=_group_rank)}


def _group_rank(name):
    return GROUP_ORDER.index(name) if name in GROUP_ORDER else len(GROUP_ORDER)


def class_group_of(class_counts, major_threshold=0.5):
    """The group name of each class (a list in label order)."""
    names = [None] * len(class_counts)
    for group, members in group_classes(class_counts, major_threshold).items():
        for c in members:
            names[c] = group
    return names


def results_header(summary, config):
    """The opening of `results.md`: what run it is, in a few markdown lines."""
    first = summary["per_seed"][str(summary["seeds"][0])]
    seeds = summary["seeds"]
    return [
        f"# Results: {run_label(config, seed=False)}",
        "",
        f"- **Data**: {describe_data(config, first.get('class_counts'))}.",
        f"- **Method**: {describe_method(config)}.",
        f"- **Seeds**: {', '.join(str(s) for s in seeds)} ({len(seeds)} "
        f"{'seed' if len(seeds) == 1 else 'seeds'}); numbers are test-split accuracies, "
        "balanced accuracy is the mean of the per-class accuracies.",
        "- **Flags**: `flags.cfg` next to this file (`experiments/run.py "
        "--flagfile=flags.cfg` repeats the run).",
        "",
    ]


def headline(summary, class_names=None, class_counts=None, major_threshold=0.5):
    """The balanced accuracy and its groups, one line each, mean ± std over several seeds.

    `balanced accuracy 0.6761` then, indented, `major classes 0.8908
    (T-shirt/top, ...)` for each group the run reports (classes named when
    there are at most 10).
    """
    mean, std = summary["mean"], summary["std"]
    several = len(summary["seeds"]) > 1

    def value(key):
        return (
            f"{mean[key]:.4f} ± {std[key]:.4f}"
            if several
            else f"{mean[key]:.4f}"
        )

    members = (
        group_classes(class_counts, major_threshold)
        if class_counts is not None
        else {}
    )
    named = class_names is not None and len(class_names) <= 10
    lines = [
        f"balanced accuracy {value('balanced_accuracy')}"
        + (
            f" (mean ± std over {len(summary['seeds'])} seeds)"
            if several
            else ""
        )
    ]
    groups = [
        key.removesuffix("_accuracy")
        for key in mean
        if key.endswith("_accuracy")
        and key.removesuffix("_accuracy") in GROUP_ORDER
    ]
    for group in sorted(groups, key=_group_rank):
        line = f"  {group + ' classes':<15}{value(group + '_accuracy')}"
        if named and group in members:
            line += (
                "  (" + ", ".join(class_names[c] for c in members[group]) + ")"
            )
        lines.append(line)
    return "\n".join(lines)


def final_summary(summary, output_dir, config):
    """What `experiments/run.py` prints at the end: the run, its accuracy, the files to open."""
    first = summary["per_seed"][str(summary["seeds"][0])]
    counts, names = first.get("class_counts"), first.get("class_names")
    seeds = summary["seeds"]
    seed_dir = f"seed_{seeds[0]}" if len(seeds) == 1 else "seed_*"
    plots = sorted(
        os.path.basename(p)
        for p in glob.glob(
            os.path.join(output_dir, f"seed_{seeds[0]}", "*.png")
        )
    )
    method = LOSS_NAMES[config.loss] + (
        f" + MajorMix after {'+'.join(config.mix_at)}" if config.mix_at else ""
    )
    files = [
        (
            "results.md",
            "the run, accuracy per seed and per class (minor classes marked)",
        ),
        ("metrics.json", "every number, per seed, with mean and std"),
    ]
    if plots:
        files.append(
            (
                f"{seed_dir}/*.png",
                "plots: " + ", ".join(p.removesuffix(".png") for p in plots),
            )
        )
    files.append(
        (
            f"{seed_dir}/model.keras",
            "the trained model (keras.saving.load_model, after import kmix)",
        )
    )
    width = max(len(name) for name, _ in files) + 2
    lines = [
        "",
        f"Done: {describe_data(config)}; {config.model}, {method}; {_epochs(config.epochs)}; "
        f"{'seed' if len(seeds) == 1 else 'seeds'} {', '.join(str(s) for s in seeds)}.",
        "Test " + headline(summary, names, counts, config.major_threshold),
        f"Results in {output_dir}/",
    ]
    lines += [f"  {name:<{width}}{what}" for name, what in files]
    lines.append(f"TensorBoard: tensorboard --logdir {output_dir}")
    return "\n".join(lines)
