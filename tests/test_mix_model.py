"""Behaviour of `MixModel` inside `fit`, `evaluate`, `predict` and saving."""

import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import kmix

COUNTS = [60, 60, 6, 6]


def _data(n=128, seed=0):
    rng = np.random.RandomState(seed)
    y = rng.choice(4, size=n, p=np.array(COUNTS) / sum(COUNTS)).astype("int32")
    centers = rng.normal(size=(4, 8)) * 2
    x = (centers[y] + rng.normal(size=(n, 8))).astype("float32")
    return x, y


def _functional(strength=0.5, seed=1, num_outputs=4):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8,))
    h = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    h = kmix.MajorMix(strength=strength, seed=seed, name="mix")(h)
    outputs = keras.layers.Dense(num_outputs, name="logits")(h)
    return inputs, outputs


def _model(strength=0.5, seed=1, **compile_kwargs):
    inputs, outputs = _functional(strength, seed)
    model = kmix.MixModel(inputs, outputs, class_counts=COUNTS)
    model.compile(
        optimizer=compile_kwargs.pop("optimizer", keras.optimizers.SGD(0.1)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        **compile_kwargs,
    )
    return model


def test_fit_trains_and_loss_decreases():
    x, y = _data()
    model = _model(strength=0.5, metrics=["accuracy"])
    history = model.fit(x, y, batch_size=16, epochs=8, verbose=0, shuffle=False)
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0]
    assert history.history["accuracy"][-1] > 0.8


