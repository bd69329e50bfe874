"""`FileSource`: a dataset on disk as lists of image files, for the streaming path.

Three layouts are recognized (`open_file_source`):

- an image folder `root/train/<class>/*.jpg` with `root/test/<class>/` and/or
  `root/val/<class>/`;
- list files `<prefix>_train.txt`, `<prefix>_val.txt`, `<prefix>_test.txt`
  (ImageNet-LT, Places-LT) of `relative/path.jpg label` lines;
- iNaturalist JSON annotations `train2018.json` and `val2018.json`.

In every layout the training split is required. The test split is the
`test` one, or the `val` one when there is no `test` split (ImageNet and
iNaturalist evaluate on their validation sets); when both exist, `val` is
the validation split (for choosing) and `test` the test split.
"""

import dataclasses
import glob
import os

import numpy as np

from kmix.data.image_file_list import ImageFileList
from kmix.data.inaturalist import INATURALIST_FILES
from kmix.data.inaturalist import read_inaturalist
from kmix.data.list_files import find_list_files
from kmix.data.list_files import read_list_file
from kmix.data.sources import IMAGE_EXTENSIONS

# Dataset names read from the files a user downloads into `data_dir`:
# name -> (layout, list-file prefix).
FILE_DATASETS = {
    "imagenet_lt": ("lists", "ImageNet_LT"),
    "places_lt": ("lists", "Places_LT"),
    "i_naturalist2018": ("inaturalist", None),
    "inaturalist2018": ("inaturalist", None),
}
_LAYOUT_HELP = (
    "Expected one of: an image folder root/train/<class>/*.jpg (with "
    "root/test/<class>/ or root/val/<class>/), list files <prefix>_train.txt "
    "and <prefix>_test.txt or <prefix>_val.txt (ImageNet-LT, Places-LT: lines "
    "`relative/path.jpg label`), or iNaturalist's train2018.json and "
    "val2018.json. See docs/data.md, 'Large data: the streaming path'."
)


@dataclasses.dataclass
class FileSource:
    """A dataset as lists of image files: name, origin, splits and class names.

    `validation` is the dataset's own validation split (`None` if it has
    none). Every label is in `[0, len(class_names))`.
    """

    name: str
    origin: str
    train: ImageFileList
    test: ImageFileList
    validation: ImageFileList
    class_names: list

    @property
    def num_classes(self):
        return len(self.class_names)


def is_file_dataset(name, data_dir=None, lists=None):
    """Whether `name` (with `data_dir` / `lists`) is data only the streaming path reads:
    list files, iNaturalist JSON, or a `FILE_DATASETS` name (read from `data_dir`)."""
    if lists is not None:
        return True
    if isinstance(name, str) and name in FILE_DATASETS:
        return True
    if not isinstance(name, (str, os.PathLike)):
        return False
    path = os.path.expanduser(os.fspath(name))
    if not os.path.isdir(path):
        return False
    return bool(find_list_files(path)) or _find_inaturalist(path) is not None


