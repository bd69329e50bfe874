"""Readers that turn a dataset name or local files into uint8 numpy splits.

Every source gives a training and a test split of integer labels and uint8
images of shape `(n, height, width, channels)`, plus the class names. Image
folders are read lazily: only the images a profile keeps are decoded.
Nothing here writes to the data directories it reads.
"""

import dataclasses
import difflib
import os
import zipfile
import zlib

import keras
import numpy as np
import tensorflow as tf

from kmix.data.idx_files import read_idx
from kmix.data.profiles import check_labels

DEBIAN_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
EXAMPLE_TFDS_NAMES = (
    "cifar10",
    "cifar100",
    "svhn_cropped",
    "mnist",
    "fashion_mnist",
    "kmnist",
    "emnist",
)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
IDX_FILES = {
    "train_images": ("train-images-idx3-ubyte",),
    "train_labels": ("train-labels-idx1-ubyte",),
    "test_images": ("t10k-images-idx3-ubyte", "test-images-idx3-ubyte"),
    "test_labels": ("t10k-labels-idx1-ubyte", "test-labels-idx1-ubyte"),
}
_LOCAL_DATA_HELP = (
    "For local data pass a dict {'train': (x, y), 'test': (x, y)} of numpy "
    "arrays, the path of a .npz file with x_train, y_train, x_test, y_test, "
    "a directory of IDX files (train-images-idx3-ubyte[.gz], ...), or an "
    "image folder root/<split>/<class>/*.png with splits 'train' and 'test'."
)


@dataclasses.dataclass
class _Split:
    """One split: integer labels, and uint8 images or image file paths."""

    labels: np.ndarray
    images: np.ndarray = None
    paths: np.ndarray = None

    def take(self, indices, verbose=0):
        """The uint8 images at `indices`, of shape `(n, h, w, c)`."""
        if self.images is not None:
            return self.images[indices]
        return _decode_files(self.paths[indices], verbose)


@dataclasses.dataclass
class Source:
    """A dataset: its name, where it was read from, splits and class names."""

    name: str
    origin: str
    train: _Split
    test: _Split
    class_names: list


def open_source(
    name, class_names=None, data_dir=None, download=True, verbose=1
):
    """Reads the dataset `name` refers to (see `kmix.data.load`).

    `"fashion_mnist"` is read from Debian's `dataset-fashion-mnist` files
    when tensorflow-datasets has no local copy (`has_local_tfds_copy`),
    without asking tfds first. With `verbose`, a dataset given by name
    prints one line saying where it was read from.
    """
    if isinstance(name, dict):
        return from_arrays(name, class_names)
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(
            f"Argument `name` must be a tensorflow-datasets name, a path or a "
            f"dict of arrays. Received: name={name!r} (of type "
            f"{type(name).__name__})."
        )
    name = os.fspath(name)
    if _looks_like_path(name):
        return from_path(name, class_names)
    base_name = name.split("/")[0].split(":")[0]
    if (
        base_name == "fashion_mnist"
        and os.path.isdir(DEBIAN_FASHION_MNIST_DIR)
        and not has_local_tfds_copy(name, data_dir)
    ):
        # Straight to Debian's files: tensorflow-datasets would look for its
        # copy on Google Cloud Storage first (and log the failures offline).
        source = from_idx_dir(
            DEBIAN_FASHION_MNIST_DIR, class_names, name=base_name
        )
        reason = "Debian's dataset-fashion-mnist; tensorflow-datasets has no local copy"
    else:
        source = from_tfds(name, class_names, data_dir, download, verbose)
        reason = None
    if verbose:
        print(
            f"Data: {source.name} from {source.origin}"
            + (f" ({reason})." if reason else ".")
        )
    return source


def has_local_tfds_copy(name, data_dir=None):
    """Whether tensorflow-datasets has a prepared copy of `name` on this machine.

    Looks for `<data_dir>/<name>/.../dataset_info.json` in `data_dir` (by
    default `$TFDS_DATA_DIR` or `~/tensorflow_datasets`, as tfds does)
    without importing tfds or touching the network. A `gs://` data
    directory counts as a copy (tfds reads it).
    """
    data_dir = (
        os.fspath(data_dir)
        if data_dir
        else os.environ.get(
            "TFDS_DATA_DIR", os.path.join("~", "tensorflow_datasets")
        )
    )
    if "://" in data_dir:
        return True
    base_name = name.split("/")[0].split(":")[0]
    root = os.path.join(os.path.expanduser(data_dir), base_name)
    if not os.path.isdir(root):
        return False
    return any("dataset_info.json" in files for _, _, files in os.walk(root))


def _looks_like_path(name):
    return (
        os.path.exists(name)
        or name.startswith(("/", "~", "."))
        or name.endswith(".npz")
    )


