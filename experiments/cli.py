"""Command-line plumbing shared by run.py and tune.py: a quiet start, --log_level, --help.

Imports neither TensorFlow nor kmix, so the scripts can call it first:

- `import_tensorflow_quietly(argv)` imports TensorFlow with its C++
  start-up notices (oneDNN, CPU instructions) hidden, unless `--log_level`
  asks for them or `TF_CPP_MIN_LOG_LEVEL` is set in the environment;
- `define_flags()` defines `--log_level`, and `apply_log_level()` sets the
  Python loggers of TensorFlow, absl and tensorflow-datasets to it;
- `flags_parser(*modules)` is `app.run`'s flags parser: `--help` lists the
  flags of those modules too, and every help flag exits 0 instead of 1;
- `keras_verbose()` is `fit`'s verbosity: `--verbose` when given, else a
  progress bar on a terminal and one line per epoch in a redirected log.
"""

import logging
import os
import sys
import tempfile

from absl import app
from absl import flags

LOG_LEVELS = ("error", "warning", "info", "debug")
# TF_CPP_MIN_LOG_LEVEL per --log_level: 0 all, 1 no INFO, 2 no WARNING, 3 no ERROR.
_TF_CPP_LEVELS = {"error": "2", "warning": "1", "info": "0", "debug": "0"}
_PYTHON_LEVELS = {
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}
# What TensorFlow's C++ side prints on import whatever TF_CPP_MIN_LOG_LEVEL
# says (TensorFlow 2.21): hidden below --log_level=info.
_STARTUP_NOTICES = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",
)
HELP_FLAGS = (
    "--help",
    "-help",
    "-?",
    "--helpshort",
    "-helpshort",
    "--helpfull",
    "-helpfull",
    "--helpxml",
    "-helpxml",
)


def define_flags():
    """Defines `--log_level` once."""
    if "log_level" in flags.FLAGS:
        return
    flags.DEFINE_enum(
        "log_level",
        "error",
        LOG_LEVELS,
        "Messages of TensorFlow, absl and tensorflow-datasets to show: error (default: "
        "no start-up notices or warnings), warning, info or debug. TF_CPP_MIN_LOG_LEVEL, "
        "when set, decides for TensorFlow's C++ side. Keras' progress is --verbose.",
    )


def requested_log_level(argv):
    """The `--log_level` of the command line, read before flags are parsed (default "error")."""
    level = "error"
    for position, arg in enumerate(argv[1:], start=1):
        if arg.startswith(("--log_level=", "-log_level=")):
            level = arg.split("=", 1)[1]
        elif arg in ("--log_level", "-log_level") and position + 1 < len(argv):
            level = argv[position + 1]
    return level if level in LOG_LEVELS else "error"


def import_tensorflow_quietly(argv=None):
    """Imports TensorFlow, hiding its C++ start-up notices below `--log_level=info`.

    Sets `TF_CPP_MIN_LOG_LEVEL` for the level unless the environment sets
    it. While TensorFlow loads, file descriptor 2 goes to a temporary file;
    afterwards every line except the known start-up notices is written to
    stderr (all of them if the import fails). Does nothing when TensorFlow
    is already imported.
    """
    if "tensorflow" in sys.modules:
        return
    level = requested_log_level(sys.argv if argv is None else argv)
    user_set = "TF_CPP_MIN_LOG_LEVEL" in os.environ
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", _TF_CPP_LEVELS[level])
    if user_set or level in ("info", "debug"):
        import tensorflow  # noqa: F401

        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        failed = True
        try:
            import tensorflow  # noqa: F401

            failed = False
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            lines = (
                captured.read()
                .decode("utf-8", "replace")
                .splitlines(keepends=True)
            )
            kept = (
                lines
                if failed
                else [
                    line
                    for line in lines
                    if not any(notice in line for notice in _STARTUP_NOTICES)
                ]
            )
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


def apply_log_level(level):
    """Sets the Python loggers to `level`: the root one, TensorFlow's, absl's and tfds'."""
    from absl import logging as absl_logging

    absl_logging.set_verbosity(level)  # absl's names: also sets the root logger
    python_level = _PYTHON_LEVELS[level]
    logging.getLogger().setLevel(
        python_level
    )  # e.g. h5py's and matplotlib's INFO lines
    for name in ("tensorflow", "absl", "tensorflow_datasets", "keras_tuner"):
        logging.getLogger(name).setLevel(python_level)


def flags_parser(*modules):
    """`app.run`'s flags parser; help lists the flags of `modules` and exits 0.

    `--help` (`-?`, `--helpshort`) prints the script's docstring and the
    flags defined in `modules` (e.g. `kmix.experiment.flags` and this one),
    not only those of the script itself; `--helpfull` and `--helpxml` are
    absl's. All exit with status 0 (absl's help exits with 1). Errors are
    absl's: the docstring and the message, status 1.
    """

    def parse(argv):
        asked = [
            arg.split("=")[0]
            for arg in argv[1:]
            if arg.split("=")[0] in HELP_FLAGS
        ]
        if asked and asked[0].lstrip("-") in ("help", "?", "helpshort"):
            print(help_text(modules))
            raise SystemExit(0)
        try:
            return app.parse_flags_with_usage(argv)
        except SystemExit as error:
            if error.code == 1 and asked:
                raise SystemExit(0) from None
            raise

    return parse


def help_text(modules):
    """The script's docstring and the flags `modules` define, as `--help` prints them."""
    main = sys.modules["__main__"]
    text = (
        main.__doc__ or f"USAGE: {sys.argv[0]} [flags]"
    ).rstrip() + "\n\nflags:\n"
    for module in (main, *modules):
        listed = flags.FLAGS.module_help(module)
        if listed.strip():
            text += "\n" + listed + "\n"
    return (
        text + "\nTry --helpfull to get a list of all flags (absl's own too)."
    )


def keras_verbose(stream=None):
    """Keras' `verbose` for `fit`: `--verbose` when given on the command line,
    else 1 (a progress bar) on a terminal and 2 (one line per epoch) otherwise."""
    if flags.FLAGS["verbose"].present:
        return flags.FLAGS.verbose
    stream = stream or sys.stdout
    return 1 if hasattr(stream, "isatty") and stream.isatty() else 2
