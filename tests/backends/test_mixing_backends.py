"""`MajorMix` and `MixModel` on every Keras backend (JAX, PyTorch, TensorFlow).

`scripts/test_backends.sh` runs this file once per backend; each test
asserts the same numbers on each. Models and data are tiny numpy arrays.
"""

import concurrent.futures

import keras
import numpy as np
import pytest

import kmix

NUM_FEATURES = 8
# 32 rows, batches of 8: classes 0 and 1 are major (threshold 0.5).
LABELS = np.resize(np.array([0, 0, 1, 0, 1, 2, 0, 3], "int32"), 32)
COUNTS = [16, 8, 4, 4]
MINOR = np.isin(LABELS, [2, 3])
BATCH = 8
LR = 0.1


def _data(seed=0):
    rng = np.random.RandomState(seed)
    means = rng.normal(size=(len(COUNTS), NUM_FEATURES))
    x = means[LABELS] + 0.5 * rng.normal(size=(len(LABELS), NUM_FEATURES))
    return x.astype("float32"), LABELS.copy()


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _hidden_model(mix_kwargs=None, mix_model=True):
    """Dense(16, relu) -> [MajorMix "mix"] -> Dense(4, "logits"), fixed weights.

    With `mix_model=False`, a plain `keras.Model` without the `MajorMix`.
    """
    rng = np.random.RandomState(1)
    inputs = keras.Input((NUM_FEATURES,))
    h = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    if mix_model:
        h = kmix.MajorMix(name="mix", **(mix_kwargs or {}))(h)
    outputs = keras.layers.Dense(len(COUNTS), name="logits")(h)
    if mix_model:
        model = kmix.MixModel(inputs, outputs, class_counts=COUNTS)
    else:
        model = keras.Model(inputs, outputs)
    model.get_layer("hidden").set_weights(
        [0.4 * rng.normal(size=(NUM_FEATURES, 16)), 0.1 * np.ones(16)]
    )
    model.get_layer("logits").set_weights(
        [0.4 * rng.normal(size=(16, len(COUNTS))), np.zeros(len(COUNTS))]
    )
    return model


def _linear_model(strength):
    """MajorMix "mix" on the inputs -> Dense(4, "logits"): a softmax regression."""
    inputs = keras.Input((NUM_FEATURES,))
    h = kmix.MajorMix(strength=strength, seed=5, name="mix")(inputs)
    outputs = keras.layers.Dense(len(COUNTS), name="logits")(h)
    model = kmix.MixModel(inputs, outputs, class_counts=COUNTS)
    model.get_layer("logits").set_weights(_linear_weights())
    return model


def _linear_weights():
    rng = np.random.RandomState(2)
    return [
        (0.3 * rng.normal(size=(NUM_FEATURES, len(COUNTS)))).astype("float32"),
        np.zeros(len(COUNTS), "float32"),
    ]


def _softmax_loss_and_gradient(kernel, bias, x, y):
    """Mean cross-entropy of softmax(x @ kernel + bias) and its gradient."""
    logits = x @ kernel + bias
    logits = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    loss = -np.mean(np.log(p[np.arange(len(y)), y]))
    g = (p - np.eye(kernel.shape[1])[y]) / len(y)
    return loss, x.T @ g, g.sum(axis=0)


def _reference_sgd_epoch(kernel, bias, x, y):
    """One epoch of plain SGD in numpy (float64): weights and batch losses."""
    kernel, bias = kernel.astype("float64"), bias.astype("float64")
    losses = []
    for start in range(0, len(y), BATCH):
        loss, dk, db = _softmax_loss_and_gradient(
            kernel, bias, x[start : start + BATCH], y[start : start + BATCH]
        )
        losses.append(loss)
        kernel, bias = kernel - LR * dk, bias - LR * db
    return kernel, bias, losses


def _numpy(tensor):
    return np.asarray(keras.ops.convert_to_numpy(tensor))


