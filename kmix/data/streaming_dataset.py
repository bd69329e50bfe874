"""`StreamingDataset`: the result of `kmix.data.load` on the streaming path."""

import dataclasses

import numpy as np

from kmix.data import streaming_pipeline
from kmix.data.image_file_list import ImageFileList
from kmix.data.imbalanced_dataset import ImbalancedDataset


@dataclasses.dataclass(repr=False)
class StreamingDataset(ImbalancedDataset):
    """An `ImbalancedDataset` whose pipelines read image files on the fly.

    Everything an `ImbalancedDataset` has (`train`, `train_clean`, `test`,
    `validation`, `class_counts`, ...), with images of shape
    `(image_size, image_size, 3)`, plus:

    Attributes:
        image_size: the side of the square images.
        train_files: the training images (`kmix.data.ImageFileList`) in
            `train_indices` order.
        test_files, validation_files: the same for the other splits
            (`validation_files` is `None` without a validation split).
        skipped_files: `{reason: [path, ...]}` of the files dropped with
            `bad_images="skip"` (empty otherwise).
        decoded_bytes: the estimated size of the training and test images,
            decoded at their stored size: what the in-memory path would
            hold.
    """

    image_size: int = None
    train_files: ImageFileList = None
    test_files: ImageFileList = None
    validation_files: ImageFileList = None
    skipped_files: dict = dataclasses.field(default_factory=dict)
    decoded_bytes: int = None
    check_files: bool = True

    def clean_subset(self, per_class, seed=0):
        """`train_clean` restricted to at most `per_class` images of each class.

        The images `kmix.callbacks.ClassProgress(clean_per_class=per_class,
        seed=seed)` would keep of `train_clean` (a `RandomState(seed)`
        permutation, the first `per_class` of each class, in `train_clean`
        order), streamed instead of gathered into memory: pass the result as
        `clean_data` with `clean_per_class=None`.

        Example:

        >>> # Not run: it needs ImageNet-LT on disk, which tests lack.
        >>> data = kmix.data.load("/data/ImageNet_LT")  # doctest: +SKIP
        >>> clean = data.clean_subset(100, seed=0)  # doctest: +SKIP
        """
        labels = self.train_files.labels
        order = np.random.RandomState(seed).permutation(len(labels))
        keep = np.concatenate(
            [
                order[labels[order] == label][:per_class]
                for label in range(self.num_classes)
            ]
        )
        keep.sort()
        return streaming_pipeline.evaluation_dataset(
            self.train_files.take(keep),
            self.batch_size,
            self.image_size,
            self.check_files,
        )

    @property
    def num_skipped(self):
        """How many files `bad_images="skip"` dropped."""
        return sum(len(paths) for paths in self.skipped_files.values())

    def __repr__(self):
        skipped = (
            f", {self.num_skipped} files skipped" if self.skipped_files else ""
        )
        return (
            f"<StreamingDataset {self.name}: {sum(self.class_counts)} training images "
            f"in {self.num_classes} classes streamed at {self.image_size}x"
            f"{self.image_size}, imbalance ratio {self.achieved_imbalance_ratio:g}{skipped}>"
        )
