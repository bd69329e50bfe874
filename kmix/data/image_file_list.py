"""`ImageFileList`: one split of a dataset read from disk, as file paths and labels."""

import dataclasses
import os
import stat

import numpy as np

# How many offending files an error message names before "... and N more".
MAX_NAMED = 5


@dataclasses.dataclass
class ImageFileList:
    """The image files of one split and their integer labels, nothing decoded.

    The streaming path of `kmix.data.load` (`kmix.data.load_streaming`)
    selects training images by index into this list and reads only the
    selected files, on the fly. The readers `kmix.data.read_list_file`
    (ImageNet-LT / Places-LT list files) and `kmix.data.read_inaturalist`
    (iNaturalist JSON annotations) return one; image folders give one per
    split.

    Attributes:
        paths: 1-D numpy object array of file paths (Python `str`s, shared
            by the sub-lists `take` returns: about 140 bytes per path).
        labels: 1-D int64 numpy array of labels, one per path.
        origin: where the list came from (a list file, a JSON file or a
            folder), named in error messages.
        lines: optional 1-D int array, the line (list files) or the position
            (JSON annotations) each entry came from, named in error messages.
        unit: what `lines` count, `"line"` or e.g. `"image entry"`.

    Example:

    >>> files = kmix.data.ImageFileList(
    ...     ["a/0.jpg", "b/1.jpg"], [0, 1], "example"
    ... )
    >>> len(files), files.counts(2)
    (2, [1, 1])
    """

    paths: np.ndarray
    labels: np.ndarray
    origin: str
    lines: np.ndarray = None
    unit: str = "line"
    _tensors: tuple = dataclasses.field(
        default=None, init=False, repr=False, compare=False
    )

    def __post_init__(self):
        paths = np.asarray(self.paths, dtype=object).reshape(-1)
        if paths.size and not all(type(path) is str for path in paths[:1]):
            paths = np.asarray([str(path) for path in paths], dtype=object)
        self.paths = paths
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if len(self.paths) != len(self.labels):
            raise ValueError(
                f"{self.origin}: {len(self.paths)} paths but {len(self.labels)} "
                "labels: they must match."
            )
        if self.lines is not None:
            self.lines = np.asarray(self.lines, dtype=np.int64).reshape(-1)

    def __len__(self):
        return len(self.labels)

    def as_tensors(self):
        """`(paths, labels)` as a tf.string and an int32 tensor, made once per list.

        The training and evaluation pipelines of one list share them, so
        the paths are held once by TensorFlow, not once per pipeline.
        """
        if self._tensors is None:
            import tensorflow as tf  # kmix.data's pipelines; the list itself needs numpy only

            with tf.device("/cpu:0"):
                self._tensors = (
                    tf.constant(self.paths.tolist(), dtype=tf.string),
                    tf.constant(self.labels.astype(np.int32)),
                )
        return self._tensors

    def where(self, position):
        """`"<origin> line <n>"` (or the origin alone) for error messages."""
        if self.lines is None:
            return self.origin
        return f"{self.origin} {self.unit} {int(self.lines[position])}"

    def counts(self, num_classes):
        """Images per class, a list of `num_classes` ints in label order."""
        return [int(c) for c in np.bincount(self.labels, minlength=num_classes)]

    def take(self, indices):
        """The sub-list at `indices` (same origin)."""
        indices = np.asarray(indices, dtype=np.int64)
        return ImageFileList(
            self.paths[indices],
            self.labels[indices],
            self.origin,
            None if self.lines is None else self.lines[indices],
            self.unit,
        )

    def without(self, paths):
        """The list without the entries whose path is in `paths`."""
        paths = set(paths)
        keep = [
            position
            for position, path in enumerate(self.paths)
            if path not in paths
        ]
        return self.take(keep)

    def check_labels(self, num_classes, what="training"):
        """Raises `ValueError` naming the entries whose label is not in `[0, num_classes)`."""
        bad = np.flatnonzero((self.labels < 0) | (self.labels >= num_classes))
        if bad.size:
            named = "; ".join(
                f"{self.where(i)}: {str(self.paths[i])!r} has label {int(self.labels[i])}"
                for i in bad[:MAX_NAMED]
            )
            raise ValueError(
                f"{bad.size} entries of {self.origin} have labels outside the "
                f"class range [0, {num_classes}) of the {what} classes: {named}"
                + (
                    f" ... and {bad.size - MAX_NAMED} more."
                    if bad.size > MAX_NAMED
                    else "."
                )
            )

    def missing_and_empty(self):
        """The paths that do not exist (or are not files), and the empty files.

        One `os.stat` per file: about a second for 100,000 files on a local
        disk.
        """
        missing, empty = [], []
        for path in self.paths:
            try:
                status = os.stat(path)
            except OSError:
                missing.append(str(path))
                continue
            if not stat.S_ISREG(status.st_mode):
                missing.append(str(path))
            elif status.st_size == 0:
                empty.append(str(path))
        return missing, empty


def describe_paths(paths, limit=MAX_NAMED):
    """The first `limit` paths, quoted, and how many more there are."""
    paths = list(paths)
    text = ", ".join(repr(str(path)) for path in paths[:limit])
    if len(paths) > limit:
        text += f" ... and {len(paths) - limit} more"
    return text
