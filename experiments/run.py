r"""Runs a kmix experiment: one configuration, one or more seeds.

    python experiments/run.py --flagfile=experiments/configs/quickstart.cfg
    python experiments/run.py --flagfile=experiments/configs/quickstart.cfg --seeds=0,1,2

Writes to --output_dir:
    flags.cfg      the resolved flags; `run.py --flagfile=flags.cfg` repeats the run
    seed_<s>/      per seed: metrics.json, model.keras, class_progress.csv/.json,
                   plots, TensorBoard logs (logs/), and backup/ while training
    metrics.json   per-seed metrics with mean and std over seeds
    results.md     the same as a table

A run that is interrupted and started again with the same --output_dir skips
the seeds already finished and resumes the unfinished one from its last
completed epoch (keras.callbacks.BackupAndRestore). docs/experiments.md
explains every flag and config.
"""

import json
import os
import sys

import numpy as np
from absl import app
from absl import flags

from kmix import experiment_config as ec

FLAGS = flags.FLAGS


def define_flags():
    """Defines every flag of run.py (and of tune.py, which reuses them), once."""
    if "dataset" in FLAGS:
        return
    d = ec.ExperimentConfig()
    # Data.
    flags.DEFINE_string("dataset", d.dataset, "tfds name (cifar10, fashion_mnist, ...) or a local path.")
    flags.DEFINE_string("data_dir", None, "tensorflow-datasets data directory.")
    flags.DEFINE_string("profile", d.profile, "Imbalance profile: exp, step or none.")
    flags.DEFINE_float("imbalance_ratio", d.imbalance_ratio, "Largest over smallest class count (>= 1).")
    flags.DEFINE_float("minor_fraction", d.minor_fraction, "Fraction of minor classes (step profile).")
    flags.DEFINE_float("train_fraction", d.train_fraction, "Keep this fraction of every class (quick runs).")
    flags.DEFINE_string("augment", d.augment, "auto, none, crop_flip, crop or flip.")
    # Model and mixing.
    flags.DEFINE_enum("model", d.model, ec.MODELS, "Network to train.")
    flags.DEFINE_integer("width", d.width, "Channels of the small CNN's first stage.")
    flags.DEFINE_enum("classifier", d.classifier, ec.CLASSIFIERS,
                      "Final layer: dense, normed (cosine logits), or auto (normed for LDAM).")
    flags.DEFINE_list("mix_at", list(d.mix_at), "Where to put MajorMix: input, stem, stage1-3, pool; empty for none.")
    flags.DEFINE_float("strength", d.strength, "MajorMix strength in [0, 1].")
    flags.DEFINE_float("major_threshold", d.major_threshold, "Major classes: n_c >= threshold * max(n).")
    flags.DEFINE_float("mix_prob", d.mix_prob, "Probability that a major-class row is mixed.")
    flags.DEFINE_enum("distribution", d.distribution, ["uniform", "beta"], "Distribution of u.")
    flags.DEFINE_float("alpha", d.alpha, "Beta(alpha, alpha) parameter when --distribution=beta.")
    flags.DEFINE_enum("mix_schedule", d.mix_schedule, ec.MIX_SCHEDULES, "Strength over epochs.")
    flags.DEFINE_integer("mix_stop_epoch", None, "With --mix_schedule=stop: epoch from which strength is 0.")
    flags.DEFINE_float("mix_final_strength", d.mix_final_strength, "Strength reached by linear/cosine decay.")
    # Loss and re-weighting.
    flags.DEFINE_enum("loss", d.loss, ec.LOSSES, "ce, focal, ldam (LDAM) or la (logit adjusted).")
    flags.DEFINE_float("focal_gamma", d.focal_gamma, "Focal loss gamma.")
    flags.DEFINE_float("ldam_max_margin", d.ldam_max_margin, "LDAM's largest margin.")
    flags.DEFINE_float("ldam_scale", d.ldam_scale, "LDAM's logit scale.")
    flags.DEFINE_float("la_tau", d.la_tau, "Logit adjustment tau (1 = balanced softmax).")
    flags.DEFINE_enum("reweight", d.reweight, ec.REWEIGHTS, "Per-class loss weights: none, inverse, cb.")
    flags.DEFINE_float("cb_beta", d.cb_beta, "Class-balanced beta.")
    flags.DEFINE_integer("drw_start_epoch", None, "Deferred re-weighting: weights apply from this epoch.")
    # Batch-mixing baselines.
    flags.DEFINE_enum("batch_mixer", d.batch_mixer, ec.BATCH_MIXERS, "Input MixUp or Remix on training batches.")
    flags.DEFINE_float("mixup_alpha", d.mixup_alpha, "Beta(alpha, alpha) of MixUp and Remix.")
    flags.DEFINE_float("remix_kappa", d.remix_kappa, "Remix kappa.")
    flags.DEFINE_float("remix_tau", d.remix_tau, "Remix tau.")
    # Optimization.
    flags.DEFINE_enum("optimizer", d.optimizer, ec.OPTIMIZERS, "sgd (with momentum) or adam.")
    flags.DEFINE_float("learning_rate", d.learning_rate, "Peak learning rate.")
    flags.DEFINE_float("momentum", d.momentum, "SGD momentum.")
    flags.DEFINE_enum("lr_schedule", d.lr_schedule, ec.LR_SCHEDULES, "constant, warmup_step (CIFAR-LT) or cosine.")
    flags.DEFINE_float("weight_decay", d.weight_decay, "Coupled weight decay of the kernels.")
    flags.DEFINE_integer("epochs", d.epochs, "Training epochs.")
    flags.DEFINE_integer("batch_size", d.batch_size, "Global batch size.")
    flags.DEFINE_bool("jit_compile", d.jit_compile, "Compile the training step with XLA.")
    # Runs and outputs.
    flags.DEFINE_list("seeds", ["0"], "Seeds to run, e.g. 0,1,2.")
    flags.DEFINE_string("output_dir", None, "Where to write results (required).")
    flags.DEFINE_bool("diagnostics", d.diagnostics, "Record per-class progress and feature gradients.")
    flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"], "Distribution strategy.")
    flags.DEFINE_bool("deterministic", True, "TF op determinism: identical metrics for the same seed on CPU.")
    flags.DEFINE_integer("verbose", 1, "Keras progress: 0 silent, 1 progress bar, 2 a line per epoch.")


