r"""Runs a kmix experiment: one configuration, one or more seeds.

    python experiments/run.py --flagfile=experiments/configs/quickstart.cfg
    python experiments/run.py --flagfile=experiments/configs/quickstart.cfg --seeds=0,1,2

Writes to --output_dir:
    flags.cfg      the resolved flags; `run.py --flagfile=flags.cfg` repeats the run
    seed_<s>/      per seed: metrics.json, model.keras, class_progress.csv/.json,
                   plots, TensorBoard logs (logs/), and backup/ while training
    metrics.json   per-seed metrics with mean and std over seeds (floats to 6 decimals)
    results.md     what run it is, then the same as tables (minor classes marked)

It prints where the data came from, Keras' progress (a bar on a terminal, one
line per epoch otherwise; --verbose sets it) and ends with a summary: balanced
test accuracy per class group, the output folder and the files to open.
TensorFlow's, absl's and tensorflow-datasets' own messages (TensorFlow's C++
start-up notices included) are hidden unless --log_level asks for them.

A run that is interrupted and started again with the same --output_dir skips
the seeds already finished and resumes the unfinished one from its last
completed epoch (keras.callbacks.BackupAndRestore). The flags are those of
`kmix.ExperimentConfig` (kmix.experiment.flags generates them);
docs/experiments.md explains every flag and config.

Several processes (one per machine, say) train one model together on the JAX
backend: start the same command in each, with its own --process_id and the
address of process 0 (docs/distributed.md):

    KERAS_BACKEND=jax python experiments/run.py --flagfile=... \
        --num_processes=2 --process_id=0 --coordinator=10.0.0.1:23456
    KERAS_BACKEND=jax python experiments/run.py --flagfile=... \
        --num_processes=2 --process_id=1 --coordinator=10.0.0.1:23456

--batch_size stays the global batch; process 0 writes all the results.
"""

import sys

from absl import app
from absl import flags

import cli

FLAGS = flags.FLAGS


def define_flags():
    """The flags of `kmix.experiment.flags` and `--log_level`; returns their modules."""
    from kmix.experiment import flags as experiment_flags

    experiment_flags.define_flags()
    experiment_flags.define_process_flags()
    cli.define_flags()
    return experiment_flags, cli


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]!r}.")
    cli.apply_log_level(FLAGS.log_level)
    from kmix.experiment import flags as experiment_flags

    seeds = experiment_flags.check_flags()
    experiment_flags.check_process_flags()
    import tensorflow as tf

    from kmix import experiment
    from kmix.experiment import console
    from kmix.experiment import distribution

    if FLAGS.deterministic:
        tf.config.experimental.enable_op_determinism()
    try:
        # Before Keras creates a variable: every process must take part.
        distribution.initialize_processes(
            FLAGS.num_processes, FLAGS.process_id, FLAGS.coordinator
        )
        distribution.check_batch_size(FLAGS.batch_size)
        strategy = distribution.make_strategy(FLAGS.strategy)
    except ValueError as error:
        raise app.UsageError(experiment_flags.flag_message(str(error)))
    chief = distribution.is_chief()
    configs = [experiment_flags.config_from_flags(seed) for seed in seeds]
    try:
        summary = experiment.run_seeds(
            configs,
            FLAGS.output_dir,
            flags_text=experiment_flags.resolved_flags(),
            strategy=strategy,
            # Only process 0 shows Keras' progress.
            verbose=cli.keras_verbose() if chief else 0,
            overwrite=FLAGS.overwrite,
        )
    except experiment.StaleOutputError as error:
        raise app.UsageError(str(error))
    except experiment.NonFiniteLossError as error:
        # The message names the epoch and the settings; no traceback needed.
        sys.exit(f"run.py: {error}")
    if chief:
        print(console.final_summary(summary, FLAGS.output_dir, configs[0]))
    else:
        print(
            f"Process {FLAGS.process_id} of {FLAGS.num_processes}: done; process 0 "
            f"wrote the results to its --output_dir ({FLAGS.output_dir})."
        )


if __name__ == "__main__":
    cli.import_tensorflow_quietly(sys.argv)  # before kmix loads it
    app.run(main, flags_parser=cli.flags_parser(*define_flags()))
