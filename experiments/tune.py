r"""Searches MajorMix's hyper-parameters with keras-tuner; writes the best as a run.py flagfile.

    python experiments/tune.py --flagfile=experiments/configs/tune_fashion_mnist_step100.cfg
    python experiments/run.py --flagfile=runs/tuning/fashion_mnist_step100/best.cfg

Takes every data/model/training flag of run.py (those not searched stay
fixed) and the tuner's flags below. Each trial trains with the code path of
run.py (`kmix.tuning.MajorMixHyperModel`) on the training split minus a
held-out validation split (--validation) and is scored by its last-epoch
balanced accuracy on that split (`val_balanced_accuracy`, maximized); the
test set is never looked at.

Writes to --directory/--project_name, next to keras-tuner's own files:
    best.cfg     run.py's flags with the best trial's values and --output_dir:
                 `run.py --flagfile=best.cfg` trains that configuration on the
                 whole training split and evaluates it on the test set
    trials.csv   one row per trial: id, status, objective, searched values
    trials.md    the same as a markdown table, best first
    trials.png   the objective against strength and major_threshold

A search started again with the same --directory and --project_name resumes:
finished trials are kept, an interrupted one is run again, and only the
missing trials up to --max_trials run (--overwrite starts afresh). A search
resumed with another search space, tuner, seeds or fixed flag is refused with
the differences named (search.json in the project records what was
searched). keras-tuner's seed is the first of --seeds plus one (keras-tuner
takes 0 as "random"), so two identical searches draw the same trials.

Distributed (keras-tuner's chief/worker mode): run one process with
KERASTUNER_TUNER_ID=chief and others with KERASTUNER_TUNER_ID=tuner0, tuner1,
..., all with KERASTUNER_ORACLE_IP and KERASTUNER_ORACLE_PORT, e.g.
scripts/tune_distributed.sh. The chief writes the reports. docs/tuning.md
explains every flag.
"""

import csv
import dataclasses
import json
import math
import os

from absl import app
from absl import flags
from absl import logging

import cli

cli.import_tensorflow_quietly()  # before kmix loads TensorFlow: no C++ start-up notices

from kmix.experiment import flags as experiment_flags  # noqa: E402
from kmix.experiment import outputs  # noqa: E402
from kmix.tuning import search_space  # noqa: E402

FLAGS = flags.FLAGS
TUNERS = ("random", "bayesian", "hyperband")
# What kmix.tuning.search_space can search: its ranges and its choices.
SEARCHABLE = search_space.RANGES + search_space.CHOICES
# Seeds averaged per trial, at least: a trial scored on one seed ranks noise.
MIN_EXECUTIONS = 2


def define_flags():
    """Defines run.py's flags and the tuner's, once."""
    experiment_flags.define_flags()
    if "tuner" in FLAGS:
        return
    flags.DEFINE_enum(
        "tuner", "random", TUNERS, "keras-tuner search algorithm."
    )
    flags.DEFINE_integer(
        "max_trials",
        8,
        "Trials to run (random, bayesian; hyperband sizes its own brackets).",
    )
    flags.DEFINE_integer(
        "executions_per_trial",
        MIN_EXECUTIONS,
        f"Trainings per trial (>= {MIN_EXECUTIONS}), execution e with the e-th of "
        "--seeds (default seeds 0, 1, ...); the objective is their mean.",
    )
    flags.DEFINE_integer(
        "hyperband_factor",
        3,
        "Hyperband's reduction factor; its max epochs is --epochs.",
    )
    flags.DEFINE_string("directory", "runs/tuning", "keras-tuner's directory.")
    flags.DEFINE_string(
        "project_name",
        "kmix",
        "keras-tuner's project: the search lives in directory/project_name.",
    )
    flags.DEFINE_list(
        "search",
        ["strength", "major_threshold", "mix_at"],
        f"Hyper-parameters to search, from {list(SEARCHABLE)}; the others keep their flag values.",
    )
    flags.DEFINE_list(
        "strength_range", ["0", "1"], "low,high of strength, in [0, 1]."
    )
    flags.DEFINE_list(
        "major_threshold_range",
        ["0.01", "1"],
        "low,high of major_threshold, in (0, 1], log scale.",
    )
    flags.DEFINE_list(
        "mix_at_choices",
        ["stem", "stage1", "stage2"],
        "mix_at choices: a point, points joined by '+' (stage1+stage2), or 'none'.",
    )
    flags.DEFINE_list("loss_choices", ["ce", "ldam"], "loss choices.")
    flags.DEFINE_list(
        "drw_start_epoch_range",
        None,
        "low,high of drw_start_epoch (needs --reweight).",
    )


