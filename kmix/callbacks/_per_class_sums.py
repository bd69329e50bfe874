"""Per-class sums that a training or test step adds to, on every backend."""

import contextlib
import threading

import keras
import numpy as np
from keras import ops

from kmix.metrics._per_class_counts import PerClassCounts


class PerClassSums:
    """Per-class `(sums, counts)`, added to inside a step, read as numpy.

    `kmix.callbacks.ClassProgress` keeps its per-epoch statistics here. The
    step (its forward pass, or a `kmix.layers.FeatureProbe`'s backward pass)
    calls `add(sums, counts)` with two `(num_classes,)` tensors; the callback
    reads the totals between epochs with `read()`.

    - TensorFlow and PyTorch: the totals are the two variables of a
      `PerClassCounts` metric (sum-aggregated: under a `tf.distribute`
      strategy, created in `strategy`'s scope, each replica adds into its
      own copy and reading sums them), updated with `assign_add`.
    - JAX: the training step is a pure function and a variable assigned in
      its backward pass is in no state Keras returns, so the totals are
      float64 numpy arrays on the host, added to by
      `jax.experimental.io_callback` (unordered: addition does not care).
      Reading waits for the pending callbacks (`jax.effects_barrier()`).
      Under a `keras.distribution` the step sees the global batch, and the
      callback runs once per step with the global sums, on the process that
      holds the first device.
    """

    def __init__(self, num_classes, name, strategy=None):
        self.num_classes = num_classes
        self._on_host = keras.backend.backend() == "jax"
        if self._on_host:
            self._lock = threading.Lock()
            self._host = np.zeros((2, num_classes), "float64")
            return
        scope = (
            contextlib.nullcontext() if strategy is None else strategy.scope()
        )
        with scope:
            self._counts = PerClassCounts(num_classes, name=name)

    def add(self, sums, counts):
        """Adds `(num_classes,)` per-class `sums` and `counts` (traced)."""
        sums = ops.cast(sums, "float32")
        counts = ops.cast(counts, "float32")
        if self._on_host:
            from jax.experimental import io_callback

            io_callback(self._add_on_host, None, sums, counts, ordered=False)
            return
        self._counts.correct.assign_add(sums)
        self._counts.total.assign_add(counts)

    def _add_on_host(self, sums, counts):
        with self._lock:
            self._host[0] += np.asarray(sums, "float64")
            self._host[1] += np.asarray(counts, "float64")

    def reset(self):
        """Sets the totals to zero."""
        if self._on_host:
            _wait_for_host_callbacks()
            with self._lock:
                self._host[:] = 0.0
            return
        self._counts.reset_state()

    def read(self):
        """`(sums, counts)`, two float64 numpy arrays of `num_classes` values."""
        if self._on_host:
            _wait_for_host_callbacks()
            with self._lock:
                return self._host[0].copy(), self._host[1].copy()
        return (
            np.asarray(
                ops.convert_to_numpy(self._counts.correct.value), "float64"
            ),
            np.asarray(
                ops.convert_to_numpy(self._counts.total.value), "float64"
            ),
        )

    def means(self):
        """`sums / counts` per class, float64 numpy; NaN for classes never seen."""
        sums, counts = self.read()
        seen = counts > 0
        return np.where(seen, sums / np.where(seen, counts, 1.0), np.nan)


def _wait_for_host_callbacks():
    import jax

    jax.effects_barrier()
