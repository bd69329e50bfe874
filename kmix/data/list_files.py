"""The list files ImageNet-LT and Places-LT ship: one `relative/path.jpg label` per line."""

import glob
import os

from kmix.data.image_file_list import ImageFileList

# File-name suffixes of the splits of ImageNet-LT (`ImageNet_LT_train.txt`,
# `ImageNet_LT_val.txt`, `ImageNet_LT_test.txt`), Places-LT and the
# decoupling repository's iNaturalist lists (`iNaturalist18_train.txt`).
LIST_SPLITS = {"train": "train", "validation": "val", "test": "test"}


def read_list_file(path, image_root=None):
    """Reads a list file of `relative/path.jpg label` lines into an `ImageFileList`.

    The format of ImageNet-LT (`ImageNet_LT_train.txt`: lines such as
    `train/n01440764/n01440764_10026.JPEG 0`) and Places-LT. The label is
    the last whitespace-separated field (paths may contain spaces); blank
    lines and lines starting with `#` are skipped. Paths are relative to
    `image_root` (a leading `/` is dropped, so Places-LT's `/a/airfield/...`
    lines work too).

    Args:
        path: the list file.
        image_root: the directory the paths are relative to; defaults to the
            directory of the list file.

    Returns:
        An `ImageFileList` whose `lines` are the 1-based line numbers.

    Raises:
        FileNotFoundError: the list file does not exist.
        ValueError: a line has no label, a label that is not an integer or
            a negative label (naming the file and the line), or the file
            lists no images.

    Example:

    >>> with open("train.txt", "w") as f:
    ...     _ = f.write("train/n01/a.JPEG 0\\ntrain/n02/b.JPEG 1\\n")
    >>> files = kmix.data.read_list_file(
    ...     "train.txt", image_root="/data/ImageNet"
    ... )
    >>> files.paths.tolist(), files.labels.tolist()
    (['/data/ImageNet/train/n01/a.JPEG', '/data/ImageNet/train/n02/b.JPEG'], [0, 1])
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"The list file {path!r} does not exist.")
    root = (
        os.path.dirname(os.path.abspath(path))
        if image_root is None
        else os.fspath(image_root)
    )
    paths, labels, lines = [], [], []
    with open(path, encoding="utf-8") as stream:
        for number, line in enumerate(stream, start=1):
            text = line.strip()
            if not text or text.startswith("#"):
                continue
            fields = text.rsplit(None, 1)
            if len(fields) != 2:
                raise ValueError(
                    f"{path} line {number}: expected `relative/path.jpg label`, "
                    f"received {text!r}."
                )
            relative, label = fields
            try:
                label = int(label)
            except ValueError:
                raise ValueError(
                    f"{path} line {number}: the label must be an integer, "
                    f"received {label!r} in {text!r}."
                ) from None
            if label < 0:
                raise ValueError(
                    f"{path} line {number}: labels must be >= 0, received "
                    f"{label} for {relative!r}."
                )
            paths.append(os.path.join(root, relative.lstrip("/")))
            labels.append(label)
            lines.append(number)
    if not paths:
        raise ValueError(f"The list file {path!r} lists no images.")
    return ImageFileList(paths, labels, path, lines)


def find_list_files(directory, prefix=None):
    """The list files of `directory` by split: `{"train": path, "test": path, ...}`.

    A split's file is `<prefix>_<split>.txt` or `<split>.txt` with split
    `train`, `val` (returned as `"validation"`) or `test`. Without `prefix`,
    any one prefix is accepted; several candidates for one split raise an
    error asking for the prefix. Returns `{}` when there is no training list.
    """
    found = {}
    for key, suffix in LIST_SPLITS.items():
        if prefix is None:
            pattern = [f"*_{suffix}.txt", f"{suffix}.txt"]
        else:
            pattern = [f"{prefix}_{suffix}.txt"]
        candidates = sorted(
            {
                file
                for p in pattern
                for file in glob.glob(os.path.join(glob.escape(directory), p))
            }
        )
        if len(candidates) > 1:
            raise ValueError(
                f"The directory {directory!r} holds several {suffix} list files "
                f"{[os.path.basename(c) for c in candidates]}: pass the one to "
                "use (`lists={'train': ..., 'test': ...}`)."
            )
        if candidates:
            found[key] = candidates[0]
    return found if "train" in found else {}
