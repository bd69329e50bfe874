"""`kmix.layers.Remix` and `kmix.layers.mix_batches` (with `keras.layers.MixUp`)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import kmix

COUNTS = [90, 30, 10]


def test_label_weights_on_a_constructed_batch():
    remix = kmix.layers.Remix(COUNTS, kappa=3.0, tau=0.5)
    labels = np.array([0, 2, 0, 2, 0, 1, 1, 1])
    # Row i is mixed with row permutation[i].
    permutation = np.array([1, 0, 3, 2, 5, 4, 7, 6])
    lam = np.array([0.3, 0.8, 0.7, 0.4, 0.2, 0.9, 0.1, 0.1])
    # Rows: (class, partner class, count ratio n_i/n_j, lam) -> lam_y
    #   0: (0, 2, 9,    0.3): major, lam < tau         -> 0   (label goes to 2)
    #   1: (2, 0, 1/9,  0.8): minor, 1 - lam < tau     -> 1   (label stays 2)
    #   2: (0, 2, 9,    0.7): major, lam >= tau        -> 0.7
    #   3: (2, 0, 1/9,  0.4): minor, 1 - lam >= tau    -> 0.4
    #   4: (0, 1, 3,    0.2): ratio = kappa counts     -> 0   (label goes to 1)
    #   5: (1, 0, 1/3,  0.9): ratio = 1/kappa counts   -> 1
    #   6, 7: (1, 1, 1, 0.1): same class               -> 0.1
    expected_lam_y = [0.0, 1.0, 0.7, 0.4, 0.0, 1.0, 0.1, 0.1]
    np.testing.assert_allclose(
        remix.label_weights(lam, labels, labels[permutation]),
        expected_lam_y,
        rtol=1e-6,
    )
    images = np.arange(8, dtype="float32").reshape(8, 1, 1, 1) * np.ones(
        (8, 2, 2, 1), "float32"
    )
    out = remix.mix(images, labels, lam, permutation)
    onehot = np.eye(3)[labels]
    lam_y = np.array(expected_lam_y)[:, None]
    np.testing.assert_allclose(
        out["labels"],
        lam_y * onehot + (1 - lam_y) * onehot[permutation],
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        out["images"][:, 0, 0, 0],
        lam * np.arange(8) + (1 - lam) * permutation,
        rtol=1e-6,
    )
    # Plain mixup between classes whose counts differ less than kappa.
    lenient = kmix.layers.Remix(COUNTS, kappa=3.5, tau=0.5)
    np.testing.assert_allclose(
        lenient.label_weights([0.2], [0], [1]), [0.2], rtol=1e-6
    )


def test_random_remix_follows_the_rule_row_by_row():
    batch = 64
    rng = np.random.RandomState(0)
    labels = rng.randint(0, 3, size=batch)
    remix = kmix.layers.Remix(COUNTS, alpha=1.0, seed=3)
    # One-hot images reveal each row's lam and partner.
    out = remix({"images": np.eye(batch, dtype="float32"), "labels": labels})
    images = keras.ops.convert_to_numpy(out["images"])
    lam = images[np.arange(batch), np.arange(batch)]
    partner = np.where(
        lam >= 1 - 1e-6,
        np.arange(batch),
        np.argmin(np.where(np.eye(batch) > 0, np.inf, -images), axis=1),
    )
    assert sorted(partner.tolist()) == list(range(batch))  # a permutation
    assert 0.3 < lam.mean() < 0.7  # Beta(1, 1) = U(0, 1)
    ratio = np.array(COUNTS)[labels] / np.array(COUNTS)[labels[partner]]
    lam_y = np.where(
        (ratio >= 3) & (lam < 0.5),
        0.0,
        np.where((ratio <= 1 / 3) & (1 - lam < 0.5), 1.0, lam),
    )
    onehot = np.eye(3)[labels]
    np.testing.assert_allclose(
        out["labels"],
        lam_y[:, None] * onehot + (1 - lam_y[:, None]) * onehot[partner],
        atol=1e-5,
    )


def test_inference_returns_data_untouched_and_config_round_trips():
    remix = kmix.layers.Remix(COUNTS, alpha=0.5, kappa=2.0, tau=0.3, seed=7)
    data = {"images": np.ones((2, 3), "float32"), "labels": np.array([0, 1])}
    out = remix(data, training=False)
    np.testing.assert_array_equal(out["images"], data["images"])
    np.testing.assert_array_equal(out["labels"], data["labels"])
    config = remix.get_config()
    assert {
        k: config[k] for k in ("class_counts", "alpha", "kappa", "tau", "seed")
    } == {
        "class_counts": COUNTS,
        "alpha": 0.5,
        "kappa": 2.0,
        "tau": 0.3,
        "seed": 7,
    }
    assert kmix.layers.Remix.from_config(config).get_config() == config
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(remix)
    )
    assert isinstance(restored, kmix.layers.Remix)


@pytest.mark.parametrize(
    "make_layer",
    [
        lambda: kmix.layers.Remix(COUNTS, seed=1),
        lambda: keras.layers.MixUp(alpha=1.0, seed=1),
    ],
    ids=["remix", "mixup"],
)
def test_mix_batches_yields_mixed_one_hot_pairs(make_layer):
    rng = np.random.RandomState(0)
    x = rng.uniform(size=(32, 4, 4, 1)).astype("float32")
    y = rng.randint(0, 3, size=32)
    ds = kmix.layers.mix_batches(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(8),
        make_layer(),
        num_classes=3,
    )
    batches = list(ds.as_numpy_iterator())
    assert len(batches) == 4
    images, labels = batches[0]
    assert images.shape == (8, 4, 4, 1) and labels.shape == (8, 3)
    np.testing.assert_allclose(labels.sum(-1), 1.0, rtol=1e-5)
    assert not np.allclose(images, x[:8])  # mixed
    # Each mixed image lies between the batch's extremes.
    assert (
        images.min() >= x[:8].min() - 1e-6
        and images.max() <= x[:8].max() + 1e-6
    )


def test_major_mix_remix_and_ldam_train_together():
    keras.utils.set_random_seed(0)
    rng = np.random.RandomState(0)
    y = rng.choice(3, size=48, p=np.array(COUNTS) / sum(COUNTS))
    x = (
        rng.normal(size=(3, 4, 4, 1))[y] + 0.3 * rng.normal(size=(48, 4, 4, 1))
    ).astype("float32")
    ds = kmix.layers.mix_batches(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(16),
        kmix.layers.Remix(COUNTS, seed=0),
        num_classes=3,
    )
    inputs = keras.Input((4, 4, 1))
    h = keras.layers.Dense(8, activation="relu")(keras.layers.Flatten()(inputs))
    h = kmix.MajorMix(strength=0.5, seed=0)(h)
    model = kmix.MixModel(inputs, keras.layers.Dense(3)(h), class_counts=COUNTS)
    model.compile(
        keras.optimizers.SGD(0.1), kmix.losses.LDAMLoss(COUNTS, scale=5)
    )
    history = model.fit(ds, epochs=3, verbose=0, shuffle=False)
    assert len(history.history["loss"]) == 3
    assert np.all(np.isfinite(history.history["loss"]))


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="`class_counts` must be non-negative"):
        kmix.layers.Remix([10, -1])
    with pytest.raises(
        ValueError,
        match=r"`kappa` must be in \[1.0, inf\]. Received: kappa=0.5",
    ):
        kmix.layers.Remix(COUNTS, kappa=0.5)
    with pytest.raises(ValueError, match="`tau` must be in"):
        kmix.layers.Remix(COUNTS, tau=-0.1)
    with pytest.raises(ValueError, match="`alpha` must be in"):
        kmix.layers.Remix(COUNTS, alpha=0.0)
    with pytest.raises(ValueError, match="takes a dict"):
        kmix.layers.Remix(COUNTS)((np.ones((2, 3)), np.array([0, 1])))
    with pytest.raises(
        ValueError, match=r"`dataset` must yield batched `\(images, labels\)`"
    ):
        kmix.layers.mix_batches(
            tf.data.Dataset.from_tensor_slices(np.ones((4, 2))),
            kmix.layers.Remix(COUNTS),
            3,
        )


if __name__ == "__main__":
    import sys

    sys.exit(pytest.main([__file__, "-q"]))
