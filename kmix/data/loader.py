"""`kmix.data.load`: an imbalanced training set and the balanced test set."""

import numbers

import numpy as np

from kmix.data import pipeline
from kmix.data import profiles
from kmix.data import sources
from kmix.data.imbalanced_dataset import ImbalancedDataset
from kmix.validation import check_choice
from kmix.validation import check_int
from kmix.validation import check_number


def load(
    name,
    profile="exp",
    imbalance_ratio=100.0,
    minor_fraction=0.5,
    class_order="natural",
    seed=0,
    batch_size=128,
    augment="auto",
    crop_padding=4,
    validation=None,
    train_fraction=1.0,
    max_per_class=None,
    class_names=None,
    data_dir=None,
    download=True,
    verbose=1,
    streaming="auto",
    image_size=None,
    memory_budget_mb=None,
    **streaming_options,
):
    """Loads a dataset, makes its training split imbalanced, and batches it.

    The counts come from `kmix.data.imbalance_counts` on the training split
    and the images from `kmix.data.subsample_indices` (one
    `np.random.RandomState(seed)`, each class shuffled in label order, the
    first `n_c` kept: the images the CIFAR-LT literature keeps). The test
    split is never subsampled. Images stay uint8 until after batching, where
    the training batches are augmented and every batch is scaled to float32
    in [0, 1].

    Args:
        name: a tensorflow-datasets name (`"cifar10"`, `"cifar100"`,
            `"svhn_cropped"`, `"mnist"`, `"fashion_mnist"`, ...), or local
            data: a dict `{"train": (x, y), "test": (x, y)}` of numpy arrays,
            the path of a `.npz` file with `x_train, y_train, x_test, y_test`
            (and optionally `class_names`), a directory of IDX files, or an
            image folder `root/{train,test}/<class>/*.png`.
            `"fashion_mnist"` is read from Debian's `dataset-fashion-mnist`
            (`/usr/share/datasets/fashion-mnist`) when tfds has no copy.
        profile: `"exp"` (long-tailed), `"step"`, `"none"`, or explicit
            counts: a list in label order or a dict `{label or name: count}`.
        imbalance_ratio: float >= 1, largest over smallest class count.
        minor_fraction: float in (0, 1), fraction of minor classes (`"step"`).
        class_order: which classes are the head: `"natural"`, `"reversed"`,
            `"random"` (seeded) or a permutation of the labels.
        seed: int in [0, 2**32); seeds the selection, the validation split,
            the shuffle and the augmentations.
        batch_size: int >= 1.
        augment: `"auto"`, `"none"`, `"crop_flip"`, `"crop"` or `"flip"`,
            applied to training batches only. `"auto"`: crop and flip for RGB
            images, crop only for grayscale ones and for SVHN digits.
        crop_padding: int >= 0, the zero padding of the random crop.
        validation: `None`; an int `k`, to hold out `k` images of every class
            (balanced); or a float in (0, 1), to hold out that fraction of
            each class's training count (following the profile). Held-out
            images are drawn (seed + 1) before the training selection and
            never overlap the training images.
        train_fraction: float in (0, 1], keeps this fraction of each class's
            training count (at least one image), preserving the profile's
            shape: a tiny real subset for quick experiments and tests.
        max_per_class: None or an int >= 1, caps the largest class: the
            profile is computed as if every class had at most this many
            training images, so `"step"` at ratio 100 with
            `max_per_class=1000` keeps 1000 images of each major class and
            10 of each minor one. The selection rule is unchanged.
        class_names: names of the classes, for local data without names.
        data_dir: tensorflow-datasets data directory.
        download: whether tensorflow-datasets may download the dataset.
        verbose: 0 or 1, progress bars while reading and decoding.
        streaming: `"auto"` (default), `"always"` (`True`) or `"never"`
            (`False`): read image files from disk on the fly instead of
            decoding them into memory (`kmix.data.load_streaming`, for
            ImageNet-LT, Places-LT, iNaturalist and other large data).
            `"auto"` streams list files, iNaturalist JSON files,
            `"imagenet_lt"` / `"places_lt"` / `"i_naturalist2018"` with
            their `data_dir`, and image folders that would not fit
            `memory_budget_mb` decoded (or whose images differ in size).
        image_size: streaming path only: the side of the square images
            (default 224); giving it on an image folder selects streaming.
        memory_budget_mb: the decoded size above which `"auto"` streams an
            image folder; default a quarter of the machine's memory.
        **streaming_options: `lists`, `image_root`, `bad_images` of
            `kmix.data.load_streaming` (streaming path only).

    Returns:
        An `ImbalancedDataset` with `train`, `test` and `validation`
        (`None` unless asked) datasets, `class_counts`, `num_classes`,
        `class_names` and `input_shape`.

    Example:

    >>> data = kmix.data.load(
    ...     "fashion_mnist", profile="step", imbalance_ratio=100, batch_size=128
    ... )
    Data: fashion_mnist from ...
    >>> data.class_counts
    [6000, 6000, 6000, 6000, 6000, 60, 60, 60, 60, 60]

    Or from numpy arrays (uint8 images), here kept as they are:

    >>> data = kmix.data.load(
    ...     {"train": (x_train, y_train), "test": (x_test, y_test)},
    ...     profile="none",
    ...     batch_size=16,
    ... )
    >>> data.class_counts
    [10, 10, 10, 10, 10, 2, 2, 2, 2, 2]
    """
    # Cheap checks first, so that a bad argument fails before any reading.
    train_fraction, max_per_class = check_selection_arguments(
        imbalance_ratio, minor_fraction, seed, train_fraction, max_per_class
    )
    check_choice("augment", augment, pipeline.AUGMENTATIONS)
    batch_size = check_int("batch_size", batch_size, 1)
    crop_padding = check_int("crop_padding", crop_padding, 0)
    from kmix.data import streaming as streaming_path  # imports this module

    if streaming_path.wants_streaming(
        name,
        streaming,
        data_dir,
        image_size,
        memory_budget_mb,
        streaming_options,
        verbose,
    ):
        return streaming_path.load_streaming(
            name,
            profile=profile,
            imbalance_ratio=imbalance_ratio,
            minor_fraction=minor_fraction,
            class_order=class_order,
            seed=seed,
            batch_size=batch_size,
            augment=augment,
            validation=validation,
            train_fraction=train_fraction,
            max_per_class=max_per_class,
            class_names=class_names,
            data_dir=data_dir,
            image_size=image_size,
            verbose=verbose,
            **streaming_options,
        )
    source = sources.open_source(name, class_names, data_dir, download, verbose)
    num_classes = len(source.class_names)
    available = np.bincount(source.train.labels, minlength=num_classes)
    empty = np.flatnonzero(available == 0).tolist()
    if empty:
        raise ValueError(
            f"The training split of {source.name} has no images of classes "
            f"{empty}: every class needs at least one training image."
        )
    profile, train_indices, validation_indices = select_training_images(
        source.train.labels,
        source.class_names,
        profile,
        imbalance_ratio,
        minor_fraction,
        class_order,
        seed,
        validation,
        train_fraction,
        max_per_class,
    )

    train_images = source.train.take(train_indices, verbose)
    train_labels = source.train.labels[train_indices]
    input_shape = tuple(int(size) for size in train_images.shape[1:])
    augment = pipeline.resolve_augment(augment, input_shape, source.name)
    test_images = source.test.take(np.arange(len(source.test.labels)), verbose)
    if test_images.shape[1:] != input_shape:
        raise ValueError(
            f"Test images have shape {test_images.shape[1:]}, training "
            f"images {input_shape}: they must match."
        )
    validation_dataset = validation_counts = None
    if validation_indices is not None:
        validation_labels = source.train.labels[validation_indices]
        validation_dataset = pipeline.evaluation_dataset(
            source.train.take(validation_indices, verbose),
            validation_labels,
            batch_size,
        )
        validation_counts = _counts(validation_labels, num_classes)
    return ImbalancedDataset(
        name=source.name,
        origin=source.origin,
        train=pipeline.training_dataset(
            train_images, train_labels, batch_size, seed, augment, crop_padding
        ),
        train_clean=pipeline.evaluation_dataset(
            train_images, train_labels, batch_size
        ),
        test=pipeline.evaluation_dataset(
            test_images, source.test.labels, batch_size
        ),
        validation=validation_dataset,
        class_counts=_counts(train_labels, num_classes),
        validation_counts=validation_counts,
        test_counts=_counts(source.test.labels, num_classes),
        class_names=list(source.class_names),
        input_shape=input_shape,
        profile=profile,
        imbalance_ratio=imbalance_ratio,
        seed=seed,
        batch_size=batch_size,
        augment=augment,
        train_indices=train_indices,
        validation_indices=validation_indices,
    )


