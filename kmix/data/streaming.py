"""The streaming path of `kmix.data.load`: image files read from disk on the fly.

`load_streaming` selects the imbalanced training subset by index (the same
profiles and selection rule as the in-memory path, or exactly the images a
list file names with `profile="none"`) and returns an `ImbalancedDataset`
(a `kmix.data.StreamingDataset`) whose pipelines read, decode and augment
the selected files in parallel (`kmix.data.streaming_pipeline`).
`wants_streaming` is how `kmix.data.load` decides between the two paths.
"""

import os

import numpy as np
import tensorflow as tf

from kmix.data import file_source
from kmix.data import loader
from kmix.data import streaming_pipeline
from kmix.data.image_file_list import describe_paths
from kmix.data.streaming_dataset import StreamingDataset
from kmix.validation import check_choice
from kmix.validation import check_int
from kmix.validation import check_number

# Values of `kmix.data.load(streaming=...)` (True and False mean "always"
# and "never").
STREAMING = ("auto", "always", "never")
# What `bad_images` does with files that cannot be read (docs/data.md).
BAD_IMAGES = ("raise", "verify", "skip")
# Options of `load_streaming` that `kmix.data.load` passes on.
STREAMING_OPTIONS = ("lists", "image_root", "bad_images")
# Images whose header is read to estimate the decoded size of a folder.
SAMPLED_IMAGES = 8
# The default memory budget of `kmix.data.load`: this fraction of the RAM.
MEMORY_BUDGET_FRACTION = 0.25


def resolve_streaming(streaming):
    """`"auto"`, `"always"` or `"never"` for a `streaming` argument (bools allowed)."""
    if streaming is True:
        return "always"
    if streaming is False or streaming is None:
        return "auto" if streaming is None else "never"
    check_choice("streaming", streaming, STREAMING)
    return streaming


def default_memory_budget_mb():
    """A quarter of the machine's physical memory, in MiB."""
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        total = 8 * 2**30
    return MEMORY_BUDGET_FRACTION * total / 2**20


def wants_streaming(
    name,
    streaming="auto",
    data_dir=None,
    image_size=None,
    memory_budget_mb=None,
    options=None,
    verbose=0,
):
    """Whether `kmix.data.load` takes the streaming path for these arguments.

    - `streaming="always"` (or `True`): yes. `"never"` (or `False`): no.
    - `"auto"`: yes for data only the streaming path reads (list files,
      iNaturalist JSON, `"imagenet_lt"`, `"places_lt"`,
      `"i_naturalist2018"` with their `data_dir`), when `image_size` or a
      streaming option is given, and for an image folder whose images
      would not fit `memory_budget_mb` decoded (estimated from the number
      of files times the size of a few decoded images) or have several
      sizes. Arrays, `.npz`, IDX and tensorflow-datasets names stay in
      memory.
    """
    mode = resolve_streaming(streaming)
    options = {
        key: value
        for key, value in (options or {}).items()
        if value is not None
    }
    unknown = sorted(set(options) - set(STREAMING_OPTIONS))
    if unknown:
        raise TypeError(
            f"kmix.data.load got unexpected arguments {unknown}; the streaming "
            f"path's options are {list(STREAMING_OPTIONS)}."
        )
    file_data = file_source.is_file_dataset(
        name, data_dir, options.get("lists")
    )
    folder = _image_folder(name)
    if mode == "always":
        if not file_data and folder is None:
            raise ValueError(
                "Argument `streaming='always'` streams image files from disk: "
                "`name` must be an image folder, a directory of list files or "
                "iNaturalist JSON files, or one of "
                f"{sorted(file_source.FILE_DATASETS)} with `data_dir`. "
                f"Received: name={name!r}."
            )
        return True
    if mode == "never":
        if file_data:
            raise ValueError(
                f"{name!r} is read from list files or JSON annotations, which only "
                "the streaming path reads: pass streaming='auto' or 'always'."
            )
        if image_size is not None or options:
            raise ValueError(
                "Arguments `image_size` and the streaming options "
                f"{sorted(options)} apply to the streaming path, but "
                "streaming='never'. Received: "
                f"image_size={image_size!r}, streaming='never'."
            )
        return False
    if file_data:
        return True
    if folder is None:
        if image_size is not None or options:
            raise ValueError(
                "Arguments `image_size` and the streaming options apply to image "
                "files streamed from disk (image folders, list files, iNaturalist "
                f"JSON). Received: image_size={image_size!r}, options "
                f"{sorted(options)} for name={name!r}."
            )
        return False
    if image_size is not None or options:
        return True
    budget_mb = (
        default_memory_budget_mb()
        if memory_budget_mb is None
        else check_number(
            "memory_budget_mb", memory_budget_mb, 0.0, low_open=True
        )
    )
    count, sample = file_source.count_folder_images(folder)
    estimate, shapes = estimate_decoded_bytes(sample, count)
    if len(shapes) > 1:
        _say(
            verbose,
            f"Streaming {folder}: its images have several sizes ({sorted(shapes)[:3]} ...).",
        )
        return True
    if estimate > budget_mb * 2**20:
        _say(
            verbose,
            f"Streaming {folder}: {count} images, about {estimate / 2**30:.1f} GiB "
            f"decoded, over the memory budget of {budget_mb / 1024:.1f} GiB.",
        )
        return True
    return False


