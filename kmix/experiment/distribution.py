"""`tf.distribute` strategies for `experiments/run.py --strategy`."""

import os

import tensorflow as tf


def make_strategy(name):
    """The `tf.distribute` strategy of --strategy."""
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "Argument `strategy='multi_worker'` needs the TF_CONFIG environment "
                "variable (see docs/distributed.md). Received: no TF_CONFIG."
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()