def check_selection_arguments(
    imbalance_ratio, minor_fraction, seed, train_fraction, max_per_class
):
    """Checks the arguments of `select_training_images` that need no data.

    `kmix.data.load` and `kmix.data.load_streaming` call it before reading
    anything. Returns `(train_fraction, max_per_class)` as float and int.
    """
    check_number("imbalance_ratio", imbalance_ratio, low=1.0)
    check_number(
        "minor_fraction",
        minor_fraction,
        0.0,
        1.0,
        low_open=True,
        high_open=True,
    )
    check_int("seed", seed, 0)
    train_fraction = check_number(
        "train_fraction", train_fraction, 0.0, 1.0, low_open=True
    )
    if max_per_class is not None:
        max_per_class = check_int("max_per_class", max_per_class, 1)
    return train_fraction, max_per_class


def select_training_images(
    labels,
    class_names,
    profile,
    imbalance_ratio,
    minor_fraction,
    class_order,
    seed,
    validation,
    train_fraction,
    max_per_class,
):
    """The training (and held-out) images of an imbalanced dataset, by index.

    The one selection rule of `kmix.data.load` and `kmix.data.load_streaming`
    (their arguments of the same names): the profile's counts on the
    per-class counts of `labels` capped at `max_per_class`, scaled by
    `train_fraction`, then `kmix.data.subsample_indices` after holding out
    `validation`.

    Returns:
        `(profile, train_indices, validation_indices)`: the profile with
        class-name keys turned into labels, and indices into `labels`
        (`validation_indices` is None without `validation`).
    """
    num_classes = len(class_names)
    available = np.bincount(labels, minlength=num_classes)
    order = profiles.class_order(num_classes, class_order, seed)
    if isinstance(profile, dict):
        profile = _labels_as_keys(profile, class_names)
    capped = (
        available
        if max_per_class is None
        else np.minimum(available, max_per_class)
    )
    targets = profiles.imbalance_counts(
        capped, profile, imbalance_ratio, minor_fraction, order=order
    )
    targets = [max(1, int(round(count * train_fraction))) for count in targets]
    return (profile, *_select(labels, available, targets, validation, seed))