def _image_folder(name):
    if not isinstance(name, (str, os.PathLike)):
        return None
    path = os.path.expanduser(os.fspath(name))
    if os.path.isdir(
        os.path.join(path, "train")
    ) and not file_source.is_file_dataset(path):
        return path
    return None


def estimate_decoded_bytes(paths, count=None):
    """`(bytes, shapes)`: `count` images decoded at the mean size of `paths`.

    Reads up to `SAMPLED_IMAGES` evenly spaced files of `paths` (JPEG
    headers only) and returns the estimated uint8 size of `count` (default
    `len(paths)`) such images and the set of shapes seen.
    """
    paths = [str(path) for path in paths]
    count = len(paths) if count is None else count
    if not paths:
        return 0, set()
    picks = np.unique(
        np.linspace(0, len(paths) - 1, min(SAMPLED_IMAGES, len(paths))).astype(
            int
        )
    )
    shapes = set()
    for pick in picks:
        try:
            shapes.add(_stored_shape(paths[pick]))
        except (tf.errors.OpError, OSError):
            continue  # bad files are reported by the path that reads them.
    if not shapes:
        return 0, shapes
    mean = np.mean([np.prod(shape) for shape in shapes])
    return int(mean * count), shapes


def _stored_shape(path):
    contents = tf.io.read_file(path)
    if contents.numpy()[:3] == b"\xff\xd8\xff":
        shape = tf.image.extract_jpeg_shape(contents)
    else:
        shape = tf.shape(tf.io.decode_image(contents, expand_animations=False))
    return tuple(int(size) for size in shape.numpy())


def _say(verbose, text):
    if verbose:
        print(text)


