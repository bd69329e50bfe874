"""`tf.distribute` strategies for `experiments/run.py --strategy`."""

import json
import os
import warnings

import tensorflow as tf
from absl import logging


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
        warn_open_worker_service(task_address(os.environ["TF_CONFIG"]))
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


class UnauthenticatedServerWarning(UserWarning):
    """A TensorFlow worker service without authentication listens on every interface."""


def task_address(tf_config):
    """The `host:port` TF_CONFIG gives this task; a malformed TF_CONFIG raises `ValueError`."""
    try:
        config = json.loads(tf_config)
        task = config["task"]
        return str(config["cluster"][task["type"]][int(task["index"])])
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise ValueError(
            "The TF_CONFIG environment variable must be JSON with a `cluster` of "
            "addresses and this process's `task` (`type`, `index`), e.g. "
            '{"cluster": {"worker": ["127.0.0.1:12345", "127.0.0.1:12346"]}, '
            '"task": {"type": "worker", "index": 0}}. '
            f"Received: TF_CONFIG={tf_config!r} ({type(error).__name__}: {error})."
        ) from error


def warn_open_worker_service(address):
    """Warns that TensorFlow's worker service will listen on every interface.

    TensorFlow's gRPC server (TensorFlow 2.21, as every release before it)
    binds `0.0.0.0:<port>` (all IPv4 and IPv6 interfaces), whatever host
    TF_CONFIG names, and offers no option to bind one address; its worker
    service has no authentication. kmix cannot restrict it, so it says so.
    """
    port = address.rpartition(":")[2]
    message = (
        f"--strategy=multi_worker: TensorFlow's worker service for this task "
        f"({address} in TF_CONFIG) listens on port {port} of EVERY network "
        "interface (0.0.0.0 / [::]), not only on the host TF_CONFIG names: "
        "TensorFlow binds no other address. The service has no authentication: "
        f"anyone who can reach port {port} of this machine can run TensorFlow "
        "operations in this process. Train with several workers only on a "
        f"trusted network, or block port {port} from other machines with a "
        "firewall (docs/reliability.md)."
    )
    logging.warning(message)
    warnings.warn(message, UnauthenticatedServerWarning, stacklevel=3)