def _seed_state(layer):
    return _numpy(layer.seed_generator.state).astype("int64").tolist()


def _value_and_gradient(function, x):
    """`(function(x), d sum(function(x) * w) / dx)` on the current backend."""
    backend = keras.backend.backend()
    weights = np.arange(1.0, 1.0 + x.shape[1], dtype="float32")
    if backend == "jax":
        import jax

        def total(value):
            out = function(value)
            return (out * weights).sum(), out

        with keras.StatelessScope():  # the layer's seed update stays inside
            gradient, out = jax.grad(total, has_aux=True)(x)
        return _numpy(out), _numpy(gradient)
    if backend == "torch":
        import torch

        value = torch.tensor(x, requires_grad=True)
        out = function(value)
        (out * torch.tensor(weights)).sum().backward()
        return _numpy(out.detach()), value.grad.numpy()
    import tensorflow as tf

    value = tf.Variable(x)
    with tf.GradientTape() as tape:
        out = function(value)
        total = tf.reduce_sum(out * weights)
    return _numpy(out), _numpy(tape.gradient(total, value))


# ------------------------------------------------------------- the layer


def _mix(layer, h, labels, counts=COUNTS):
    return _numpy(layer(h, training=True, labels=labels, class_counts=counts))


def test_same_seed_gives_the_same_mixing_and_the_stream_advances_once_per_call():
    h, _ = _data()
    first = kmix.MajorMix(strength=0.7, seed=11)
    second = kmix.MajorMix(strength=0.7, seed=11)
    a, b = _mix(first, h, LABELS), _mix(second, h, LABELS)
    np.testing.assert_array_equal(a, b)
    assert _seed_state(first) == [11, 1]
    # The next call draws new numbers, again the same for the same seed.
    c, d = _mix(first, h, LABELS), _mix(second, h, LABELS)
    np.testing.assert_array_equal(c, d)
    assert not np.array_equal(a, c)
    assert _seed_state(first) == [11, 2]
    assert not np.array_equal(
        a, _mix(kmix.MajorMix(strength=0.7, seed=12), h, LABELS)
    )


@pytest.mark.parametrize("distribution", ["uniform", "beta"])
def test_minor_rows_bit_identical_and_major_rows_convex_combinations(
    distribution,
):
    # One-hot rows: row i of the output is lam_i e_i + (1 - lam_i) e_perm(i).
    strength = 0.6
    layer = kmix.MajorMix(
        strength=strength, distribution=distribution, alpha=0.5, seed=3
    )
    h = np.eye(len(LABELS), dtype="float32")
    lams, mixed_rows = [], 0
    for _ in range(5):
        out = _mix(layer, h, LABELS)
        np.testing.assert_array_equal(out[MINOR], h[MINOR])  # bit-identical
        major = out[~MINOR]
        np.testing.assert_allclose(major.sum(axis=1), 1.0, rtol=1e-6)
        assert np.all(major >= 0.0)
        assert np.all(np.count_nonzero(major, axis=1) <= 2)  # row and partner
        lam = np.diag(out)[~MINOR]
        lams.extend(lam)
        mixed_rows += int(np.sum(lam < 1.0))
    lams = np.array(lams)
    assert lams.min() >= 1.0 - strength - 1e-6 and lams.max() <= 1.0 + 1e-6
    assert mixed_rows >= 0.8 * len(lams)  # only self-partners stay unmixed


def test_partners_form_a_permutation_and_lam_covers_its_range():
    # An all-major batch of one-hot rows reveals each row's lam and partner.
    layer = kmix.MajorMix(strength=0.5, seed=4)
    h = np.eye(12, dtype="float32")
    lams = []
    for _ in range(20):
        out = _mix(layer, h, np.zeros(12, "int32"), counts=[10])
        off_diagonal = out - np.diag(np.diag(out))
        partners = np.where(
            off_diagonal.max(axis=1) > 0,
            off_diagonal.argmax(axis=1),
            np.arange(12),
        )
        assert sorted(partners.tolist()) == list(range(12))
        lams.extend(np.diag(out))
    lams = np.array(lams)
    assert lams.min() >= 0.5 - 1e-6 and lams.max() <= 1.0 + 1e-6
    assert lams.min() < 0.55 and 0.65 < np.median(lams) < 0.85


