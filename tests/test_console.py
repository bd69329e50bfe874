"""What a run says: quiet start-up, --help, the closing summary, results.md, one rounding rule."""

import io
import os
import subprocess
import sys

import pytest
from absl.testing import flagsaver

import cli
import kmix
from helpers import REPO
from helpers import needs_fashion_mnist
from helpers import use_flags
from kmix.data import sources
from kmix.experiment import console
from kmix.experiment import flags as experiment_flags
from kmix.experiment import outputs
from kmix.experiment import runs

FLAGS = use_flags(lambda: (experiment_flags.define_flags(), cli.define_flags()))

NAMES = ["T-shirt/top", "Trouser", "Pullover", "Sandal", "Bag"]
COUNTS = [6000, 6000, 6000, 60, 60]


def _result(seed, per_class):
    return {
        "accuracy": sum(per_class) / len(per_class),
        "balanced_accuracy": sum(per_class) / len(per_class),
        "per_class_accuracy": list(per_class),
        "group_accuracy": {
            "major": sum(per_class[:3]) / 3,
            "minor": sum(per_class[3:]) / 2,
        },
        "seed": seed,
        "class_counts": COUNTS,
        "class_names": NAMES,
        "epochs": 6,
    }


def _config(**overrides):
    values = dict(
        dataset="fashion_mnist", profile="step", imbalance_ratio=100.0, epochs=6
    )
    return kmix.ExperimentConfig(**{**values, **overrides})


def test_round_floats_is_the_one_rounding_rule():
    value = {
        "a": 0.9359999895095825,
        "b": [0.1234567891, 2, None, "x"],
        "c": {"d": (1.0000004,)},
    }
    assert outputs.round_floats(value) == {
        "a": 0.936,
        "b": [0.123457, 2, None, "x"],
        "c": {"d": [1.0]},
    }


def test_summary_rounds_so_a_resumed_run_summarizes_identically():
    fresh = {
        0: _result(0, [0.9359999895095825, 0.98, 0.88, 0.1000000014901, 0.5]),
        1: _result(1, [0.9, 0.97, 0.86, 0.2, 0.4000000059604645]),
    }
    resumed = {
        seed: outputs.round_floats(result) for seed, result in fresh.items()
    }
    assert runs.summarize(fresh) == runs.summarize(resumed)
    summary = runs.summarize(fresh)
    assert summary["per_seed"]["0"]["per_class_accuracy"][0] == 0.936
    assert summary["mean"]["minor_accuracy"] == pytest.approx(0.3, abs=1e-6)
    assert all(
        len(repr(v)) <= 10 for v in summary["mean"]["per_class_accuracy"]
    )


def test_describe_method_names_model_loss_mixing_and_optimizer():
    text = console.describe_method(_config())
    assert text.startswith(
        "small_cnn (width 16), cross-entropy, MajorMix after stage1 (strength 0.5"
    )
    assert (
        "SGD (momentum 0.9), learning rate 0.1 (warmup_step)" in text
        and "6 epochs" in text
    )
    ldam = console.describe_method(
        _config(loss="ldam", reweight="cb", drw_start_fraction=0.8, mix_at=())
    )
    assert "LDAM loss (max margin 0.5, scale 30) on a cosine classifier" in ldam
    assert "class-balanced (beta 0.9999) loss weights from epoch 5" in ldam
    assert "no MajorMix" in ldam
    assert console.describe_method(_config(epochs=1)).endswith(", 1 epoch")


def test_results_md_opens_with_the_run_and_marks_minor_classes():
    summary = runs.summarize(
        {
            0: _result(0, [0.9, 0.9, 0.9, 0.1, 0.3]),
            1: _result(1, [0.8, 0.9, 0.9, 0.3, 0.1]),
        }
    )
    text = runs.results_table(summary, _config())
    lines = text.splitlines()
    assert lines[0] == (
        "# Results: fashion_mnist step-100, small_cnn, "
        "CE + MajorMix after stage1 (strength 0.5)"
    )
    assert (
        "- **Data**: fashion_mnist, step profile at imbalance ratio 100: 3 major classes "
        "(6000 training images), 2 minor classes (60 training images)."
    ) in lines
    assert any(
        line.startswith("- **Method**: small_cnn (width 16)") for line in lines
    )
    assert any(line.startswith("- **Seeds**: 0, 1 (2 seeds)") for line in lines)
    assert "| mean | 0.6100 | 0.6100 | 0.8833 | 0.2000 |" in lines
    assert "| 0 | T-shirt/top | major | 6000 | 0.8500 ± 0.0500 |" in lines
    assert "| 3 | **Sandal** | **minor** | 60 | 0.2000 ± 0.1000 |" in lines
    # Without a config (older callers): the tables only.
    assert runs.results_table(summary).startswith("| seed | accuracy |")