def config_from_flags(seed):
    """An `ExperimentConfig` of the current flag values for one seed."""
    import kmix  # noqa: F401  (registers the kmix objects)

    values = {
        field.name: FLAGS[field.name].value
        for field in ec.ExperimentConfig.__dataclass_fields__.values()
        if field.name in FLAGS and field.name not in ("seed", "validation")
    }
    values["mix_at"] = tuple(values["mix_at"])
    return ec.ExperimentConfig(seed=seed, **values)


def check_flags():
    """Raises `app.UsageError` for missing flags and bad flag combinations."""
    if not FLAGS.output_dir:
        raise app.UsageError("--output_dir is required: where should the results go?")
    try:
        seeds = [int(s) for s in FLAGS.seeds]
    except ValueError:
        raise app.UsageError(f"--seeds must be integers separated by commas; got {FLAGS.seeds!r}.")
    if not seeds or len(set(seeds)) != len(seeds):
        raise app.UsageError(f"--seeds must list distinct seeds; got {FLAGS.seeds!r}.")
    try:
        for seed in seeds:
            config_from_flags(seed).validate()
    except (ValueError, TypeError) as error:
        raise app.UsageError(str(error))
    return seeds


def resolved_flags():
    """The flags of this file with their values, as a flagfile."""
    module_flags = FLAGS.get_flags_for_module(sys.modules[define_flags.__module__])
    lines = [flag.serialize() for flag in sorted(module_flags, key=lambda f: f.name)]
    return "\n".join(line for line in lines if line) + "\n"


def make_strategy(name):
    """The `tf.distribute` strategy of --strategy."""
    import tensorflow as tf

    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise app.UsageError("--strategy=multi_worker needs TF_CONFIG (see docs/experiments.md).")
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def run_experiment(configs, output_dir, flags_text="", strategy=None, verbose=1):
    """Trains and evaluates each config (one per seed); aggregates the results.

    Seeds whose `seed_<s>/metrics.json` exists are not run again; an
    unfinished seed resumes from its backup. Writes `flags.cfg`,
    `metrics.json` and `results.md` in `output_dir` and returns the summary.
    """
    from kmix import experiment

    os.makedirs(output_dir, exist_ok=True)
    if flags_text:
        with open(os.path.join(output_dir, "flags.cfg"), "w") as f:
            f.write(flags_text)
    per_seed = {}
    for config in configs:
        seed_dir = os.path.join(output_dir, f"seed_{config.seed}")
        metrics_path = os.path.join(seed_dir, "metrics.json")
        if os.path.exists(metrics_path):
            with open(metrics_path) as f:
                per_seed[config.seed] = json.load(f)
            print(f"seed {config.seed}: finished earlier, kept {metrics_path}")
            continue
        result = experiment.train_and_evaluate(config, seed_dir, verbose=verbose, strategy=strategy)
        per_seed[config.seed] = result
        groups = ", ".join(f"{k} {v:.4f}" for k, v in result["group_accuracy"].items())
        print(
            f"seed {config.seed}: accuracy {result['accuracy']:.4f}, balanced accuracy "
            f"{result['balanced_accuracy']:.4f}, {groups}"
        )
    summary = summarize(per_seed)
    with open(os.path.join(output_dir, "metrics.json"), "w") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(output_dir, "results.md"), "w") as f:
        f.write(results_table(summary))
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


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]!r}.")
    seeds = check_flags()
    if FLAGS.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    summary = run_experiment(
        [config_from_flags(seed) for seed in seeds],
        FLAGS.output_dir,
        flags_text=resolved_flags(),
        strategy=make_strategy(FLAGS.strategy),
        verbose=FLAGS.verbose,
    )
    print(results_table(summary))


if __name__ == "__main__":
    define_flags()
    app.run(main)
