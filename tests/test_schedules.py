"""Schedules inside `fit`: DRW, `MixSchedule` and the CIFAR-LT learning rate."""

import math

import keras
import numpy as np
import pytest

import kmix

COUNTS = [60, 60, 6, 6]


class CountingModel(kmix.MixModel):
    """A subclassed MixModel with two MajorMix layers that counts traces."""

    def __init__(self, **kwargs):
        super().__init__(class_counts=COUNTS, **kwargs)
        self.hidden = keras.layers.Dense(16, activation="relu")
        self.mix_a = kmix.MajorMix(strength=0.6, seed=1, name="mix_a")
        self.mix_b = kmix.MajorMix(strength=0.4, seed=2, name="mix_b")
        self.logits = keras.layers.Dense(4)
        self.traces = 0

    def call(self, x, training=False):
        h = self.mix_a(self.hidden(x), training=training)
        return self.logits(self.mix_b(h, training=training))

    def train_step(self, data):
        self.traces += 1  # Python side effect: runs once per trace.
        return super().train_step(data)


def _data(n=64, seed=0):
    rng = np.random.RandomState(seed)
    y = np.repeat(np.arange(4), n // 4).astype("int32")
    x = (rng.normal(size=(4, 8))[y] + rng.normal(size=(n, 8))).astype("float32")
    return x, y


def _model(learning_rate=0.0):
    keras.utils.set_random_seed(0)
    model = CountingModel()
    model.compile(
        keras.optimizers.SGD(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


class TraceRecorder(keras.callbacks.Callback):
    """Records `model.traces` after each epoch.

    TensorFlow traces the first call of the train function twice (a second
    trace follows the one that creates the optimizer's variables); what
    matters is that no later epoch adds a trace.
    """

    def __init__(self):
        super().__init__()
        self.traces = []

    def assert_no_retracing(self, epochs):
        assert self.traces == [self.traces[0]] * epochs
        assert self.traces[0] <= 2

    def on_epoch_end(self, epoch, logs=None):
        self.traces.append(self.model.traces)


def test_drw_changes_loss_exactly_at_start_epoch_without_retracing():
    x, y = _data()
    model = _model(
        learning_rate=0.0
    )  # frozen weights: every epoch sees the same logits
    for layer in model.major_mix_layers:
        layer.strength = 0.0
    weights = np.array([0.5, 0.5, 3.0, 3.0])
    recorder = TraceRecorder()
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=5,
        verbose=0,
        shuffle=False,
        callbacks=[
            kmix.callbacks.DeferredReweighting(weights, start_epoch=3),
            recorder,
        ],
    )
    logits = model.predict(x, verbose=0).astype("float64")
    logits -= logits.max(-1, keepdims=True)
    ce = np.log(np.exp(logits).sum(-1)) - logits[np.arange(len(y)), y]
    plain, weighted = ce.mean(), (weights[y] * ce).mean()
    np.testing.assert_allclose(
        history.history["loss"], [plain] * 3 + [weighted] * 2, rtol=1e-5
    )
    assert history.history["class_loss_weights_active"] == [0, 0, 0, 1, 1]
    np.testing.assert_array_equal(model.class_loss_weights.numpy(), weights)
    recorder.assert_no_retracing(5)


def test_drw_respects_initial_epoch_and_start_epoch_zero():
    drw = kmix.callbacks.DeferredReweighting([2.0, 1.0], start_epoch=0)
    assert drw.weights_at(0) == [2.0, 1.0]
    drw = kmix.callbacks.DeferredReweighting([2.0, 1.0], start_epoch=4)
    assert [drw.weights_at(e) for e in (3, 4, 9)] == [
        [1.0, 1.0],
        [2.0, 1.0],
        [2.0, 1.0],
    ]
    assert kmix.callbacks.DeferredReweighting.from_config(
        drw.get_config()
    ).get_config() == ({"weights": [2.0, 1.0], "start_epoch": 4})


def test_drw_bad_arguments_are_rejected():
    with pytest.raises(
        ValueError, match="`start_epoch` must be >= 0. Received: start_epoch=-1"
    ):
        kmix.callbacks.DeferredReweighting([1.0, 2.0], start_epoch=-1)
    with pytest.raises(TypeError, match="`start_epoch` must be an int"):
        kmix.callbacks.DeferredReweighting([1.0, 2.0], start_epoch=1.5)
    with pytest.raises(ValueError, match="`weights` must be"):
        kmix.callbacks.DeferredReweighting([1.0, -2.0], start_epoch=1)
    inputs = keras.Input((2,))
    with pytest.raises(TypeError, match="kmix.MixModel"):
        kmix.callbacks.DeferredReweighting([1.0, 2.0], 1).set_model(
            keras.Model(inputs, keras.layers.Dense(2)(inputs))
        )


def test_mix_schedule_values_per_epoch():
    epochs = range(6)
    linear = kmix.callbacks.MixSchedule("linear", strength=1.0, decay_epochs=4)
    np.testing.assert_allclose(
        [linear.strength_at(e) for e in epochs], [1, 0.75, 0.5, 0.25, 0, 0]
    )
    cosine = kmix.callbacks.MixSchedule(
        "cosine", strength=1.0, final_strength=0.2, decay_epochs=4
    )
    c = (1 + math.cos(math.pi / 4)) / 2  # 0.853553
    np.testing.assert_allclose(
        [cosine.strength_at(e) for e in epochs],
        [1.0, 0.2 + 0.8 * c, 0.6, 0.2 + 0.8 * (1 - c), 0.2, 0.2],
    )
    stop = kmix.callbacks.MixSchedule(strength=0.8, stop_epoch=3)
    assert [stop.strength_at(e) for e in epochs] == [
        0.8,
        0.8,
        0.8,
        0.0,
        0.0,
        0.0,
    ]
    custom = kmix.callbacks.MixSchedule(lambda e: 0.1 * e, stop_epoch=5)
    np.testing.assert_allclose(
        [custom.strength_at(e) for e in epochs], [0, 0.1, 0.2, 0.3, 0.4, 0]
    )
    # `initial` (a layer's own strength) overrides `strength`.
    np.testing.assert_allclose(
        [linear.strength_at(e, initial=0.8) for e in (0, 2, 4)], [0.8, 0.4, 0.0]
    )
    # decay_epochs defaults to epochs - 1 of fit.
    linear_default = kmix.callbacks.MixSchedule("linear", strength=0.5)
    np.testing.assert_allclose(
        [linear_default.strength_at(e, epochs=3) for e in range(3)],
        [0.5, 0.25, 0.0],
    )


def test_mix_schedule_sets_every_layer_and_logs_inside_fit_without_retracing():
    x, y = _data()
    model = _model(learning_rate=0.05)
    recorder = TraceRecorder()
    history = model.fit(
        x,
        y,
        batch_size=16,
        epochs=5,
        verbose=0,
        callbacks=[
            kmix.callbacks.MixSchedule(
                "linear"
            ),  # from each layer's own strength to 0
            kmix.callbacks.DeferredReweighting(
                [1.0, 1.0, 5.0, 5.0], start_epoch=2
            ),
            recorder,
        ],
    )
    expected_a = [0.6, 0.45, 0.3, 0.15, 0.0]
    expected_b = [0.4, 0.3, 0.2, 0.1, 0.0]
    np.testing.assert_allclose(
        history.history["mix_strength"], expected_a, rtol=1e-6
    )
    np.testing.assert_allclose(
        history.history["mix_strength/mix_a"], expected_a, rtol=1e-6
    )
    np.testing.assert_allclose(
        history.history["mix_strength/mix_b"], expected_b, rtol=1e-6
    )
    recorder.assert_no_retracing(5)
    assert np.all(np.isfinite(history.history["loss"]))


def test_mix_schedule_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="`schedule` must be one of"):
        kmix.callbacks.MixSchedule("exponential")
    with pytest.raises(
        ValueError, match="`stop_epoch` must be >= 0. Received: stop_epoch=-1"
    ):
        kmix.callbacks.MixSchedule(stop_epoch=-1)
    with pytest.raises(ValueError, match="`decay_epochs` must be >= 1"):
        kmix.callbacks.MixSchedule("linear", decay_epochs=0)
    with pytest.raises(ValueError, match=r"`strength` must be in \[0.0, 1.0\]"):
        kmix.callbacks.MixSchedule(strength=1.5)
    with pytest.raises(ValueError, match=r"`schedule\(2\)` must be in"):
        kmix.callbacks.MixSchedule(lambda e: e).strength_at(2)
    inputs = keras.Input((2,))
    model = kmix.MixModel(
        inputs, keras.layers.Dense(2)(inputs), class_counts=[5, 1]
    )
    schedule = kmix.callbacks.MixSchedule(strength=0.5)
    schedule.set_model(model)
    with pytest.raises(ValueError, match="found no `kmix.MajorMix` layer"):
        schedule.on_train_begin()


def test_warmup_step_decay_reproduces_the_per_epoch_cifar_lt_rule():
    schedule = kmix.schedules.WarmupStepDecay(
        0.1, steps_per_epoch=1, epochs=200
    )
    values = np.array([float(schedule(e)) for e in range(200)])
    expected = np.full(200, 0.1)
    expected[:5] = 0.1 * np.arange(1, 6) / 5
    expected[160:180] = 0.1 * 0.01
    expected[180:] = 0.1 * 0.0001
    np.testing.assert_allclose(values, expected, rtol=1e-6)


def test_warmup_step_decay_scales_to_any_epoch_count():
    # 20 epochs of 10 steps: warm-up 0.5 epoch = 5 steps, decays at epochs 16 and 18.
    schedule = kmix.schedules.WarmupStepDecay(
        0.2, steps_per_epoch=10, epochs=20
    )
    steps = [0, 4, 5, 159, 160, 179, 180, 500]
    np.testing.assert_allclose(
        [float(schedule(s)) for s in steps],
        [0.04, 0.2, 0.2, 0.2, 0.002, 0.002, 2e-5, 2e-5],
        rtol=1e-6,
    )
    custom = kmix.schedules.WarmupStepDecay(
        1.0,
        steps_per_epoch=2,
        epochs=10,
        warmup_epochs=0,
        decay_epochs=[3],
        decay_factors=[0.5],
    )
    np.testing.assert_allclose(
        [float(custom(s)) for s in (0, 5, 6)], [1.0, 1.0, 0.5]
    )


def test_warmup_step_decay_serializes_inside_an_optimizer():
    schedule = kmix.schedules.WarmupStepDecay(0.1, steps_per_epoch=7, epochs=30)
    optimizer = keras.optimizers.SGD(schedule, momentum=0.9)
    restored = keras.optimizers.deserialize(
        keras.optimizers.serialize(optimizer)
    )
    config = restored.get_config()["learning_rate"]
    assert config["registered_name"] == "kmix>WarmupStepDecay"
    rebuilt = keras.saving.deserialize_keras_object(config)
    assert isinstance(rebuilt, kmix.schedules.WarmupStepDecay)
    assert rebuilt.get_config() == schedule.get_config()
    for step in (0, 3, 100, 170, 189, 200):
        assert float(rebuilt(step)) == float(schedule(step))
    # The optimizer follows the schedule: 5 warm-up steps (0.75 epoch) -> 0.1 / 5 at step 0.
    assert float(restored.learning_rate) == pytest.approx(0.02)


def test_warmup_step_decay_bad_arguments_are_rejected():
    with pytest.raises(
        ValueError, match="`steps_per_epoch` must be an int >= 1"
    ):
        kmix.schedules.WarmupStepDecay(0.1, steps_per_epoch=0)
    with pytest.raises(ValueError, match="`learning_rate`"):
        kmix.schedules.WarmupStepDecay(-0.1, steps_per_epoch=1)
    with pytest.raises(ValueError, match="`decay_epochs` must increase"):
        kmix.schedules.WarmupStepDecay(0.1, 1, decay_epochs=[10, 5])


if __name__ == "__main__":
    import sys

    sys.exit(pytest.main([__file__, "-q"]))


def test_mix_schedule_stop_mixes_until_stop_epoch_then_never():
    stop = kmix.callbacks.MixSchedule("stop", strength=0.5, stop_epoch=2)
    assert [stop.strength_at(e) for e in range(4)] == [0.5, 0.5, 0.0, 0.0]
    assert (
        kmix.callbacks.MixSchedule.from_config(stop.get_config()).strength_at(2)
        == 0.0
    )
    with pytest.raises(ValueError, match="needs `stop_epoch`"):
        kmix.callbacks.MixSchedule("stop")
