"""The one place where kmix uses Keras internals (`keras.src`).

Why they are needed: `kmix.MixModel` is meant to be used both ways Keras
models are built, functionally (`MixModel(inputs, outputs, class_counts=...)`)
and by subclassing (`class Net(kmix.MixModel)` with its own `call`). Keras'
public pattern for a functional subclass of `keras.Model` is to call the
subclass with `(inputs, outputs)`; `keras.Model.__init__` then rewrites the
subclass's bases in place (`inject_functional_model_class`), so that from then
on every class derived from it, `MixModel` and its users' subclasses included,
is a `Functional` and fails when built by subclassing (`'Net' object has no
attribute '_inputs'`). kmix therefore routes functional use to a separate
class that is a `Functional` from the start (`kmix.models.mix_model`), which
needs Keras' `Functional` class, its test of functional arguments,
`Trainer.__init__` (which `Functional.__init__` does not run) and the
automatic model name.

The private `Layer._flatten_layers` is wrapped by `flatten_layers`, the one
helper with which kmix walks nested layers (Keras has no public equivalent
for the sublayers of a layer that is not a model).

`TESTED_KERAS` is the range of Keras versions these assumptions were tested
with; setup.py pins the same range and `tests/test_keras_compat.py` fails
with a clear message when an installed Keras breaks one of them.
"""

import keras

TESTED_KERAS = ">=3.10,<3.16"

try:
    from keras.src.models.functional import Functional
    from keras.src.models.model import functional_init_arguments
    from keras.src.trainers.trainer import Trainer
    from keras.src.utils.naming import auto_name
except ImportError as error:  # pragma: no cover - depends on the Keras release
    raise ImportError(
        f"kmix needs Keras internals that Keras {keras.__version__} does not "
        f"have ({error}). kmix is tested with keras{TESTED_KERAS}: install one "
        f"of those (pip install 'keras{TESTED_KERAS}'), or see "
        "kmix/_keras_compat.py for what kmix relies on."
    ) from error

__all__ = [
    "TESTED_KERAS",
    "Functional",
    "flatten_layers",
    "functional_init_arguments",
    "init_functional_model",
]


def init_functional_model(model, args, kwargs, default_name):
    """Runs what `keras.Model.__init__` runs for `Model(inputs, outputs)`.

    Without touching the class hierarchy: `model`'s class must already derive
    from `Functional`.
    """
    Trainer.__init__(model)
    kwargs.setdefault("name", auto_name(default_name))
    Functional.__init__(model, *args, **kwargs)


def flatten_layers(layer, include_self=True):
    """All layers inside `layer`, nested models and layers included, as a list.

    Each layer appears once, in depth-first order; `layer` itself comes first
    when `include_self` is True.
    """
    return list(
        layer._flatten_layers(include_self=include_self, recursive=True)
    )
