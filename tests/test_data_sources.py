"""Tests of kmix.data.load on every kind of source, and of its errors."""

import gzip
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import kmix
from helpers import needs_fashion_mnist
from kmix.data import sources


def _synthetic(
    num_classes=4, per_class=30, test_per_class=5, shape=(6, 6, 1), seed=0
):
    """Images whose first pixel is the image's index, for tracing selection."""
    rng = np.random.RandomState(seed)

    def split(per):
        labels = np.repeat(np.arange(num_classes), per)
        rng.shuffle(labels)
        images = rng.randint(0, 256, size=(len(labels),) + shape).astype(
            np.uint8
        )
        images.reshape(len(labels), -1)[:, 0] = np.arange(len(labels)) % 256
        return images, labels

    return {"train": split(per_class), "test": split(test_per_class)}


def _write_idx(path, array):
    codes = {np.dtype("uint8"): 0x08, np.dtype(">i4"): 0x0C}
    header = bytes([0, 0, codes[array.dtype], array.ndim])
    header += np.asarray(array.shape, ">u4").tobytes()
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as stream:
        stream.write(header + array.tobytes())


def _all_batches(dataset):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(images), np.concatenate(labels)


def test_arrays_source_counts_dtypes_and_untouched_test_split():
    splits = _synthetic()
    data = kmix.data.load(
        splits,
        profile="step",
        imbalance_ratio=10,
        batch_size=16,
        augment="none",
        verbose=0,
    )
    assert data.class_counts == [30, 30, 3, 3]
    assert data.test_counts == [5, 5, 5, 5]
    assert data.num_classes == 4 and data.class_names == ["0", "1", "2", "3"]
    assert data.input_shape == (6, 6, 1)
    images, labels = next(iter(data.train))
    assert images.dtype == tf.float32 and images.shape == (16, 6, 6, 1)
    assert labels.dtype == tf.int32 and labels.shape == (16,)
    test_images, test_labels = _all_batches(data.test)
    np.testing.assert_allclose(
        test_images, splits["test"][0] / 255.0, atol=1e-7
    )
    np.testing.assert_array_equal(test_labels, splits["test"][1])


def test_npz_source_with_class_names(tmp_path):
    splits = _synthetic(num_classes=3)
    path = str(tmp_path / "tiny.npz")
    np.savez(
        path,
        x_train=splits["train"][0][..., 0],
        y_train=splits["train"][1].reshape(-1, 1),
        x_test=splits["test"][0][..., 0],
        y_test=splits["test"][1],
        class_names=np.array(["cat", "dog", "owl"]),
    )
    data = kmix.data.load(path, profile="exp", imbalance_ratio=10, verbose=0)
    assert data.name == "tiny"
    assert data.class_names == ["cat", "dog", "owl"]
    assert data.class_counts == [30, 9, 3]
    assert data.input_shape == (6, 6, 1)


def test_image_folder_decodes_selected_images_and_writes_nothing(tmp_path):
    rng = np.random.RandomState(1)
    pixels = {}
    for split, per_class in (("train", 6), ("test", 2)):
        for name in ("ant", "bee"):
            os.makedirs(tmp_path / split / name)
            for index in range(per_class):
                image = rng.randint(0, 256, size=(5, 7, 3)).astype(np.uint8)
                path = str(tmp_path / split / name / f"{index}.png")
                tf.io.write_file(path, tf.io.encode_png(image))
                pixels[path] = image
    listing = sorted(str(path) for path in tmp_path.rglob("*"))
    data = kmix.data.load(
        str(tmp_path), profile=[6, 2], augment="none", batch_size=32, verbose=0
    )
    assert data.class_names == ["ant", "bee"]
    assert data.class_counts == [6, 2] and data.test_counts == [2, 2]
    assert data.input_shape == (5, 7, 3)
    images, labels = _all_batches(data.train)
    selected = [
        str(tmp_path / "train" / ("ant" if i < 6 else "bee") / f"{i % 6}.png")
        for i in data.train_indices
    ]
    expected = {
        pixels[path].tobytes(): int(path.split(os.sep)[-2] == "bee")
        for path in selected
    }
    got = {
        np.round(image * 255).astype(np.uint8).tobytes(): label
        for image, label in zip(images, labels)
    }
    assert got == expected
    assert sorted(str(path) for path in tmp_path.rglob("*")) == listing


