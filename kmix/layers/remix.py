"""`Remix` (rebalanced mixup) and `mix_batches`, for batched tf.data pipelines."""

import sys

import keras
import numpy as np
from keras import ops

from kmix import validation
from kmix.classes import one_hot_labels


@keras.saving.register_keras_serializable(package="kmix")
class Remix(keras.layers.Layer):
    """Remix: mixup whose label weight favours the minor class.

    Chou, Chang, Pan, Wei & Juan, "Remix: Rebalanced Mixup", ECCV 2020
    Workshops (arXiv:2007.03943). A batch-level preprocessing layer, used
    like `keras.layers.MixUp`: it takes and returns
    `{"images": ..., "labels": ...}` and belongs in the `tf.data` pipeline
    after batching (see `kmix.layers.mix_batches`).

    In training, for each row `i`, a partner `j = perm(i)` (a uniform random
    permutation of the batch) and `lam_i ~ Beta(alpha, alpha)` (one draw per
    row, as `keras.layers.MixUp` does; the paper's code draws one per batch):

        images~_i = lam_i * x_i + (1 - lam_i) * x_j
        labels~_i = lam_y_i * y_i + (1 - lam_y_i) * y_j

    where, with the global training counts `n` and `r = n[y_i] / n[y_j]`,

        lam_y_i = 0        if r >= kappa      and lam_i < tau
                  1        if r <= 1 / kappa  and 1 - lam_i < tau
                  lam_i    otherwise.

    So when `i` is the major class (`r >= kappa`) and the image is mostly the
    minor example `j` (`lam_i < tau`), the whole label goes to `y_j`; when `i`
    is the minor class and the image is mostly `i` (`1 - lam_i < tau`), the
    whole label stays `y_i`. Either way the label is pushed to the minor
    class. Pairs whose counts differ by less than `kappa` are plain mixup.
    `kappa = 3`, `tau = 0.5` are the paper's defaults. Classes are read from
    the argmax of one-hot / soft labels; a zero count makes `r` infinite (or
    undefined for two empty classes, which falls back to `lam_i`).

    Labels may be integers `(batch,)` / `(batch, 1)` or one-hot / soft
    `(batch, C)`; mixed labels are float32 one-hot rows `(batch, C)`, so
    train with a loss that takes one-hot / soft labels
    (`keras.losses.CategoricalCrossentropy`, `kmix.losses.LDAMLoss`,
    `kmix.losses.LogitAdjustedLoss`, `keras.losses.CategoricalFocalCrossentropy`).
    With `training=False` the data is returned untouched. Like
    `keras.layers.MixUp`, `training` defaults to True since the layer is
    meant for the training pipeline.

    Backends: Remix belongs in the `tf.data` input pipeline, which feeds
    every Keras backend, so in a `tf.data` graph (e.g. through
    `kmix.layers.mix_batches`) it runs TensorFlow ops whatever the backend.
    On JAX and PyTorch it then draws from a TensorFlow random stream of its
    own, started from the same seed (the numbers differ from those of the
    TensorFlow backend). Called on arrays outside `tf.data` (as in the
    examples below) it runs `keras.ops` on the current backend.

    Combine with `kmix.MajorMix`: Remix mixes the inputs in the pipeline,
    `kmix.MixModel` mixes major-class features in the network and reads each
    row's class as the argmax of its (mixed) label.

    Args:
        class_counts: per-class training counts, in label order.
        alpha: float > 0, the parameter of `Beta(alpha, alpha)`.
        kappa: float >= 1, the count ratio from which a pair is imbalanced.
        tau: float in [0, 1], the image-weight threshold.
        seed: optional int seed.
        **kwargs: standard layer arguments.

    Example:

    >>> remix = kmix.layers.Remix(
    ...     [5000, 500, 50], alpha=1.0, kappa=3.0, tau=0.5
    ... )
    >>> images = np.zeros((2, 4, 4, 3), "float32")
    >>> out = remix.mix(
    ...     images, labels=[0, 2], lam=[0.3, 0.6], permutation=[1, 0]
    ... )
    >>> keras.ops.convert_to_numpy(out["labels"]).tolist()  # both go to class 2
    [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]

    In training it draws `lam` and the partners itself:

    >>> batch = {"images": x_train[:8], "labels": y_train[:8]}  # int or one-hot
    >>> out = kmix.layers.Remix(class_counts, seed=0)(batch)
    >>> tuple(out["labels"].shape)
    (8, 10)
    """

    def __init__(
        self, class_counts, alpha=1.0, kappa=3.0, tau=0.5, seed=None, **kwargs
    ):
        super().__init__(**kwargs)
        self.class_counts = validation.check_class_counts(class_counts)
        self.alpha = validation.check_number("alpha", alpha, 0.0, low_open=True)
        self.kappa = validation.check_number("kappa", kappa, 1.0)
        self.tau = validation.check_number("tau", tau, 0.0, 1.0)
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int)
        ):
            raise TypeError(
                f"Argument `seed` must be an int or None. Received: seed={seed!r}."
            )
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        # The stream of `tf.data` graphs under JAX / PyTorch (a plain holder:
        # Keras neither tracks nor saves it).
        self._pipeline_stream = _TensorFlowStream(self.seed_generator)
        self.built = True

    def __call__(self, data, training=None, **kwargs):
        if keras.backend.backend() != "tensorflow" and _in_tensorflow_graph(
            data
        ):
            # A `tf.data` pipeline under JAX or PyTorch: TensorFlow ops.
            return self._call_in_tensorflow(
                data, True if training is None else training
            )
        if training is not None:
            kwargs["training"] = training
        return super().__call__(data, **kwargs)

    def call(self, data, training=True):
        images, labels = _unpack(data)
        if not training:
            return data
        targets = one_hot_labels(labels, len(self.class_counts))
        batch_size = ops.shape(targets)[0]
        lam = keras.random.beta(
            (batch_size,), self.alpha, self.alpha, seed=self.seed_generator
        )
        permutation = keras.random.shuffle(
            ops.arange(batch_size, dtype="int32"), seed=self.seed_generator
        )
        return self.mix(images, targets, lam, permutation)

    def _call_in_tensorflow(self, data, training):
        """`call` in TensorFlow ops, for `tf.data` graphs on other backends."""
        import tensorflow as tf

        images, labels = _unpack(data)
        if not training:
            return data
        xp = _TensorFlowOps()
        targets = _one_hot(xp, labels, len(self.class_counts))
        batch_size = tf.shape(targets)[0]
        seed = self._pipeline_stream.next()
        alpha = tf.constant(self.alpha, "float32")
        x = tf.random.stateless_gamma((batch_size,), seed, alpha=alpha)
        y = tf.random.stateless_gamma((batch_size,), seed + [1, 0], alpha=alpha)
        lam = x / (x + y)
        permutation = tf.argsort(
            tf.random.stateless_uniform((batch_size,), seed + [2, 0])
        )
        return _remix(xp, self, images, targets, lam, permutation)

    def mix(self, images, labels, lam, permutation):
        """Remixes a batch with given `lam` `(batch,)` and `permutation`.

        The deterministic part of `call`, public so the rule can be checked
        on a constructed batch. Returns `{"images": ..., "labels": ...}` with
        one-hot float32 labels.
        """
        targets = one_hot_labels(labels, len(self.class_counts))
        return _remix(ops, self, images, targets, lam, permutation)

    def label_weights(self, lam, labels, partner_labels):
        """`lam_y` of each row, from `lam` and the integer classes of both rows."""
        return _label_weights(ops, self, lam, labels, partner_labels)

    def compute_output_shape(self, input_shape):
        images_shape = input_shape["images"]
        return {
            "images": images_shape,
            "labels": (images_shape[0], len(self.class_counts)),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "class_counts": list(self.class_counts),
                "alpha": self.alpha,
                "kappa": self.kappa,
                "tau": self.tau,
                "seed": self.seed,
            }
        )
        return config


