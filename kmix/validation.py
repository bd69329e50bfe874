"""Argument checks shared by kmix: each error names the argument, the value
received and what was expected."""

import math
import numbers

import numpy as np


def check_number(
    name, value, low=None, high=None, low_open=False, high_open=False
):
    """Checks that `value` is a finite real number in the given interval.

    NaN and infinities are rejected even where the interval has no bound
    (a loss scale, a margin or a learning rate of `inf` only turns the loss
    into NaN). Returns the value as a Python float.

    Example:

    >>> check_number("strength", 0.3, 0.0, 1.0)
    0.3
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"Argument `{name}` must be a number. Received: {name}={value!r} "
            f"(of type {type(value).__name__})."
        )
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(
            f"Argument `{name}` must be a finite number. Received: {name}={value!r}."
        )
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (
        value >= high if high_open else value > high
    )
    if too_low or too_high:
        left = "(" if low_open else "["
        right = ")" if high_open else "]"
        low_text = "-inf" if low is None else low
        high_text = "inf" if high is None else high
        raise ValueError(
            f"Argument `{name}` must be in {left}{low_text}, {high_text}{right}. "
            f"Received: {name}={value!r}."
        )
    return value


def check_int(name, value, minimum):
    """Checks that `value` is an integer >= `minimum`; returns it as an int.

    Example:

    >>> check_int("epochs", 200, 1)
    200
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < minimum
    ):
        raise ValueError(
            f"Argument `{name}` must be an int >= {minimum}. Received: {name}={value!r}."
        )
    return int(value)


def check_choice(name, value, choices):
    """Checks that `value` is one of `choices` and returns it."""
    if value not in choices:
        raise ValueError(
            f"Argument `{name}` must be one of {sorted(choices)}. "
            f"Received: {name}={value!r}."
        )
    return value


def check_class_counts(class_counts, name="class_counts"):
    """Checks per-class training counts and returns them as a list of ints.

    Counts must form a non-empty 1-D sequence of non-negative integers with at
    least one positive entry.

    Example:

    >>> check_class_counts([500, 50, 5])
    [500, 50, 5]
    """
    if class_counts is None:
        raise ValueError(
            f"Argument `{name}` is required: pass the number of training "
            f"examples of each class, e.g. {name}=[5000, 500, 50]. "
            f"Received: {name}=None."
        )
    array = np.asarray(class_counts)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(
            f"Argument `{name}` must be a non-empty 1-D sequence with one "
            f"count per class. Received: {name}={class_counts!r}."
        )
    if not (
        np.issubdtype(array.dtype, np.integer)
        or (
            np.issubdtype(array.dtype, np.floating)
            and np.all(np.mod(array, 1) == 0)
        )
    ):
        raise ValueError(
            f"Argument `{name}` must contain integer counts. "
            f"Received: {name}={class_counts!r}."
        )
    if np.any(array < 0):
        raise ValueError(
            f"Argument `{name}` must be non-negative. "
            f"Received: {name}={class_counts!r}."
        )
    if not np.any(array > 0):
        raise ValueError(
            f"Argument `{name}` must have at least one positive count. "
            f"Received: {name}={class_counts!r}."
        )
    return [int(c) for c in array]


def check_label_values(labels, num_classes=None, name="labels"):
    """Checks the values of a batch of labels; returns the labels unchanged.

    Integer-form labels (shape `(batch,)` or `(batch, 1)`, of any dtype)
    must be whole numbers: a float label such as 2.5 would otherwise be
    truncated to a class index without a word. With `num_classes`, every
    class index (the argmax of one-hot or soft rows) must lie in
    `[0, num_classes)`: an index outside it would otherwise select no class
    (a loss of 0) or fail inside a gather with a bare TensorFlow error.

    Eager tensors and numpy arrays are checked at once (`ValueError`). In a
    traced TensorFlow function (e.g. `fit`'s training step) the checks are
    assertion ops, and the returned labels depend on them, so every op that
    uses the returned labels runs after the checks: an out-of-range label
    raises `InvalidArgumentError` with this message, never a bare
    `GatherV2` error. XLA (`jit_compile=True`) compiles assertions away.
    On JAX and PyTorch, eager tensors (on any device) are checked at once;
    traced values (inside a JAX-compiled step, the default of `fit` on JAX,
    or a `torch.compile`d one) cannot be read and are returned unchecked:
    run `fit` with `run_eagerly=True` to check them there.

    Example:

    >>> labels = check_label_values(np.array([0, 2, 1]), num_classes=3)
    >>> check_label_values(np.array([0, 3]), num_classes=3)
    Traceback (most recent call last):
    ...
    ValueError: Argument `labels` must hold class indices in [0, 3)...
    """
    # Imported here: this module stays importable without a backend.
    import keras
    from keras import ops

    from kmix.classes import integer_labels

    labels = ops.convert_to_tensor(labels)
    shape = tuple(labels.shape)
    integer_form = len(shape) == 1 or (len(shape) == 2 and shape[-1] == 1)
    may_be_fractional = integer_form and keras.backend.is_float_dtype(
        labels.dtype
    )
    tensorflow = keras.backend.backend() == "tensorflow"
    if tensorflow:
        import tensorflow as tf

        eager = tf.executing_eagerly()
    else:
        eager = not _is_traced(labels)
    if eager:
        values = np.asarray(ops.convert_to_numpy(labels))
        if (
            may_be_fractional
            and values.size
            and not np.all(np.mod(values, 1) == 0)
        ):
            bad = values[np.mod(values, 1) != 0].reshape(-1)[:3].tolist()
            raise ValueError(
                f"Argument `{name}` must hold integer class indices (labels of "
                f"shape (batch,) or (batch, 1)) or one-hot / soft rows of shape "
                f"(batch, num_classes). Received fractional labels such as "
                f"{bad}: they would be truncated to class indices."
            )
        if num_classes is not None and values.size:
            indices = np.asarray(ops.convert_to_numpy(integer_labels(labels)))
            low, high = int(indices.min()), int(indices.max())
            if low < 0 or high >= int(num_classes):
                raise ValueError(
                    f"Argument `{name}` must hold class indices in "
                    f"[0, {int(num_classes)}). Received labels with values in "
                    f"[{low}, {high}]."
                )
        return labels
    if not tensorflow:
        return labels
    checks = []
    if may_be_fractional:
        checks.append(
            tf.debugging.assert_equal(
                labels,
                tf.round(labels),
                message=f"Argument `{name}` must hold integer class indices (or one-hot / "
                "soft rows of shape (batch, num_classes)); received fractional labels, "
                "which would be truncated to class indices.",
            )
        )
    if num_classes is not None:
        indices = integer_labels(labels)
        message = (
            f"Argument `{name}` must hold class indices in [0, {int(num_classes)}) "
            "(the model's classes)."
        )
        checks.append(
            tf.debugging.assert_non_negative(indices, message=message)
        )
        checks.append(
            tf.debugging.assert_less(
                indices,
                tf.constant(int(num_classes), indices.dtype),
                message=message,
            )
        )
    if not checks:
        return labels
    with tf.control_dependencies(checks):
        return tf.identity(labels)


def _is_traced(tensor):
    """Whether `tensor` is traced: a JAX tracer, or PyTorch compiling.

    Such values cannot be read in Python; eager tensors (on any device)
    can.
    """
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return isinstance(tensor, jax.core.Tracer)
    if backend == "torch":
        import torch

        return torch.compiler.is_compiling()
    try:
        np.asarray(tensor)
    except Exception:  # noqa: BLE001 (tracers refuse conversion, each in its own way)
        return True
    return False
