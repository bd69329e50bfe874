"""iNaturalist's JSON annotation files (`train2018.json`, `val2018.json`)."""

import json
import os

import numpy as np

from kmix.data.image_file_list import MAX_NAMED
from kmix.data.image_file_list import ImageFileList

# The files of iNaturalist 2018 (2017 and 2019 use the same format).
INATURALIST_FILES = {"train": "train2018.json", "test": "val2018.json"}


def read_inaturalist(path, image_root=None, category_ids=None):
    """Reads an iNaturalist annotation file into files, labels and class names.

    The COCO-style format of iNaturalist 2017-2019: `images` (`id`,
    `file_name`), `annotations` (`image_id`, `category_id`, one per image)
    and `categories` (`id`, `name`). Labels are positions in the sorted
    category ids (iNaturalist 2018's ids are already 0..8141, so labels
    equal ids there).

    Args:
        path: the JSON file.
        image_root: the directory `file_name` is relative to; defaults to
            the JSON file's directory (iNaturalist 2018 ships
            `train_val2018/` next to `train2018.json`).
        category_ids: the sorted category ids of the training file, to read
            a validation or test file with the training labels; defaults to
            this file's own categories.

    Returns:
        `(files, class_names, category_ids)`: an `ImageFileList` whose
        `lines` are positions in `images`, the category names in label
        order, and the sorted category ids.

    Raises:
        ValueError: keys missing, images without an annotation (a test file
        has no labels), several annotations for one image, annotations of
        unknown images or of categories outside the class range: each names
        the file and the entries.

    Example:

    >>> import json
    >>> annotations = {
    ...     "images": [{"id": 7, "file_name": "train_val2018/Plantae/3/a.jpg"}],
    ...     "annotations": [{"id": 1, "image_id": 7, "category_id": 3}],
    ...     "categories": [{"id": 3, "name": "Bellis perennis"}],
    ... }
    >>> with open("train2018.json", "w") as f:
    ...     json.dump(annotations, f)
    >>> files, names, ids = kmix.data.read_inaturalist(
    ...     "train2018.json", "/data/inat"
    ... )
    >>> files.paths.tolist(), files.labels.tolist(), names
    (['/data/inat/train_val2018/Plantae/3/a.jpg'], [0], ['Bellis perennis'])
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"The iNaturalist annotation file {path!r} does not exist."
        )
    root = (
        os.path.dirname(os.path.abspath(path))
        if image_root is None
        else os.fspath(image_root)
    )
    with open(path, encoding="utf-8") as stream:
        try:
            content = json.load(stream)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
    required = ("images", "annotations", "categories")
    missing = (
        [key for key in required if key not in content]
        if isinstance(content, dict)
        else required
    )
    if missing:
        raise ValueError(
            f"{path} is not an iNaturalist annotation file: it lacks {list(missing)} "
            "(expected `images`, `annotations` and `categories`)."
        )
    images, annotations = content["images"], content["annotations"]
    if not images:
        raise ValueError(f"{path} lists no images.")
    if category_ids is None:
        categories = sorted(content["categories"], key=lambda c: c["id"])
        category_ids = [int(c["id"]) for c in categories]
        class_names = [str(c.get("name", c["id"])) for c in categories]
    else:
        names = {
            int(c["id"]): str(c.get("name", c["id"]))
            for c in content["categories"]
        }
        class_names = [names.get(int(i), str(i)) for i in category_ids]
    label_of = {category: label for label, category in enumerate(category_ids)}
    position_of = {
        int(image["id"]): position for position, image in enumerate(images)
    }

    labels = np.full(len(images), -1, dtype=np.int64)
    unknown_images, unknown_categories, repeated = [], [], []
    for number, annotation in enumerate(annotations):
        position = position_of.get(int(annotation["image_id"]))
        if position is None:
            unknown_images.append(
                f"annotation entry {number} (image_id {annotation['image_id']})"
            )
            continue
        label = label_of.get(int(annotation["category_id"]))
        if label is None:
            unknown_categories.append(
                f"annotation entry {number} ({images[position]['file_name']!r}, "
                f"category_id {annotation['category_id']})"
            )
            continue
        if labels[position] >= 0:
            repeated.append(repr(images[position]["file_name"]))
        labels[position] = label
    for problem, entries in (
        ("annotations of images the file does not list", unknown_images),
        (
            f"annotations of categories outside the {len(category_ids)} training "
            "categories (labels outside the class range)",
            unknown_categories,
        ),
        (
            "images with several annotations (kmix expects one label per image)",
            repeated,
        ),
    ):
        if entries:
            raise ValueError(
                f"{path} has {len(entries)} {problem}: {_named(entries)}"
            )
    unlabelled = np.flatnonzero(labels < 0)
    if unlabelled.size:
        raise ValueError(
            f"{path} has {unlabelled.size} images without an annotation (is it a "
            f"test file without labels? Use val2018.json as the test split): "
            + _named([repr(images[i]["file_name"]) for i in unlabelled])
        )
    paths = [
        os.path.join(root, str(image["file_name"]).lstrip("/"))
        for image in images
    ]
    files = ImageFileList(
        paths, labels, path, np.arange(len(images)), unit="image entry"
    )
    return files, class_names, list(category_ids)


def _named(entries):
    text = "; ".join(entries[:MAX_NAMED])
    if len(entries) > MAX_NAMED:
        text += f" ... and {len(entries) - MAX_NAMED} more"
    return text + "."
