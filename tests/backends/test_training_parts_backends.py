"""Losses, metrics, callbacks and `FeatureProbe`: the same numbers on every backend.

Each test compares with a NumPy reference (float64), so the three runs of
`scripts/test_backends.sh` check that TensorFlow, JAX and PyTorch agree.
"""

import keras
import numpy as np
import pytest
from keras import ops

import kmix
from kmix.layers.mixing_context import mixing_context

BACKEND = keras.backend.backend()
COUNTS = [10, 10, 4]
C = len(COUNTS)


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _logits_and_labels():
    rng = np.random.RandomState(0)
    logits = rng.normal(size=(6, C)).astype("float32")
    labels = np.array([0, 1, 2, 2, 1, 0])
    return logits, labels


# ------------------------------------------------------------------ losses


def test_ldam_loss_matches_numpy():
    logits, labels = _logits_and_labels()
    loss = kmix.losses.LDAMLoss(COUNTS, max_margin=0.5, scale=3.0)
    margins = np.asarray(COUNTS, "float64") ** -0.25
    margins *= 0.5 / margins.max()
    one_hot = np.eye(C)[labels]
    adjusted = 3.0 * (logits - one_hot * margins)
    expected = -(one_hot * _log_softmax(adjusted)).sum(axis=-1)
    np.testing.assert_allclose(loss.margins, margins, rtol=1e-6)
    np.testing.assert_allclose(
        float(loss(labels, logits)), expected.mean(), rtol=1e-5
    )
    # One-hot labels and sample weights give the same per-example losses.
    weights = np.arange(1.0, 7.0)
    np.testing.assert_allclose(
        float(loss(one_hot, logits, sample_weight=weights)),
        (expected * weights).mean(),
        rtol=1e-5,
    )


def test_logit_adjusted_loss_matches_numpy():
    logits, labels = _logits_and_labels()
    loss = kmix.losses.LogitAdjustedLoss(COUNTS, tau=1.5, reduction="none")
    prior = np.asarray(COUNTS, "float64") / sum(COUNTS)
    expected = -_log_softmax(logits + 1.5 * np.log(prior))[np.arange(6), labels]
    np.testing.assert_allclose(
        ops.convert_to_numpy(loss(labels, logits)), expected, rtol=1e-5
    )


# ----------------------------------------------------------------- metrics


def test_per_class_metrics_match_numpy_over_two_batches():
    logits, labels = _logits_and_labels()
    predicted = logits.argmax(axis=-1)
    weights = np.array([1.0, 2.0, 1.0, 3.0, 1.0, 1.0])
    # A label outside [0, C) is ignored on every backend.
    labels_2 = np.array([2, 1, 7])
    logits_2 = np.eye(C, dtype="float32")[[2, 0, 1]]
    per_class = kmix.metrics.PerClassAccuracy(C)
    balanced = kmix.metrics.BalancedAccuracy(C)
    groups = kmix.metrics.GroupAccuracy({"major": [0, 1], "minor": [2]})
    for metric in (per_class, balanced, groups):
        metric.update_state(labels, logits, sample_weight=weights)
        metric.update_state(labels_2, logits_2)
    hits = np.concatenate([predicted == labels, [True, False, False]])
    all_labels = np.concatenate([labels, labels_2])
    all_weights = np.concatenate([weights, np.ones(3)])
    recall = np.array(
        [
            np.sum((all_weights * hits)[all_labels == c])
            / np.sum(all_weights[all_labels == c])
            for c in range(C)
        ]
    )
    result = {k: float(v) for k, v in per_class.result().items()}
    np.testing.assert_allclose(
        [result[f"acc_class_{c}"] for c in range(C)], recall, rtol=1e-6
    )
    np.testing.assert_allclose(
        float(balanced.result()), recall.mean(), rtol=1e-6
    )
    result = {k: float(v) for k, v in groups.result().items()}
    np.testing.assert_allclose(
        [result["acc_major"], result["acc_minor"]],
        [recall[:2].mean(), recall[2]],
        rtol=1e-6,
    )
    per_class.reset_state()
    assert all(np.isnan(float(v)) for v in per_class.result().values())


def test_metrics_in_compiled_evaluate_match_numpy():
    x, y = _data()
    model = _plain_model()
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[
            kmix.metrics.BalancedAccuracy(C),
            kmix.metrics.PerClassAccuracy(C),
        ],
    )
    logs = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    recall = _reference(x, y)["recall"]
    np.testing.assert_allclose(
        logs["balanced_accuracy"], recall.mean(), rtol=1e-6
    )
    np.testing.assert_allclose(
        [logs[f"acc_class_{c}"] for c in range(C)], recall, rtol=1e-6
    )