def mix_batches(dataset, layer, num_classes):
    """Applies a batch-mixing layer to a batched `(images, labels)` dataset.

    Works with `keras.layers.MixUp` (input mixup, Zhang et al., "mixup:
    Beyond Empirical Risk Minimization", ICLR 2018) and `kmix.layers.Remix`:
    integer labels become one-hot (as `keras.layers.MixUp` needs), each batch
    goes through `layer({"images": x, "labels": y})`, and the dataset yields
    `(mixed_images, mixed_labels)` again, ready for `model.fit`. Apply it
    after `batch` (mixing pairs rows of one batch) and only to the training
    set. The mapped function runs TensorFlow ops on every Keras backend
    (`keras.layers.MixUp` and `Remix` switch to TensorFlow inside
    `tf.data`). Equivalent to

        ds.map(lambda x, y: tuple(layer(
            {"images": x, "labels": tf.one_hot(y, C)}).values()))

    Example:

    >>> train = tf.data.Dataset.from_tensor_slices((x_train, y_train)).batch(16)
    >>> mixup = kmix.layers.mix_batches(
    ...     train, keras.layers.MixUp(alpha=1.0), 10
    ... )
    >>> remix = kmix.layers.mix_batches(
    ...     train, kmix.layers.Remix(class_counts), 10
    ... )
    >>> images, labels = next(iter(remix))
    >>> tuple(images.shape), tuple(labels.shape)
    ((16, 28, 28, 1), (16, 10))

    Args:
        dataset: a `tf.data.Dataset` of batched `(images, labels)` pairs, with
            integer `(batch,)` / `(batch, 1)` or one-hot `(batch, C)` labels.
        layer: a layer that maps `{"images", "labels"}` to the same.
        num_classes: int, `C`.
    """
    num_classes = int(num_classes)
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(
            "Argument `dataset` must yield batched `(images, labels)` pairs "
            f"(sample weights cannot be mixed). Received: element_spec={spec!r}."
        )

    import tensorflow as tf

    xp = _TensorFlowOps()

    def apply(images, labels):
        targets = _one_hot(xp, labels, num_classes)
        out = layer({"images": images, "labels": targets}, training=True)
        return out["images"], out["labels"]

    return dataset.map(apply, num_parallel_calls=tf.data.AUTOTUNE)


