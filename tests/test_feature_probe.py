"""`kmix.layers.FeatureProbe`: an identity whose observers see feature gradients."""

import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import kmix
from kmix.layers import FeatureProbe


def _features(seed=0):
    return np.random.RandomState(seed).normal(size=(6, 5)).astype("float32")


def test_probe_is_identity_in_training_and_inference():
    h = _features()
    probe = FeatureProbe()
    probe.add_gradient_observer(lambda gradient, labels: None)
    for training in (False, True):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(probe(h, training=training)), h
        )
    with kmix.mixing_context(labels=np.arange(6) % 3):
        out = probe(h, training=True)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(out), h)


def test_probe_keeps_dtype_under_mixed_precision():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        probe = FeatureProbe()
        out = probe(tf.constant(_features()))
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out.dtype == tf.float32
    symbolic = FeatureProbe()(keras.Input((7,), dtype="float16"))
    assert symbolic.shape == (None, 7) and symbolic.dtype == "float16"


def test_observer_sees_loss_gradient_and_integer_labels_once_per_backward_pass():
    h = tf.constant(_features())
    weights = tf.constant(np.arange(30, dtype="float32").reshape(6, 5))
    one_hot_labels = np.eye(3, dtype="float32")[[0, 1, 2, 2, 1, 0]]
    seen_gradient = tf.Variable(tf.zeros((6, 5)))
    seen_labels = tf.Variable(tf.zeros(6, tf.int32))
    calls = tf.Variable(0)

    def observer(gradient, labels):
        seen_gradient.assign_add(gradient)
        seen_labels.assign_add(labels)
        calls.assign_add(1)

    probe = FeatureProbe()
    probe.add_gradient_observer(observer)
    with tf.GradientTape() as tape:
        tape.watch(h)
        with kmix.mixing_context(labels=one_hot_labels):
            out = probe(h, training=True)
        loss = tf.reduce_sum(weights * out)
    # The gradient passes on unchanged: d loss / d h = weights.
    np.testing.assert_array_equal(
        tape.gradient(loss, h).numpy(), weights.numpy()
    )
    np.testing.assert_array_equal(seen_gradient.numpy(), weights.numpy())
    np.testing.assert_array_equal(seen_labels.numpy(), [0, 1, 2, 2, 1, 0])
    assert int(calls.numpy()) == 1


def test_observer_is_not_called_outside_training_or_mixing_context():
    h = tf.constant(_features())
    calls = tf.Variable(0)
    probe = FeatureProbe()
    probe.add_gradient_observer(lambda gradient, labels: calls.assign_add(1))
    for training, context in ((True, False), (False, True)):
        with tf.GradientTape() as tape:
            tape.watch(h)
            if context:
                with kmix.mixing_context(labels=np.zeros(6, "int32")):
                    out = probe(h, training=training)
            else:
                out = probe(h, training=training)
            loss = tf.reduce_sum(3.0 * out)
        np.testing.assert_array_equal(
            tape.gradient(loss, h).numpy(), np.full((6, 5), 3.0)
        )
    assert int(calls.numpy()) == 0


def test_observers_are_added_once_and_removed():
    probe = FeatureProbe()

    def observer(gradient, labels):
        return None

    probe.add_gradient_observer(observer)
    probe.add_gradient_observer(observer)
    assert probe.gradient_observers == (observer,)
    probe.remove_gradient_observer(observer)
    assert probe.gradient_observers == ()
    with pytest.raises(ValueError, match="observer="):
        probe.remove_gradient_observer(observer)
    with pytest.raises(TypeError, match="observer='grad'"):
        probe.add_gradient_observer("grad")


def test_probe_config_and_keras_file_round_trip(tmp_path):
    probe = FeatureProbe(name="features")
    assert keras.saving.get_registered_name(FeatureProbe) == "kmix>FeatureProbe"
    clone = FeatureProbe.from_config(probe.get_config())
    assert clone.get_config() == probe.get_config() and clone.name == "features"
    inputs = keras.Input((5,))
    outputs = keras.layers.Dense(3)(FeatureProbe(name="features")(inputs))
    model = kmix.MixModel(inputs, outputs, class_counts=[10, 5, 1])
    model.save(tmp_path / "probe.keras")
    restored = keras.saving.load_model(tmp_path / "probe.keras")
    assert isinstance(restored.get_layer("features"), FeatureProbe)
    x = _features()
    np.testing.assert_array_equal(
        restored.predict(x, verbose=0), model.predict(x, verbose=0)
    )


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