def check_flags():
    """Raises `app.UsageError` for missing flags and bad flag combinations."""
    seeds = experiment_flags.check_flags()
    if FLAGS.max_trials < 1:
        raise app.UsageError(
            f"--max_trials must be >= 1; got {FLAGS.max_trials}."
        )
    if FLAGS.executions_per_trial < MIN_EXECUTIONS:
        raise app.UsageError(
            f"--executions_per_trial must be >= {MIN_EXECUTIONS}: a trial scored on "
            "one seed ranks noise (docs/tuning.md: a one-seed search picked a "
            f"config worse than the defaults); got {FLAGS.executions_per_trial}."
        )
    seeds = trial_seeds()
    if FLAGS.executions_per_trial > len(seeds):
        raise app.UsageError(
            f"--executions_per_trial must be at most the {len(seeds)} seeds of "
            f"--seeds={FLAGS.seeds!r}: execution e trains with the e-th; got "
            f"{FLAGS.executions_per_trial}."
        )
    if FLAGS.hyperband_factor < 2:
        raise app.UsageError(
            f"--hyperband_factor must be >= 2; got {FLAGS.hyperband_factor}."
        )
    experiment_flags.check_directory_flag("directory")
    try:
        hyper_model_from_flags()
    except (ValueError, TypeError) as error:
        raise app.UsageError(str(error))


def search_space_from_flags():
    """The search space of --search and the range/choice flags."""
    unknown = [name for name in FLAGS.search if name not in SEARCHABLE]
    if unknown or not FLAGS.search:
        raise ValueError(
            f"--search must list hyper-parameters from {list(SEARCHABLE)}; got {FLAGS.search!r}."
        )
    space = {}
    for name in FLAGS.search:
        if name in ("mix_at", "loss"):
            space[name] = list(FLAGS[f"{name}_choices"].value)
            continue
        flag = f"{name}_range"
        values = FLAGS[flag].value
        parse = int if name == "drw_start_epoch" else float
        try:
            low, high = (parse(v) for v in values or ())
        except ValueError:
            raise ValueError(
                f"--{flag} must be two {parse.__name__}s low,high to search {name}; got {values!r}."
            )
        space[name] = (low, high)
    return space


DEFAULT_VALIDATION = (
    200  # images per class held out to score trials when --validation is unset
)


def trial_seeds():
    """The seeds of a trial's executions: --seeds, or 0, 1, ... when it is not given."""
    if FLAGS["seeds"].using_default_value:
        return list(range(FLAGS.executions_per_trial))
    return [int(s) for s in FLAGS.seeds]


def hyper_model_from_flags():
    """The `kmix.tuning.MajorMixHyperModel` of the current flags."""
    from kmix import tuning

    seeds = trial_seeds()[: FLAGS.executions_per_trial]
    config = experiment_flags.config_from_flags(seeds[0])
    if config.validation is None:
        config = dataclasses.replace(config, validation=DEFAULT_VALIDATION)
    return tuning.MajorMixHyperModel(
        config, space=search_space_from_flags(), seeds=seeds
    )


SEARCH_FILE = (
    "search.json"  # what a search searched, for checking a resumed one
)


def tuner_seed(seed):
    """keras-tuner's seed for the first of --seeds: `seed + 1`.

    keras-tuner takes a seed of 0 (any false value) as "draw a random
    seed", so --seeds=0 would make every search different; shifting every
    seed by one keeps each search reproducible.
    """
    return seed + 1


def make_tuner(hypermodel):
    """The keras-tuner tuner of --tuner over `hypermodel`.

    A search resumed (same --directory and --project_name, no --overwrite)
    with another search space, tuner, seeds or fixed flags raises
    `app.UsageError` naming the differences: its trials would mix two
    searches. `search.json` in the project records what was searched.
    """
    import keras_tuner

    from kmix import tuning
    from kmix.experiment import distribution

    chief = not is_worker()
    project_dir = os.path.join(FLAGS.directory, FLAGS.project_name)
    description = search_description(hypermodel)
    if chief and not FLAGS.overwrite:
        check_resumed_search(project_dir, description)
    common = dict(
        objective=tuning.objective(),
        executions_per_trial=len(hypermodel.seeds),
        directory=FLAGS.directory,
        project_name=FLAGS.project_name,
        overwrite=FLAGS.overwrite and chief,  # only the chief deletes
        seed=tuner_seed(hypermodel.seeds[0]),
        distribution_strategy=distribution.make_strategy(FLAGS.strategy),
    )
    if FLAGS.tuner == "hyperband":
        tuner = keras_tuner.Hyperband(
            hypermodel,
            max_epochs=hypermodel.config.epochs,
            factor=FLAGS.hyperband_factor,
            **common,
        )
    elif FLAGS.tuner == "bayesian":
        tuner = keras_tuner.BayesianOptimization(
            hypermodel, max_trials=FLAGS.max_trials, **common
        )
    else:
        tuner = keras_tuner.RandomSearch(
            hypermodel, max_trials=FLAGS.max_trials, **common
        )
    if chief:
        os.makedirs(project_dir, exist_ok=True)
        outputs.write_json(os.path.join(project_dir, SEARCH_FILE), description)
    return tuner


