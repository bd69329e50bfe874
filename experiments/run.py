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
completed epoch (keras.callbacks.BackupAndRestore). The flags are those of
`kmix.ExperimentConfig` (kmix.experiment.flags generates them);
docs/experiments.md explains every flag and config.
"""

from absl import app

from kmix.experiment import flags as experiment_flags

FLAGS = experiment_flags.FLAGS


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]!r}.")
    seeds = experiment_flags.check_flags()
    import tensorflow as tf

    from kmix import experiment
    from kmix.experiment import distribution

    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()
    try:
        strategy = distribution.make_strategy(FLAGS.strategy)
    except ValueError as error:
        raise app.UsageError(str(error))
    summary = experiment.run_seeds(
        [experiment_flags.config_from_flags(seed) for seed in seeds],
        FLAGS.output_dir,
        flags_text=experiment_flags.resolved_flags(),
        strategy=strategy,
        verbose=FLAGS.verbose,
    )
    print(experiment.results_table(summary))


if __name__ == "__main__":
    experiment_flags.define_flags()
    app.run(main)