def _unpack(data):
    if (
        not isinstance(data, dict)
        or "images" not in data
        or "labels" not in data
    ):
        raise ValueError(
            "Remix takes a dict `{'images': ..., 'labels': ...}` (as "
            "`keras.layers.MixUp` does). Received: "
            f"{type(data).__name__}{_keys_text(data)}."
        )
    return data["images"], data["labels"]


def _keys_text(data):
    return f" with keys {sorted(data)}" if isinstance(data, dict) else ""


def _remix(xp, layer, images, targets, lam, permutation):
    """The Remix of one batch, in the ops of `xp` (`keras.ops` or TensorFlow)."""
    images = xp.cast(images, layer.compute_dtype)
    lam = xp.cast(xp.reshape(lam, (-1,)), "float32")
    permutation = xp.cast(permutation, "int32")
    partner_targets = xp.take(targets, permutation, axis=0)
    # The argmax of one-hot / soft labels.
    classes = xp.cast(xp.argmax(targets, axis=-1), "int32")
    lam_y = _label_weights(
        xp, layer, lam, classes, xp.take(classes, permutation, axis=0)
    )
    lam_x = xp.reshape(
        xp.cast(lam, images.dtype), (-1,) + (1,) * (len(images.shape) - 1)
    )
    mixed_images = lam_x * images + (1.0 - lam_x) * xp.take(
        images, permutation, axis=0
    )
    lam_y = xp.expand_dims(lam_y, -1)
    mixed_labels = lam_y * targets + (1.0 - lam_y) * partner_targets
    return {"images": mixed_images, "labels": mixed_labels}


