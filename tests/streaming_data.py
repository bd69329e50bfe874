"""Tiny image datasets on disk in the formats of kmix's streaming path, for the tests.

Every image is a solid gray JPEG whose level identifies it (JPEG keeps a solid
level exact to +-1, crops and flips keep it), so tests can check which images
a pipeline delivered.
"""

import json
import os

import numpy as np
import tensorflow as tf


def write_jpeg(path, value, shape=(40, 48), channels=3):
    """A solid image of gray level `value`: JPEG keeps it exact to +-1."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = np.full(shape + (channels,), value, np.uint8)
    tf.io.write_file(path, tf.io.encode_jpeg(image, quality=95))


def level(index):
    """The gray level of the image with this index: 8, 12, 16, ..."""
    return 8 + 4 * index


def imagenet_lt_dir(root, train=(6, 4, 2), val=2, test=2, varied=True):
    """A tiny dataset in ImageNet-LT's layout; returns the (path, label, value) lines."""
    rng = np.random.RandomState(0)
    written = {}
    index = 0
    for split, folder, counts in (
        ("train", "train", train),
        ("val", "val", (val,) * len(train)),
        ("test", "val", (test,) * len(train)),
    ):
        lines = []
        for label, count in enumerate(counts):
            for k in range(count):
                relative = f"{folder}/n0{label}/{split}_{k}.JPEG"
                shape = tuple(rng.randint(30, 60, 2)) if varied else (40, 48)
                write_jpeg(os.path.join(root, relative), level(index), shape)
                lines.append((relative, label, level(index)))
                index += 1
        with open(os.path.join(root, f"ImageNet_LT_{split}.txt"), "w") as f:
            f.write("".join(f"{path} {label}\n" for path, label, _ in lines))
        written[split] = lines
    return written


def image_folder(root, counts=(5, 3, 2), test=1, shape=(40, 48)):
    """An image folder `root/{train,test}/class_<label>/NNN.jpg` of one image size."""
    index = 0
    for split, per in (("train", counts), ("test", (test,) * len(counts))):
        for label, count in enumerate(per):
            for k in range(count):
                write_jpeg(
                    os.path.join(root, split, f"class_{label}", f"{k:03d}.jpg"),
                    level(index),
                    shape,
                )
                index += 1
    return root


def inaturalist_dir(root, category_ids=(5, 2, 9), per_class=(3, 2, 1)):
    """iNaturalist 2018's layout: `train2018.json`, `val2018.json` (one image per
    class) and `train_val2018/Plantae/<category>/`; images of gray level 10 * id."""
    for split, counts in (
        ("train2018", per_class),
        ("val2018", (1,) * len(per_class)),
    ):
        images, annotations = [], []
        for category, count in zip(category_ids, counts):
            for k in range(count):
                image_id = (
                    1000 * category + k + (500 if split == "val2018" else 0)
                )
                name = f"train_val2018/Plantae/{category}/{split}_{k}.jpg"
                write_jpeg(os.path.join(root, name), 10 * category)
                images.append(
                    {
                        "id": image_id,
                        "file_name": name,
                        "width": 48,
                        "height": 40,
                    }
                )
                annotations.append(
                    {
                        "id": image_id,
                        "image_id": image_id,
                        "category_id": category,
                    }
                )
        content = {
            "images": images,
            "annotations": annotations,
            "categories": [
                {"id": c, "name": f"species {c}"} for c in category_ids
            ],
        }
        with open(os.path.join(root, f"{split}.json"), "w") as f:
            json.dump(content, f)
    return root
