"""The channel through which `MixModel.train_step` hands labels to `MajorMix`."""

import contextlib
import threading

_STATE = threading.local()


@contextlib.contextmanager
def mixing_context(labels, class_counts=None):
    """Makes `labels` (and the global `class_counts`) visible to `MajorMix`.

    `kmix.MixModel.train_step` opens this context around its forward pass;
    every `kmix.MajorMix` called in training mode inside it reads the labels
    of the current mini-batch from here. Use it directly in a custom training
    loop when the mixing layers sit deep inside a model:

    >>> x, y = x_train[:8], y_train[:8]
    >>> with kmix.mixing_context(labels=y, class_counts=class_counts):
    ...     logits = model(x, training=True)
    >>> tuple(logits.shape)
    (8, 10)

    The context is thread-local, so each `tf.distribute` replica (one thread
    per replica under `MirroredStrategy`) sees its own slice of labels. It
    works on every Keras backend; under JAX it must be open while the step
    is traced (as in `MixModel.train_step`), since the layers read the
    labels then.

    Args:
        labels: integer labels of shape `(batch,)` or `(batch, 1)`, or one-hot
            labels of shape `(batch, num_classes)`.
        class_counts: the number of training examples of each class, over the
            whole training set (not the batch). Needed unless every
            `MajorMix` layer has explicit `major_classes`.
    """
    stack = _stack()
    stack.append((labels, class_counts))
    try:
        yield
    finally:
        stack.pop()


def current_mixing_context():
    """Returns `(labels, class_counts)` of the innermost context, or `None`."""
    stack = _stack()
    return stack[-1] if stack else None


def _stack():
    if not hasattr(_STATE, "stack"):
        _STATE.stack = []
    return _STATE.stack
