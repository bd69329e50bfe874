"""Distributed training: `tf.distribute` strategies, and one model over several processes.

- `make_strategy`: the `tf.distribute` strategy of `experiments/run.py
  --strategy` (TensorFlow backend);
- `initialize_processes` and the functions below it: data-parallel training
  of one model by several processes (`--num_processes`, JAX backend,
  `keras.distribution.DataParallel` over the devices of all processes).
  Process 0 (`is_chief()`) writes the results; `docs/distributed.md` says how
  to start the processes.

JAX is imported only by the multi-process functions, and only when they run
over several processes.
"""

import contextlib
import hashlib
import json
import os
import re
import warnings
import weakref

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from kmix import validation


def make_strategy(name):
    """The `tf.distribute` strategy of --strategy.

    `"default"` gives TensorFlow's default strategy, or None when Keras runs
    on another backend; the others need the TensorFlow backend.
    """
    check_strategy_backend(name)
    if keras.backend.backend() != "tensorflow":
        return None
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


def check_strategy_backend(name, backend=None):
    """Raises `ValueError` for a tf.distribute `strategy` on another Keras backend."""
    backend = backend or keras.backend.backend()
    if name != "default" and backend != "tensorflow":
        raise ValueError(
            "Argument `strategy` names a tf.distribute strategy, which needs the "
            f"TensorFlow backend, but Keras runs on {backend!r}. Set "
            "KERAS_BACKEND=tensorflow, or on JAX train over several processes "
            "with `num_processes` (docs/distributed.md). Received: "
            f"strategy={name!r}."
        )


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


# --- Several processes (JAX): one model trained data-parallel by all of them.

DEFAULT_COORDINATOR = "127.0.0.1:23456"
# host:port, the host a name or IPv4 address, or an IPv6 address in brackets.
_ADDRESS = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^\s:\[\]]+):(\d{1,5})")
_PREDICTORS = weakref.WeakKeyDictionary()


def check_processes(
    num_processes,
    process_id,
    coordinator,
    backend=None,
    strategy="default",
    batch_size=None,
):
    """Checks the settings of a run over several processes; raises `ValueError`.

    `num_processes` processes (one per machine, say) train one model
    data-parallel; `process_id` is this process's index and `coordinator`
    the `host:port` where process 0 listens for the others. Several
    processes need the JAX backend (`backend`, default Keras' own), no
    `tf.distribute` strategy and a global `batch_size` (when given) that
    they can split evenly. Returns `(host, port)` of `coordinator`.
    """
    validation.check_int("num_processes", num_processes, 1)
    validation.check_int("process_id", process_id, 0)
    if process_id >= num_processes:
        raise ValueError(
            "Argument `process_id` must be in [0, `num_processes` - 1] = "
            f"[0, {num_processes - 1}]: each of the {num_processes} processes "
            "gets its own index, 0 for the coordinator. Received: "
            f"process_id={process_id}, num_processes={num_processes}."
        )
    address = parse_coordinator(coordinator)
    if num_processes == 1:
        return address
    if batch_size is not None and batch_size % num_processes:
        raise ValueError(
            "Argument `batch_size` (the global batch) must be a multiple of "
            "`num_processes`, so that each process gets an equal part. "
            f"Received: batch_size={batch_size}, num_processes={num_processes}."
        )
    backend = backend or keras.backend.backend()
    if backend != "jax":
        raise ValueError(
            f"Training over several processes (num_processes={num_processes}) "
            f"needs the JAX backend, but Keras runs on {backend!r}. Set the "
            "environment variable KERAS_BACKEND=jax before starting Python, e.g. "
            "`KERAS_BACKEND=jax python experiments/run.py ...`."
        )
    if strategy != "default":
        raise ValueError(
            "Argument `strategy` must be 'default' when several processes train: "
            "JAX distributes the training, and the tf.distribute strategies are "
            f"TensorFlow's. Received: strategy={strategy!r}, "
            f"num_processes={num_processes}."
        )
    return address


def parse_coordinator(coordinator):
    """`(host, port)` of a `host:port` address (`[v6 address]:port` for IPv6)."""
    match = _ADDRESS.fullmatch(str(coordinator))
    if not match or not 0 < int(match.group(2)) < 65536:
        raise ValueError(
            "Argument `coordinator` must be the `host:port` where process 0 "
            "listens for the other processes, e.g. '127.0.0.1:23456' (one "
            "machine), '10.0.0.1:23456' (process 0's address on a network) or "
            "'[fe80::1]:23456'; the port in 1-65535. Received: "
            f"coordinator={coordinator!r}."
        )
    return match.group(1).strip("[]"), int(match.group(2))