def open_file_source(
    name, data_dir=None, lists=None, image_root=None, class_names=None
):
    """The `FileSource` of a directory, a `FILE_DATASETS` name, or explicit lists.

    Args:
        name: a directory (an image folder, or one holding list files or
            iNaturalist JSON files), or a name of `FILE_DATASETS`
            (`"imagenet_lt"`, `"places_lt"`, `"i_naturalist2018"`) whose
            files are in `data_dir`.
        data_dir: the directory of a `FILE_DATASETS` name.
        lists: optional dict `{"train": file, "test": file, "validation":
            file}` of list files (`.txt`) or iNaturalist files (`.json`),
            instead of finding them in the directory.
        image_root: the directory image paths are relative to (default: the
            directory of each list or JSON file; the root for folders).
        class_names: optional names of the classes, in label order.
    """
    directory, prefix, layout = _resolve(name, data_dir, lists)
    if lists is not None:
        found = _check_lists(lists)
        layout = "inaturalist" if found["train"].endswith(".json") else "lists"
    elif layout == "lists":
        found = find_list_files(directory, prefix)
    elif layout == "inaturalist":
        found = _find_inaturalist(directory)
    else:
        found = None
    if layout is None:
        if find_list_files(directory):
            layout, found = "lists", find_list_files(directory)
        elif _find_inaturalist(directory) is not None:
            layout, found = "inaturalist", _find_inaturalist(directory)
        elif os.path.isdir(os.path.join(directory, "train")):
            layout = "folder"
        else:
            raise FileNotFoundError(
                f"The directory {directory!r} holds no dataset kmix can stream "
                f"(it holds {sorted(os.listdir(directory))[:10]}). {_LAYOUT_HELP}"
            )
    if layout != "folder" and not found:
        raise FileNotFoundError(
            f"The directory {directory!r} has no training list"
            + (f" {prefix}_train.txt" if prefix else "")
            + f" (it holds {sorted(os.listdir(directory))[:10]}). {_LAYOUT_HELP}"
        )
    if layout == "folder":
        splits, names, origin = _read_folders(directory)
    elif layout == "lists":
        splits, names, origin = _read_lists(found, image_root)
    else:
        splits, names, origin = _read_inaturalist(found, image_root)
    if class_names is not None:
        if len(class_names) != len(names):
            raise ValueError(
                f"Argument `class_names` must name the {len(names)} classes of "
                f"{origin}. Received {len(class_names)} names."
            )
        names = [str(n) for n in class_names]
    for key in ("test", "validation"):
        if splits.get(key) is not None:
            splits[key].check_labels(
                len(names), what=f"training ({splits['train'].origin})"
            )
    test, validation = splits.get("test"), splits.get("validation")
    if test is None:
        if validation is None:
            raise FileNotFoundError(
                f"{origin} has a training split but neither a test nor a val "
                f"split. {_LAYOUT_HELP}"
            )
        test, validation = validation, None
    if directory is None:  # explicit lists
        directory = os.path.dirname(os.path.abspath(found["train"]))
    dataset_name = (
        name
        if isinstance(name, str) and name in FILE_DATASETS
        else (
            prefix
            or _prefix(found)
            or os.path.basename(os.path.normpath(directory))
        ).lower()
    )
    return FileSource(
        dataset_name, origin, splits["train"], test, validation, names
    )


def _resolve(name, data_dir, lists):
    """(directory, list prefix, layout) of the arguments."""
    if isinstance(name, str) and name in FILE_DATASETS:
        layout, prefix = FILE_DATASETS[name]
        if data_dir is None and lists is None:
            raise ValueError(
                f"The dataset {name!r} is read from the files you download: pass "
                f"`data_dir` (--data_dir), the directory that holds them (kmix does "
                f"not stream a tensorflow-datasets copy of it). {_LAYOUT_HELP}"
            )
        directory = (
            os.path.expanduser(os.fspath(data_dir))
            if data_dir is not None
            else None
        )
        if directory is not None and not os.path.isdir(directory):
            raise FileNotFoundError(
                f"Argument `data_dir` of {name!r} must be a directory. Received: "
                f"data_dir={data_dir!r}, which does not exist."
            )
        return directory, prefix, layout
    if lists is not None and name is None:
        return None, None, None
    if not isinstance(name, (str, os.PathLike)):
        raise TypeError(
            "The streaming path reads a directory or a dataset name of "
            f"{sorted(FILE_DATASETS)}. Received: name={name!r}."
        )
    directory = os.path.expanduser(os.fspath(name))
    if not os.path.isdir(directory):
        raise FileNotFoundError(
            f"Argument `name` must be a directory to stream from. Received: "
            f"name={name!r}, which is not one. {_LAYOUT_HELP}"
        )
    return directory, None, None


def _check_lists(lists):
    if not isinstance(lists, dict) or "train" not in lists:
        raise ValueError(
            "Argument `lists` must be a dict with a 'train' file and a 'test' "
            "and/or 'validation' file. Received: lists={lists!r}."
        )
    unknown = sorted(set(lists) - {"train", "test", "validation"})
    if unknown:
        raise ValueError(
            f"Argument `lists` has unknown splits {unknown}: use 'train', 'test' "
            f"and 'validation'. Received: lists={lists!r}."
        )
    found = {
        key: os.fspath(path) for key, path in lists.items() if path is not None
    }
    kinds = {
        os.path.splitext(path)[1].lower() == ".json" for path in found.values()
    }
    if len(kinds) > 1:
        raise ValueError(
            "Argument `lists` mixes list files and JSON files: use one format. "
            f"Received: lists={lists!r}."
        )
    return found


