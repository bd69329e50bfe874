"""Behaviour of the `MajorMix` layer."""

import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import kmix

COUNTS = [100, 80, 10, 5]  # classes 0 and 1 are major at threshold 0.5
LABELS = np.array([0, 1, 2, 3, 0, 1, 2, 3, 0, 2, 3, 1], dtype="int32")


def _features(shape=(12, 5), seed=0):
    return np.random.RandomState(seed).normal(size=shape).astype("float32")


def _mix(layer, h, labels=LABELS, counts=COUNTS):
    return keras.ops.convert_to_numpy(
        layer(h, training=True, labels=labels, class_counts=counts)
    )


def _segment_coefficient(out_row, row, partner):
    """The lam with out_row = lam * row + (1 - lam) * partner, or None."""
    direction = row - partner
    if not np.any(direction):
        return 1.0 if np.allclose(out_row, row) else None
    lam = np.dot(out_row - partner, direction) / np.dot(direction, direction)
    if np.allclose(lam * row + (1 - lam) * partner, out_row, atol=1e-5):
        return lam
    return None


def test_inference_is_identity():
    layer = kmix.MajorMix(strength=1.0, seed=1)
    h = _features()
    assert np.array_equal(keras.ops.convert_to_numpy(layer(h)), h)
    assert np.array_equal(
        keras.ops.convert_to_numpy(layer(h, training=False, labels=LABELS)), h
    )


def test_minor_rows_unchanged_and_major_rows_mixed_on_segment():
    strength = 0.6
    layer = kmix.MajorMix(strength=strength, seed=7)
    h = _features()
    out = _mix(layer, h)
    minor = np.isin(LABELS, [2, 3])
    assert np.array_equal(out[minor], h[minor])  # bit-identical
    major_rows = np.flatnonzero(~minor)
    changed = [i for i in major_rows if not np.array_equal(out[i], h[i])]
    assert (
        len(changed) >= len(major_rows) - 1
    )  # only a self-partner is unchanged
    for i in major_rows:
        coefficients = [
            _segment_coefficient(out[i], h[i], h[j])
            for j in range(len(h))
            if j != i
        ]
        coefficients = [c for c in coefficients if c is not None]
        if np.array_equal(out[i], h[i]):
            continue
        assert coefficients, f"row {i} is not on a segment to another row"
        assert any(1 - strength - 1e-4 <= c <= 1 + 1e-4 for c in coefficients)


def test_partners_form_a_permutation_and_coefficients_cover_range():
    # With one-hot rows and an all-major batch, row i of the output is
    # lam_i * e_i + (1 - lam_i) * e_perm(i): both can be read back.
    layer = kmix.MajorMix(strength=0.5, seed=3)
    h = np.eye(12, dtype="float32")
    labels = np.zeros(12, dtype="int32")
    lams = []
    for _ in range(20):
        out = _mix(layer, h, labels=labels, counts=[10])
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
        off_diagonal = out - np.diag(np.diag(out))
        partners = np.where(
            off_diagonal.max(axis=1) > 0,
            off_diagonal.argmax(axis=1),
            np.arange(12),
        )
        assert sorted(partners) == list(range(12))
        lams.extend(np.diag(out))
    lams = np.array(lams)
    assert lams.min() >= 0.5 - 1e-6 and lams.max() <= 1.0 + 1e-6
    assert lams.min() < 0.55 and 0.65 < np.median(lams) < 0.85


def test_same_seed_gives_same_output():
    h = _features()
    first = _mix(kmix.MajorMix(strength=0.5, seed=11), h)
    second = _mix(kmix.MajorMix(strength=0.5, seed=11), h)
    other = _mix(kmix.MajorMix(strength=0.5, seed=12), h)
    assert np.array_equal(first, second)
    assert not np.array_equal(first, other)


def test_successive_calls_draw_new_mixes():
    layer = kmix.MajorMix(strength=0.5, seed=11)
    h = _features()
    assert not np.array_equal(_mix(layer, h), _mix(layer, h))


@pytest.mark.parametrize("kwargs", [{"strength": 0.0}, {"mix_prob": 0.0}])
def test_strength_zero_and_mix_prob_zero_are_exact_no_ops(kwargs):
    h = _features()
    assert np.array_equal(_mix(kmix.MajorMix(seed=1, **kwargs), h), h)