def initialize_processes(
    num_processes, process_id, coordinator=DEFAULT_COORDINATOR
):
    """Joins this process to a run over `num_processes` processes (JAX backend).

    Connects to the coordinator (process 0 starts it, listening on
    `coordinator` only: 127.0.0.1 by default, so on no other interface), sets
    up JAX's collectives (Gloo over TCP between CPU processes) and sets a
    `keras.distribution.DataParallel` over the devices of all processes as
    Keras' distribution. Call it before Keras creates any variable. Every
    process then loads the same data and builds the same model; `fit_model`
    feeds each its part of every global batch (`shard_batches`).

    Returns the `DataParallel` distribution, or None for one process.
    """
    check_processes(num_processes, process_id, coordinator)
    if num_processes == 1:
        return None
    import jax

    # Collectives between CPU processes (the default of jax 0.10.2; an
    # older jax has none unless this is set before the backend starts).
    if not jax.config.jax_cpu_collectives_implementation:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    # JAX's preemption service takes SIGTERM as a notice and goes on
    # training: `kill` (or `timeout`) would not stop a run.
    jax.config.update("jax_enable_preemption_service", False)
    jax.distributed.initialize(
        coordinator_address=coordinator,
        num_processes=num_processes,
        process_id=process_id,
        # JAX's default binds every interface ([::]:port).
        coordinator_bind_address=coordinator,
    )
    # jax.devices() lists the devices of process 0 first, then process 1's...:
    # process p feeds block p of every global batch.
    distribution = keras.distribution.DataParallel(
        devices=jax.devices(), auto_shard_dataset=False
    )
    keras.distribution.set_distribution(distribution)
    return distribution


def process_count():
    """How many processes train the model (1 without `initialize_processes`)."""
    distribution = keras.distribution.distribution()
    return distribution.num_processes if distribution is not None else 1


def process_index():
    """This process's index (`--process_id`); 0 in a single process."""
    if process_count() == 1:
        return 0
    import jax

    return jax.process_index()


def is_chief():
    """Whether this process writes the results: process 0, or the only one."""
    return process_index() == 0


def check_batch_size(batch_size):
    """Raises `ValueError` unless every device gets an equal part of a global batch."""
    if process_count() == 1:
        return
    import jax

    devices = jax.device_count()
    if batch_size % devices:
        raise ValueError(
            f"Argument `batch_size` (the global batch) must be a multiple of the "
            f"number of devices of all processes ({devices}: {process_count()} "
            f"processes, {jax.local_device_count()} each), so that each gets an "
            f"equal part. Received: batch_size={batch_size}."
        )


@contextlib.contextmanager
def local_only():
    """Runs its block without Keras' distribution: for work of one process alone.

    Under a multi-process distribution, creating a variable or assigning
    one (as `model.save` does) is a collective operation that every process
    must run. Saving files on process 0 alone, or computing metrics there,
    happens inside this context; the replicated weights are read locally.
    """
    distribution = keras.distribution.distribution()
    if distribution is None:
        yield
        return
    keras.distribution.set_distribution(None)
    try:
        yield
    finally:
        keras.distribution.set_distribution(distribution)


def shard_batches(dataset, batch_size=None, rows=None):
    """This process's part of each global batch of `dataset` (all processes alike).

    Every process iterates the same global batches (same data, same seed);
    process p keeps rows `[p * k, (p + 1) * k)` with `k = (rows // devices)
    * local devices`, so all processes feed equal parts of each step. A
    last, partial batch loses its `rows % devices` last rows (fewer than the
    number of devices), and is skipped when it has fewer rows than devices.
    (Keras' own sharding, `DataParallel(auto_shard_dataset=True)`, would
    give the processes different numbers of steps then.) Given the global
    `batch_size` and the dataset's number of `rows`, the result keeps a known
    number of batches. With one process, returns `dataset`.
    """
    if dataset is None or process_count() == 1:
        return dataset
    import jax

    return split_batches(
        dataset,
        jax.device_count(),
        jax.local_device_count(),
        process_index(),
        batch_size,
        rows,
    )