# ------------------------------------------------------- a fixed tiny model


def _data():
    rng = np.random.RandomState(1)
    x = rng.normal(size=(24, 6)).astype("float32")
    y = (np.arange(24) % C).astype("int32")
    return x, y


def _weights():
    rng = np.random.RandomState(2)
    return {
        "hidden": [
            (0.5 * rng.normal(size=(6, 5))).astype("float32"),
            (0.1 * rng.normal(size=5)).astype("float32"),
        ],
        "logits": [
            rng.normal(size=(5, C)).astype("float32"),
            np.zeros(C, "float32"),
        ],
    }


def _layers(inputs, mix=False, probe=False):
    h = keras.layers.Dense(5, activation="relu", name="hidden")(inputs)
    if probe:
        h = kmix.layers.FeatureProbe(name="features")(h)
    if mix:
        h = kmix.MajorMix(strength=1.0, seed=3, name="mix")(h)
    return keras.layers.Dense(C, name="logits")(h)


def _set_weights(model):
    for name, values in _weights().items():
        model.get_layer(name).set_weights(values)
    return model


def _plain_model():
    inputs = keras.Input((6,))
    return _set_weights(keras.Model(inputs, _layers(inputs)))


def _mix_model(mix=False, probe=False, optimizer=None):
    """A `MixModel` with fixed weights that training (learning rate 0) keeps."""
    inputs = keras.Input((6,))
    outputs = _layers(inputs, mix=mix, probe=probe)
    model = _set_weights(kmix.MixModel(inputs, outputs, class_counts=COUNTS))
    model.compile(
        optimizer or keras.optimizers.SGD(0.0),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def _reference(x, y, class_weights=(1.0, 1.0, 1.0)):
    """NumPy: per-example losses, per-class recall and feature-gradient norms."""
    (w1, b1), (w2, b2) = _weights()["hidden"], _weights()["logits"]
    h = np.maximum(x.astype("float64") @ w1 + b1, 0.0)
    z = h @ w2 + b2
    log_p = _log_softmax(z)
    losses = -log_p[np.arange(len(y)), y]
    hits = z.argmax(axis=-1) == y
    weight = np.asarray(class_weights)[y]
    # d (w_i * loss_i) / d h_i = w_i * W2 (softmax(z_i) - e_{y_i})
    gradient = weight[:, None] * ((np.exp(log_p) - np.eye(C)[y]) @ w2.T)
    norms = np.linalg.norm(gradient, axis=1)
    return {
        "losses": losses,
        "recall": np.array([hits[y == c].mean() for c in range(C)]),
        "norms": np.array([norms[y == c].mean() for c in range(C)]),
    }


# --------------------------------------------------------------- callbacks


def test_deferred_reweighting_switches_the_loss_weights_at_its_epoch():
    x, y = _data()
    model = _mix_model()
    drw = kmix.callbacks.DeferredReweighting([0.5, 1.0, 4.0], start_epoch=1)
    history = model.fit(
        x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, callbacks=[drw]
    )
    losses = _reference(x, y)["losses"]
    weighted = losses * np.array([0.5, 1.0, 4.0])[y]
    assert history.history["class_loss_weights_active"] == [0.0, 1.0, 1.0]
    np.testing.assert_allclose(
        history.history["loss"],
        [losses.mean(), weighted.mean(), weighted.mean()],
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        ops.convert_to_numpy(model.class_loss_weights), [0.5, 1.0, 4.0]
    )


def test_mix_schedule_changes_the_strength_used_by_each_epoch():
    x, y = _data()
    model = _mix_model(mix=True)
    schedule = kmix.callbacks.MixSchedule(
        "linear", strength=1.0, final_strength=0.0
    )
    history = model.fit(
        x,
        y,
        batch_size=8,
        epochs=3,
        shuffle=False,
        verbose=0,
        callbacks=[schedule],
    )
    assert history.history["mix_strength"] == pytest.approx([1.0, 0.5, 0.0])
    assert model.get_layer("mix").strength == 0.0
    # The last epoch trains unmixed (the plain loss); the first one mixes.
    loss = history.history["loss"]
    clean = _reference(x, y)["losses"].mean()
    np.testing.assert_allclose(loss[2], clean, rtol=1e-5)
    assert abs(loss[0] - clean) > 1e-3


def test_class_progress_records_accuracy_and_gradient_norms():
    x, y = _data()
    model = _mix_model(probe=True)
    model.set_class_loss_weights([1.0, 2.0, 3.0])
    progress = kmix.callbacks.ClassProgress(clean_data=(x, y))
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[progress],
        validation_data=(x, y),
    )
    expected = _reference(x, y, class_weights=(1.0, 2.0, 3.0))
    epochs, norms = progress.series("feature_grad_norm")
    assert epochs.tolist() == [1, 2]
    np.testing.assert_allclose(norms, [expected["norms"]] * 2, rtol=1e-5)
    for quantity in ("train_accuracy", "clean_accuracy", "val_accuracy"):
        np.testing.assert_allclose(
            progress.series(quantity)[1], [expected["recall"]] * 2, rtol=1e-6
        )
    assert model.get_layer("features").gradient_observers == ()