def _select(labels, available, targets, validation, seed):
    """Training and held-out indices into the training split."""
    if validation is None:
        return profiles.subsample_indices(labels, targets, seed), None
    if isinstance(validation, numbers.Integral) and not isinstance(
        validation, bool
    ):
        held_out = [check_int("validation", validation, 1)] * len(targets)
    else:
        fraction = check_number(
            "validation", validation, 0.0, 1.0, low_open=True, high_open=True
        )
        held_out = [max(1, int(round(fraction * count))) for count in targets]
    short = [
        label
        for label, count in enumerate(held_out)
        if count >= available[label]
    ]
    if short:
        raise ValueError(
            f"Argument `validation` holds out all the training images of "
            f"classes {short} (they have {[int(available[c]) for c in short]}). "
            f"Received: validation={validation!r}."
        )
    validation_indices = profiles.subsample_indices(
        labels, held_out, (seed + 1) % 2**32
    )
    remaining = np.ones(len(labels), bool)
    remaining[validation_indices] = False
    remaining = np.flatnonzero(remaining)
    left = np.bincount(labels[remaining], minlength=len(targets))
    counts = [min(target, int(count)) for target, count in zip(targets, left)]
    kept = profiles.subsample_indices(labels[remaining], counts, seed)
    return remaining[kept], validation_indices


def _labels_as_keys(profile, class_names):
    """Maps class-name keys of a profile dict to labels."""
    converted = {}
    for key, count in profile.items():
        if isinstance(key, str):
            if key not in class_names:
                raise ValueError(
                    f"Argument `profile` names the class {key!r}, which is "
                    f"not one of {class_names}. Received: profile={profile!r}."
                )
            key = class_names.index(key)
        converted[key] = count
    return converted


def _counts(labels, num_classes):
    return [int(count) for count in np.bincount(labels, minlength=num_classes)]