def _find_inaturalist(directory):
    if directory is None:
        return None
    found = {}
    for key, file in INATURALIST_FILES.items():
        if os.path.isfile(os.path.join(directory, file)):
            found[key] = os.path.join(directory, file)
    return found if "train" in found else None


def _prefix(found):
    if not found:
        return None
    base = os.path.basename(found["train"])
    for suffix in ("_train.txt", ".json"):
        if base.endswith(suffix) and base != suffix.lstrip("_"):
            return base[: -len(suffix)]
    return None


def _read_lists(found, image_root):
    splits = {
        key: read_list_file(path, image_root) for key, path in found.items()
    }
    num_classes = int(splits["train"].labels.max()) + 1
    names = _names_from_folders(splits["train"], num_classes)
    origin = "list files " + ", ".join(
        os.path.basename(p) for p in found.values()
    )
    origin += f" in {os.path.dirname(os.path.abspath(found['train']))}"
    return splits, names, origin


def _names_from_folders(files, num_classes):
    """Class names from the images' parent folders (ImageNet's `n01440764`),
    when each class's images share one folder name of their own; else `"0"`, `"1"`, ..."""
    parents = np.asarray(
        [os.path.basename(os.path.dirname(p)) for p in files.paths]
    )
    names = []
    for label in range(num_classes):
        found = np.unique(parents[files.labels == label])
        if len(found) != 1 or not found[0]:
            return [str(label) for label in range(num_classes)]
        names.append(str(found[0]))
    if len(set(names)) != len(names):
        return [str(label) for label in range(num_classes)]
    return names


def _read_inaturalist(found, image_root):
    train, names, category_ids = read_inaturalist(found["train"], image_root)
    splits = {"train": train}
    for key in ("test", "validation"):
        if key in found:
            splits[key] = read_inaturalist(
                found[key], image_root, category_ids
            )[0]
    origin = "iNaturalist annotations " + ", ".join(
        os.path.basename(p) for p in found.values()
    )
    origin += f" in {os.path.dirname(os.path.abspath(found['train']))}"
    return splits, names, origin


def _read_folders(root):
    train_dir = os.path.join(root, "train")
    classes = sorted(
        entry
        for entry in os.listdir(train_dir)
        if os.path.isdir(os.path.join(train_dir, entry))
    )
    if not classes:
        raise FileNotFoundError(
            f"The image folder {train_dir!r} has no class sub-folders: expected "
            "root/train/<class>/*.jpg."
        )
    splits = {}
    for key, folder in (
        ("train", "train"),
        ("test", "test"),
        ("validation", "val"),
    ):
        directory = os.path.join(root, folder)
        if not os.path.isdir(directory):
            continue
        unknown = sorted(
            entry
            for entry in os.listdir(directory)
            if os.path.isdir(os.path.join(directory, entry))
            and entry not in classes
        )
        if unknown:
            raise ValueError(
                f"The image folder {directory!r} has classes {unknown} that are not "
                f"training classes (labels outside the class range of {train_dir!r})."
            )
        paths, labels = [], []
        for label, name in enumerate(classes):
            class_dir = os.path.join(directory, name)
            if not os.path.isdir(class_dir):
                continue
            files = sorted(
                entry.name
                for entry in os.scandir(class_dir)
                if entry.name.lower().endswith(IMAGE_EXTENSIONS)
            )
            paths.extend(os.path.join(class_dir, file) for file in files)
            labels.extend([label] * len(files))
        splits[key] = ImageFileList(paths, labels, directory)
    return splits, classes, f"image folder {root}"


def count_folder_images(root):
    """The number of image files under `root/<split>/<class>/`, all splits, and a few of them."""
    total, some = 0, []
    for split in ("train", "val", "test"):
        for class_dir in sorted(
            glob.glob(os.path.join(glob.escape(root), split, "*"))
        ):
            if not os.path.isdir(class_dir):
                continue
            files = [
                entry.path
                for entry in os.scandir(class_dir)
                if entry.name.lower().endswith(IMAGE_EXTENSIONS)
            ]
            total += len(files)
            some.extend(sorted(files)[:1])
    return total, some