def _label_weights(xp, layer, lam, labels, partner_labels):
    """Remix's `lam_y` rule, in the ops of `xp`."""
    counts = xp.convert_to_tensor(np.asarray(layer.class_counts, "float32"))
    lam = xp.cast(xp.convert_to_tensor(lam), "float32")
    n_i = xp.take(counts, xp.cast(labels, "int32"), axis=0)
    n_j = xp.take(counts, xp.cast(partner_labels, "int32"), axis=0)
    ratio = n_i / n_j
    to_partner = xp.logical_and(ratio >= layer.kappa, lam < layer.tau)
    to_self = xp.logical_and(ratio <= 1.0 / layer.kappa, 1.0 - lam < layer.tau)
    return xp.where(to_partner, 0.0, xp.where(to_self, 1.0, lam))


def _one_hot(xp, labels, num_classes):
    """`kmix.classes.one_hot_labels` in the ops of `xp` (for TensorFlow)."""
    labels = xp.convert_to_tensor(labels)
    shape = tuple(labels.shape)
    if len(shape) == 2 and shape[-1] == num_classes and num_classes != 1:
        return xp.cast(labels, "float32")
    if len(shape) == 1 or (len(shape) == 2 and shape[-1] == 1):
        indices = xp.cast(xp.reshape(labels, (-1,)), "int32")
        return xp.one_hot(indices, num_classes, dtype="float32")
    raise ValueError(
        "Argument `labels` must hold integer labels of shape (batch,) or "
        f"(batch, 1), or one-hot / soft labels of shape (batch, {num_classes}). "
        f"Received: labels of shape {shape}."
    )


class _TensorFlowOps:
    """The few `keras.ops` functions Remix uses, in TensorFlow.

    `tf.data` graphs run TensorFlow whatever the Keras backend, so the
    pipeline side of Remix and `mix_batches` use these.
    """

    def __init__(self):
        import tensorflow as tf

        self._tf = tf

    def convert_to_tensor(self, x, dtype=None):
        return self._tf.convert_to_tensor(x, dtype=dtype)

    def cast(self, x, dtype):
        return self._tf.cast(x, dtype)

    def reshape(self, x, shape):
        return self._tf.reshape(x, shape)

    def take(self, x, indices, axis=None):
        return self._tf.gather(x, indices, axis=axis)

    def argmax(self, x, axis=None):
        return self._tf.argmax(x, axis=axis)

    def where(self, condition, x, y):
        return self._tf.where(condition, x, y)

    def logical_and(self, x, y):
        return self._tf.logical_and(x, y)

    def expand_dims(self, x, axis):
        return self._tf.expand_dims(x, axis)

    def one_hot(self, x, num_classes, dtype="float32"):
        return self._tf.one_hot(x, num_classes, dtype=dtype)


class _TensorFlowStream:
    """Remix's random stream in `tf.data` graphs under JAX or PyTorch.

    A TensorFlow variable `[seed, counter]`, made on first use (outside the
    traced function) and started from the seed of the layer's
    `SeedGenerator`; each batch takes the next int32 seed pair.
    """

    def __init__(self, seed_generator):
        self._seed_generator = seed_generator
        self._state = None

    def next(self):
        import tensorflow as tf

        if self._state is None:
            first = int(ops.convert_to_numpy(self._seed_generator.state)[0])
            with tf.init_scope():
                self._state = tf.Variable(
                    [first, 0], dtype="int64", trainable=False
                )
        state = self._state.assign_add([0, 1])
        return tf.cast(tf.math.floormod(state, tf.int32.max - 1), "int32")


def _in_tensorflow_graph(data):
    """Whether `data` holds symbolic TensorFlow tensors (e.g. in `tf.data`)."""
    tf = sys.modules.get("tensorflow")
    if tf is None or tf.executing_eagerly():
        return False
    values = data.values() if isinstance(data, dict) else [data]
    return any(isinstance(value, tf.Tensor) for value in values)
