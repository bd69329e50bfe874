"""The streaming path of kmix.data: list files, iNaturalist JSON, image folders,
the on-the-fly pipeline, the automatic choice of path, and bad input."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

import kmix
from kmix.data import streaming
from kmix.data import streaming_pipeline
from kmix.experiment import config as config_module
from streaming_data import image_folder
from streaming_data import imagenet_lt_dir
from streaming_data import inaturalist_dir
from streaming_data import write_jpeg

SIZE = 16  # side of the streamed images in these tests


@pytest.fixture(scope="module")
def imagenet_lt(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("imagenet_lt"))
    return root, imagenet_lt_dir(root)


def _batches(dataset):
    images, labels = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
    return np.concatenate(images), np.concatenate(labels)


def _levels(images):
    """The gray level of each (solid) image, from its mean."""
    return np.round(images.mean(axis=(1, 2, 3)) * 255).astype(int)


def _close(levels, expected):
    np.testing.assert_allclose(levels, expected, atol=2)


# ------------------------------------------------------------ list files


def test_list_files_profile_none_keeps_exactly_the_listed_images(imagenet_lt):
    root, lines = imagenet_lt
    data = kmix.data.load(
        root, profile="none", batch_size=5, image_size=SIZE, verbose=0
    )
    assert isinstance(data, kmix.data.StreamingDataset)
    assert isinstance(data, kmix.data.ImbalancedDataset)
    assert data.name == "imagenet_lt"
    assert data.class_counts == [6, 4, 2]
    assert data.validation_counts == [2, 2, 2] and data.test_counts == [2, 2, 2]
    assert data.class_names == ["n00", "n01", "n02"]  # from the image folders
    assert data.input_shape == (SIZE, SIZE, 3) and data.image_size == SIZE
    # profile="none": every listed image, in the selection rule's order.
    labels = np.asarray([label for _, label, _ in lines["train"]])
    np.testing.assert_array_equal(
        data.train_indices,
        kmix.data.subsample_indices(labels, [6, 4, 2], seed=0),
    )
    values = np.asarray([value for _, _, value in lines["train"]])
    images, batch_labels = _batches(data.train_clean)
    assert images.shape == (12, SIZE, SIZE, 3) and images.dtype == np.float32
    _close(_levels(images), values[data.train_indices])
    np.testing.assert_array_equal(batch_labels, labels[data.train_indices])
    # Test and validation splits: the list files, in their order.
    test_images, test_labels = _batches(data.test)
    _close(_levels(test_images), [value for _, _, value in lines["test"]])
    np.testing.assert_array_equal(
        test_labels, [label for _, label, _ in lines["test"]]
    )
    val_images, _ = _batches(data.validation)
    _close(_levels(val_images), [value for _, _, value in lines["val"]])


def test_training_epochs_visit_each_image_once_in_new_seeded_orders(
    imagenet_lt,
):
    root, lines = imagenet_lt
    data = kmix.data.load(
        root, profile="none", batch_size=4, image_size=SIZE, seed=3, verbose=0
    )
    assert data.train.cardinality() == 3
    epochs = [_levels(_batches(data.train)[0]) for _ in range(3)]
    expected = sorted(value for _, _, value in lines["train"])
    for levels in epochs:  # crops and flips of solid images keep their level
        _close(sorted(levels), expected)
    assert not np.array_equal(epochs[0], epochs[1])
    assert not np.array_equal(epochs[1], epochs[2])
    again = kmix.data.load(
        root, profile="none", batch_size=4, image_size=SIZE, seed=3, verbose=0
    )
    np.testing.assert_array_equal(_levels(_batches(again.train)[0]), epochs[0])
    batch, labels = next(iter(data.train))
    assert batch.dtype == tf.float32 and labels.dtype == tf.int32
    assert (
        float(tf.reduce_min(batch)) >= 0.0
        and float(tf.reduce_max(batch)) <= 1.0
    )


def test_profile_selects_by_index_and_validation_holds_out_of_the_list(
    imagenet_lt,
):
    root, lines = imagenet_lt
    data = kmix.data.load(
        root,
        profile="exp",
        imbalance_ratio=4,
        validation=1,
        image_size=SIZE,
        batch_size=8,
        verbose=0,
    )
    labels = np.asarray([label for _, label, _ in lines["train"]])
    # exp at ratio 4 over (6, 4, 2): 6, 3, 1, capped by what the held-out image leaves.
    assert data.class_counts == [5, 3, 1]
    assert data.validation_counts == [1, 1, 1]
    assert not set(data.train_indices) & set(data.validation_indices)
    np.testing.assert_array_equal(
        labels[data.train_indices], np.repeat([0, 1, 2], [5, 3, 1])
    )
    values = np.asarray([value for _, _, value in lines["train"]])
    _close(
        _levels(_batches(data.validation)[0]), values[data.validation_indices]
    )


def test_random_resized_crops_and_flips_vary_and_evaluation_crops_are_central(
    tmp_path,
):
    # A horizontal ramp: a crop's mean tells where it is, its slope whether it is flipped.
    ramp = np.tile(
        np.linspace(0, 255, 96, dtype=np.float32)[None, :, None], (64, 1, 3)
    )
    path = str(tmp_path / "ramp.png")  # PNG: exact pixels
    tf.io.write_file(path, tf.io.encode_png(ramp.round().astype(np.uint8)))
    files = kmix.data.ImageFileList([path] * 32, [0] * 32, "ramp")
    images, _ = _batches(
        streaming_pipeline.training_dataset(files, 32, seed=0, image_size=SIZE)
    )
    assert images.shape == (32, SIZE, SIZE, 3)
    means = images.mean(axis=(1, 2, 3))
    slopes = images[:, :, -1].mean(axis=(1, 2)) - images[:, :, 0].mean(
        axis=(1, 2)
    )
    assert means.std() > 0.05  # crops of different places and sizes
    assert 5 <= (slopes < 0).sum() <= 27  # about half are mirrored
    center, _ = _batches(
        streaming_pipeline.evaluation_dataset(files.take([0]), 1, SIZE)
    )
    assert (
        abs(center.mean() - 0.5) < 0.01
        and center[0, :, -1].mean() > center[0, :, 0].mean()
    )
    # Center crop of 87.5 % of the shorter side: the 56 columns 20..75, resized to 16
    # (bilinear: output column j samples input column 20 + 3.5 j + 1.25).
    np.testing.assert_allclose(
        center[0, 0, [0, -1], 0] * 255,
        np.array([21.25, 73.75]) * 255 / 95,
        atol=2,
    )


def test_streamed_batches_distribute_over_two_replicas(
    imagenet_lt, two_cpu_strategy
):
    root, _ = imagenet_lt
    data = kmix.data.load(
        root, profile="none", batch_size=4, image_size=SIZE, verbose=0
    )
    batches = list(two_cpu_strategy.experimental_distribute_dataset(data.train))
    assert len(batches) == 3
    images, labels = batches[0]
    assert [
        tuple(x.shape)
        for x in two_cpu_strategy.experimental_local_results(images)
    ] == [(2, SIZE, SIZE, 3)] * 2


def test_named_dataset_reads_data_dir_and_explicit_lists(imagenet_lt, tmp_path):
    root, _ = imagenet_lt
    named = kmix.data.load(
        "imagenet_lt", data_dir=root, profile="none", image_size=SIZE, verbose=0
    )
    assert named.class_counts == [6, 4, 2] and named.origin.startswith(
        "list files"
    )
    explicit = kmix.data.load(
        None,
        profile="none",
        image_size=SIZE,
        verbose=0,
        lists={
            "train": os.path.join(root, "ImageNet_LT_train.txt"),
            "test": os.path.join(root, "ImageNet_LT_test.txt"),
        },
    )
    assert explicit.test_counts == [2, 2, 2] and explicit.validation is None
    with pytest.raises(ValueError, match="pass `data_dir`"):
        kmix.data.load("imagenet_lt", verbose=0)


def test_read_list_file_paths_labels_and_lines(tmp_path):
    path = tmp_path / "Places_LT_train.txt"
    path.write_text("# a comment\n/a/airfield/1.jpg 0\n\nb/my file.jpg 3\n")
    files = kmix.data.read_list_file(path, image_root="/data")
    assert files.paths.tolist() == [
        "/data/a/airfield/1.jpg",
        "/data/b/my file.jpg",
    ]
    assert files.labels.tolist() == [0, 3] and files.lines.tolist() == [2, 4]


# ------------------------------------------------------- image folders


def test_folder_selection_matches_the_in_memory_path(tmp_path):
    root = image_folder(str(tmp_path / "folder"))
    kwargs = dict(
        profile="exp",
        imbalance_ratio=4,
        validation=1,
        seed=1,
        batch_size=4,
        verbose=0,
    )
    in_memory = kmix.data.load(root, streaming="never", **kwargs)
    streamed = kmix.data.load(
        root, streaming="always", image_size=SIZE, **kwargs
    )
    assert type(in_memory) is kmix.data.ImbalancedDataset
    assert isinstance(streamed, kmix.data.StreamingDataset)
    np.testing.assert_array_equal(
        streamed.train_indices, in_memory.train_indices
    )
    np.testing.assert_array_equal(
        streamed.validation_indices, in_memory.validation_indices
    )
    assert streamed.class_counts == in_memory.class_counts == [4, 2, 1]
    assert (
        streamed.class_names
        == in_memory.class_names
        == ["class_0", "class_1", "class_2"]
    )
    _close(
        _levels(_batches(streamed.train_clean)[0]),
        _levels(_batches(in_memory.train_clean)[0]),
    )


def test_png_and_grayscale_files_stream_as_rgb(tmp_path):
    root = tmp_path / "mixed"
    write_jpeg(str(root / "train/a/gray.jpg"), 100, channels=1)
    os.makedirs(root / "train/b")
    tf.io.write_file(
        str(root / "train/b/color.png"),
        tf.io.encode_png(np.full((30, 20, 3), 200, np.uint8)),
    )
    write_jpeg(str(root / "test/a/0.jpg"), 50)
    data = kmix.data.load(
        str(root),
        streaming="always",
        profile="none",
        image_size=SIZE,
        batch_size=2,
        verbose=0,
    )
    images, labels = _batches(data.train_clean)
    assert images.shape == (2, SIZE, SIZE, 3)
    _close(_levels(images), [100, 200])
    assert (_levels(_batches(data.train)[0]) >= 99).all()


def test_auto_streams_by_memory_budget_sizes_and_format(imagenet_lt, tmp_path):
    root = image_folder(str(tmp_path / "folder"))
    assert (
        type(kmix.data.load(root, profile="none", verbose=0))
        is kmix.data.ImbalancedDataset
    )
    small_budget = kmix.data.load(
        root, profile="none", memory_budget_mb=0.01, image_size=None, verbose=0
    )
    assert isinstance(small_budget, kmix.data.StreamingDataset)
    assert small_budget.image_size == 224  # the default size
    assert small_budget.decoded_bytes == 40 * 48 * 3 * 13
    varied = str(tmp_path / "varied")
    write_jpeg(os.path.join(varied, "train/a/0.jpg"), 10, (30, 30))
    write_jpeg(os.path.join(varied, "train/a/1.jpg"), 10, (50, 40))
    write_jpeg(os.path.join(varied, "test/a/0.jpg"), 10, (20, 20))
    assert isinstance(
        kmix.data.load(varied, profile="none", verbose=0),
        kmix.data.StreamingDataset,
    )
    list_root, _ = imagenet_lt
    assert streaming.wants_streaming(list_root)
    with pytest.raises(ValueError, match="only the streaming path reads"):
        kmix.data.load(list_root, streaming="never", verbose=0)
    arrays = {
        "train": (np.zeros((4, 8, 8), np.uint8), [0, 1, 0, 1]),
        "test": (np.zeros((2, 8, 8), np.uint8), [0, 1]),
    }
    with pytest.raises(ValueError, match="image_size"):
        kmix.data.load(arrays, image_size=32, verbose=0)
    with pytest.raises(TypeError, match="unexpected arguments"):
        kmix.data.load(root, shuffle_buffer=10, verbose=0)


def test_streaming_choices_of_config_and_loader_agree():
    fields = {
        f.name: f
        for f in config_module.dataclasses.fields(
            config_module.ExperimentConfig
        )
    }
    assert tuple(fields["streaming"].metadata["choices"]) == streaming.STREAMING
    assert "resnet50" in config_module.MODELS


# ---------------------------------------------------------- iNaturalist


def test_inaturalist_json_labels_are_sorted_category_ids(tmp_path):
    root = inaturalist_dir(str(tmp_path / "inat"))
    data = kmix.data.load(
        "i_naturalist2018",
        data_dir=root,
        profile="none",
        image_size=SIZE,
        batch_size=4,
        verbose=0,
    )
    assert data.class_names == ["species 2", "species 5", "species 9"]
    assert data.class_counts == [2, 3, 1] and data.test_counts == [1, 1, 1]
    images, labels = _batches(data.test)
    _close(_levels(images), [50, 20, 90])
    np.testing.assert_array_equal(labels, [1, 0, 2])
    assert kmix.data.load(
        root, profile="none", image_size=SIZE, verbose=0
    ).class_counts == [2, 3, 1]


def test_inaturalist_bad_annotations_name_the_entries(tmp_path):
    root = inaturalist_dir(str(tmp_path / "inat"))
    path = os.path.join(root, "val2018.json")
    content = json.load(open(path))
    content["annotations"][0]["category_id"] = 77
    json.dump(content, open(path, "w"))
    with pytest.raises(
        ValueError,
        match=r"val2018.json has 1 annotations of categories outside"
        r".*category_id 77",
    ):
        kmix.data.load(root, profile="none", verbose=0)
    del content["annotations"][0]
    json.dump(content, open(path, "w"))
    with pytest.raises(
        ValueError, match=r"1 images without an annotation.*val2018_0.jpg"
    ):
        kmix.data.load(root, profile="none", verbose=0)


# ------------------------------------------------------------ bad input


def _list_dir(tmp_path, train_lines, test_lines=("val/n00/t.JPEG 0",)):
    root = tmp_path / "lt"
    for line in list(train_lines) + list(test_lines):
        write_jpeg(str(root / line.rsplit(None, 1)[0]), 100)
    (root / "ImageNet_LT_train.txt").write_text("\n".join(train_lines) + "\n")
    (root / "ImageNet_LT_test.txt").write_text("\n".join(test_lines) + "\n")
    return root


def test_missing_and_empty_files_are_named_before_training(tmp_path):
    root = _list_dir(tmp_path, ["train/n00/a.JPEG 0", "train/n01/b.JPEG 1"])
    with open(root / "ImageNet_LT_train.txt", "a") as f:
        f.write("train/n01/gone.JPEG 1\n")
    with pytest.raises(
        FileNotFoundError,
        match=r"1 files of the train split .* are missing: .*ImageNet_LT_train"
        r".txt line 3: '.*train/n01/gone.JPEG'",
    ):
        kmix.data.load(str(root), profile="none", verbose=0)
    (root / "train/n01/gone.JPEG").write_bytes(b"")
    with pytest.raises(
        FileNotFoundError, match=r"are empty \(zero bytes\).*line 3"
    ):
        kmix.data.load(str(root), profile="none", verbose=0)


@pytest.mark.parametrize(
    "train, test, message",
    [
        (
            ["train/n00/a.JPEG 0", "train/n01/b.JPEG 1"],
            ["val/n00/t.JPEG 2"],
            r"ImageNet_LT_test.txt have labels outside the class range \[0, 2\).*line 1",
        ),
        (
            ["train/n00/a.JPEG zero"],
            ["val/n00/t.JPEG 0"],
            r"ImageNet_LT_train.txt line 1: the label must be an integer",
        ),
        (
            ["train/n00/a.JPEG -1"],
            ["val/n00/t.JPEG 0"],
            r"line 1: labels must be >= 0",
        ),
        (
            ["train/n00/a.JPEG"],
            ["val/n00/t.JPEG 0"],
            r"line 1: expected `relative/path.jpg label`",
        ),
        (
            ["train/n00/a.JPEG 0", "train/n02/b.JPEG 2"],
            ["val/n00/t.JPEG 0"],
            r"no images of classes 1 \('1'\) out of 3",
        ),
    ],
)
def test_bad_list_entries_name_the_file_and_line(
    tmp_path, train, test, message
):
    root = _list_dir(tmp_path, train, test)
    with pytest.raises(ValueError, match=message):
        kmix.data.load(str(root), profile="none", verbose=0)


def test_empty_class_folder_is_an_error(tmp_path):
    root = image_folder(str(tmp_path / "folder"), counts=(2, 1))
    os.makedirs(os.path.join(root, "train", "class_9_empty"))
    with pytest.raises(
        ValueError, match=r"no images of classes 2 \('class_9_empty'\)"
    ):
        kmix.data.load(root, streaming="always", profile="none", verbose=0)


def _corrupt(root):
    """Truncates one training JPEG and replaces another with text; returns their paths."""
    truncated = str(root / "train/n00/a.JPEG")
    garbage = str(root / "train/n01/b.JPEG")
    image = (
        np.random.RandomState(0).randint(0, 256, (64, 64, 3)).astype(np.uint8)
    )
    content = tf.io.encode_jpeg(image).numpy()
    with open(truncated, "wb") as f:
        f.write(content[: len(content) // 2])
    with open(garbage, "wb") as f:
        f.write(b"<html>not found</html>")
    return truncated, garbage


@pytest.mark.parametrize("kind", ["truncated", "unreadable"])
def test_truncated_and_unreadable_jpegs_raise_naming_the_file(tmp_path, kind):
    root = _list_dir(tmp_path, ["train/n00/a.JPEG 0", "train/n01/b.JPEG 1"])
    truncated, garbage = _corrupt(root)
    bad, good = (
        (truncated, garbage) if kind == "truncated" else (garbage, truncated)
    )
    write_jpeg(good, 100)
    data = kmix.data.load(str(root), profile="none", image_size=SIZE, verbose=0)
    for dataset in (data.train, data.train_clean):
        with pytest.raises(
            tf.errors.InvalidArgumentError,
            match=rf"kmix: {kind} image file.*{bad}",
        ):
            _batches(dataset)


def test_verify_and_skip_find_undecodable_files_up_front(tmp_path):
    root = _list_dir(
        tmp_path,
        [
            "train/n00/a.JPEG 0",
            "train/n00/c.JPEG 0",
            "train/n01/b.JPEG 1",
            "train/n01/d.JPEG 1",
            "train/n01/e.JPEG 1",
        ],
    )
    truncated, garbage = _corrupt(root)
    assert kmix.data.verify_images(
        [truncated, garbage, str(root / "train/n00/c.JPEG")]
    ) == [truncated, garbage]
    with pytest.raises(
        ValueError, match=r"2 files of the train split .* cannot be decoded"
    ):
        kmix.data.load(
            str(root), profile="none", bad_images="verify", verbose=0
        )
    with open(root / "ImageNet_LT_train.txt", "a") as f:
        f.write("train/n01/gone.JPEG 1\n")
    data = kmix.data.load(
        str(root), profile="none", bad_images="skip", image_size=SIZE, verbose=0
    )
    assert data.skipped_files == {
        "missing": [str(root / "train/n01/gone.JPEG")],
        "undecodable": [truncated, garbage],
    }
    assert data.num_skipped == 3
    assert data.class_counts == [1, 2]
    assert len(_batches(data.train)[1]) == 3  # no error: the bad files are gone