def test_image_folder_rejects_bad_and_mismatched_images(tmp_path):
    for split in ("train", "test"):
        os.makedirs(tmp_path / split / "a")
        for index, size in enumerate((4, 4, 5)):
            image = np.zeros((size, 4, 1), np.uint8)
            tf.io.write_file(
                str(tmp_path / split / "a" / f"{index}.png"),
                tf.io.encode_png(image),
            )
    with pytest.raises(
        ValueError, match=r"same shape: .*2.png' has \(5, 4, 1\)"
    ):
        kmix.data.load(str(tmp_path), profile="none", verbose=0)
    (tmp_path / "train" / "a" / "2.png").write_bytes(b"not a png")
    with pytest.raises(ValueError, match="Cannot decode the image .*2.png"):
        kmix.data.load(str(tmp_path), profile="none", verbose=0)


def test_idx_files_round_trip_and_load(tmp_path):
    splits = _synthetic(num_classes=3, shape=(4, 4, 1))
    for prefix, split, suffix in (
        ("train", "train", ".gz"),
        ("t10k", "test", ""),
    ):
        images, labels = splits[split]
        _write_idx(
            str(tmp_path / f"{prefix}-images-idx3-ubyte{suffix}"),
            images[..., 0],
        )
        _write_idx(
            str(tmp_path / f"{prefix}-labels-idx1-ubyte{suffix}"),
            labels.astype(np.uint8),
        )
    np.testing.assert_array_equal(
        kmix.data.read_idx(str(tmp_path / "train-images-idx3-ubyte.gz")),
        splits["train"][0][..., 0],
    )
    wide = np.arange(12, dtype=">i4").reshape(3, 4)
    _write_idx(str(tmp_path / "wide"), wide)
    np.testing.assert_array_equal(
        kmix.data.read_idx(str(tmp_path / "wide")), wide
    )
    data = kmix.data.load(
        str(tmp_path),
        profile="step",
        imbalance_ratio=3,
        minor_fraction=0.34,
        verbose=0,
    )
    assert data.class_counts == [30, 30, 10]
    assert data.test_counts == [5, 5, 5]
    assert data.input_shape == (4, 4, 1)


def test_tfds_source_with_mocked_labels():
    train_labels = np.repeat(np.arange(10), 20)
    test_labels = np.arange(50) % 10

    def as_dataset(self, split, *args, **kwargs):
        labels = train_labels if split == "train" else test_labels
        images = np.zeros((len(labels), 32, 32, 3), np.uint8)
        images[:, 0, 0, 0] = np.arange(len(labels))
        return tf.data.Dataset.from_tensor_slices(
            {
                "image": images,
                "id": np.array([b"id"] * len(labels)),
                "label": labels.astype(np.int64),
            }
        )

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        data = kmix.data.load(
            "cifar10", profile="exp", imbalance_ratio=10, seed=3, verbose=0
        )
    assert data.name == "cifar10"
    assert data.class_counts == [20, 15, 11, 9, 7, 5, 4, 3, 2, 2]
    assert data.test_counts == [5] * 10
    assert data.input_shape == (32, 32, 3)
    assert data.augment == "crop_flip"
    expected = kmix.data.subsample_indices(
        train_labels, data.class_counts, seed=3
    )
    np.testing.assert_array_equal(data.train_indices, expected)


@needs_fashion_mnist
def test_real_fashion_mnist_step_100():
    data = kmix.data.load(
        "fashion_mnist",
        profile="step",
        imbalance_ratio=100,
        batch_size=1000,
        verbose=0,
    )
    assert data.class_counts == [6000] * 5 + [60] * 5
    assert sum(data.class_counts) == 30300
    assert data.test_counts == [1000] * 10
    assert (
        data.class_names[0] == "T-shirt/top"
        and data.class_names[9] == "Ankle boot"
    )
    assert data.input_shape == (28, 28, 1)
    assert data.augment == "crop"
    assert data.achieved_imbalance_ratio == 100
    test_images, test_labels = _all_batches(data.test)
    assert test_images.shape == (10000, 28, 28, 1)
    np.testing.assert_array_equal(np.bincount(test_labels), [1000] * 10)
    assert 0.0 <= test_images.min() and test_images.max() == 1.0


