"""Tests of the tf.data pipelines kmix.data.load builds."""

import numpy as np
import pytest
import tensorflow as tf

import kmix
from kmix.data import pipeline


def _synthetic(
    num_classes=4, per_class=40, test_per_class=5, shape=(8, 8, 3), seed=0
):
    rng = np.random.RandomState(seed)

    def split(per):
        labels = np.repeat(np.arange(num_classes), per)
        images = rng.randint(1, 256, size=(len(labels),) + shape).astype(
            np.uint8
        )
        return images, labels

    return {"train": split(per_class), "test": split(test_per_class)}


def _epoch(dataset):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(images), np.concatenate(labels)


def _as_uint8(images):
    return np.round(images * 255).astype(np.uint8)


def test_training_batches_hold_the_selected_images_scaled_to_unit_range():
    splits = _synthetic()
    data = kmix.data.load(
        splits,
        profile="step",
        imbalance_ratio=4,
        batch_size=7,
        augment="none",
        verbose=0,
    )
    images, labels = _epoch(data.train)
    assert images.dtype == np.float32 and labels.dtype == np.int32
    assert images.min() >= 0.0 and images.max() <= 1.0
    assert len(labels) == 40 + 40 + 10 + 10
    np.testing.assert_array_equal(np.bincount(labels), data.class_counts)
    expected = splits["train"][0][data.train_indices]
    assert sorted(map(bytes, _as_uint8(images))) == sorted(map(bytes, expected))
    assert [len(y) for _, y in data.train] == [7] * 14 + [2]


def test_shuffle_is_seeded_and_redrawn_each_epoch():
    splits = _synthetic()

    def order(seed):
        data = kmix.data.load(
            splits,
            profile="none",
            seed=seed,
            augment="none",
            batch_size=32,
            verbose=0,
        )
        return [_as_uint8(_epoch(data.train)[0])[:, 0, 0, 0] for _ in range(2)]

    first_epoch, second_epoch = order(seed=5)
    again_first, again_second = order(seed=5)
    np.testing.assert_array_equal(first_epoch, again_first)
    np.testing.assert_array_equal(second_epoch, again_second)
    assert not np.array_equal(first_epoch, second_epoch)
    assert not np.array_equal(first_epoch, order(seed=6)[0])


def test_random_crop_is_a_window_of_the_zero_padded_image():
    rng = np.random.RandomState(0)
    batch = rng.randint(1, 256, size=(64, 8, 8, 1)).astype(np.uint8)
    cropped = pipeline.augment_batch(
        tf.constant(batch), [3, 4], "crop", 2
    ).numpy()
    padded = np.pad(batch, [(0, 0), (2, 2), (2, 2), (0, 0)])
    offsets = set()
    for original, result in zip(padded, cropped):
        windows = [
            (row, column)
            for row in range(5)
            for column in range(5)
            if np.array_equal(
                original[row : row + 8, column : column + 8], result
            )
        ]
        assert len(windows) == 1
        offsets.add(windows[0])
    assert len(offsets) > 10  # offsets are drawn per image


def test_flip_mirrors_about_half_of_the_batch():
    batch = (
        np.random.RandomState(1)
        .randint(0, 256, (200, 4, 4, 3))
        .astype(np.uint8)
    )
    flipped = pipeline.augment_batch(tf.constant(batch), [0, 9], "flip").numpy()
    mirrored = np.all(flipped == batch[:, :, ::-1], axis=(1, 2, 3))
    unchanged = np.all(flipped == batch, axis=(1, 2, 3))
    assert np.all(mirrored | unchanged)
    assert 80 <= mirrored.sum() <= 120


def test_augmentation_is_seeded_redrawn_each_epoch_and_keeps_labels():
    splits = _synthetic(per_class=10)

    def epochs(seed):
        data = kmix.data.load(
            splits,
            profile="none",
            seed=seed,
            batch_size=40,
            augment="crop_flip",
            verbose=0,
        )
        return data, [_epoch(data.train) for _ in range(2)]

    data, (first, second) = epochs(seed=2)
    _, (again, _) = epochs(seed=2)
    np.testing.assert_array_equal(first[0], again[0])
    assert data.augment == "crop_flip"
    # Same shuffle order in both epochs is unlikely; compare as sets of labels.
    np.testing.assert_array_equal(np.bincount(first[1]), [10, 10, 10, 10])
    assert first[0].shape == (40, 8, 8, 3) and first[0].dtype == np.float32
    # Crops pad with zeros, which the images (values >= 1) never hold.
    assert (first[0] == 0).any() and not np.array_equal(first[0], second[0])


def test_auto_augmentation_by_image_kind():
    assert (
        pipeline.resolve_augment("auto", (32, 32, 3), "cifar10") == "crop_flip"
    )
    assert (
        pipeline.resolve_augment("auto", (32, 32, 3), "svhn_cropped") == "crop"
    )
    assert (
        pipeline.resolve_augment("auto", (28, 28, 1), "fashion_mnist") == "crop"
    )
    assert pipeline.resolve_augment("flip", (28, 28, 1)) == "flip"
    with pytest.raises(ValueError, match="augment='mixup'"):
        pipeline.resolve_augment("mixup", (32, 32, 3))


