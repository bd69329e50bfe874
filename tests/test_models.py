"""The model builders of `kmix.models`."""

import sys

import keras
import numpy as np
import pytest

import kmix

COUNTS = [50, 50, 5, 5]


def test_resnet32_matches_the_literature_size():
    model = kmix.models.resnet32(10, class_counts=[100] * 10, mix_at=[])
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    assert trainable == 464_154  # LDAM-DRW's CIFAR-10 ResNet-32
    convs = [l for l in model.layers if isinstance(l, keras.layers.Conv2D)]
    assert len(convs) == 31
    assert model.output_shape == (None, 10)


@pytest.mark.parametrize(
    "builder, shape",
    [
        (kmix.models.resnet32, (16, 16, 3)),
        (kmix.models.small_cnn, (28, 28, 1)),
    ],
)
def test_mix_at_places_named_major_mix_layers(builder, shape):
    model = builder(
        4,
        input_shape=shape,
        class_counts=COUNTS,
        mix_at=["pool", "input", "stage2"],
        strength=0.3,
        seed=5,
    )
    names = [layer.name for layer in model.major_mix_layers]
    assert names == ["mix_input", "mix_stage2", "mix_pool"]
    assert [layer.strength for layer in model.major_mix_layers] == [0.3] * 3
    assert [layer.seed for layer in model.major_mix_layers] == [5, 8, 10]
    assert isinstance(model, kmix.MixModel) and model.class_counts == COUNTS


def test_empty_mix_at_builds_no_mixing_layer():
    assert (
        kmix.models.small_cnn(
            4, class_counts=COUNTS, mix_at=[]
        ).major_mix_layers
        == []
    )


def test_unknown_mix_point_raises():
    with pytest.raises(ValueError, match="mix_at"):
        kmix.models.small_cnn(4, class_counts=COUNTS, mix_at=["stage9"])


def test_weight_decay_adds_l2_losses():
    model = kmix.models.small_cnn(4, class_counts=COUNTS, weight_decay=2e-4)
    model(np.zeros((1, 28, 28, 1), "float32"))
    kernels = [w for w in model.trainable_weights if "kernel" in w.path]
    expected = sum(1e-4 * float(np.sum(np.square(w.numpy()))) for w in kernels)
    np.testing.assert_allclose(float(sum(model.losses)), expected, rtol=1e-4)


def test_small_cnn_learns_a_tiny_imbalanced_task_and_round_trips(tmp_path):
    rng = np.random.RandomState(0)
    y = np.repeat(np.arange(4), [64, 64, 8, 8]).astype("int32")
    x = rng.uniform(size=(len(y), 28, 28, 1)).astype("float32") * 0.2
    for c in range(4):  # a bright quadrant per class
        x[
            y == c,
            (c // 2) * 14 : (c // 2) * 14 + 14,
            (c % 2) * 14 : (c % 2) * 14 + 14,
        ] += 0.8
    keras.utils.set_random_seed(0)
    model = kmix.models.small_cnn(
        4, class_counts=[64, 64, 8, 8], strength=0.5, seed=1
    )
    model.compile(
        keras.optimizers.Adam(0.01),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    history = model.fit(x, y, batch_size=32, epochs=6, verbose=0)
    assert history.history["loss"][-1] < 0.5 * history.history["loss"][0]
    path = tmp_path / "cnn.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    np.testing.assert_array_equal(
        restored.predict(x, verbose=0), model.predict(x, verbose=0)
    )


def test_normed_classifier_gives_cosine_logits_and_round_trips(tmp_path):
    model = kmix.models.small_cnn(
        4, class_counts=COUNTS, classifier="normed", mix_at=[]
    )
    assert isinstance(model.get_layer("logits"), kmix.layers.NormedDense)
    x = np.random.RandomState(0).uniform(size=(8, 28, 28, 1)).astype("float32")
    logits = model.predict(x, verbose=0)
    assert np.all(np.abs(logits) <= 1.0 + 1e-5)
    features = keras.Model(model.input, model.get_layer("pool").output).predict(
        x, verbose=0
    )
    kernel = model.get_layer("logits").kernel.numpy()
    expected = (features / np.linalg.norm(features, axis=1, keepdims=True)) @ (
        kernel / np.linalg.norm(kernel, axis=0, keepdims=True)
    )
    np.testing.assert_allclose(logits, expected, rtol=1e-4, atol=1e-5)
    model.save(tmp_path / "normed.keras")
    restored = keras.saving.load_model(tmp_path / "normed.keras")
    np.testing.assert_allclose(
        restored.predict(x, verbose=0), logits, rtol=1e-6
    )
    with pytest.raises(ValueError, match="classifier"):
        kmix.models.small_cnn(4, class_counts=COUNTS, classifier="cosine")


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
