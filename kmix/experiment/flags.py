"""absl flags generated from `ExperimentConfig`, shared by `experiments/run.py` and `tune.py`.

Every field of `kmix.ExperimentConfig` becomes a flag of the same name, with
the help text and choices of its metadata; the run flags (`--seeds`,
`--output_dir`, `--strategy`, ...) are defined here too.

Example:

>>> from absl import flags
>>> from kmix.experiment import flags as experiment_flags
>>> experiment_flags.define_flags()
>>> flags.FLAGS(["run.py", "--epochs=3", "--output_dir=runs/demo"])
['run.py']
>>> experiment_flags.config_from_flags(seed=0).epochs
3
"""

import copy
import dataclasses
import re
import sys

from absl import app
from absl import flags

from kmix.experiment.config import ExperimentConfig

FLAGS = flags.FLAGS
STRATEGIES = ("default", "mirrored", "multi_worker")
# Flags of a run over several processes (`define_process_flags`).
PROCESS_FLAGS = ("num_processes", "process_id", "coordinator")
# Flags `resolved_flags` leaves out: a flagfile that repeats a run must not
# also repeat a deletion, and the process flags differ from process to
# process (each adds its own to the flagfile).
NOT_RESOLVED = ("overwrite",) + PROCESS_FLAGS


def define_flags():
    """Defines one flag per `ExperimentConfig` field, and the run flags, once."""
    if "dataset" in FLAGS:
        return
    for field in dataclasses.fields(ExperimentConfig):
        if field.metadata.get("flag", True):
            _define_field_flag(field)
    flags.DEFINE_list("seeds", ["0"], "Seeds to run, e.g. 0,1,2.")
    flags.DEFINE_string(
        "output_dir", None, "Where to write results (required)."
    )
    flags.DEFINE_enum(
        "strategy", "default", STRATEGIES, "Distribution strategy."
    )
    flags.DEFINE_bool(
        "deterministic",
        True,
        "TF op determinism: identical metrics for the same seed on CPU.",
    )
    flags.DEFINE_integer(
        "verbose",
        1,
        "Keras progress: 0 silent, 1 progress bar, 2 a line per epoch.",
    )
    flags.DEFINE_bool(
        "overwrite",
        False,
        "Start afresh. run.py: delete the results in --output_dir when they come from other flags "
        "(without it such a rerun is refused; the same flags resume either way). tune.py: delete "
        "an earlier search of the same project instead of resuming it (not on workers).",
    )


def define_process_flags():
    """Defines `--num_processes`, `--process_id` and `--coordinator` once (run.py)."""
    if "num_processes" in FLAGS:
        return
    from kmix.experiment.distribution import DEFAULT_COORDINATOR

    flags.DEFINE_integer(
        "num_processes",
        1,
        "Train one model over this many processes (one per machine, say), "
        "data-parallel; needs KERAS_BACKEND=jax (docs/distributed.md).",
    )
    flags.DEFINE_integer(
        "process_id",
        0,
        "This process's index in [0, --num_processes); process 0 coordinates "
        "and writes the results.",
    )
    flags.DEFINE_string(
        "coordinator",
        DEFAULT_COORDINATOR,
        "host:port where process 0 listens for the others (and binds only "
        "there): loopback by default; process 0's network address for "
        "several machines.",
    )


def check_process_flags():
    """Raises `app.UsageError` for bad `define_process_flags` values.

    Checks the range of --process_id, the form of --coordinator, and that
    several processes split --batch_size evenly and run on the JAX backend
    without a tf.distribute --strategy (which needs the TensorFlow backend).
    """
    from kmix.experiment import distribution

    try:
        distribution.check_processes(
            FLAGS.num_processes,
            FLAGS.process_id,
            FLAGS.coordinator,
            strategy=FLAGS.strategy,
            batch_size=FLAGS.batch_size,
        )
        if FLAGS.strategy != "default":
            distribution.check_strategy_backend(FLAGS.strategy)
    except (ValueError, TypeError) as error:
        raise app.UsageError(flag_message(str(error)))