def test_clean_training_view_is_the_training_set_in_order_unaugmented():
    splits = _synthetic()
    data = kmix.data.load(
        splits,
        profile="exp",
        imbalance_ratio=8,
        augment="crop_flip",
        batch_size=16,
        verbose=0,
    )
    for _ in range(2):  # the same every epoch
        images, labels = _epoch(data.train_clean)
        np.testing.assert_array_equal(
            _as_uint8(images), splits["train"][0][data.train_indices]
        )
        np.testing.assert_array_equal(
            labels, splits["train"][1][data.train_indices]
        )
    np.testing.assert_array_equal(np.bincount(labels), data.class_counts)


def test_test_split_is_never_subsampled_shuffled_or_augmented():
    splits = _synthetic(test_per_class=9)
    data = kmix.data.load(
        splits,
        profile="exp",
        imbalance_ratio=40,
        augment="crop_flip",
        train_fraction=0.5,
        validation=3,
        verbose=0,
    )
    images, labels = _epoch(data.test)
    np.testing.assert_array_equal(_as_uint8(images), splits["test"][0])
    np.testing.assert_array_equal(labels, splits["test"][1])
    assert data.test_counts == [9] * 4


def test_balanced_validation_is_disjoint_from_training():
    splits = _synthetic(per_class=40)
    data = kmix.data.load(
        splits, profile="step", imbalance_ratio=10, validation=5, verbose=0
    )
    assert data.validation_counts == [5, 5, 5, 5]
    assert data.class_counts == [35, 35, 4, 4]
    assert not set(data.train_indices) & set(data.validation_indices)
    images, labels = _epoch(data.validation)
    np.testing.assert_array_equal(
        _as_uint8(images), splits["train"][0][data.validation_indices]
    )
    np.testing.assert_array_equal(
        labels, splits["train"][1][data.validation_indices]
    )
    assert "validation" in str(data)


def test_validation_fraction_follows_the_profile():
    splits = _synthetic(per_class=100)
    data = kmix.data.load(
        splits, profile="exp", imbalance_ratio=10, validation=0.2, verbose=0
    )
    targets = kmix.data.imbalance_counts([100] * 4, "exp", 10)
    assert targets == [100, 46, 21, 10]
    assert data.validation_counts == [20, 9, 4, 2]
    assert data.class_counts == [80, 46, 21, 10]
    assert not set(data.train_indices) & set(data.validation_indices)


def test_validation_that_empties_a_class_is_an_error():
    splits = _synthetic(per_class=10)
    with pytest.raises(ValueError, match="validation=10"):
        kmix.data.load(splits, profile="none", validation=10, verbose=0)
    with pytest.raises(ValueError, match="validation=1.5"):
        kmix.data.load(splits, profile="none", validation=1.5, verbose=0)


def test_train_fraction_keeps_the_profile_shape():
    splits = _synthetic(per_class=100)
    data = kmix.data.load(
        splits,
        profile="step",
        imbalance_ratio=10,
        train_fraction=0.1,
        verbose=0,
    )
    assert data.class_counts == [10, 10, 1, 1]
    assert data.test_counts == [5, 5, 5, 5]
    with pytest.raises(ValueError, match="train_fraction=0.0"):
        kmix.data.load(splits, train_fraction=0.0, verbose=0)


def test_bad_pipeline_arguments():
    splits = _synthetic()
    with pytest.raises(ValueError, match="batch_size=0"):
        kmix.data.load(splits, batch_size=0, verbose=0)
    with pytest.raises(ValueError, match="augment='rotate'"):
        kmix.data.load(splits, augment="rotate", verbose=0)
    with pytest.raises(ValueError, match="imbalance_ratio=0.5"):
        kmix.data.load("/nonexistent/data.npz", imbalance_ratio=0.5, verbose=0)
    with pytest.raises(TypeError, match="result of kmix.data.load"):
        kmix.data.describe(splits)


def test_describe_prints_the_table():
    data = kmix.data.load(
        _synthetic(),
        profile={"0": 40, "3": 4},
        class_names=list("0123"),
        verbose=0,
    )
    lines = []
    kmix.data.describe(data, print_fn=lines.append)
    table = lines[0].splitlines()
    assert table[2].split() == ["label", "name", "train", "test"]
    assert table[3].split() == ["0", "0", "40", "5"]
    assert table[6].split() == ["3", "3", "4", "5"]
    assert table[7].split() == ["total", "124", "20"]
    assert table[-1].endswith(": 10")
    assert str(data) == lines[0]


def test_datasets_distribute_under_mirrored_strategy(two_cpu_strategy):
    data = kmix.data.load(
        _synthetic(), profile="step", imbalance_ratio=4, batch_size=8, verbose=0
    )
    strategy = two_cpu_strategy
    images, labels = next(
        iter(strategy.experimental_distribute_dataset(data.train))
    )
    per_replica = strategy.experimental_local_results(labels)
    assert sum(len(replica) for replica in per_replica) == 8
    with strategy.scope():
        import keras

        model = keras.Sequential(
            [
                keras.Input(data.input_shape),
                keras.layers.Flatten(),
                keras.layers.Dense(data.num_classes),
            ]
        )
        model.compile(
            "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
    history = model.fit(
        data.train, epochs=1, steps_per_epoch=3, shuffle=False, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])


if __name__ == "__main__":
    import sys

    sys.exit(pytest.main([__file__, "-q"]))
