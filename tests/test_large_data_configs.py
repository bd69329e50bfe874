"""The large-data configs (ImageNet-LT, iNaturalist 2018 with ResNet-50) end to end
on tiny generated data in their formats, and the resnet50 model of the harness."""

import json
import os
import subprocess
import sys

import keras
import pytest
from absl.testing import flagsaver

import kmix
from helpers import REPO
from helpers import use_flags
from kmix import experiment
from kmix.experiment import building
from kmix.experiment import flags as experiment_flags
from streaming_data import imagenet_lt_dir
from streaming_data import inaturalist_dir

FLAGS = use_flags(experiment_flags.define_flags)
CONFIGS = os.path.join(REPO, "experiments", "configs")
# What makes the configs' runs take seconds: a small CNN instead of
# ResNet-50 (with MajorMix after its second stage instead of conv3), one
# short epoch, one seed. Everything else is the config's.
QUICK = [
    "--model=small_cnn",
    "--width=4",
    "--mix_after=stage2_relu",
    "--epochs=1",
    "--batch_size=8",
    "--seeds=0",
    "--verbose=0",
]


def _parse(argv):
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        FLAGS(["run.py"] + argv)
    finally:
        os.chdir(cwd)
    seeds = experiment_flags.check_flags()
    return seeds, experiment_flags.config_from_flags(seeds[0])


@pytest.mark.parametrize(
    "name, dataset",
    [
        ("imagenet_lt_resnet50.cfg", "imagenet_lt"),
        ("inaturalist2018_resnet50.cfg", "inaturalist2018"),
    ],
)
def test_large_data_configs_parse(name, dataset):
    with flagsaver.flagsaver():
        seeds, config = _parse([f"--flagfile={os.path.join(CONFIGS, name)}"])
    assert seeds == [0, 1, 2]
    assert (config.dataset, config.model, config.image_size) == (
        dataset,
        "resnet50",
        224,
    )
    assert config.streaming == "always" and config.profile == "none"
    assert (
        list(config.mix_after) == ["conv3_block4_out"] and config.mix_at == ()
    )
    assert config.data_dir is None  # the user gives --data_dir


def _run_seeds(argv, output_dir):
    """What experiments/run.py does with these flags, in this process."""
    with flagsaver.flagsaver():
        seeds, _ = _parse(argv + [f"--output_dir={output_dir}"] + QUICK)
        return experiment.run_seeds(
            [experiment_flags.config_from_flags(s) for s in seeds],
            str(output_dir),
            flags_text=experiment_flags.resolved_flags(),
            verbose=0,
        )


def test_imagenet_lt_config_runs_end_to_end(tmp_path):
    data_dir = str(tmp_path / "ImageNet")
    lines = imagenet_lt_dir(data_dir, train=(5, 3, 2), val=1, test=2)
    output_dir = tmp_path / "run"
    _run_seeds(
        [
            "--flagfile=experiments/configs/imagenet_lt_resnet50.cfg",
            f"--data_dir={data_dir}",
            "--diagnostics=true",
        ],
        output_dir,
    )
    metrics = json.loads((output_dir / "seed_0" / "metrics.json").read_text())
    assert metrics["class_counts"] == [5, 3, 2]
    assert metrics["class_names"] == ["n00", "n01", "n02"]
    assert len(metrics["per_class_accuracy"]) == 3
    assert (
        "validation" in metrics
    )  # ImageNet_LT_val.txt is the validation split
    records = json.loads(
        (output_dir / "seed_0" / "class_progress.json").read_text()
    )["records"]
    assert {r["quantity"] for r in records} >= {
        "train_accuracy",
        "clean_accuracy",
    }
    flags_text = (output_dir / "flags.cfg").read_text()
    assert (
        "--dataset=imagenet_lt" in flags_text
        and "--mix_after=stage2_relu" in flags_text
    )
    model = keras.saving.load_model(output_dir / "seed_0" / "model.keras")
    assert [layer.name for layer in model.major_mix_layers] == [
        "mix_after_stage2_relu"
    ]
    assert model.input_shape == (None, 224, 224, 3)
    assert len(lines["test"]) == 6


def test_inaturalist_config_runs_end_to_end(tmp_path):
    data_dir = inaturalist_dir(str(tmp_path / "inat"))
    summary = _run_seeds(
        [
            "--flagfile=experiments/configs/inaturalist2018_resnet50.cfg",
            f"--data_dir={data_dir}",
        ],
        tmp_path / "run",
    )
    per_seed = summary["per_seed"]["0"]
    assert per_seed["class_counts"] == [2, 3, 1]
    assert per_seed["class_names"] == ["species 2", "species 5", "species 9"]


def test_resnet50_mix_points_and_weight_decay():
    # Predictions equal to the model without mixing: tests/test_major_mix_insertion.py.
    model = building.resnet50(
        4,
        (32, 32, 3),
        [40, 20, 5, 2],
        mix_at=["stage1"],
        mix_after=["conv5_block3_out"],
        weight_decay=1e-4,
        strength=1.0,
        seed=0,
    )
    assert isinstance(model, kmix.MixModel) and model.name == "resnet50"
    assert [layer.name for layer in model.major_mix_layers] == [
        "mix_after_conv2_block3_out",
        "mix_after_conv5_block3_out",
    ]
    kernels = [layer for layer in model.layers if hasattr(layer, "kernel")]
    assert (
        len(kernels) == 54 and len(model.losses) == 54
    )  # 53 convolutions + the head
    assert model.get_layer("logits").units == 4
    assert model.output_shape == (None, 4)
    with pytest.raises(ValueError, match="does not have at its top level"):
        building.resnet50(
            4, (32, 32, 3), [4, 3, 2, 1], mix_after=["conv9_block1_out"]
        )


@pytest.mark.slow
def test_imagenet_lt_config_trains_resnet50_through_run_py(tmp_path):
    """The config exactly as written (ResNet-50 at 224, MajorMix after conv3_block4_out)
    for one epoch of a dozen images: about two minutes on a 2-core CPU."""
    data_dir = str(tmp_path / "ImageNet")
    imagenet_lt_dir(data_dir, train=(4, 2, 1), val=1, test=1)
    output_dir = tmp_path / "run"
    command = [
        sys.executable,
        os.path.join(REPO, "experiments", "run.py"),
        "--flagfile=experiments/configs/imagenet_lt_resnet50.cfg",
        f"--data_dir={data_dir}",
        f"--output_dir={output_dir}",
        "--epochs=1",
        "--batch_size=4",
        "--seeds=0",
    ]
    result = subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        timeout=1200,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((output_dir / "seed_0" / "metrics.json").read_text())
    assert metrics["class_counts"] == [4, 2, 1]
    model = keras.saving.load_model(output_dir / "seed_0" / "model.keras")
    assert [layer.name for layer in model.major_mix_layers] == [
        "mix_after_conv3_block4_out"
    ]