def split_batches(dataset, devices, local, block, batch_size=None, rows=None):
    """Block `block` of every batch of `dataset` split over `devices` devices.

    Each batch of `r` rows gives `k = (r // devices) * local` rows to each
    block of `local` devices: block b gets rows `[b * k, (b + 1) * k)`;
    batches with `k == 0` are left out. With the global `batch_size` and
    the number of `rows` of `dataset`, the number of batches stays known.
    `shard_batches` calls it with this process's block.
    """

    def first(batch):
        return tf.nest.flatten(batch)[0]

    def take(*batch):
        batch = batch[0] if len(batch) == 1 else batch
        part = (tf.shape(first(batch))[0] // devices) * local
        return tf.nest.map_structure(
            lambda t: t[block * part : (block + 1) * part], batch
        )

    def not_empty(*batch):
        batch = batch[0] if len(batch) == 1 else batch
        return tf.shape(first(batch))[0] > 0

    batches = int(dataset.cardinality())
    result = dataset.map(take).filter(not_empty)
    if batch_size and rows is not None and batches == -(-rows // batch_size):
        # The filter hides the number of batches; it removes at most the last.
        kept = rows // batch_size + (rows % batch_size >= devices)
        result = result.apply(tf.data.experimental.assert_cardinality(kept))
    return result


def predict_classes(model, images, batch_rows=None):
    """The predicted classes (argmax of the outputs) of a global batch, as numpy.

    With several processes, every process passes the same `images`; each
    runs the model on its part of them (padded to `batch_rows / devices`
    rows, so that a last, smaller batch needs no new compilation) and every
    process gets all the predictions.
    """
    images = np.asarray(images)
    if process_count() == 1:
        return np.argmax(np.asarray(model.predict_on_batch(images)), axis=-1)
    import jax

    rows = len(images)
    processes = process_count()
    local = -(-max(batch_rows or rows, rows) // jax.device_count())
    local *= jax.local_device_count()
    start = process_index() * local
    part = images[start : start + local]
    part = np.concatenate(
        [part, np.zeros((local - len(part),) + images.shape[1:], images.dtype)]
    )
    layout = keras.distribution.distribution().get_data_layout(
        (local * processes,) + images.shape[1:]
    )
    sharding = layout.backend_layout
    batch = jax.make_array_from_process_local_data(sharding, part)
    classes = _class_predictor(model, sharding.mesh)(
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        batch,
    )
    blocks = np.asarray(classes.addressable_data(0)).reshape(processes, local)
    return np.concatenate(
        [
            blocks[p, : max(0, min(local, rows - p * local))]
            for p in range(processes)
        ]
    )


def _class_predictor(model, mesh):
    """A jitted `(weights, images) -> classes` of `model`, its result on every device."""
    predictor = _PREDICTORS.get(model)
    if predictor is None:
        import jax

        def classes(trainable, non_trainable, images):
            outputs, _ = model.stateless_call(
                trainable, non_trainable, images, training=False
            )
            return jax.numpy.argmax(keras.tree.flatten(outputs)[0], axis=-1)

        replicated = jax.sharding.NamedSharding(
            mesh, jax.sharding.PartitionSpec()
        )
        predictor = jax.jit(classes, out_shardings=replicated)
        _PREDICTORS[model] = predictor
    return predictor


def weights_fingerprint(model):
    """The first 16 hex digits of a SHA-256 of `model.weights` (their values, in order).

    Processes that train one model together print it when they finish, so
    that anyone can check that all hold the same weights.
    """
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(
            np.ascontiguousarray(keras.ops.convert_to_numpy(weight)).tobytes()
        )
    return digest.hexdigest()[:16]


def broadcast_bytes(data):
    """Process 0's `data` (bytes; ignored elsewhere), on every process."""
    if process_count() == 1:
        return data
    from jax.experimental import multihost_utils

    chief = is_chief()
    size = np.array([len(data) if chief else 0], np.int64)
    size = int(multihost_utils.broadcast_one_to_all(size)[0])
    if size == 0:
        return b""
    buffer = (
        np.frombuffer(data, np.uint8) if chief else np.zeros(size, np.uint8)
    )
    return multihost_utils.broadcast_one_to_all(buffer).tobytes()


def run_on_chief(function, errors=()):
    """`function()` run on process 0 alone; its JSON result, or its error, on every process.

    An exception of one of the `errors` classes raised on process 0 is
    raised again on every process (the same class and message), so that no
    process waits for the others forever; any other exception is raised
    on process 0 and as a `RuntimeError` on the others.
    """
    if process_count() == 1:
        return function()
    outcome, error = None, None
    if is_chief():
        try:
            outcome = {"value": function()}
        except Exception as caught:  # shared below, then raised again
            error = caught
            outcome = {"error": str(caught), "type": type(caught).__name__}
    outcome = json.loads(broadcast_bytes(json.dumps(outcome).encode()))
    if error is not None:
        raise error
    if "error" in outcome:
        for kind in errors:
            if kind.__name__ == outcome["type"]:
                raise kind(outcome["error"])
        raise RuntimeError(
            f"Process 0 stopped with {outcome['type']}: {outcome['error']}"
        )
    return outcome["value"]


def barrier(name):
    """Waits until every process reaches the barrier `name` (nothing with one process)."""
    if process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
