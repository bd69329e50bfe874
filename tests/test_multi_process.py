"""experiments/run.py over several processes (JAX backend): flag checks, and a
two-process run on this machine that trains one model."""

import hashlib
import json
import os
import re
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest
from absl import app
from absl.testing import flagsaver

import kmix  # noqa: F401  (registers MixModel for keras.saving.load_model)
from helpers import REPO
from helpers import needs_fashion_mnist
from helpers import use_flags
from kmix.data.sources import DEBIAN_FASHION_MNIST_DIR
from kmix.data.sources import read_idx
from kmix.experiment import distribution
from kmix.experiment import flags as experiment_flags

FLAGS = use_flags(
    lambda: (
        experiment_flags.define_flags(),
        experiment_flags.define_process_flags(),
    )
)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            {"num_processes": 2, "process_id": 2},
            r"--process_id must be in \[0, --num_processes - 1\] = \[0, 1\].*"
            r"Received: --process_id=2, --num_processes=2",
        ),
        ({"process_id": -1}, r"--process_id.*>= 0.*Received: --process_id=-1"),
        ({"num_processes": 0}, r"--num_processes.*>= 1"),
        (
            {"num_processes": 2, "coordinator": "127.0.0.1"},
            r"--coordinator must be the `host:port`.*"
            r"Received: --coordinator='127.0.0.1'",
        ),
        ({"coordinator": "127.0.0.1:99999"}, "port in 1-65535"),
        ({"coordinator": "::1:23456"}, r"\[fe80::1\]:23456"),
        ({"coordinator": "host name:23456"}, "--coordinator"),
        (
            {"num_processes": 2, "batch_size": 33},
            r"--batch_size.*multiple of --num_processes.*"
            r"Received: --batch_size=33, --num_processes=2",
        ),
    ],
)
def test_bad_process_flags_raise_usage_error(overrides, message):
    with flagsaver.flagsaver(output_dir="/tmp/unused", **overrides):
        with pytest.raises(app.UsageError, match=message):
            experiment_flags.check_process_flags()


def test_several_processes_need_the_jax_backend():
    # The tests run on TensorFlow: the error names it and says what to set.
    assert keras.backend.backend() == "tensorflow"
    with flagsaver.flagsaver(output_dir="/tmp/unused", num_processes=2):
        with pytest.raises(
            app.UsageError,
            match=r"needs the JAX backend, but Keras runs on 'tensorflow'\. "
            r"Set the environment variable KERAS_BACKEND=jax",
        ):
            experiment_flags.check_process_flags()


def test_tf_strategy_with_several_processes_or_on_jax_is_refused():
    with pytest.raises(ValueError, match="must be 'default' when several"):
        distribution.check_processes(
            2, 0, "127.0.0.1:23456", backend="jax", strategy="mirrored"
        )
    with pytest.raises(ValueError, match="needs the TensorFlow backend"):
        distribution.check_strategy_backend("mirrored", backend="jax")


def test_good_process_settings_pass():
    assert distribution.check_processes(1, 0, "127.0.0.1:23456") == (
        "127.0.0.1",
        23456,
    )
    assert distribution.check_processes(
        4, 3, "[fe80::1]:1234", backend="jax"
    ) == ("fe80::1", 1234)
    assert distribution.parse_coordinator("node-0.cluster:80") == (
        "node-0.cluster",
        80,
    )
    with flagsaver.flagsaver(output_dir="/tmp/unused"):
        experiment_flags.check_process_flags()  # the defaults: one process


def test_process_flags_stay_out_of_flags_cfg():
    with flagsaver.flagsaver(
        output_dir="/tmp/unused", num_processes=2, process_id=1
    ):
        text = experiment_flags.resolved_flags()
    assert "process_id" not in text and "num_processes" not in text
    assert "coordinator" not in text


def test_one_process_shards_nothing():
    import tensorflow as tf

    dataset = tf.data.Dataset.range(10).batch(4)
    assert distribution.process_count() == 1 and distribution.is_chief()
    assert distribution.shard_batches(dataset, 4, 10) is dataset
    assert distribution.run_on_chief(lambda: 7) == 7
    assert distribution.broadcast_bytes(b"abc") == b"abc"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tiny_fashion_mnist(path, train_per_class=40, test_per_class=20):
    """The first images of each class of Debian's Fashion-MNIST, as a .npz."""

    def first(images, labels, per_class):
        keep = np.concatenate(
            [np.flatnonzero(labels == c)[:per_class] for c in range(10)]
        )
        keep.sort()
        return images[keep], labels[keep]

    join = lambda name: os.path.join(DEBIAN_FASHION_MNIST_DIR, name)  # noqa: E731
    x_train, y_train = first(
        read_idx(join("train-images-idx3-ubyte.gz")),
        read_idx(join("train-labels-idx1-ubyte.gz")),
        train_per_class,
    )
    x_test, y_test = first(
        read_idx(join("t10k-images-idx3-ubyte.gz")),
        read_idx(join("t10k-labels-idx1-ubyte.gz")),
        test_per_class,
    )
    np.savez(
        path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test
    )


