"""The `MajorMix` layer: major-class feature mixing."""

import keras
import numpy as np
from keras import ops

from kmix import classes
from kmix import validation
from kmix.classes import integer_labels
from kmix.layers.mixing_context import current_mixing_context

DISTRIBUTIONS = ("uniform", "beta")
# Which rows a mixed row may take its partner from.
PARTNERS = ("any", "major")
# The key of the random stream's state among a MajorMix layer's saved variables.
_SEED_STATE_KEY = "seed_generator_state"
# Added to the first element of a step's seed for the draw of `u` from
# Beta(alpha, alpha), so that it never meets the step's uniform draws (the
# torch backend seeds with the sum of the two elements).
_BETA_SEED_OFFSET = 2**30
# Under `tf.distribute`, replica r adds 16 * r to the first seed element.
_REPLICA_SEED_STRIDE = 16


@keras.saving.register_keras_serializable(package="kmix")
class MajorMix(keras.layers.Layer):
    """Mixes the features of major-class examples with other examples.

    Implements the feature mixing of "Procrustean Training for Imbalanced Deep
    Learning" (Ye, Zhan & Chao, ICCV 2021, arXiv:2104.01769) as kmix defines
    it. In training, each row `i` of the batch whose label is a major class is,
    with probability `mix_prob`, replaced by

        h~_i = lam_i * h_i + (1 - lam_i) * h_j,   lam_i = 1 - strength * u_i,

    where `j = perm(i)` for a uniform random permutation of the batch (the
    partner may be of any class) and `u_i ~ U(0, 1)` (`distribution="uniform"`)
    or `u_i ~ Beta(alpha, alpha)` (`distribution="beta"`). Major classes are
    `{c : n_c >= major_threshold * max(n)}` for the global training counts
    `n`, or exactly `major_classes` when given. Rows of minor classes are
    returned bit-identical, labels never change, and gradients flow through
    both `h_i` and `h_j`. In inference (`training=False`) the layer is the
    identity.

    On long tails a hard threshold makes few classes major (with 0.5, two
    of Fashion-MNIST exp-100's ten). `frequency_gamma=g` replaces it by a
    graded rule: a row of class `c` is mixed with probability
    `mix_prob * (n_c / max(n)) ** g`, so the larger a class, the more often
    its rows are mixed, and no class is returned untouched by rule (kmix's
    option; `kmix.classes.mixing_probabilities` computes it).

    `partners="major"` draws each mixed row's partner among the batch's
    major-class rows only (a random pairing of those rows), so a minor-class
    example's features are never mixed into a row labelled with a major
    class (kmix's option; the default `"any"` is the definition above). It
    needs the threshold rule or `major_classes`, not `frequency_gamma`.

    Labels reach the layer through `kmix.MixModel`'s training step, through
    `kmix.mixing_context`, or through the `labels=` call argument. The layer
    works on inputs of any rank with the batch first and any float dtype.

    `strength` is held in a non-trainable variable: assigning
    `layer.strength = 0.0` during `fit` (for example from a callback) turns
    mixing off without retracing the training step. On JAX, `fit` keeps the
    variables' values outside them during an epoch: reach the layer through
    the callback's `self.model` in the hook that assigns (Keras then syncs
    the values), as `kmix.callbacks.MixSchedule` does; an assignment made
    mid-epoch through a layer reference kept from earlier is lost.

    The layer is written in `keras.ops` and `keras.random` and runs on the
    TensorFlow, JAX and PyTorch backends with the same semantics. Its random
    numbers come from one `keras.random.SeedGenerator`, advanced once per
    call in training (once per training step): the same `seed` gives the
    same mixing on one backend, while the streams of different backends
    differ. On TensorFlow the stream changed when the layer moved to
    `keras.random` (it drew `tf.random.stateless_*` directly before): a seed
    gives other draws than in earlier kmix versions.

    Distribution: under a `tf.distribute` strategy (TensorFlow backend) each
    replica mixes inside its own slice of the batch and draws its own random
    stream (its seed is offset by the replica id); class counts stay global.
    Under JAX's `keras.distribution` (e.g. `DataParallel`) the training step
    is one SPMD program over the global batch, so the layer draws one stream
    for the global batch and partners may come from any device's rows: the
    same mixing, up to the random numbers, as on one device with that batch.

    The state of the random stream is saved with the layer's weights (in
    `.keras` files, `save_weights` and `keras.callbacks.BackupAndRestore`
    backups), so a restored model goes on with the draws it would have made;
    a file saved on one backend loads on any other (the stream then goes on
    with that backend's generator).
    Labels are checked: integer labels must be whole class indices in
    `[0, num_classes)` and must be as many as the rows of `inputs`. Values
    are checked where they can be read: eagerly, and in TensorFlow graphs
    (as assertions); inside a JAX-compiled step (`jit_compile=True`, the
    default on JAX) traced labels cannot be inspected, so only their shape
    is checked (run with `run_eagerly=True` to check values). The batch
    sizes of `inputs` and labels are compared statically on every backend
    and, for batch sizes unknown until run time, by an assertion in
    TensorFlow graphs.

    Args:
        strength: float in [0, 1], how far `lam` may move from 1. 0 turns
            mixing off; 1 draws `lam` over the whole of [0, 1].
        major_threshold: float in (0, 1]. A class is major when its training
            count is at least this fraction of the largest count.
        major_classes: optional list of class indices that are major; it
            overrides `major_threshold` and needs no class counts.
        mix_prob: float in [0, 1], the probability that a major-class row is
            mixed.
        frequency_gamma: None (default: the threshold rule) or a float
            >= 0: mix a row of class `c` with probability
            `mix_prob * (n_c / max(n)) ** frequency_gamma` instead.
        distribution: `"uniform"` (default, XLA-compatible) or `"beta"`.
        partners: `"any"` (default): the partner is any row of the batch;
            `"major"`: a row of a major class.
        alpha: float > 0, the parameter of `Beta(alpha, alpha)`; used only
            with `distribution="beta"`.
        seed: optional int seed of the random stream.
        **kwargs: standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: a float tensor of shape `(batch, ...)`.
        training: Python bool; mixing happens only when `True`.
        labels: optional labels of the batch (integer `(batch,)` or
            `(batch, 1)`, or one-hot `(batch, num_classes)`). Defaults to the
            labels of the enclosing `kmix.mixing_context`.
        class_counts: optional global training counts per class. Defaults to
            those of the enclosing `kmix.mixing_context`.

    Example:

    >>> inputs = keras.Input((32, 32, 3))
    >>> x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(
    ...     inputs
    ... )
    >>> x = kmix.layers.MajorMix(strength=0.5, major_threshold=0.5)(x)
    >>> x = keras.layers.GlobalAveragePooling2D()(x)
    >>> outputs = keras.layers.Dense(10)(x)
    >>> model = kmix.MixModel(
    ...     inputs, outputs, class_counts=[5000] * 5 + [50] * 5
    ... )

    Called on its own, with the labels and counts given:

    >>> layer = kmix.layers.MajorMix(strength=1.0, seed=0)
    >>> h = np.arange(8, dtype="float32").reshape(4, 2)
    >>> mixed = layer(
    ...     h, training=True, labels=[0, 0, 1, 1], class_counts=[100, 10]
    ... )
    >>> keras.ops.convert_to_numpy(mixed)[
    ...     2:
    ... ].tolist()  # class 1 is minor: unchanged
    [[4.0, 5.0], [6.0, 7.0]]
    >>> keras.ops.convert_to_numpy(
    ...     layer(h, training=False)
    ... ).tolist() == h.tolist()
    True
    """

    def __init__(
        self,
        strength=0.5,
        major_threshold=0.5,
        major_classes=None,
        mix_prob=1.0,
        distribution="uniform",
        alpha=1.0,
        seed=None,
        frequency_gamma=None,
        partners="any",
        **kwargs,
    ):
        super().__init__(**kwargs)
        strength = validation.check_number("strength", strength, 0.0, 1.0)
        self.major_threshold = validation.check_number(
            "major_threshold", major_threshold, 0.0, 1.0, low_open=True
        )
        self.major_classes = classes.check_major_classes(major_classes)
        self.mix_prob = validation.check_number("mix_prob", mix_prob, 0.0, 1.0)
        self.frequency_gamma = (
            None
            if frequency_gamma is None
            else validation.check_number(
                "frequency_gamma", frequency_gamma, 0.0
            )
        )
        if self.frequency_gamma is not None and self.major_classes is not None:
            raise ValueError(
                "Arguments `major_classes` and `frequency_gamma` are two rules "
                "for which rows to mix; give one. Received: "
                f"major_classes={major_classes!r}, "
                f"frequency_gamma={frequency_gamma!r}."
            )
        self.distribution = validation.check_choice(
            "distribution", distribution, DISTRIBUTIONS
        )
        self.partners = validation.check_choice("partners", partners, PARTNERS)
        if self.partners == "major" and self.frequency_gamma is not None:
            raise ValueError(
                "Argument `partners='major'` needs major classes, and "
                "`frequency_gamma` grades every class instead of naming "
                "major ones: use the threshold rule (or `major_classes`) with "
                "it. Received: partners='major', "
                f"frequency_gamma={frequency_gamma!r}."
            )
        self.alpha = validation.check_number("alpha", alpha, 0.0, low_open=True)
        if seed is not None and (
            isinstance(seed, bool) or not isinstance(seed, int)
        ):
            raise TypeError(
                f"Argument `seed` must be an int or None. Received: seed={seed!r}."
            )
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.strength_variable = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(strength),
            trainable=False,
            dtype="float32",
            autocast=False,
            name="strength",
        )
        self.supports_masking = True
        self.built = True

    @property
    def strength(self):
        """The current mixing strength (a Python float).

        The variable is float32; its shortest decimal form is returned, so a
        strength set to 0.3 reads back as 0.3.
        """
        value = ops.convert_to_numpy(self.strength_variable)
        return float(str(np.float32(value)))

    @strength.setter
    def strength(self, value):
        self.strength_variable.assign(
            validation.check_number("strength", value, 0.0, 1.0)
        )

    def call(self, inputs, training=False, labels=None, class_counts=None):
        if not training:
            return inputs
        context = current_mixing_context()
        if labels is None and context is not None:
            labels = context[0]
        if class_counts is None and context is not None:
            class_counts = context[1]
        if labels is None:
            raise ValueError(
                f"MajorMix layer '{self.name}' was called with training=True "
                "but received no labels, so it cannot tell major-class rows "
                "from minor-class rows. Train the model with `kmix.MixModel` "
                "(e.g. `kmix.MixModel.from_model(model, class_counts)`), open "
                "`kmix.mixing_context(labels=y, class_counts=counts)` around "
                "the forward pass, or pass `labels=` to the layer."
            )
        num_classes = None if class_counts is None else len(class_counts)
        labels = ops.convert_to_tensor(labels)
        labels = self._check_batch_sizes(inputs, labels)
        labels = integer_labels(
            validation.check_label_values(labels, num_classes)
        )
        row_prob = self._row_probabilities(labels, class_counts)

        batch_size = ops.shape(inputs)[0]
        # One draw of the stream per step; every draw below derives from it.
        seed = self._replica_seed()
        # Row 0 orders the permutation, row 1 picks the mixed rows, row 2 is
        # `u` for the uniform distribution; with partners="major", row 3
        # orders the partners.
        uniforms = keras.random.uniform(
            (3 if self.partners == "any" else 4, batch_size),
            dtype="float32",
            seed=_GivenSeed(seed),
        )
        if self.partners == "any":
            permutation = ops.argsort(uniforms[0])
        else:
            permutation = _pool_permutation(
                uniforms[0], uniforms[3], ops.greater(row_prob, 0.0)
            )
        mixed_rows = ops.less(uniforms[1], row_prob)
        if self.distribution == "uniform":
            u = uniforms[2]
        else:
            beta_seed = ops.add(
                seed,
                ops.convert_to_tensor(
                    [_BETA_SEED_OFFSET, 0],
                    dtype=keras.backend.standardize_dtype(seed.dtype),
                ),
            )
            u = keras.random.beta(
                (batch_size,),
                self.alpha,
                self.alpha,
                dtype="float32",
                seed=_GivenSeed(beta_seed),
            )

        lam = 1.0 - ops.cast(self.strength_variable, "float32") * u
        row_shape = (-1,) + (1,) * (len(inputs.shape) - 1)
        lam = ops.reshape(ops.cast(lam, inputs.dtype), row_shape)
        partners = ops.take(inputs, permutation, axis=0)
        mixed = lam * inputs + (1.0 - lam) * partners
        return ops.where(ops.reshape(mixed_rows, row_shape), mixed, inputs)

    def _row_probabilities(self, labels, class_counts):
        """The float32 `(batch,)` probability that each row is mixed."""
        if self.major_classes is not None and class_counts is None:
            # Explicit major classes need no counts.
            major = ops.convert_to_tensor(self.major_classes, "int32")
            is_major = ops.any(
                ops.equal(
                    ops.expand_dims(labels, 1), ops.expand_dims(major, 0)
                ),
                axis=1,
            )
            return ops.cast(is_major, "float32") * self.mix_prob
        if class_counts is None:
            raise ValueError(
                f"MajorMix layer '{self.name}' needs the global class counts "
                "to find the major classes. Pass `class_counts=` to "
                "`kmix.MixModel` (or to `kmix.mixing_context` / the layer "
                "call), or give the layer explicit `major_classes=[...]`. "
                "Received: class_counts=None."
            )
        probabilities = classes.mixing_probabilities(
            np.asarray(class_counts).tolist(),
            major_threshold=self.major_threshold,
            major_classes=self.major_classes,
            mix_prob=self.mix_prob,
            frequency_gamma=self.frequency_gamma,
        )
        return ops.take(ops.convert_to_tensor(probabilities), labels, axis=0)

    def _check_batch_sizes(self, inputs, labels):
        """`labels`, after checking that they and `inputs` share the batch size.

        Raises `ValueError` when both sizes are known (always on JAX and
        PyTorch); in a TensorFlow graph with unknown batch sizes the
        returned labels depend on an assertion instead.
        """
        static_labels, static_inputs = labels.shape[0], inputs.shape[0]
        if static_labels is not None and static_inputs is not None:
            if static_labels != static_inputs:
                raise ValueError(
                    f"MajorMix layer '{self.name}' received labels for a batch "
                    f"of {static_labels} rows and features for a batch of "
                    f"{static_inputs} rows: each row of the features needs its "
                    "label (the first, batch, dimensions must match)."
                )
            return labels
        if keras.backend.backend() != "tensorflow":
            return labels
        import tensorflow as tf

        if tf.executing_eagerly():
            return labels
        check = tf.debugging.assert_equal(
            tf.shape(labels)[0],
            tf.shape(inputs)[0],
            message=f"MajorMix layer '{self.name}' received labels and features "
            "of different batch sizes (x: labels, y: features): each row "
            "of the features needs its label.",
        )
        with tf.control_dependencies([check]):
            return tf.identity(labels)

    def _replica_seed(self):
        """This step's seed pair: the stream's next seed, per replica.

        On the TensorFlow backend, inside a `tf.distribute` replica context,
        the first element is offset by 16 times the replica id, so that
        each replica draws its own stream. The second element counts the
        steps. Other backends (JAX's `keras.distribution` included, where
        the step sees the global batch) use the seed as drawn.
        """
        seed = self.seed_generator.next()
        if keras.backend.backend() != "tensorflow":
            return seed
        import tensorflow as tf

        replica_context = tf.distribute.get_replica_context()
        if replica_context is None:
            return seed
        replica_id = tf.cast(
            replica_context.replica_id_in_sync_group, seed.dtype
        )
        return seed + tf.stack(
            [_REPLICA_SEED_STRIDE * replica_id, tf.zeros_like(replica_id)]
        )

    def save_own_variables(self, store):
        """Saves `strength` and the state of the random stream.

        Keras saves a layer's weights but not its `SeedGenerator` state, so
        a model restored from a `.keras` file or a
        `keras.callbacks.BackupAndRestore` backup would start its mixing
        stream again from the seed. MajorMix saves the state next to
        `strength`, so a resumed run mixes with the draws the uninterrupted
        run would have made.
        """
        super().save_own_variables(store)
        store[_SEED_STATE_KEY] = ops.convert_to_numpy(self.seed_generator.state)

    def load_own_variables(self, store):
        """Loads `strength` and, when the file has it, the random stream's state.

        Files written before kmix saved the state load too; their stream
        starts again from the seed.
        """
        keys = list(store.keys())
        if _SEED_STATE_KEY in keys:
            self.seed_generator.state.assign(
                _seed_state_as(
                    store[_SEED_STATE_KEY], self.seed_generator.state.dtype
                )
            )
        super().load_own_variables(
            {key: store[key] for key in keys if key != _SEED_STATE_KEY}
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "strength": self.strength,
                "major_threshold": self.major_threshold,
                "major_classes": self.major_classes,
                "mix_prob": self.mix_prob,
                "distribution": self.distribution,
                "alpha": self.alpha,
                "seed": self.seed,
                "frequency_gamma": self.frequency_gamma,
                "partners": self.partners,
            }
        )
        return config