def from_path(path, class_names=None):
    """Reads a `.npz` file, a directory of IDX files, or an image folder."""
    path = os.path.expanduser(path)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"Argument `name` points to a local path that does not exist. "
            f"Received: name={path!r}. {_LOCAL_DATA_HELP}"
        )
    if os.path.isfile(path):
        if not path.endswith(".npz"):
            raise ValueError(
                f"Argument `name` is a file that is not a .npz archive. "
                f"Received: name={path!r}. {_LOCAL_DATA_HELP}"
            )
        return from_npz(path, class_names)
    if _find_idx_file(path, IDX_FILES["train_images"]):
        return from_idx_dir(path, class_names)
    if os.path.isdir(os.path.join(path, "train")):
        return from_image_folder(path, class_names)
    raise FileNotFoundError(
        f"Argument `name` is a directory with neither IDX files nor a "
        f"'train' sub-folder. Received: name={path!r} (it holds "
        f"{sorted(os.listdir(path))[:10]}). {_LOCAL_DATA_HELP}"
    )


def from_arrays(splits, class_names=None, name="arrays", origin="numpy arrays"):
    """A source from `{"train": (x, y), "test": (x, y)}` numpy arrays."""
    missing = [key for key in ("train", "test") if key not in splits]
    if missing:
        raise ValueError(
            f"Argument `name` as a dict must have the keys 'train' and 'test', "
            f"each an (images, labels) pair. Missing {missing}; received keys "
            f"{sorted(splits)}."
        )
    images, labels = {}, {}
    for key in ("train", "test"):
        pair = splits[key]
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ValueError(
                f"Argument `name['{key}']` must be an (images, labels) pair. "
                f"Received: {type(pair).__name__}."
            )
        images[key] = _check_images(pair[0], f"{key} images")
        labels[key] = np.asarray(pair[1])
        if len(labels[key]) != len(images[key]):
            raise ValueError(
                f"The {key} split has {len(images[key])} images but "
                f"{len(labels[key])} labels: they must match."
            )
    if images["train"].shape[1:] != images["test"].shape[1:]:
        raise ValueError(
            f"Train and test images must have the same shape. Received: "
            f"{images['train'].shape[1:]} and {images['test'].shape[1:]}."
        )
    class_names, train_labels, test_labels = _labels_and_names(
        labels["train"], labels["test"], class_names, origin
    )
    return Source(
        name=name,
        origin=origin,
        train=_Split(train_labels, images=images["train"]),
        test=_Split(test_labels, images=images["test"]),
        class_names=class_names,
    )


def from_npz(path, class_names=None):
    """A source from a `.npz` file with `x_train, y_train, x_test, y_test`
    (and optionally `class_names`)."""
    if not zipfile.is_zipfile(path):
        # np.load would try it as a pickle and suggest allow_pickle=True.
        raise _unreadable_npz(path, ValueError("no zip archive found"))
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except ValueError as error:
        if "pickle" not in str(error):
            raise _unreadable_npz(path, error) from error
        raise ValueError(
            f"The .npz file {path!r} holds Python objects (object arrays), which "
            "kmix does not load: unpickling can run code. Save plain numeric "
            "arrays: np.savez(path, x_train=uint8 images, y_train=int labels, "
            "x_test=..., y_test=..., class_names=np.array([...], dtype=str))."
        ) from error
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise _unreadable_npz(path, error) from error
    keys = set(arrays)
    missing = sorted({"x_train", "y_train", "x_test", "y_test"} - keys)
    if missing:
        raise ValueError(
            f"The .npz file {path!r} lacks the arrays {missing}: it needs "
            f"x_train, y_train, x_test, y_test (and may hold class_names). "
            f"It holds {sorted(keys)}."
        )
    if class_names is None and "class_names" in keys:
        class_names = [str(name) for name in arrays["class_names"]]
    splits = {
        "train": (arrays["x_train"], arrays["y_train"]),
        "test": (arrays["x_test"], arrays["y_test"]),
    }
    name = os.path.splitext(os.path.basename(path))[0]
    return from_arrays(splits, class_names, name=name, origin=path)


def _unreadable_npz(path, error):
    return ValueError(
        f"Cannot read the .npz file {path!r}: it is not a NumPy .npz archive, or it is "
        f"truncated or corrupt ({type(error).__name__}: {error}). Write it again with "
        "np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)."
    )


