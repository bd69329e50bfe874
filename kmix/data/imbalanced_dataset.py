"""The result of `kmix.data.load`: datasets, class counts and a summary."""

import dataclasses

import numpy as np
import tensorflow as tf


@dataclasses.dataclass(repr=False)
class ImbalancedDataset:
    """Imbalanced training data and balanced test data as tf.data pipelines.

    Every dataset yields `(images, labels)` batches: float32 images in
    [0, 1] of shape `(batch,) + input_shape` and int32 labels of shape
    `(batch,)`. Only `train` is shuffled and augmented.

    Attributes:
        name: the dataset's name.
        origin: where the images were read from.
        train: the imbalanced training `tf.data.Dataset`.
        train_clean: the same training images, in `train_indices` order,
            neither shuffled nor augmented: for measuring accuracy on the
            training set (e.g. `kmix.callbacks.ClassProgress(clean_data=...)`).
        test: the full test split, never subsampled.
        validation: images held out of the training split, or `None`.
        class_counts: training images per class, a list of ints in label
            order (what `kmix.MixModel(class_counts=...)` takes).
        validation_counts: held-out images per class, or `None`.
        test_counts: test images per class.
        class_names: a list of strings in label order.
        input_shape: `(height, width, channels)` of one image.
        profile, imbalance_ratio, seed, batch_size: as passed to `load`.
        augment: the augmentation applied to `train` (`"auto"` resolved).
        train_indices: positions in the source's training split of the
            training images, in the order `subsample_indices` returns them.
        validation_indices: the same for the held-out images, or `None`.

    Example:

    >>> data = kmix.data.load(
    ...     {"train": (x_train, y_train), "test": (x_test, y_test)},
    ...     profile="none",
    ...     batch_size=16,
    ... )
    >>> data.class_counts, data.num_classes, data.input_shape
    ([10, 10, 10, 10, 10, 2, 2, 2, 2, 2], 10, (28, 28, 1))
    >>> print(data)  # the per-class table
    arrays (numpy arrays)
    profile='none', imbalance_ratio=100, seed=0, batch_size=16,
    augment='crop', input_shape=(28, 28, 1)
    label  name  train  test
    0      0        10     2
    1      1        10     2
    2      2        10     2
    3      3        10     2
    4      4        10     2
    5      5         2     2
    6      6         2     2
    7      7         2     2
    8      8         2     2
    9      9         2     2
           total     60    20
    imbalance ratio achieved (largest / smallest training class): 5
    """

    name: str
    origin: str
    train: tf.data.Dataset
    train_clean: tf.data.Dataset
    test: tf.data.Dataset
    validation: tf.data.Dataset
    class_counts: list
    validation_counts: list
    test_counts: list
    class_names: list
    input_shape: tuple
    profile: object
    imbalance_ratio: float
    seed: int
    batch_size: int
    augment: str
    train_indices: np.ndarray
    validation_indices: np.ndarray

    @property
    def num_classes(self):
        """The number of classes."""
        return len(self.class_names)

    @property
    def achieved_imbalance_ratio(self):
        """Largest over smallest training class count."""
        return max(self.class_counts) / min(self.class_counts)

    def describe(self, print_fn=None):
        """Prints the per-class counts and the imbalance ratio achieved.

        Args:
            print_fn: callable taking one string; defaults to `print`.
        """
        (print_fn or print)(self._table())

    def __str__(self):
        return self._table()

    def __repr__(self):
        return (
            f"<ImbalancedDataset {self.name}: {sum(self.class_counts)} "
            f"training images in {self.num_classes} classes, imbalance ratio "
            f"{self.achieved_imbalance_ratio:g}>"
        )

    def _table(self):
        columns = [("train", self.class_counts)]
        if self.validation_counts is not None:
            columns.append(("validation", self.validation_counts))
        columns.append(("test", self.test_counts))
        name_width = max(len("name"), *(len(name) for name in self.class_names))
        label_width = max(len("label"), len(str(self.num_classes - 1)))
        count_widths = [
            max(len(title), len(str(sum(counts)))) for title, counts in columns
        ]

        def row(label, name, values):
            cells = [f"{label:<{label_width}}", f"{name:<{name_width}}"]
            cells += [
                f"{value:>{width}}"
                for value, width in zip(values, count_widths)
            ]
            return "  ".join(cells).rstrip()

        lines = [
            f"{self.name} ({self.origin})",
            f"profile={self.profile!r}, imbalance_ratio={self.imbalance_ratio:g}, "
            f"seed={self.seed}, batch_size={self.batch_size}, "
            f"augment={self.augment!r}, input_shape={self.input_shape}",
            row("label", "name", [title for title, _ in columns]),
        ]
        for label, name in enumerate(self.class_names):
            lines.append(
                row(label, name, [counts[label] for _, counts in columns])
            )
        lines.append(row("", "total", [sum(counts) for _, counts in columns]))
        lines.append(
            f"imbalance ratio achieved (largest / smallest training class): "
            f"{self.achieved_imbalance_ratio:g}"
        )
        return "\n".join(lines)


def describe(data, print_fn=None):
    """Prints the per-class table of a `kmix.data.load` result.

    Example:

    >>> kmix.data.describe(
    ...     kmix.data.load(
    ...         "fashion_mnist", profile="step", imbalance_ratio=100, verbose=0
    ...     )
    ... )
    fashion_mnist (...)
    profile='step', imbalance_ratio=100, seed=0, batch_size=128,
    augment='crop', input_shape=(28, 28, 1)
    label  name         train   test
    0      T-shirt/top   6000   1000
    1      Trouser       6000   1000
    2      Pullover      6000   1000
    3      Dress         6000   1000
    4      Coat          6000   1000
    5      Sandal          60   1000
    6      Shirt           60   1000
    7      Sneaker         60   1000
    8      Bag             60   1000
    9      Ankle boot      60   1000
           total        30300  10000
    imbalance ratio achieved (largest / smallest training class): 100
    """
    if not isinstance(data, ImbalancedDataset):
        raise TypeError(
            f"Argument `data` must be the result of kmix.data.load. "
            f"Received: data of type {type(data).__name__}."
        )
    data.describe(print_fn)