def _fingerprint(model):
    """`distribution.weights_fingerprint`, computed here (TensorFlow backend)."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(np.asarray(weight)).tobytes())
    return digest.hexdigest()[:16]


@pytest.mark.slow
@needs_fashion_mnist
def test_two_processes_train_one_model(tmp_path):
    pytest.importorskip("jax", reason="the processes train on the JAX backend")
    data = tmp_path / "fashion_mnist_tiny.npz"
    _tiny_fashion_mnist(data)
    port = _free_port()
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        # Quicker XLA compilation (the steps are tiny): most of the time.
        "XLA_FLAGS": "--xla_backend_optimization_level=0 "
        "--xla_llvm_disable_expensive_passes=true",
        "PYTHONUNBUFFERED": "1",
    }
    processes = []
    for process_id in (0, 1):
        out = tmp_path / f"out_{process_id}"
        command = [
            sys.executable,
            os.path.join(REPO, "experiments", "run.py"),
            f"--dataset={data}",
            "--profile=step",
            "--imbalance_ratio=4",  # 5 x 40 + 5 x 10 = 250 images
            "--model=small_cnn",
            "--width=4",
            "--mix_at=",
            "--epochs=3",
            "--batch_size=50",  # 5 steps (a partial batch would compile again)
            "--lr_schedule=constant",
            "--learning_rate=0.05",
            "--verbose=2",
            f"--output_dir={out}",
            "--num_processes=2",
            f"--process_id={process_id}",
            f"--coordinator=127.0.0.1:{port}",
        ]
        log = open(tmp_path / f"log_{process_id}.txt", "w")
        processes.append(
            (
                subprocess.Popen(
                    command, env=env, stdout=log, stderr=subprocess.STDOUT
                ),
                log,
            )
        )
    try:
        for process, _ in processes:
            process.wait(timeout=400)
    finally:
        for process, log in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
            log.close()
    logs = [(tmp_path / f"log_{p}.txt").read_text() for p in (0, 1)]
    for p, (process, _) in enumerate(processes):
        assert process.returncode == 0, f"process {p}:\n{logs[p][-5000:]}"

    # Process 0 wrote every result; process 1 nothing at all.
    out_0, out_1 = tmp_path / "out_0", tmp_path / "out_1"
    assert not out_1.exists()
    for name in ("metrics.json", "results.md", "flags.cfg"):
        assert (out_0 / name).is_file(), name
    seed_dir = out_0 / "seed_0"
    assert (seed_dir / "metrics.json").is_file()
    assert (seed_dir / "model.keras").is_file()
    assert not (seed_dir / "backup").exists()
    assert "process_id" not in (out_0 / "flags.cfg").read_text()

    # Both hold the same weights: the fingerprint each printed, and the
    # weights process 0 saved.
    pattern = r"seed 0: weights fingerprint (\w+) \(process (\d) of 2"
    printed = [re.search(pattern, log) for log in logs]
    assert all(printed), logs
    assert [m.group(2) for m in printed] == ["0", "1"]
    assert printed[0].group(1) == printed[1].group(1)
    metrics = json.loads((seed_dir / "metrics.json").read_text())
    assert metrics["weights_fingerprint"] == printed[1].group(1)
    model = keras.saving.load_model(seed_dir / "model.keras", compile=False)
    assert _fingerprint(model) == printed[1].group(1)

    # The loss falls; the class counts and the test set are the global ones.
    losses = [
        float(v) for v in re.findall(r"\d+/\d+ - .* - loss: ([\d.]+)", logs[0])
    ]
    assert len(losses) == 3, logs[0]
    assert losses[-1] < losses[0]
    assert metrics["class_counts"] == [40] * 5 + [10] * 5
    assert 0.0 <= metrics["balanced_accuracy"] <= 1.0
    assert "Epoch 1/3" not in logs[1]  # only process 0 shows the progress


@pytest.mark.parametrize(
    "devices, local, rows, batches",
    [
        (2, 1, 10, 3),  # 2 processes of 1 device: the last batch (2) split
        (2, 1, 11, 3),  # the last batch (3) loses its last row
        (2, 1, 9, 2),  # the last batch (1) is left out
        (4, 2, 10, 2),  # 2 processes of 2 devices: the last batch (2) too
        (4, 2, 8, 2),
    ],
)
def test_split_batches_gives_each_process_an_equal_part(
    devices, local, rows, batches
):
    import tensorflow as tf

    dataset = tf.data.Dataset.range(rows).batch(4)  # global batches of 4
    dataset = dataset.map(lambda x: (x, -x))
    splits = [
        distribution.split_batches(dataset, devices, local, block, 4, rows)
        for block in (0, 1)
    ]
    assert [int(split.cardinality()) for split in splits] == [batches] * 2
    parts = [list(split) for split in splits]
    assert len(parts[0]) == len(parts[1]) == batches
    seen = []
    for (x0, y0), (x1, y1) in zip(*parts):
        assert len(x0) == len(x1) > 0 and len(x0) % local == 0
        np.testing.assert_array_equal(y1, -x1)
        seen += list(x0.numpy()) + list(x1.numpy())
    # Each global batch's first (rows // devices) * devices rows, in order.
    expected = []
    for start in range(0, rows, 4):
        size = min(4, rows - start)
        expected += list(range(start, start + size // devices * devices))
    assert seen == expected