def test_final_summary_says_where_to_look(tmp_path):
    (tmp_path / "seed_0").mkdir()
    for name in ("confusion_matrix.png", "clean_accuracy.png"):
        (tmp_path / "seed_0" / name).write_bytes(b"png")
    summary = runs.summarize({0: _result(0, [0.9, 0.9, 0.9, 0.1, 0.3])})
    lines = console.final_summary(
        summary, str(tmp_path), _config()
    ).splitlines()
    assert lines[1] == (
        "Done: fashion_mnist, step profile at imbalance ratio 100; small_cnn, "
        "cross-entropy + MajorMix after stage1; 6 epochs; seed 0."
    )
    assert lines[2:5] == [
        "Test balanced accuracy 0.6200",
        "  major classes  0.9000  (T-shirt/top, Trouser, Pullover)",
        "  minor classes  0.2000  (Sandal, Bag)",
    ]
    assert lines[5] == f"Results in {tmp_path}/"
    assert (
        "  seed_0/*.png        plots: clean_accuracy, confusion_matrix" in lines
    )
    assert lines[-1] == f"TensorBoard: tensorboard --logdir {tmp_path}"
    several = runs.summarize(
        {
            0: _result(0, [0.9, 0.9, 0.9, 0.1, 0.3]),
            1: _result(1, [0.9, 0.9, 0.9, 0.3, 0.3]),
        }
    )
    text = console.final_summary(several, str(tmp_path), _config())
    assert (
        "Test balanced accuracy 0.6400 ± 0.0200 (mean ± std over 2 seeds)"
        in text
    )
    assert "  minor classes  0.2500 ± 0.0500  (Sandal, Bag)" in text
    assert "seeds 0, 1." in text and "seed_*/model.keras" in text


def test_keras_progress_is_a_line_per_epoch_when_not_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    with flagsaver.flagsaver():
        FLAGS.unparse_flags()
        FLAGS(["run.py"])
        assert cli.keras_verbose(io.StringIO()) == 2
        assert cli.keras_verbose(Terminal()) == 1
        FLAGS(["run.py", "--verbose=1"])
        assert cli.keras_verbose(io.StringIO()) == 1


def test_log_level_is_read_before_flags_are_parsed():
    assert cli.requested_log_level(["run.py"]) == "error"
    assert cli.requested_log_level(["run.py", "--log_level=info"]) == "info"
    assert (
        cli.requested_log_level(["run.py", "--log_level", "debug"]) == "debug"
    )
    assert cli.requested_log_level(["run.py", "--log_level=loud"]) == "error"


def test_run_py_help_exits_0_lists_the_flags_and_prints_no_tensorflow_notices():
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "experiments", "run.py"), "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for flag in (
        "--epochs",
        "--strength",
        "--output_dir",
        "--log_level",
        "--verbose",
    ):
        assert flag in result.stdout
    assert result.stderr == ""
    # A usage error stays short: the docstring and the message, status 1.
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "experiments", "run.py")],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=300,
    )
    assert result.returncode == 1
    assert result.stderr.rstrip().endswith(
        "--output_dir is required: where should the results go?"
    )
    assert "--strength" not in result.stderr
    assert "oneDNN" not in result.stderr


def test_tfds_copy_is_looked_for_on_disk_only(tmp_path):
    assert not sources.has_local_tfds_copy("fashion_mnist", str(tmp_path))
    version = tmp_path / "fashion_mnist" / "3.0.1"
    version.mkdir(parents=True)
    assert not sources.has_local_tfds_copy("fashion_mnist:3.0.1", str(tmp_path))
    (version / "dataset_info.json").write_text("{}")
    assert sources.has_local_tfds_copy("fashion_mnist:3.0.1", str(tmp_path))
    assert sources.has_local_tfds_copy(
        "fashion_mnist", "gs://tfds-data/datasets"
    )


@needs_fashion_mnist
def test_fashion_mnist_goes_straight_to_debian_files_and_says_so(
    tmp_path, monkeypatch, capsys
):
    def no_tfds(*args, **kwargs):
        raise AssertionError("tensorflow-datasets was asked")

    monkeypatch.setattr(sources, "from_tfds", no_tfds)
    source = sources.open_source(
        "fashion_mnist", data_dir=str(tmp_path), verbose=1
    )
    assert source.origin == f"IDX files in {sources.DEBIAN_FASHION_MNIST_DIR}"
    assert capsys.readouterr().out == (
        f"Data: fashion_mnist from IDX files in {sources.DEBIAN_FASHION_MNIST_DIR} (Debian's "
        "dataset-fashion-mnist; tensorflow-datasets has no local copy).\n"
    )
    sources.open_source("fashion_mnist", data_dir=str(tmp_path), verbose=0)
    assert capsys.readouterr().out == ""


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