def test_identity_at_inference_and_strength_zero_is_exact():
    h, _ = _data()
    layer = kmix.MajorMix(strength=1.0, seed=2)
    np.testing.assert_array_equal(_numpy(layer(h)), h)
    np.testing.assert_array_equal(
        _numpy(layer(h, training=False, labels=LABELS)), h
    )
    layer.strength = 0.0
    np.testing.assert_array_equal(_mix(layer, h, LABELS), h)
    assert layer.get_config()["strength"] == 0.0


def test_gradients_reach_the_row_and_its_partner():
    layer = kmix.MajorMix(strength=1.0, seed=6)
    h = np.eye(4, dtype="float32")
    labels = np.array([0, 1, 1, 1], "int32")  # only row 0 is major
    out, gradient = _value_and_gradient(
        lambda value: layer(
            value, training=True, labels=labels, class_counts=[10, 1]
        ),
        h,
    )
    # Row 0 is lam * h_0 + (1 - lam) * h_partner (a self-partner reads as
    # lam = 1); rows 1 to 3 are themselves.
    weights = np.arange(1.0, 5.0)
    lam = out[0, 0]
    partner = int(np.argmax(out[0, 1:])) + 1 if lam < 1 else 0
    np.testing.assert_array_equal(out[1:], h[1:])
    np.testing.assert_allclose(gradient[0], lam * weights, rtol=1e-5)
    for row in (1, 2, 3):
        expected = weights * (1.0 + (1.0 - lam) * (row == partner))
        np.testing.assert_allclose(gradient[row], expected, rtol=1e-5)


def test_float16_inputs_keep_their_dtype():
    layer = kmix.MajorMix(strength=0.5, seed=1, dtype="mixed_float16")
    h = _data()[0].astype("float16")
    out = layer(h, training=True, labels=LABELS, class_counts=COUNTS)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    np.testing.assert_array_equal(_numpy(out)[MINOR], h[MINOR])


def test_eager_labels_are_checked_on_every_backend():
    h, _ = _data()
    with pytest.raises(ValueError, match=r"class indices in \[0, 4\)"):
        _mix(kmix.MajorMix(seed=1), h, LABELS + 1)
    with pytest.raises(ValueError, match="batch of 31 rows"):
        _mix(kmix.MajorMix(seed=1), h, LABELS[:31])
    with pytest.raises(ValueError, match="kmix.MixModel"):
        kmix.MajorMix()(h, training=True)


# ------------------------------------------------------------- the model


def test_strength_zero_trains_exactly_like_the_plain_model():
    x, y = _data()
    histories, weights = [], []
    for mix_model in (True, False):
        model = _hidden_model({"strength": 0.0, "seed": 0}, mix_model)
        model.compile(keras.optimizers.SGD(LR), _loss())
        history = model.fit(
            x, y, batch_size=BATCH, epochs=2, shuffle=False, verbose=0
        )
        histories.append(history.history["loss"])
        weights.append(
            [
                _numpy(w)
                for name in ("hidden", "logits")
                for w in model.get_layer(name).weights
            ]
        )
    np.testing.assert_allclose(histories[0], histories[1], atol=1e-6)
    for mixed, plain in zip(*weights):
        np.testing.assert_allclose(mixed, plain, atol=1e-5)
    initial = _hidden_model(mix_model=False).get_layer("logits").get_weights()
    assert np.abs(weights[1][2] - initial[0]).max() > 1e-2  # it trained


