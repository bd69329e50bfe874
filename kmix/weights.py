"""Deprecated alias of `kmix.class_weights` (per-class loss weights).

`kmix.weights` held class weights, not model weights; the module is now
`kmix.class_weights`. Importing this module, or reading a name from it,
warns with a `DeprecationWarning` and otherwise behaves as
`kmix.class_weights`.
"""

import warnings

from kmix import class_weights as _class_weights

_MESSAGE = (
    "`kmix.weights` is deprecated: it holds per-class loss weights, now in "
    "`kmix.class_weights` (e.g. `kmix.class_weights.class_balanced`). "
    "`kmix.weights` will be removed in a future release."
)

warnings.warn(_MESSAGE, DeprecationWarning, stacklevel=2)


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    value = getattr(_class_weights, name)
    warnings.warn(_MESSAGE, DeprecationWarning, stacklevel=2)
    return value


def __dir__():
    return [name for name in dir(_class_weights) if not name.startswith("_")]