def test_threshold_one_mixes_only_the_largest_classes():
    h = _features()
    counts = [100, 100, 99, 5]
    out = _mix(
        kmix.MajorMix(strength=1.0, major_threshold=1.0, seed=2),
        h,
        counts=counts,
    )
    largest = np.isin(LABELS, [0, 1])
    assert np.array_equal(out[~largest], h[~largest])
    assert not np.array_equal(out[largest], h[largest])


def test_major_classes_overrides_threshold():
    h = _features()
    layer = kmix.MajorMix(strength=1.0, major_classes=[3], seed=2)
    out = _mix(layer, h)
    is_three = LABELS == 3
    assert np.array_equal(out[~is_three], h[~is_three])
    assert not np.array_equal(out[is_three], h[is_three])
    # No class counts needed with explicit major classes.
    out = keras.ops.convert_to_numpy(layer(h, training=True, labels=LABELS))
    assert np.array_equal(out[~is_three], h[~is_three])


def test_one_hot_labels_equal_integer_labels():
    h = _features()
    one_hot = np.eye(4, dtype="float32")[LABELS]
    a = _mix(kmix.MajorMix(strength=0.7, seed=5), h, labels=one_hot)
    b = _mix(kmix.MajorMix(strength=0.7, seed=5), h, labels=LABELS[:, None])
    assert np.array_equal(a, b)


def test_any_rank_input():
    layer = kmix.MajorMix(strength=0.8, seed=4)
    h = _features((12, 4, 3, 2))
    out = _mix(layer, h)
    minor = np.isin(LABELS, [2, 3])
    assert out.shape == h.shape
    assert np.array_equal(out[minor], h[minor])
    assert not np.array_equal(out[~minor], h[~minor])


def test_beta_distribution_keeps_coefficients_in_range():
    layer = kmix.MajorMix(strength=0.4, distribution="beta", alpha=0.5, seed=9)
    h = np.eye(12, dtype="float32")
    out = _mix(layer, h, labels=np.zeros(12, "int32"), counts=[1])
    assert np.all(np.diag(out) >= 0.6 - 1e-6) and np.all(
        np.diag(out) <= 1 + 1e-6
    )


def test_gradients_reach_row_and_partner():
    layer = kmix.MajorMix(strength=1.0, seed=6)
    h = tf.Variable(np.eye(4, dtype="float32"))
    labels = np.array([0, 1, 1, 1], dtype="int32")  # only row 0 is major
    with tf.GradientTape() as tape:
        out = layer(h, training=True, labels=labels, class_counts=[10, 1])
        loss = tf.reduce_sum(out[0] * tf.constant([1.0, 2.0, 3.0, 4.0]))
    grad = tape.gradient(loss, h).numpy()
    lam = out.numpy()[0, 0]
    partner = int(np.argmax(out.numpy()[0, 1:])) + 1 if lam < 1 else 0
    np.testing.assert_allclose(grad[0], lam * np.array([1, 2, 3, 4]), rtol=1e-5)
    if partner:
        np.testing.assert_allclose(
            grad[partner], (1 - lam) * np.array([1, 2, 3, 4]), rtol=1e-5
        )
        assert np.count_nonzero(grad.sum(axis=1)) == 2


def test_strength_variable_can_be_assigned():
    layer = kmix.MajorMix(strength=0.5, seed=1)
    layer.strength = 0.0
    assert layer.strength == 0.0
    h = _features()
    assert np.array_equal(_mix(layer, h), h)
    assert layer.get_config()["strength"] == 0.0


def test_mixed_precision_float16_inputs():
    layer = kmix.MajorMix(strength=0.5, seed=1, dtype="mixed_float16")
    h = _features().astype("float16")
    out = layer(h, training=True, labels=LABELS, class_counts=COUNTS)
    assert out.dtype == tf.float16
    minor = np.isin(LABELS, [2, 3])
    assert np.array_equal(out.numpy()[minor], h[minor])
    assert layer.strength == 0.5


