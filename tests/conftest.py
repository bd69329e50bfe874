"""Test set-up shared by every kmix test file.

Splits the CPU into two logical devices before TensorFlow initializes, so
tests can run `tf.distribute.MirroredStrategy` over two replicas.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

try:
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration()] * 2,
    )
except RuntimeError:  # TensorFlow was initialized before this file ran.
    pass


@pytest.fixture(scope="session")
def two_cpu_strategy():
    """One `MirroredStrategy` over the two logical CPUs, shared by every test.

    Creating many strategies in one process can make their collective
    all-reduces collide, so the tests share this one.
    """
    devices = tf.config.list_logical_devices("CPU")
    if len(devices) < 2:
        pytest.skip(
            "needs two logical CPU devices (TensorFlow started before conftest.py)"
        )
    return tf.distribute.MirroredStrategy([d.name for d in devices[:2]])