def test_unknown_name_lists_known_names_and_local_data():
    with pytest.raises(ValueError) as error:
        kmix.data.load("cifar_10", verbose=0)
    message = str(error.value)
    assert "name='cifar_10'" in message
    assert "Did you mean ['cifar10'" in message
    assert "svhn_cropped" in message and ".npz" in message and "IDX" in message


@pytest.mark.parametrize(
    "splits, error, message",
    [
        ({"train": _synthetic()["train"]}, ValueError, "Missing \\['test'\\]"),
        (
            {
                "train": (np.zeros((4, 3, 3), np.float32), [0, 1, 0, 1]),
                "test": (np.zeros((2, 3, 3), np.float32), [0, 1]),
            },
            ValueError,
            "uint8.*Received dtype float32",
        ),
        (
            {
                "train": (np.zeros((4, 3, 3), np.uint8), [0.0, 1.0, 0.0, 1.0]),
                "test": (np.zeros((2, 3, 3), np.uint8), [0, 1]),
            },
            ValueError,
            "integer class labels",
        ),
        (
            {
                "train": (np.zeros((4, 3, 3), np.uint8), [0, 1, -1, 1]),
                "test": (np.zeros((2, 3, 3), np.uint8), [0, 1]),
            },
            ValueError,
            "containing \\[-1\\]",
        ),
        (
            {
                "train": (np.zeros((4, 3, 3), np.uint8), [0, 2, 0, 2]),
                "test": (np.zeros((2, 3, 3), np.uint8), [0, 1]),
            },
            ValueError,
            "no images of classes \\[1\\]",
        ),
        (
            {
                "train": (np.zeros((4, 3, 3), np.uint8), [0, 1, 0]),
                "test": (np.zeros((2, 3, 3), np.uint8), [0, 1]),
            },
            ValueError,
            "4 images but 3 labels",
        ),
    ],
)
def test_bad_arrays_raise_clear_errors(splits, error, message):
    with pytest.raises(error, match=message):
        kmix.data.load(splits, profile="none", verbose=0)


def test_labels_out_of_range_of_class_names():
    splits = _synthetic(num_classes=3)
    with pytest.raises(ValueError, match=r"labels in \[0, 2\).*\[2\]"):
        kmix.data.load(splits, class_names=["a", "b"], verbose=0)


def test_missing_local_files_raise_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        kmix.data.load(str(tmp_path / "nowhere.npz"), verbose=0)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(
        b"\x00\x00\x08\x01\x00\x00\x00\x02ab"
    )
    with pytest.raises(
        FileNotFoundError, match="lacks.*train-labels-idx1-ubyte"
    ):
        kmix.data.load(str(tmp_path), verbose=0)
    (tmp_path / "bad").write_bytes(b"\x00\x00\x08\x01\x00\x00\x00\x09ab")
    with pytest.raises(ValueError, match="truncated or corrupt"):
        kmix.data.read_idx(str(tmp_path / "bad"))
    path = str(tmp_path / "partial.npz")
    np.savez(path, x_train=np.zeros((2, 3, 3), np.uint8))
    with pytest.raises(
        ValueError, match="lacks the arrays \\['x_test', 'y_test', 'y_train'\\]"
    ):
        kmix.data.load(path, verbose=0)


def test_fashion_mnist_falls_back_to_debian_files_only_without_tfds_copy(
    monkeypatch,
):
    monkeypatch.setattr(
        sources, "DEBIAN_FASHION_MNIST_DIR", "/nonexistent/fashion"
    )
    with pytest.raises(
        FileNotFoundError, match="no prepared copy of 'fashion_mnist'"
    ):
        kmix.data.load(
            "fashion_mnist",
            download=False,
            data_dir="/nonexistent/tfds",
            verbose=0,
        )
    assert not os.path.exists("/nonexistent/tfds")


if __name__ == "__main__":
    import sys

    sys.exit(pytest.main([__file__, "-q"]))