def search_description(hypermodel):
    """What a search searches, as JSON values: tuner, space, seeds and the fixed config."""
    config = {
        name: value
        for name, value in dataclasses.asdict(hypermodel.config).items()
        if name not in hypermodel.space and name != "seed"
    }
    description = {
        "tuner": FLAGS.tuner,
        "hyperband_factor": FLAGS.hyperband_factor
        if FLAGS.tuner == "hyperband"
        else None,
        "space": {
            name: list(values) for name, values in hypermodel.space.items()
        },
        "seeds": list(hypermodel.seeds),
        "config": config,
    }
    return json.loads(json.dumps(description))


def search_differences(old, new):
    """The differences of two `search_description`s, as flag text."""
    differences = []
    for key, flag in (
        ("tuner", "--tuner"),
        ("hyperband_factor", "--hyperband_factor"),
        ("seeds", "--seeds/--executions_per_trial"),
    ):
        if old.get(key) != new.get(key):
            differences.append(f"{flag} was {old.get(key)}, now {new.get(key)}")
    old_space, new_space = old.get("space", {}), new.get("space", {})
    for name in sorted(set(old_space) | set(new_space)):
        if name not in new_space:
            differences.append(
                f"--search: {name} was searched over {old_space[name]}, now fixed"
            )
        elif name not in old_space:
            differences.append(
                f"--search: {name} was fixed, now searched over {new_space[name]}"
            )
        elif old_space[name] != new_space[name]:
            kind = "choices" if name in ("mix_at", "loss") else "range"
            differences.append(
                f"--{name}_{kind} was {old_space[name]}, now {new_space[name]}"
            )
    old_config, new_config = old.get("config", {}), new.get("config", {})
    for name in sorted(set(old_config) | set(new_config)):
        if name in old_space or name in new_space:
            continue
        if old_config.get(name) != new_config.get(name):
            differences.append(
                f"--{name} was {old_config.get(name)}, now {new_config.get(name)}"
            )
    return differences


def check_resumed_search(project_dir, description):
    """Raises `app.UsageError` when the search in `project_dir` searched something else."""
    path = os.path.join(project_dir, SEARCH_FILE)
    if not os.path.exists(path):
        if os.path.exists(os.path.join(project_dir, "oracle.json")):
            logging.warning(
                "Resuming the search in %s, which has no %s (it predates the check): "
                "kmix cannot tell whether it searched the same space.",
                project_dir,
                SEARCH_FILE,
            )
        return
    old = outputs.read_json(
        path,
        what="description of the earlier search",
        remedy="Pass --overwrite to start the search afresh, or use another --project_name.",
    )
    differences = search_differences(old, description)
    if differences:
        raise app.UsageError(
            f"The search in {project_dir} was run with other settings: "
            + "; ".join(differences)
            + ". Resuming it would add trials of this search to the trials of that one. "
            "Use another --project_name (or --directory), or pass --overwrite to delete "
            "the earlier search and start afresh; the same flags resume it."
        )


def search(tuner, hypermodel, verbose=1):
    """Runs (or resumes) the search; on all but worker processes writes the reports.

    Returns the paths `write_reports` returns, or None on a worker.
    """
    tuner.search(verbose=verbose)
    if is_worker():
        return None
    return write_reports(tuner, hypermodel)


def is_worker():
    """Whether this process is a keras-tuner worker (not the chief, not alone)."""
    return (
        "KERASTUNER_ORACLE_IP" in os.environ
        and "chief" not in os.environ.get("KERASTUNER_TUNER_ID", "")
    )


def trial_rows(tuner, hypermodel):
    """One dict per trial.

    Its trial_id, status, the objective, val_accuracy, epochs and the
    searched values.
    """
    from kmix import tuning

    rows = []
    for trial_id, trial in sorted(tuner.oracle.trials.items()):
        values = trial.hyperparameters.values
        row = {
            "trial_id": trial_id,
            "status": trial.status,
            tuning.OBJECTIVE: trial.score,
        }
        row["val_accuracy"] = (
            trial.metrics.get_last_value("val_accuracy")
            if trial.metrics.exists("val_accuracy")
            else None
        )
        row["epochs"] = values.get("tuner/epochs", hypermodel.config.epochs)
        row.update({name: values.get(name) for name in hypermodel.space})
        rows.append(row)
    return rows


