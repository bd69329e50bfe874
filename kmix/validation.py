"""Argument checks shared by kmix: each error names the argument, the value
received and what was expected."""

import numbers

import numpy as np


def check_number(name, value, low=None, high=None, low_open=False, high_open=False):
    """Checks that `value` is a real number in the given interval.

    Returns the value as a Python float.

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
    too_low = low is not None and (value <= low if low_open else value < low)
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high or np.isnan(value):
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
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
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
    if not (np.issubdtype(array.dtype, np.integer) or
            (np.issubdtype(array.dtype, np.floating) and np.all(np.mod(array, 1) == 0))):
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