class _GivenSeed(keras.random.SeedGenerator):
    """A seed for `keras.random` that is a given seed tensor.

    `keras.random` functions take an int or a `SeedGenerator` as `seed`, and
    call `next()` on a generator. MajorMix draws one seed per step from its
    own generator and derives a seed per draw (and per replica) from it;
    this holder hands such a derived seed to `keras.random` as it is. It
    has no state variable of its own, so it may be made inside a traced
    step (a JAX `StatelessScope` included).
    """

    def __init__(self, seed):  # noqa: D107 (no SeedGenerator state)
        self.seed = seed

    def next(self, ordered=True):
        return self.seed


def _seed_state_as(state, dtype):
    """A saved `(2,)` seed state as a numpy array of `dtype`.

    Backends keep the state in different dtypes (TensorFlow int64, JAX
    uint32, PyTorch int32); the values are 32-bit seeds, so a state saved on
    one backend is read modulo 2**32 and, for int32, as the same 32 bits.
    """
    dtype = keras.backend.standardize_dtype(dtype)
    values = np.asarray(state).astype("int64")
    if dtype == "uint32":
        return (values % 2**32).astype("uint32")
    if dtype == "int32":
        return (((values % 2**32) ^ 2**31) - 2**31).astype("int32")
    return values.astype(dtype)


def _pool_permutation(order_keys, partner_keys, in_pool):
    """A random permutation that maps the rows of `in_pool` among themselves.

    Sorting by `keys + 2 * (row not in pool)` lists the pool's rows first, in
    a random order; pairing two such orders (`permutation[order[k]] =
    partner_order[k]`) gives every pool row a partner in the pool, and the
    other rows partners among the others.
    """
    outside = 2.0 * (1.0 - ops.cast(in_pool, "float32"))
    order = ops.argsort(order_keys + outside)
    partner_order = ops.argsort(partner_keys + outside)
    return ops.take(partner_order, ops.argsort(order), axis=0)