def write_reports(tuner, hypermodel):
    """Writes best.cfg, trials.csv, trials.md and trials.png; returns their paths by name."""
    from kmix import plots
    from kmix import records
    from kmix import tuning

    best = tuner.oracle.get_best_trials(1)
    if not best:
        raise RuntimeError(
            f"No trial of {tuner.project_dir} finished with a score: see the trials' "
            "messages in its trial_*/trial.json."
        )
    best = best[0]
    rows = trial_rows(tuner, hypermodel)
    paths = {
        name: os.path.join(tuner.project_dir, name)
        for name in ("best.cfg", "trials.csv", "trials.md", "trials.png")
    }
    # Atomic writes: a kill leaves the old report or none, never half of one.
    outputs.write_text(
        paths["best.cfg"],
        best_flagfile(
            hypermodel.config_for(best.hyperparameters), best, tuner, hypermodel
        ),
    )

    def write_csv(f):
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    records.write_atomically(paths["trials.csv"], write_csv, newline="")
    outputs.write_text(paths["trials.md"], trials_table(rows, best.trial_id))
    plotted = [
        param
        for param in ("strength", "major_threshold")
        if param in hypermodel.space
    ]
    plots.plot_tuning_trials(
        rows,
        paths["trials.png"],
        objective=tuning.OBJECTIVE,
        params=plotted or list(hypermodel.space)[:1],
        group_by="mix_at" if "mix_at" in hypermodel.space else None,
        best_trial=best.trial_id,
        title=f"{FLAGS.dataset} ({FLAGS.profile}, ratio {FLAGS.imbalance_ratio:g}): "
        f"{len(rows)} trials, {FLAGS.tuner} search",
    )
    print(
        f"best trial {best.trial_id}: {tuning.OBJECTIVE} {best.score:.4f}; wrote "
        + ", ".join(paths.values())
    )
    return paths


def best_flagfile(config, best, tuner, hypermodel):
    """run.py's flags (every one, resolved) with the values of `config`."""
    from kmix import tuning

    searched = ", ".join(
        f"{name}={best.hyperparameters.values[name]}"
        for name in hypermodel.space
    )
    lines = [
        f"# Best of {len(tuner.oracle.trials)} trials of {tuner.project_dir} "
        f"({FLAGS.tuner} search):",
        f"# trial {best.trial_id}, {tuning.OBJECTIVE} {best.score:.4f} "
        f"(mean of {len(hypermodel.seeds)} execution(s), seeds {hypermodel.seeds}).",
        f"# Searched: {searched}.",
        f"# python experiments/run.py --flagfile={os.path.join(tuner.project_dir, 'best.cfg')}",
    ]
    values = {
        field.name: getattr(config, field.name)
        for field in dataclasses.fields(config)
        if field.name != "seed"
    }
    return (
        "\n".join(lines)
        + "\n"
        + experiment_flags.resolved_flags(overrides=values)
    )


def trials_table(rows, best_trial_id):
    """A markdown table of the trials, best objective first."""
    from kmix import tuning

    keys = [key for key in rows[0] if key not in ("trial_id", "status")]
    lines = [
        "| rank | trial | " + " | ".join(keys) + " | status |",
        "|---" * (len(keys) + 3) + "|",
    ]

    def rank_key(row):  # the best trial first among equal scores
        score = row[tuning.OBJECTIVE]
        return (
            -math.inf if score is None else score,
            row["trial_id"] == best_trial_id,
        )

    ordered = sorted(rows, key=rank_key, reverse=True)
    for rank, row in enumerate(ordered, start=1):
        trial = (
            f"**{row['trial_id']}**"
            if row["trial_id"] == best_trial_id
            else row["trial_id"]
        )
        cells = [_cell(row[key]) for key in keys]
        lines.append(
            f"| {rank} | {trial} | "
            + " | ".join(cells)
            + f" | {row['status']} |"
        )
    return "\n".join(lines) + "\n"


def _cell(value):
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]!r}.")
    cli.apply_log_level(FLAGS.log_level)
    check_flags()
    if FLAGS.deterministic:
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    hypermodel = hyper_model_from_flags()
    search(make_tuner(hypermodel), hypermodel, verbose=cli.keras_verbose())


if __name__ == "__main__":
    define_flags()
    cli.define_flags()
    app.run(main, flags_parser=cli.flags_parser(experiment_flags, cli))