def _define_field_flag(field):
    help_text = field.metadata["help"]
    choices = field.metadata.get("choices")
    default = (
        list(field.default)
        if isinstance(field.default, tuple)
        else field.default
    )
    if choices:
        flags.DEFINE_enum(field.name, default, list(choices), help_text)
    elif field.type is bool:
        flags.DEFINE_bool(field.name, default, help_text)
    elif field.type is int:
        flags.DEFINE_integer(field.name, default, help_text)
    elif field.type is float:
        flags.DEFINE_float(field.name, default, help_text)
    elif field.type is tuple:
        flags.DEFINE_list(field.name, default, help_text)
    else:
        flags.DEFINE_string(field.name, default, help_text)


def config_from_flags(seed):
    """The `ExperimentConfig` of the current flag values, for one seed."""
    values = {
        field.name: FLAGS[field.name].value
        for field in dataclasses.fields(ExperimentConfig)
        if field.name in FLAGS and field.metadata.get("flag", True)
    }
    for field in dataclasses.fields(
        ExperimentConfig
    ):  # list flags -> tuple fields
        if field.type is tuple and field.name in values:
            values[field.name] = tuple(values[field.name])
    return ExperimentConfig(seed=seed, **values)


def check_flags():
    """Raises `app.UsageError` for missing flags and bad values; returns the seeds."""
    if not FLAGS.output_dir:
        raise app.UsageError(
            "--output_dir is required: where should the results go?"
        )
    try:
        seeds = [int(s) for s in FLAGS.seeds]
    except ValueError:
        raise app.UsageError(
            f"--seeds must be integers separated by commas; got {FLAGS.seeds!r}."
        )
    if not seeds or len(set(seeds)) != len(seeds):
        raise app.UsageError(
            f"--seeds must list distinct seeds; got {FLAGS.seeds!r}."
        )
    if any(not 0 <= seed < 2**32 - 1 for seed in seeds):
        raise app.UsageError(
            f"--seeds must be integers in [0, 2**32 - 1); got {FLAGS.seeds!r}."
        )
    check_directory_flag("output_dir")
    try:
        for seed in seeds:
            config_from_flags(seed).validate()
    except (ValueError, TypeError) as error:
        raise app.UsageError(flag_message(str(error)))
    return seeds


def check_directory_flag(name):
    """Raises `app.UsageError` when the directory of flag `name` cannot be created.

    A regular file at that path or at one of its parents would make the
    run fail later, with a bare `FileExistsError` / `NotADirectoryError`.
    """
    from kmix.experiment.runs import blocking_file

    path = FLAGS[name].value
    blocking = blocking_file(path) if path else None
    if blocking:
        raise app.UsageError(
            f"--{name}={path} cannot be a directory: {blocking} is a regular file. "
            f"Choose another --{name}."
        )


def flag_message(message):
    """An `ExperimentConfig` (or process setting) error re-worded with flag
    names: `strength` -> --strength."""
    fields = {field.name for field in dataclasses.fields(ExperimentConfig)}
    fields |= set(PROCESS_FLAGS) | {"strategy"}
    message = re.sub(
        r"`(\w+)`",
        lambda m: f"--{m.group(1)}" if m.group(1) in fields else m.group(0),
        message,
    )
    message = re.sub(
        r"\b(\w+)=",
        lambda m: f"--{m.group(1)}=" if m.group(1) in fields else m.group(0),
        message,
    )
    return message.replace("Argument --", "Flag --").replace(
        "Arguments --", "Flags --"
    )


def resolved_flags(overrides=None):
    """The flags of this module with their values, as flagfile text.

    `overrides` maps flag names to values written instead of the flags'
    own (e.g. a tuner's best hyper-parameters).
    """
    overrides = overrides or {}
    lines = []
    for flag in sorted(
        FLAGS.get_flags_for_module(sys.modules[__name__]), key=lambda f: f.name
    ):
        if flag.name in NOT_RESOLVED:
            continue
        if flag.name in overrides:
            value = overrides[flag.name]
            flag = copy.deepcopy(flag)
            flag.value = list(value) if isinstance(value, tuple) else value
        line = flag.serialize()
        if line:
            lines.append(line)
    return "\n".join(lines) + "\n"