def test_strength_assigned_mid_fit_takes_effect_without_retracing():
    # Epoch 1: strength 1 and learning rate 0 (the step is traced, the
    # weights stay). Epoch 2: a callback sets strength 0 and learning rate
    # 0.1, so the model trains exactly like numpy's plain SGD from the
    # initial weights, with the same compiled step.
    x, y = _data()
    model = _linear_model(strength=1.0)
    model.compile(keras.optimizers.SGD(0.0), _loss())
    traces = []
    step = model.train_step
    model.train_step = lambda *args: traces.append(1) or step(*args)

    class Switch(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                self.traces_before = len(traces)
                self.model.get_layer("mix").strength = 0.0
                self.model.optimizer.learning_rate = LR

    switch = Switch()
    history = model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[switch],
    )
    kernel0, bias0 = _linear_weights()
    plain_loss = _softmax_loss_and_gradient(kernel0, bias0, x, y)[0]
    mixed_loss, switched_loss = history.history["loss"]
    assert abs(mixed_loss - plain_loss) > 1e-3  # strength 1 did mix
    kernel, bias, batch_losses = _reference_sgd_epoch(kernel0, bias0, x, y)
    np.testing.assert_allclose(switched_loss, np.mean(batch_losses), atol=1e-5)
    trained = model.get_layer("logits").get_weights()
    np.testing.assert_allclose(trained[0], kernel, atol=1e-5)
    np.testing.assert_allclose(trained[1], bias, atol=1e-5)
    if keras.backend.backend() != "torch":  # torch runs the step eagerly
        assert switch.traces_before >= 1
        assert len(traces) == switch.traces_before  # no retracing