def from_idx_dir(path, class_names=None, name=None):
    """A source from a directory of IDX files, e.g. Debian's Fashion-MNIST."""
    files = {}
    for key, stems in IDX_FILES.items():
        files[key] = _find_idx_file(path, stems)
    missing = [IDX_FILES[key][0] for key, found in files.items() if not found]
    if missing:
        raise FileNotFoundError(
            f"The IDX directory {path!r} lacks {missing} (.gz or not). It holds "
            f"{sorted(os.listdir(path))[:10]}."
        )
    arrays = {key: read_idx(file) for key, file in files.items()}
    if class_names is None and name == "fashion_mnist":
        class_names = list(FASHION_MNIST_CLASS_NAMES)
    return from_arrays(
        {
            "train": (arrays["train_images"], arrays["train_labels"]),
            "test": (arrays["test_images"], arrays["test_labels"]),
        },
        class_names,
        name=name or os.path.basename(os.path.normpath(path)),
        origin=f"IDX files in {path}",
    )


def _find_idx_file(path, stems):
    for stem in stems:
        for candidate in (stem + ".gz", stem):
            if os.path.isfile(os.path.join(path, candidate)):
                return os.path.join(path, candidate)
    return None


def from_image_folder(root, class_names=None):
    """A source from `root/<split>/<class>/<image>` files (png, jpg, bmp, gif).

    Classes are the sub-folders of `root/train` in sorted order; images are
    listed in sorted order and decoded only when selected.
    """
    folders = sorted(
        entry
        for entry in os.listdir(os.path.join(root, "train"))
        if os.path.isdir(os.path.join(root, "train", entry))
    )
    if not folders:
        raise FileNotFoundError(
            f"The image folder {os.path.join(root, 'train')!r} has no class "
            f"sub-folders: expected root/train/<class>/*.png."
        )
    if not os.path.isdir(os.path.join(root, "test")):
        raise FileNotFoundError(
            f"The image folder {root!r} has no 'test' split: expected "
            f"root/test/<class>/*.png next to root/train."
        )
    unknown = sorted(
        entry
        for entry in os.listdir(os.path.join(root, "test"))
        if os.path.isdir(os.path.join(root, "test", entry))
        and entry not in folders
    )
    if unknown:
        raise ValueError(
            f"The image folder {root!r} has test classes {unknown} that are "
            f"not training classes {folders}."
        )
    splits = {}
    for split in ("train", "test"):
        paths, labels = [], []
        for label, folder in enumerate(folders):
            directory = os.path.join(root, split, folder)
            if not os.path.isdir(directory):
                continue
            files = sorted(
                file
                for file in os.listdir(directory)
                if file.lower().endswith(IMAGE_EXTENSIONS)
            )
            paths.extend(os.path.join(directory, file) for file in files)
            labels.extend([label] * len(files))
        splits[split] = _Split(
            np.asarray(labels, np.int64), paths=np.asarray(paths)
        )
    if class_names is not None and len(class_names) != len(folders):
        raise ValueError(
            f"Argument `class_names` must name the {len(folders)} class "
            f"folders {folders}. Received: class_names={class_names!r}."
        )
    return Source(
        name=os.path.basename(os.path.normpath(root)),
        origin=f"image folder {root}",
        train=splits["train"],
        test=splits["test"],
        class_names=list(class_names or folders),
    )


def _decode_files(paths, verbose):
    paths = [str(path) for path in paths]
    progbar = (
        keras.utils.Progbar(len(paths)) if verbose and len(paths) else None
    )
    images, channels = [], None
    for position, path in enumerate(paths):
        try:
            image = tf.io.decode_image(
                tf.io.read_file(path),
                channels=channels or 0,
                expand_animations=False,
            ).numpy()
        except tf.errors.OpError as error:
            raise ValueError(
                f"Cannot decode the image {path!r}: {error.message}"
            ) from error
        if images and image.shape != images[0].shape:
            raise ValueError(
                f"All images must have the same shape: {path!r} has "
                f"{image.shape}, {paths[0]!r} has {images[0].shape}."
            )
        channels = image.shape[-1]
        images.append(image)
        if progbar is not None:
            progbar.update(position + 1)
    return np.stack(images)