def test_get_config_round_trip():
    layer = kmix.MajorMix(
        strength=0.3,
        major_threshold=0.2,
        major_classes=[0, 2],
        mix_prob=0.5,
        distribution="beta",
        alpha=2.0,
        seed=4,
        name="mix",
    )
    clone = kmix.MajorMix.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert isinstance(restored, kmix.MajorMix) and restored.alpha == 2.0


def test_jit_compiled_call():
    layer = kmix.MajorMix(strength=0.5, seed=1)

    @tf.function(jit_compile=True)
    def mix(h, labels):
        return layer(h, training=True, labels=labels, class_counts=COUNTS)

    h = _features()
    out = mix(tf.constant(h), tf.constant(LABELS)).numpy()
    minor = np.isin(LABELS, [2, 3])
    assert np.array_equal(out[minor], h[minor])
    assert not np.array_equal(out[~minor], h[~minor])


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"strength": 1.5}, "strength"),
        ({"strength": -0.1}, "strength"),
        ({"major_threshold": 0.0}, "major_threshold"),
        ({"major_threshold": 1.2}, "major_threshold"),
        ({"distribution": "gauss"}, "distribution"),
        ({"alpha": 0.0}, "alpha"),
        ({"mix_prob": 2.0}, "mix_prob"),
        ({"major_classes": [-1]}, "major_classes"),
    ],
)
def test_bad_arguments_raise_naming_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        kmix.MajorMix(**kwargs)
    assert repr(list(kwargs.values())[0]) in str(info.value)


def test_training_without_labels_raises_clear_error():
    with pytest.raises(ValueError, match="kmix.MixModel"):
        kmix.MajorMix()(_features(), training=True)


def test_labels_out_of_range_raise():
    with pytest.raises(
        (ValueError, tf.errors.InvalidArgumentError), match="labels"
    ):
        _mix(kmix.MajorMix(), _features(), labels=LABELS + 1)
    layer = kmix.MajorMix()
    graph_mix = tf.function(
        lambda h, y: layer(h, training=True, labels=y, class_counts=COUNTS)
    )
    with pytest.raises(tf.errors.InvalidArgumentError, match="labels"):
        graph_mix(tf.constant(_features()), tf.constant(LABELS - 1))


def test_missing_class_counts_raise():
    with pytest.raises(ValueError, match="class_counts"):
        kmix.MajorMix()(_features(), training=True, labels=LABELS)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def test_frequency_graded_mixes_each_class_at_its_rate():
    # Class c is mixed with probability (n_c / max n) ** gamma: with counts
    # 100, 50, 10 and gamma 1, rates 1, 0.5 and 0.1.
    counts = [100, 50, 10]
    labels = np.repeat(np.arange(3, dtype="int32"), 4000)
    h = np.random.RandomState(0).normal(size=(len(labels), 3)).astype("float32")
    layer = kmix.MajorMix(strength=1.0, frequency_gamma=1.0, seed=3)
    out = _mix(layer, h, labels=labels, counts=counts)
    changed = np.any(out != h, axis=1)
    rates = [changed[labels == c].mean() for c in range(3)]
    np.testing.assert_allclose(rates, [1.0, 0.5, 0.1], atol=0.03)


def test_frequency_gamma_zero_mixes_every_row_and_large_gamma_only_the_largest():
    h = _features()
    every = _mix(kmix.MajorMix(strength=1.0, frequency_gamma=0.0, seed=2), h)
    assert np.sum(np.any(every != h, axis=1)) >= 11  # all but a self-partner
    largest_only = _mix(
        kmix.MajorMix(strength=1.0, frequency_gamma=60.0, seed=2), h
    )
    others = LABELS != 0
    assert np.array_equal(largest_only[others], h[others])


def test_frequency_gamma_round_trips_and_rejects_bad_values():
    layer = kmix.MajorMix(frequency_gamma=0.5)
    assert kmix.MajorMix.from_config(layer.get_config()).frequency_gamma == 0.5
    with pytest.raises(ValueError, match="frequency_gamma"):
        kmix.MajorMix(frequency_gamma=-1.0)
    with pytest.raises(ValueError, match="give one"):
        kmix.MajorMix(frequency_gamma=1.0, major_classes=[0])


def test_major_classes_outside_the_class_range_raise():
    layer = kmix.MajorMix(major_classes=[99])
    with pytest.raises(ValueError, match="major_classes"):
        _mix(layer, _features())