def test_plain_keras_model_with_major_mix_refuses_to_train():
    inputs, outputs = _functional()
    model = keras.Model(inputs, outputs)
    model.compile(
        "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    x, y = _data(32)
    with pytest.raises(ValueError, match="kmix.MixModel"):
        model.fit(x, y, epochs=1, verbose=0)


def test_evaluate_and_predict_never_mix():
    x, y = _data(64)
    model = _model(strength=1.0)
    inputs, outputs = _functional(strength=1.0)
    plain = keras.Model(inputs, outputs)
    for name in ("hidden", "logits"):
        plain.get_layer(name).set_weights(model.get_layer(name).get_weights())
    plain.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    first = model.evaluate(x, y, verbose=0)
    assert model.evaluate(x, y, verbose=0) == first
    np.testing.assert_allclose(
        first, plain.evaluate(x, y, verbose=0), rtol=1e-6
    )
    np.testing.assert_array_equal(
        model.predict(x, verbose=0), plain.predict(x, verbose=0)
    )


def test_training_forward_pass_mixes_only_major_rows():
    x, y = _data(64)
    model = _model(strength=1.0)
    hidden = keras.Model(model.input, model.get_layer("mix").output)
    clean = keras.ops.convert_to_numpy(model.get_layer("hidden")(x))
    with kmix.mixing_context(labels=y, class_counts=COUNTS):
        mixed = keras.ops.convert_to_numpy(hidden(x, training=True))
    minor = np.isin(y, [2, 3])
    assert np.array_equal(mixed[minor], clean[minor])
    assert not np.allclose(mixed[~minor], clean[~minor])


def test_one_hot_labels_train_with_categorical_loss():
    x, y = _data()
    inputs, outputs = _functional()
    model = kmix.MixModel(inputs, outputs, class_counts=COUNTS)
    model.compile(
        "adam", keras.losses.CategoricalCrossentropy(from_logits=True)
    )
    history = model.fit(x, np.eye(4)[y], batch_size=32, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_from_model_wraps_sequential_and_shares_layers():
    base = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16),
            kmix.MajorMix(seed=0),
            keras.layers.Dense(4),
        ]
    )
    model = kmix.MixModel.from_model(base, class_counts=COUNTS)
    assert model.layers[-1] is base.layers[-1]
    assert len(model.major_mix_layers) == 1
    model.compile(
        "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    x, y = _data(32)
    model.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(
        model.predict(x, verbose=0), base.predict(x, verbose=0)
    )


def test_from_model_rejects_unbuilt_models():
    with pytest.raises(ValueError, match="keras.Input"):
        kmix.MixModel.from_model(
            keras.Sequential([keras.layers.Dense(4)]), COUNTS
        )
    with pytest.raises(TypeError, match="model"):
        kmix.MixModel.from_model("resnet", COUNTS)


class SubclassedMixModel(kmix.MixModel):
    def __init__(self, class_counts, **kwargs):
        super().__init__(class_counts=class_counts, **kwargs)
        self.hidden = keras.layers.Dense(16, activation="relu")
        self.mix = kmix.MajorMix(strength=0.5, seed=2)
        self.logits = keras.layers.Dense(len(class_counts))

    def call(self, inputs, training=False):
        return self.logits(self.mix(self.hidden(inputs), training=training))


def test_subclassed_model_mixes_in_fit():
    x, y = _data()
    model = SubclassedMixModel(COUNTS)
    model.compile(
        keras.optimizers.SGD(0.1),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(x, y, batch_size=16, epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.major_mix_layers == [model.mix]


def test_keras_file_round_trip_predicts_identically(tmp_path):
    x, y = _data(64)
    model = _model(strength=0.7)
    model.fit(x, y, epochs=1, verbose=0)
    model.get_layer("mix").strength = 0.25
    path = tmp_path / "model.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert isinstance(restored, kmix.MixModel)
    assert restored.class_counts == COUNTS
    assert restored.get_layer("mix").strength == 0.25
    np.testing.assert_array_equal(
        restored.predict(x, verbose=0), model.predict(x, verbose=0)
    )
    restored.fit(x, y, epochs=1, verbose=0)  # still trains with mixing


def test_keras_file_records_public_class_name_and_loads_clearly_without_kmix(
    tmp_path,
):
    model = _model()
    path = tmp_path / "model.keras"
    model.save(path)
    assert type(model).__name__ == "MixModel"
    assert keras.saving.get_registered_name(type(model)) == "kmix>MixModel"
    registry = keras.saving.get_custom_objects()  # the live global registry
    saved = registry.pop("kmix>MixModel")
    try:  # as if kmix had not been imported
        with pytest.raises(
            TypeError, match="Could not locate class 'MixModel'"
        ):
            keras.saving.load_model(path)
    finally:
        registry["kmix>MixModel"] = saved
    assert type(keras.saving.load_model(path)) is type(model)


def test_functional_use_leaves_mix_model_class_hierarchy_alone():
    _model()
    assert kmix.MixModel.__bases__ == (keras.Model,)
    model = SubclassedMixModel(COUNTS)  # still builds by subclassing afterwards
    assert np.asarray(model(np.zeros((2, 8), "float32"))).shape == (2, 4)


def test_batch_observer_sees_labels_and_predictions_of_every_step():
    x, y = _data(48)
    model = _model(strength=0.0, optimizer=keras.optimizers.SGD(0.0))
    label_sums = {True: keras.Variable(0.0), False: keras.Variable(0.0)}
    row_counts = {True: keras.Variable(0.0), False: keras.Variable(0.0)}

    def observer(y_true, y_pred, sample_weight, training):
        assert sample_weight is None and y_pred.shape[-1] == 4
        label_sums[training].assign_add(
            keras.ops.sum(keras.ops.cast(y_true, "float32"))
        )
        row_counts[training].assign_add(
            keras.ops.cast(keras.ops.shape(y_pred)[0], "float32")
        )

    model.add_batch_observer(observer)
    assert model.batch_observers == (observer,)
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=2,
        verbose=0,
        validation_data=(x[:32], y[:32]),
    )
    assert float(label_sums[True].numpy()) == 2 * float(y.sum())
    assert float(row_counts[True].numpy()) == 2 * 48
    assert float(label_sums[False].numpy()) == 2 * float(y[:32].sum())
    assert float(row_counts[False].numpy()) == 2 * 32
    model.remove_batch_observer(observer)
    assert model.batch_observers == ()
    with pytest.raises(ValueError, match="observer="):
        model.remove_batch_observer(observer)
    with pytest.raises(TypeError, match="observer=3"):
        model.add_batch_observer(3)


def test_inserted_feature_probe_sees_loss_gradient_and_changes_nothing_else():
    x, y = _data(32)
    model = _model(strength=0.0, optimizer=keras.optimizers.SGD(0.0))
    config = model.get_config()
    before = model.predict(x, verbose=0)
    probe = model.insert_feature_probe("logits")
    assert isinstance(probe, kmix.layers.FeatureProbe)
    assert model.feature_probes == (probe,)
    assert model.get_config() == config and probe not in model.layers
    gradient_sums = keras.Variable(np.zeros(4, "float32"))

    def observer(gradient, labels):
        norms = keras.ops.sqrt(
            keras.ops.sum(keras.ops.square(gradient), axis=1)
        )
        gradient_sums.assign_add(
            keras.ops.sum(keras.ops.one_hot(labels, 4) * norms[:, None], axis=0)
        )

    probe.add_gradient_observer(observer)
    model.make_train_function(force=True)
    model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_array_equal(model.predict(x, verbose=0), before)
    # Reference: d(mean loss)/d(features) with a GradientTape.
    features = tf.constant(
        keras.Model(model.input, model.get_layer("mix").output)(x)
    )
    logits = model.get_layer("logits")
    with tf.GradientTape() as tape:
        tape.watch(features)
        loss = tf.reduce_mean(
            keras.losses.sparse_categorical_crossentropy(
                y, logits(features), from_logits=True
            )
        )
    norms = np.linalg.norm(tape.gradient(loss, features).numpy(), axis=1)
    expected = [norms[y == c].sum() for c in range(4)]
    np.testing.assert_allclose(gradient_sums.numpy(), expected, rtol=1e-5)
    model.remove_feature_probe(probe)
    assert model.feature_probes == ()
    with pytest.raises(ValueError, match="probe="):
        model.remove_feature_probe(probe)
    with pytest.raises(ValueError, match="layer='nope'"):
        model.insert_feature_probe("nope")


def test_insert_feature_probe_refuses_subclassed_models_and_nested_sequential_layers():
    with pytest.raises(TypeError, match="FeatureProbe"):
        SubclassedMixModel(COUNTS).insert_feature_probe("dense")
    inner = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(16, name="inner_dense")]
    )
    inputs = keras.Input((8,))
    model = kmix.MixModel(
        inputs, keras.layers.Dense(4)(inner(inputs)), class_counts=COUNTS
    )
    with pytest.raises(ValueError, match="layer='inner_dense'"):
        model.insert_feature_probe("inner_dense")
    assert model.feature_probes == ()