def from_tfds(name, class_names=None, data_dir=None, download=True, verbose=1):
    """A source from a tensorflow-datasets image-classification dataset.

    Fashion-MNIST comes from Debian's `dataset-fashion-mnist` files when
    tfds has no prepared copy (no download is attempted then).
    """
    # Imported here: it takes seconds, and local sources do not need it.
    import tensorflow_datasets as tfds

    base_name = name.split("/")[0].split(":")[0]
    known = tfds.list_builders()
    if base_name not in known:
        close = difflib.get_close_matches(base_name, known, n=3)
        raise ValueError(
            f"Unknown dataset name. Received: name={name!r}. "
            + (f"Did you mean {close}? " if close else "")
            + f"Known names are the tensorflow-datasets builders (see "
            f"tfds.list_builders()), e.g. {list(EXAMPLE_TFDS_NAMES)}. "
            + _LOCAL_DATA_HELP
        )
    builder = tfds.builder(name, data_dir=data_dir)
    if (
        base_name == "fashion_mnist"
        and not builder.is_prepared()
        and os.path.isdir(DEBIAN_FASHION_MNIST_DIR)
    ):
        return from_idx_dir(
            DEBIAN_FASHION_MNIST_DIR, class_names, name=base_name
        )
    if not download and not builder.is_prepared():
        raise FileNotFoundError(
            f"tensorflow-datasets has no prepared copy of {name!r} in "
            f"{builder.data_dir!r} and download=False. Pass download=True, "
            f"the data_dir= that holds it, or local data. {_LOCAL_DATA_HELP}"
        )
    info = builder.info
    if info.supervised_keys is None or len(info.supervised_keys) != 2:
        raise ValueError(
            f"The dataset {name!r} has no (image, label) supervised keys, so it "
            f"is not an image-classification dataset kmix can load."
        )
    image_key, label_key = info.supervised_keys
    image_feature = info.features[image_key]
    label_feature = info.features[label_key]
    fixed_shape = None not in getattr(image_feature, "shape", (None,))
    if not isinstance(image_feature, tfds.features.Image) or not fixed_shape:
        raise ValueError(
            f"The dataset {name!r} must have images of one fixed shape; its "
            f"{image_key!r} feature is {image_feature!r}."
        )
    if not isinstance(label_feature, tfds.features.ClassLabel):
        raise ValueError(
            f"The dataset {name!r} must have class labels; its {label_key!r} "
            f"feature is {label_feature!r}."
        )
    names = list(label_feature.names)
    if class_names is not None and len(class_names) != len(names):
        raise ValueError(
            f"Argument `class_names` must have {len(names)} names for "
            f"{name!r}. Received: class_names={class_names!r}."
        )
    datasets = tfds.load(
        name,
        split=["train", "test"],
        data_dir=data_dir,
        download=download,
        as_supervised=True,
    )
    splits = {
        split: _read_tfds_split(dataset, verbose)
        for split, dataset in zip(("train", "test"), datasets)
    }
    return from_arrays(
        splits,
        class_names or names,
        name=base_name,
        origin=f"tensorflow-datasets {name} in {builder.data_dir}",
    )


def _read_tfds_split(dataset, verbose):
    cardinality = int(dataset.cardinality())
    progbar = None
    if verbose:
        progbar = keras.utils.Progbar(cardinality if cardinality > 0 else None)
    images, labels = [], []
    for batch_images, batch_labels in dataset.batch(4096).as_numpy_iterator():
        images.append(batch_images)
        labels.append(batch_labels)
        if progbar is not None:
            progbar.add(len(batch_labels))
    return np.concatenate(images), np.concatenate(labels)


def _check_images(images, what):
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[..., np.newaxis]
    if images.ndim != 4 or images.shape[0] == 0:
        raise ValueError(
            f"The {what} must form a non-empty array of shape (n, height, "
            f"width) or (n, height, width, channels). Received shape "
            f"{images.shape}."
        )
    if images.dtype == np.uint8:
        return images
    in_range = images.min() >= 0 and images.max() <= 255
    if np.issubdtype(images.dtype, np.integer) and in_range:
        return images.astype(np.uint8)
    raise ValueError(
        f"The {what} must be uint8 (or integers in [0, 255]): the pipeline "
        f"keeps them as uint8 and scales them to [0, 1] after batching. "
        f"Received dtype {images.dtype} with values in "
        f"[{images.min()}, {images.max()}]. Convert float images in [0, 1] "
        f"with (x * 255).round().astype('uint8')."
    )


def _labels_and_names(
    train_labels, test_labels, class_names, origin="the data"
):
    largest = max(
        _largest_label(train_labels, "train"),
        _largest_label(test_labels, "test"),
    )
    if class_names is None:
        class_names = [str(label) for label in range(largest + 1)]
    elif len(class_names) != largest + 1:
        count = len(class_names)
        if count < largest + 1:
            extra = sorted(
                set(np.asarray(train_labels).reshape(-1).tolist())
                | set(np.asarray(test_labels).reshape(-1).tolist())
            )
            extra = [int(label) for label in extra if label >= count][:10]
            found = f"so it allows labels in [0, {count}), but {origin} has labels {extra}"
        else:
            found = f"but {origin} has labels 0 to {largest} only"
        raise ValueError(
            f"Argument `class_names` has {count} names, {found}: it has {largest + 1} "
            "classes. Pass one name per class, in label order (or no class_names). "
            f"Received: class_names={list(class_names)!r}."
        )
    class_names = [str(name) for name in class_names]
    train_labels = check_labels(
        train_labels, len(class_names), name="train labels"
    )
    test_labels = check_labels(
        test_labels, len(class_names), name="test labels"
    )
    return class_names, train_labels, test_labels


def _largest_label(labels, split):
    labels = check_labels(
        labels, np.iinfo(np.int64).max, name=f"{split} labels"
    )
    return int(labels.max()) if labels.size else -1
