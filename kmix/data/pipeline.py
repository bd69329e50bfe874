"""tf.data pipelines over uint8 images, with augmentation after batching.

The selected images are held once, as one uint8 tensor on the CPU: that
tensor is the pipeline's cache. The pipeline shuffles and batches indices
(a seeded shuffle, redrawn each epoch), gathers each batch of uint8 images
in one op, augments the batch, scales it to float32 in [0, 1], and
prefetches. No float32 copy of the dataset, nor a shuffle buffer of images,
is ever held.
"""

import numpy as np
import tensorflow as tf

from kmix.validation import check_choice

AUGMENTATIONS = ("auto", "none", "crop_flip", "crop", "flip")
# RGB datasets whose classes change under a mirror image (digits).
NO_FLIP_DATASETS = ("svhn_cropped",)


def resolve_augment(augment, input_shape, name=""):
    """The augmentation `"auto"` stands for.

    `"auto"` is `"crop_flip"` for RGB images (CIFAR-like) and `"crop"` for
    grayscale ones (MNIST, Fashion-MNIST: no flip, so one rule serves digits
    and clothes alike) and for RGB digits (`svhn_cropped`).

    Example:

    >>> kmix.data.pipeline.resolve_augment("auto", (32, 32, 3))
    'crop_flip'
    """
    check_choice("augment", augment, AUGMENTATIONS)
    if augment != "auto":
        return augment
    if input_shape[-1] == 3 and name not in NO_FLIP_DATASETS:
        return "crop_flip"
    return "crop"


def training_dataset(images, labels, batch_size, seed, augment, crop_padding=4):
    """Batches of `(float32 images in [0, 1], int32 labels)` for training.

    Args:
        images: uint8 array `(n, h, w, c)`.
        labels: integer array `(n,)`.
        batch_size: int.
        seed: int, seeds the shuffle (reshuffled each epoch) and the
            augmentations (redrawn each epoch).
        augment: `"none"`, `"crop_flip"`, `"crop"` or `"flip"`.
        crop_padding: int, zero padding of the random crop.
    """
    batches = (
        tf.data.Dataset.range(len(labels))
        .shuffle(len(labels), seed=seed, reshuffle_each_iteration=True)
        .batch(batch_size)
    )
    gather = _gatherer(images, labels)
    if augment == "none":
        dataset = batches.map(
            lambda indices: _to_float(*gather(indices)),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    else:
        seeds = tf.data.Dataset.random(
            seed=seed, rerandomize_each_iteration=True
        )

        def augment_and_scale(indices, batch_seed):
            batch_images, batch_labels = gather(indices)
            batch_images = augment_batch(
                batch_images, batch_seed, augment, crop_padding
            )
            return _to_float(batch_images, batch_labels)

        dataset = tf.data.Dataset.zip(batches, seeds.batch(2)).map(
            augment_and_scale, num_parallel_calls=tf.data.AUTOTUNE
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


def evaluation_dataset(images, labels, batch_size):
    """Batches of `(float32 images in [0, 1], int32 labels)`, in order."""
    gather = _gatherer(images, labels)
    dataset = tf.data.Dataset.range(len(labels)).batch(batch_size)
    return dataset.map(
        lambda indices: _to_float(*gather(indices)),
        num_parallel_calls=tf.data.AUTOTUNE,
    ).prefetch(tf.data.AUTOTUNE)


def augment_batch(images, seed, augment, crop_padding=4):
    """Augments a uint8 batch `(b, h, w, c)` with stateless random ops.

    `"crop"`: zero-pad by `crop_padding` on each side, then crop back to
    `(h, w)` at a random offset per image. `"flip"`: mirror left-right with
    probability 1/2 per image. `"crop_flip"`: both. Both are done by
    gathering rows and columns, so the batch is copied at most twice.

    Example:

    >>> batch = tf.zeros((8, 32, 32, 3), "uint8")
    >>> kmix.data.pipeline.augment_batch(batch, [1, 2], "crop_flip").shape
    TensorShape([8, 32, 32, 3])
    """
    crop_seed, flip_seed = tf.unstack(
        tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    )
    batch_size, height, width = (
        tf.shape(images)[0],
        images.shape[1],
        images.shape[2],
    )
    columns = tf.tile(tf.range(width)[None, :], [batch_size, 1])
    if augment in ("crop", "crop_flip"):
        offsets = tf.random.stateless_uniform(
            (batch_size, 2),
            crop_seed,
            maxval=2 * crop_padding + 1,
            dtype=tf.int32,
        )
        rows = offsets[:, :1] + tf.range(height)[None, :]
        columns = offsets[:, 1:] + columns
        pad = [crop_padding, crop_padding]
        padded = tf.pad(images, [[0, 0], pad, pad, [0, 0]])
        images = tf.gather(padded, rows, axis=1, batch_dims=1)
    if augment in ("flip", "crop_flip"):
        flip = tf.random.stateless_uniform((batch_size,), flip_seed) < 0.5
        columns = tf.where(flip[:, None], tf.reverse(columns, [1]), columns)
    return tf.gather(images, columns, axis=2, batch_dims=1)


def _gatherer(images, labels):
    """A function from a batch of indices to its uint8 images and labels."""
    with tf.device("/cpu:0"):
        images = tf.constant(np.asarray(images, np.uint8))
        labels = tf.constant(np.asarray(labels, np.int32))

    def gather(indices):
        return tf.gather(images, indices), tf.gather(labels, indices)

    return gather


def _to_float(images, labels):
    return tf.cast(images, tf.float32) / 255.0, labels