def test_class_progress_undoes_a_dynamic_loss_scale_or_refuses_on_jax():
    x, y = _data()
    optimizer = keras.optimizers.LossScaleOptimizer(
        keras.optimizers.SGD(0.0), initial_scale=64.0
    )
    model = _mix_model(probe=True, optimizer=optimizer)
    progress = kmix.callbacks.ClassProgress()
    if BACKEND == "jax":
        with pytest.raises(ValueError, match="gradients=False"):
            model.fit(
                x, y, batch_size=8, epochs=1, verbose=0, callbacks=[progress]
            )
        return
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[progress],
    )
    np.testing.assert_allclose(
        progress.series("feature_grad_norm")[1][0],
        _reference(x, y)["norms"],
        rtol=1e-5,
    )


# ------------------------------------------------------------ FeatureProbe


def _gradient(function, x):
    """The gradient of the scalar `function(x)` with this backend's autodiff."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        x = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = function(x)
        return tape.gradient(value, x).numpy()
    if BACKEND == "jax":
        import jax

        return np.asarray(jax.jit(jax.grad(function))(x))
    import torch

    x = torch.tensor(x, requires_grad=True)
    function(x).backward()
    return x.grad.numpy()


def _probed_loss(probe, labels):
    kernel = _weights()["logits"][0]

    def loss(h):
        with mixing_context(labels=labels):
            features = probe(h, training=True)
        logits = ops.matmul(features, kernel)
        return ops.sum(
            keras.losses.sparse_categorical_crossentropy(
                labels, logits, from_logits=True
            )
        )

    return loss


def _record(totals, values):
    """Adds `values` into `totals` from a training step, as the backend allows."""
    if BACKEND == "jax":
        from jax.experimental import io_callback

        def add(values):
            totals["value"] = totals.get("value", 0.0) + np.asarray(values)

        io_callback(add, None, values, ordered=False)
    else:
        totals["variable"].assign_add(values)


def test_feature_probe_observer_records_the_loss_gradient():
    x, labels = _data()
    h = np.maximum(x @ _weights()["hidden"][0], 0.0).astype("float32")
    probe = kmix.layers.FeatureProbe()
    totals = {"variable": keras.Variable(np.zeros(len(labels), "float32"))}
    seen = []

    def observer(gradient, observed_labels):
        seen.append(tuple(gradient.shape))
        _record(totals, ops.sqrt(ops.sum(ops.square(gradient), axis=1)))

    probe.add_gradient_observer(observer)
    gradient = _gradient(_probed_loss(probe, labels), h)
    if BACKEND == "jax":
        import jax

        jax.effects_barrier()
        recorded = totals["value"]
    else:
        recorded = ops.convert_to_numpy(totals["variable"])
    np.testing.assert_allclose(
        recorded, np.linalg.norm(gradient, axis=1), rtol=1e-5
    )
    assert seen == [h.shape]


def test_feature_probe_observer_that_assigns_fails_clearly_on_jax():
    x, labels = _data()
    h = np.maximum(x @ _weights()["hidden"][0], 0.0).astype("float32")
    probe = kmix.layers.FeatureProbe()
    calls = keras.Variable(0.0)
    probe.add_gradient_observer(lambda gradient, labels: calls.assign_add(1.0))
    loss = _probed_loss(probe, labels)
    if BACKEND == "jax":
        with pytest.raises(RuntimeError, match="JAX backend.*io_callback"):
            _gradient(loss, h)
    else:
        _gradient(loss, h)
        assert float(ops.convert_to_numpy(calls)) == 1.0
