"""`MixModel.from_model(..., mix_after=...)`.

MajorMix after named layers of any functional model.
"""

import keras
import numpy as np
import pytest

import kmix

COUNTS = [50, 50, 5, 5]
POINT = (
    "expanded_conv_project_bn"  # the first block's output in MobileNetV3Small
)


@pytest.fixture(scope="module")
def base():
    keras.utils.set_random_seed(0)
    return keras.applications.MobileNetV3Small(
        input_shape=(32, 32, 3),
        weights=None,
        classes=4,
        include_preprocessing=False,
        dropout_rate=0.0,
    )


def _images(n=8, seed=0):
    return (
        np.random.RandomState(seed)
        .uniform(size=(n, 32, 32, 3))
        .astype("float32")
    )


def test_keras_application_predicts_as_before_and_shares_weights(base):
    model = kmix.MixModel.from_model(
        base, COUNTS, mix_after=[POINT], strength=1.0, seed=1
    )
    x = _images()
    np.testing.assert_array_equal(
        model.predict(x, verbose=0), base.predict(x, verbose=0)
    )
    assert (
        len(model.weights) == len(base.weights) + 2
    )  # + strength, class loss weights
    shared = {id(w) for w in base.weights}
    assert sum(id(w) in shared for w in model.weights) == len(base.weights)
    assert [layer.name for layer in model.major_mix_layers] == [
        f"mix_after_{POINT}"
    ]


def test_mixing_happens_at_the_named_point_and_reaches_the_output(base):
    model = kmix.MixModel.from_model(
        base, COUNTS, mix_after=[POINT], strength=1.0, seed=1
    )
    mix = model.get_layer(f"mix_after_{POINT}")
    # The MajorMix layer reads the named layer's output, and mixing there
    # changes the model's output (the layers downstream read the mixed one).
    assert mix.input.shape == base.get_layer(POINT).output.shape
    x = _images()
    outputs = {}
    for name, label in (("minor", 2), ("major", 0)):
        with kmix.mixing_context(
            labels=np.full(8, label, "int32"), class_counts=COUNTS
        ):
            outputs[name] = keras.ops.convert_to_numpy(model(x, training=True))
    np.testing.assert_allclose(
        outputs["minor"],
        keras.ops.convert_to_numpy(base(x, training=True)),
        rtol=1e-5,
        atol=1e-6,
    )
    assert not np.allclose(outputs["major"], outputs["minor"])
    features = keras.Model(model.inputs, [mix.input, mix.output])
    labels = np.array([0, 1, 0, 1, 2, 3, 2, 3], "int32")
    with kmix.mixing_context(labels=labels, class_counts=COUNTS):
        before, after = (
            keras.ops.convert_to_numpy(t) for t in features(x, training=True)
        )
    minor = labels >= 2
    np.testing.assert_array_equal(after[minor], before[minor])
    assert not np.allclose(after[~minor], before[~minor])


def test_training_with_mixing_runs(base):
    model = kmix.MixModel.from_model(
        base, COUNTS, mix_after=[POINT], strength=0.5, seed=1
    )
    model.compile(
        "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=False)
    )
    history = model.fit(
        _images(16),
        np.array([0, 1, 2, 3] * 4),
        epochs=1,
        batch_size=8,
        verbose=0,
    )
    assert np.isfinite(history.history["loss"][0])


def test_bad_mix_after_raise_clear_errors(base):
    with pytest.raises(ValueError, match="does not have at its top level"):
        kmix.MixModel.from_model(base, COUNTS, mix_after=["no_such_layer"])
    with pytest.raises(ValueError, match="non-empty list"):
        kmix.MixModel.from_model(base, COUNTS, mix_after="conv")
    with pytest.raises(TypeError, match="without `mix_after`"):
        kmix.MixModel.from_model(base, COUNTS, strength=0.5)

    class Subclassed(keras.Model):
        def call(self, x):
            return x

    with pytest.raises(ValueError, match="subclassed model"):
        kmix.models.insert_major_mix(Subclassed(), ["x"])


def test_layer_with_several_outputs_is_refused():
    inputs = keras.Input((6,))
    first, second = keras.layers.Lambda(lambda t: [t, t], name="split")(inputs)
    outputs = keras.layers.Dense(2)(keras.layers.Concatenate()([first, second]))
    model = keras.Model(inputs, outputs)
    with pytest.raises(ValueError, match="several outputs"):
        kmix.MixModel.from_model(model, [10, 1], mix_after=["split"])