@pytest.mark.parametrize("distribution", ["uniform", "beta"])
def test_a_short_fit_lowers_the_loss(distribution):
    x, y = _data()
    model = _hidden_model(
        {"strength": 0.5, "seed": 0, "distribution": distribution}
    )
    model.set_class_loss_weights([1.0, 1.0, 2.0, 2.0])
    model.compile(keras.optimizers.Adam(0.05), _loss(), metrics=["accuracy"])
    history = model.fit(x, y, batch_size=BATCH, epochs=6, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.6 * losses[0]
    assert _seed_state(model.get_layer("mix")) == [0, 6 * len(x) // BATCH]
    # Inference never mixes: `predict` is the forward pass without mixing.
    predictions = model.predict(x, verbose=0)
    np.testing.assert_allclose(
        predictions, _numpy(model(x, training=False)), atol=1e-5
    )


def test_from_model_inserts_major_mix_and_predicts_as_before():
    x, y = _data()
    base = _hidden_model(mix_model=False)
    model = kmix.MixModel.from_model(
        base, COUNTS, mix_after=["hidden"], strength=0.5, seed=1
    )
    assert [layer.name for layer in model.major_mix_layers] == [
        "mix_after_hidden"
    ]
    np.testing.assert_allclose(
        model.predict(x, verbose=0), base.predict(x, verbose=0), atol=1e-6
    )
    model.compile(keras.optimizers.SGD(LR), _loss())
    history = model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    # The layers are shared: training the MixModel trained the base.
    np.testing.assert_allclose(
        model.predict(x, verbose=0), base.predict(x, verbose=0), atol=1e-6
    )


_LOAD_AND_PREDICT = """
import json

import keras
import numpy as np

import kmix


def state(layer):
    value = keras.ops.convert_to_numpy(layer.seed_generator.state)
    return np.asarray(value).astype("int64").tolist()


model = keras.saving.load_model({path!r})
x, y = np.load({x_path!r}), np.load({y_path!r})
mix = model.get_layer("mix")
result = {{
    "type": type(model).__name__,
    "class_counts": model.class_counts,
    "strength": mix.strength,
    "seed_state": state(mix),
    "predictions": np.asarray(model.predict(x, verbose=0)).tolist(),
}}
# The loaded layer mixes on this backend and its stream goes on.
mixed = keras.ops.convert_to_numpy(
    mix(x, training=True, labels=y, class_counts=model.class_counts)
)
result["minor_rows_kept"] = bool(np.array_equal(mixed[y >= 2], x[y >= 2]))
result["seed_state_after_call"] = state(mix)
print(json.dumps(result))
"""


def test_keras_file_loads_and_predicts_identically_on_every_backend(
    tmp_path, backend, other_backends, run_on_backend
):
    x, y = _data()
    model = _hidden_model({"strength": 0.4, "seed": 7})
    model.compile(keras.optimizers.SGD(LR), _loss())
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0)
    path = str(tmp_path / f"saved_on_{backend}.keras")
    model.save(path)
    x_path, y_path = str(tmp_path / "x.npy"), str(tmp_path / "y.npy")
    np.save(x_path, x)
    np.save(y_path, y)
    expected = model.predict(x, verbose=0)
    state = _seed_state(model.get_layer("mix"))
    assert state == [7, len(x) // BATCH]

    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(
        loaded.predict(x, verbose=0), expected, atol=1e-5
    )
    assert _seed_state(loaded.get_layer("mix")) == state
    # On this backend, the loaded layer goes on with the original's draws.
    np.testing.assert_array_equal(
        _mix(loaded.get_layer("mix"), x, LABELS),
        _mix(model.get_layer("mix"), x, LABELS),
    )

    code = _LOAD_AND_PREDICT.format(path=path, x_path=x_path, y_path=y_path)
    # Each run starts a Python process that imports kmix (and TensorFlow):
    # the backends run side by side.
    with concurrent.futures.ThreadPoolExecutor(len(other_backends)) as pool:
        results = pool.map(
            lambda other: run_on_backend(other, code), other_backends
        )
        results = dict(zip(other_backends, results))
    for other, result in results.items():
        assert result["type"] == "MixModel", other
        assert result["class_counts"] == COUNTS, other
        assert result["strength"] == 0.4, other
        assert result["seed_state"] == state, other
        np.testing.assert_allclose(
            np.array(result["predictions"]), expected, atol=1e-5, err_msg=other
        )
        assert result["minor_rows_kept"], other
        assert result["seed_state_after_call"] == [7, state[1] + 1], other


@pytest.mark.parametrize("partners", ["major", "any"])
def test_major_partners_keep_minor_features_out_of_major_rows(partners):
    # Features are one-hot row ids, so a mixed row's support names its
    # partner. Classes 0 and 1 are major (counts 100, 100), 2 and 3 minor.
    labels = np.array([0, 2, 1, 3, 0, 2, 1, 3, 0, 1, 2, 3])
    features = np.eye(len(labels), dtype="float32")
    major_rows = set(np.flatnonzero(labels < 2).tolist())
    layer = kmix.MajorMix(strength=1.0, partners=partners, seed=3)
    minor_partner_seen = False
    for _ in range(8):
        mixed = keras.ops.convert_to_numpy(
            layer(
                features,
                training=True,
                labels=labels,
                class_counts=[100, 100, 5, 5],
            )
        )
        np.testing.assert_array_equal(
            mixed[labels >= 2], features[labels >= 2]
        )  # minor rows untouched
        for row in sorted(major_rows):
            support = set(np.flatnonzero(mixed[row]).tolist())
            assert row in support or len(support) == 1
            minor_partner_seen |= not support <= major_rows
        np.testing.assert_allclose(mixed.sum(axis=1), 1.0, atol=1e-6)
    # With "major" no minor features ever reach a major row; with "any"
    # they do (8 steps of 6 major rows make missing it unlikely).
    assert minor_partner_seen == (partners == "any")
    assert layer.get_config()["partners"] == partners
    assert kmix.MajorMix.from_config(layer.get_config()).partners == partners


def test_major_partners_refuse_bad_values_and_graded_mixing():
    with pytest.raises(ValueError, match="partners"):
        kmix.MajorMix(partners="minor")
    with pytest.raises(ValueError, match="frequency_gamma"):
        kmix.MajorMix(partners="major", frequency_gamma=1.0)
