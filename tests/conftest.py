"""Test set-up shared by every kmix test file.

Splits the CPU into two logical devices before TensorFlow initializes, so
tests can run `tf.distribute.MirroredStrategy` over two replicas.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402

try:
    tf.config.set_logical_device_configuration(
        tf.config.list_physical_devices("CPU")[0],
        [tf.config.LogicalDeviceConfiguration()] * 2,
    )
except RuntimeError:  # TensorFlow was initialized before this file ran.
    pass
