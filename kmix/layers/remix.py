"""`Remix` (rebalanced mixup) and `mix_batches`, for batched tf.data pipelines."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from kmix import validation
from kmix.classes import integer_labels
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
        self.built = True

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

    def mix(self, images, labels, lam, permutation):
        """Remixes a batch with given `lam` `(batch,)` and `permutation`.

        The deterministic part of `call`, public so the rule can be checked
        on a constructed batch. Returns `{"images": ..., "labels": ...}` with
        one-hot float32 labels.
        """
        targets = one_hot_labels(labels, len(self.class_counts))
        images = ops.cast(images, self.compute_dtype)
        lam = ops.cast(ops.reshape(lam, (-1,)), "float32")
        permutation = ops.cast(permutation, "int32")
        partner_targets = ops.take(targets, permutation, axis=0)
        classes = integer_labels(targets)  # the argmax of one-hot / soft labels
        lam_y = self.label_weights(
            lam, classes, ops.take(classes, permutation, axis=0)
        )
        lam_x = ops.reshape(
            ops.cast(lam, images.dtype), [-1] + [1] * (len(images.shape) - 1)
        )
        mixed_images = lam_x * images + (1.0 - lam_x) * ops.take(
            images, permutation, axis=0
        )
        lam_y = ops.expand_dims(lam_y, -1)
        mixed_labels = lam_y * targets + (1.0 - lam_y) * partner_targets
        return {"images": mixed_images, "labels": mixed_labels}

    def label_weights(self, lam, labels, partner_labels):
        """`lam_y` of each row, from `lam` and the integer classes of both rows."""
        counts = ops.convert_to_tensor(np.asarray(self.class_counts, "float32"))
        lam = ops.cast(lam, "float32")
        n_i = ops.take(counts, ops.cast(labels, "int32"), axis=0)
        n_j = ops.take(counts, ops.cast(partner_labels, "int32"), axis=0)
        ratio = n_i / n_j
        to_partner = ops.logical_and(ratio >= self.kappa, lam < self.tau)
        to_self = ops.logical_and(
            ratio <= 1.0 / self.kappa, 1.0 - lam < self.tau
        )
        return ops.where(to_partner, 0.0, ops.where(to_self, 1.0, lam))

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
    set. Equivalent to

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

    def apply(images, labels):
        targets = one_hot_labels(labels, num_classes)
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