def load_streaming(
    name,
    profile="exp",
    imbalance_ratio=100.0,
    minor_fraction=0.5,
    class_order="natural",
    seed=0,
    batch_size=128,
    augment="auto",
    validation=None,
    train_fraction=1.0,
    max_per_class=None,
    class_names=None,
    data_dir=None,
    image_size=None,
    lists=None,
    image_root=None,
    bad_images="raise",
    verbose=1,
):
    """Selects an imbalanced training set from image files and streams it.

    `kmix.data.load` calls this when it takes the streaming path; the
    arguments it shares with `load` mean the same. Training images get an
    ImageNet-style random-resized crop and a horizontal flip; evaluation
    images (`train_clean`, `test`, `validation`) a center crop; all are
    resized to `image_size` x `image_size` x 3 (RGB; grayscale files are
    converted).

    Args:
        name: an image folder (`root/train/<class>/*.jpg`, with
            `root/test/` and/or `root/val/`), a directory of list files
            (`<prefix>_train.txt`, `<prefix>_val.txt`, `<prefix>_test.txt`:
            ImageNet-LT, Places-LT) or of iNaturalist files
            (`train2018.json`, `val2018.json`), or `"imagenet_lt"`,
            `"places_lt"`, `"i_naturalist2018"` with `data_dir`.
        profile: as in `kmix.data.load`. `"none"` keeps exactly the images
            the training list names (ImageNet-LT is long-tailed already).
        augment: `"auto"` or `"crop_flip"` (random-resized crop and flip),
            `"crop"`, `"flip"` (center crop, then flip), `"none"` (center
            crop).
        validation: `None` uses the dataset's own validation split when it
            has both a `val` and a `test` split; an int or a fraction holds
            images out of the training list, as in `kmix.data.load`.
        data_dir: the directory of a named dataset's files.
        image_size: int >= 8, the side of the square images (default 224).
        lists: optional `{"train": file, "test": file, "validation": file}`
            of list files or iNaturalist JSON files, instead of finding them.
        image_root: the directory the listed paths are relative to (default:
            the directory of each list file).
        bad_images: what unreadable files do (docs/data.md):
            `"raise"` (default): every listed file is checked to exist and
            be non-empty before training (an error names the missing ones);
            while streaming, a file of an unknown format or cut short
            raises an error naming it. `"verify"`: additionally decodes
            every listed file once up front and raises an error naming the
            undecodable ones. `"skip"`: decodes every file up front and
            drops the missing, empty and undecodable ones before the
            selection, counting them in `skipped_files` and printing how
            many were dropped.
        verbose: 0 or 1.

    Returns:
        A `kmix.data.StreamingDataset`.

    Example:

    >>> # Not run: it needs ImageNet on disk, which tests lack.
    >>> data = kmix.data.load_streaming(  # doctest: +SKIP
    ...     "imagenet_lt",
    ...     data_dir="/data/ImageNet",
    ...     profile="none",
    ...     batch_size=256,
    ... )
    """
    train_fraction, max_per_class = loader.check_selection_arguments(
        imbalance_ratio, minor_fraction, seed, train_fraction, max_per_class
    )
    check_choice(
        "augment",
        augment,
        ("auto",) + tuple(streaming_pipeline.STREAMING_AUGMENTATIONS),
    )
    check_choice("bad_images", bad_images, BAD_IMAGES)
    batch_size = check_int("batch_size", batch_size, 1)
    image_size = check_int(
        "image_size",
        streaming_pipeline.IMAGE_SIZE if image_size is None else image_size,
        8,
    )
    augment = "crop_flip" if augment == "auto" else augment

    source = file_source.open_file_source(
        name, data_dir, lists, image_root, class_names
    )
    skipped = _check_files(source, bad_images, verbose)
    num_classes = source.num_classes
    available = np.bincount(source.train.labels, minlength=num_classes)
    _check_classes(source, available)

    profile, train_indices, validation_indices = loader.select_training_images(
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
    train_files = source.train.take(train_indices)
    validation_files = source.validation
    if validation_indices is not None:
        if validation_files is not None:
            _say(
                verbose,
                f"validation={validation!r}: holding images out of the training "
                f"list; the dataset's own validation split is not used.",
            )
        validation_files = source.train.take(validation_indices)

    check = bad_images == "raise"
    estimate, _ = estimate_decoded_bytes(
        source.train.paths, len(source.train) + len(source.test)
    )
    _say(
        verbose,
        f"Streaming {len(train_files)} training images of {num_classes} classes "
        f"from {source.origin} at {image_size}x{image_size} (decoded at their "
        f"stored size, training and test images would take about "
        f"{estimate / 2**30:.1f} GiB).",
    )
    return StreamingDataset(
        name=source.name,
        origin=source.origin,
        train=streaming_pipeline.training_dataset(
            train_files, batch_size, seed, image_size, augment, check
        ),
        train_clean=streaming_pipeline.evaluation_dataset(
            train_files, batch_size, image_size, check
        ),
        test=streaming_pipeline.evaluation_dataset(
            source.test, batch_size, image_size, check
        ),
        validation=None
        if validation_files is None
        else streaming_pipeline.evaluation_dataset(
            validation_files, batch_size, image_size, check
        ),
        class_counts=train_files.counts(num_classes),
        validation_counts=None
        if validation_files is None
        else validation_files.counts(num_classes),
        test_counts=source.test.counts(num_classes),
        class_names=list(source.class_names),
        input_shape=(image_size, image_size, 3),
        profile=profile,
        imbalance_ratio=imbalance_ratio,
        seed=seed,
        batch_size=batch_size,
        augment=augment,
        train_indices=train_indices,
        validation_indices=validation_indices,
        image_size=image_size,
        train_files=train_files,
        test_files=source.test,
        validation_files=validation_files,
        skipped_files=skipped,
        decoded_bytes=estimate,
        check_files=check,
    )


def _splits(source):
    return [
        (key, getattr(source, key))
        for key in ("train", "validation", "test")
        if getattr(source, key) is not None
    ]


def _check_files(source, bad_images, verbose):
    """Checks (and with `"skip"` drops) the missing, empty and undecodable files."""
    skipped = {}
    for key, files in _splits(source):
        missing, empty = files.missing_and_empty()
        for reason, paths in (("missing", missing), ("empty", empty)):
            if not paths:
                continue
            if bad_images == "skip":
                skipped.setdefault(reason, []).extend(paths)
                continue
            named = set(paths)
            positions = [
                i for i, path in enumerate(files.paths) if path in named
            ][:5]
            where = "; ".join(
                f"{files.where(i)}: {str(files.paths[i])!r}" for i in positions
            )
            raise FileNotFoundError(
                f"{len(paths)} files of the {key} split ({files.origin}) are {reason}"
                f"{' (zero bytes)' if reason == 'empty' else ''}: {where}"
                + (f" ... and {len(paths) - 5} more" if len(paths) > 5 else "")
                + ". Fix the list or the files, or pass bad_images='skip' to drop "
                "them (counted)."
            )
        if bad_images != "raise":
            bad = set(missing) | set(empty)
            undecodable = streaming_pipeline.verify_images(
                [p for p in files.paths if p not in bad], verbose
            )
            if undecodable and bad_images == "verify":
                raise ValueError(
                    f"{len(undecodable)} files of the {key} split ({files.origin}) "
                    f"cannot be decoded (unreadable, truncated or corrupt): "
                    f"{describe_paths(undecodable)}. Fix or remove them, or pass "
                    "bad_images='skip' to drop them (counted)."
                )
            if undecodable:
                skipped.setdefault("undecodable", []).extend(undecodable)
        dropped = {path for paths in skipped.values() for path in paths}
        if dropped:
            setattr(source, key, files.without(dropped))
    if skipped:
        total = sum(len(paths) for paths in skipped.values())
        counts = ", ".join(
            f"{len(paths)} {reason}" for reason, paths in skipped.items()
        )
        print(
            f"kmix.data: bad_images='skip' dropped {total} files ({counts}): "
            f"{describe_paths([p for paths in skipped.values() for p in paths])} "
            "(all listed in the result's `skipped_files`)."
        )
    return skipped


def _check_classes(source, available):
    empty = np.flatnonzero(available == 0).tolist()
    if empty:
        named = ", ".join(
            f"{label} ({source.class_names[label]!r})" for label in empty[:10]
        )
        raise ValueError(
            f"The training split ({source.train.origin}) has no images of classes "
            f"{named}{' ...' if len(empty) > 10 else ''} out of {source.num_classes}: "
            "every class needs at least one training image."
        )
    if len(source.test) == 0:
        raise ValueError(
            f"The test split ({source.test.origin}) has no images."
        )