def test_get_config_round_trip():
    model = _model()
    clone = kmix.MixModel.from_config(model.get_config())
    assert clone.class_counts == COUNTS
    assert clone.get_config() == model.get_config()


def test_class_loss_weights_change_loss_within_one_fit():
    x, y = _data(64)
    model = _model(strength=0.0, optimizer=keras.optimizers.SGD(0.0))

    class TripleWeightsAtEpochOne(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                self.model.set_class_loss_weights([3.0] * 4)

    history = model.fit(
        x,
        y,
        batch_size=64,
        epochs=2,
        verbose=0,
        callbacks=[TripleWeightsAtEpochOne()],
    )
    first, second = history.history["loss"]
    np.testing.assert_allclose(second, 3.0 * first, rtol=1e-5)
    # Evaluation is not re-weighted.
    np.testing.assert_allclose(
        model.evaluate(x, y, verbose=0), first, rtol=1e-5
    )


def test_class_loss_weights_combine_with_sample_weights():
    x, y = _data(64)
    model = _model(strength=0.0, optimizer=keras.optimizers.SGD(0.0))
    model.set_class_loss_weights([1.0, 1.0, 0.0, 0.0])
    sample_weight = np.where(y == 0, 2.0, 1.0).astype("float32")
    loss = model.fit(
        x, y, sample_weight=sample_weight, batch_size=64, epochs=1, verbose=0
    )
    logits = model.predict(x, verbose=0)
    per_example = keras.ops.convert_to_numpy(
        keras.losses.sparse_categorical_crossentropy(
            y, logits, from_logits=True
        )
    )
    weights = sample_weight * np.array([1.0, 1.0, 0.0, 0.0])[y]
    expected = np.sum(per_example * weights) / len(y)
    np.testing.assert_allclose(loss.history["loss"][0], expected, rtol=1e-5)


def test_mixed_precision_fit():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        x, y = _data()
        inputs = keras.Input((8,))
        h = keras.layers.Dense(16, activation="relu")(inputs)
        h = kmix.MajorMix(strength=0.5, seed=0)(h)
        outputs = keras.layers.Dense(4, dtype="float32")(h)
        model = kmix.MixModel(inputs, outputs, class_counts=COUNTS)
        model.compile(
            "adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
        history = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
        assert np.all(np.isfinite(history.history["loss"]))
        assert history.history["loss"][-1] < history.history["loss"][0]
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_xla_fit():
    x, y = _data()
    model = _model(strength=0.5, jit_compile=True)
    history = model.fit(x, y, batch_size=16, epochs=4, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_mirrored_strategy_matches_single_device_at_strength_zero(
    two_cpu_strategy,
):
    x, y = _data(64)
    single = _model(strength=0.0)
    single_history = single.fit(
        x, y, batch_size=16, epochs=2, verbose=0, shuffle=False
    )
    with two_cpu_strategy.scope():
        mirrored = _model(strength=0.0)
    mirrored_history = mirrored.fit(
        x, y, batch_size=16, epochs=2, verbose=0, shuffle=False
    )
    np.testing.assert_allclose(
        mirrored_history.history["loss"],
        single_history.history["loss"],
        rtol=1e-4,
    )
    for a, b in zip(mirrored.get_weights(), single.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_mirrored_strategy_mixes_per_replica_with_own_streams(two_cpu_strategy):
    strategy = two_cpu_strategy
    with strategy.scope():
        layer = kmix.MajorMix(strength=1.0, seed=3)
    batch = np.eye(8, dtype="float32")
    labels = np.zeros(8, dtype="int32")

    @tf.function
    def step(h, y):
        with kmix.mixing_context(labels=y, class_counts=[1]):
            return layer(h, training=True)

    outputs = strategy.run(step, args=(tf.constant(batch), tf.constant(labels)))
    first, second = [
        o.numpy() for o in strategy.experimental_local_results(outputs)
    ]
    for out in (first, second):  # mixed within its own 8 rows: mass sums to 1
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    assert not np.allclose(first, second)  # different random streams

    x, y = _data(64)
    with strategy.scope():
        model = _model(strength=0.5)
    history = model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]


@pytest.mark.parametrize(
    "counts, message",
    [
        ([10, 5, 1], "4 outputs"),
        ([10, -5, 1, 1], "non-negative"),
        ([0, 0, 0, 0], "at least one positive"),
        (None, "required"),
        ([[1, 2], [3, 4]], "1-D"),
    ],
)
def test_bad_class_counts_raise(counts, message):
    inputs, outputs = _functional()
    with pytest.raises(ValueError, match=message):
        kmix.MixModel(inputs, outputs, class_counts=counts)


def test_class_counts_mismatch_detected_for_subclassed_models():
    model = SubclassedMixModel([10, 1])
    model.logits = keras.layers.Dense(3)
    model.compile(
        "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    x, y = _data(16)
    with pytest.raises(ValueError, match="class_counts"):
        model.fit(x, y % 2, epochs=1, verbose=0)


def test_bad_class_loss_weights_raise():
    with pytest.raises(ValueError, match="weights"):
        _model().set_class_loss_weights([1.0, 2.0])


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
