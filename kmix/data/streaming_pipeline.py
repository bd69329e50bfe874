"""tf.data pipelines that read, decode and augment image files on the fly.

The streaming path of `kmix.data.load` (`kmix.data.load_streaming`) for data
too large to hold decoded in memory (ImageNet-LT, Places-LT, iNaturalist):

```
file paths and labels of the selected images (strings, held once)
  -> range(n), permuted each epoch by tf.random.experimental.index_shuffle
     (a seeded, exact permutation of the paths: no shuffle buffer at all)
  -> map (parallel, AUTOTUNE): read the file, check it, decode it
     training:   random-resized crop (area 8-100 %, aspect 3/4-4/3; JPEGs
                 decode only the crop window), resize to image_size, flip
     evaluation: center crop (87.5 % of the shorter side), resize
  -> uint8 -> batch -> float32 / 255 -> prefetch (PREFETCH_BATCHES)
```

Memory does not grow with the number of images beyond the path strings:
only the images in flight (the parallel map, one batch being built and the
prefetched batches) are ever decoded.
"""

import keras
import tensorflow as tf

IMAGE_SIZE = 224
# Float32 batches kept ready for the model.
PREFETCH_BATCHES = 2
# Evaluation keeps the central 87.5 % of the shorter side (224 of 256).
CROP_FRACTION = 0.875
AREA_RANGE = (0.08, 1.0)
ASPECT_RATIO_RANGE = (3.0 / 4.0, 4.0 / 3.0)
# A JPEG must end with its end-of-image marker (FF D9), a PNG with its IEND
# chunk, within this many bytes of the end of the file; a file cut short
# (truncated) does not.
TAIL_BYTES = 4096
# The augmentations of the streaming path, by `augment` value.
STREAMING_AUGMENTATIONS = {
    "crop_flip": (True, True),
    "crop": (True, False),
    "flip": (False, True),
    "none": (False, False),
}


def training_dataset(
    files,
    batch_size,
    seed,
    image_size=IMAGE_SIZE,
    augment="crop_flip",
    check_files=True,
):
    """Batches of `(float32 images in [0, 1], int32 labels)` read from `files`.

    Each epoch visits every file once, in a new seeded permutation; each
    image gets a random-resized crop and a horizontal flip (as `augment`
    says: `"crop_flip"`, `"crop"`, `"flip"` or `"none"`, where `"crop"`
    means the random-resized crop and `"none"` the evaluation crop), drawn
    with stateless ops from `seed`, the epoch and the image's position, so
    a run is reproducible.

    Args:
        files: a `kmix.data.ImageFileList`.
        batch_size: int >= 1.
        seed: int, seeds the permutations and the augmentations.
        image_size: int, the side of the square images produced.
        augment: a key of `STREAMING_AUGMENTATIONS`.
        check_files: whether each file is checked before decoding (format
            and truncation, see `read_checked`).
    """
    crop, flip = STREAMING_AUGMENTATIONS[augment]
    count = len(files)
    paths, labels = files.as_tensors()
    shuffle_key = tf.constant(seed, tf.int64)
    epoch_keys = tf.data.Dataset.random(
        seed=seed, rerandomize_each_iteration=True
    ).take(1)
    positions = epoch_keys.flat_map(
        lambda key: tf.data.Dataset.range(count).map(
            lambda position: (position, key)
        )
    ).apply(tf.data.experimental.assert_cardinality(count))

    def load(position, key):
        index = tf.random.experimental.index_shuffle(
            position, tf.stack([key, shuffle_key]), count - 1
        )
        path = tf.gather(paths, index)
        contents = read_checked(path, check_files)
        crop_seed = tf.stack([key, 2 * index])
        flip_seed = tf.stack([key, 2 * index + 1])
        if crop:
            image = random_resized_crop(contents, crop_seed, image_size)
        else:
            image = center_crop(contents, image_size)
        if flip:
            image = tf.image.stateless_random_flip_left_right(image, flip_seed)
        return _to_uint8(image), tf.gather(labels, index)

    return _batched(
        positions.map(load, num_parallel_calls=tf.data.AUTOTUNE), batch_size
    )


def evaluation_dataset(
    files, batch_size, image_size=IMAGE_SIZE, check_files=True
):
    """Batches of `(float32 images in [0, 1], int32 labels)`, in list order.

    Every image is center-cropped (`CROP_FRACTION` of its shorter side) and
    resized to `image_size`: the ImageNet evaluation recipe (resize to 256,
    crop 224).
    """
    paths, labels = files.as_tensors()

    def load(index):
        path = tf.gather(paths, index)
        image = center_crop(read_checked(path, check_files), image_size)
        return _to_uint8(image), tf.gather(labels, index)

    dataset = tf.data.Dataset.range(len(files))
    return _batched(
        dataset.map(load, num_parallel_calls=tf.data.AUTOTUNE), batch_size
    )


def _batched(images, batch_size):
    # The float32 batches are 4 times the uint8 ones (19 MiB at 32 x 224 x
    # 224 x 3): they are made one at a time and PREFETCH_BATCHES are kept
    # ready, so memory stays bounded whatever AUTOTUNE does upstream.
    return (
        images.batch(batch_size)
        .map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y))
        .prefetch(PREFETCH_BATCHES)
    )


def read_checked(path, check=True):
    """The bytes of the file `path`, checked to be a whole JPEG, PNG, GIF or BMP.

    With `check`, an error that names the file is raised when iterating if
    the file is empty, is none of these formats, or is a JPEG or PNG
    without its end marker in its last `TAIL_BYTES` bytes (truncated). The
    checks read only the bytes already in memory. A file damaged in its
    middle still fails in the decoder, whose error does not name the file:
    `kmix.data.verify_images` (or `bad_images="verify"`) finds those.
    """
    contents = tf.io.read_file(path)
    if not check:
        return contents
    kind = _image_kind(contents)
    known = tf.debugging.Assert(
        kind >= 0,
        [
            "kmix: unreadable image file (empty, or neither JPEG, PNG, GIF nor BMP):",
            path,
        ],
        summarize=1,
    )
    with tf.control_dependencies([known]):
        whole = tf.debugging.Assert(
            _has_end_marker(contents, kind),
            [
                "kmix: truncated image file (no end-of-image marker in its last "
                f"{TAIL_BYTES} bytes; a JPEG with long trailing data is valid: "
                "load it with bad_images='verify'):",
                path,
            ],
            summarize=1,
        )
    with tf.control_dependencies([whole]):
        return tf.identity(contents)


def _image_kind(contents):
    """0 JPEG, 1 PNG, 2 GIF, 3 BMP, -1 anything else."""
    kinds = [
        tf.strings.substr(contents, 0, 3) == b"\xff\xd8\xff",
        tf.strings.substr(contents, 0, 8) == b"\x89PNG\r\n\x1a\n",
        tf.strings.substr(contents, 0, 3) == b"GIF",
        tf.strings.substr(contents, 0, 2) == b"BM",
    ]
    kind = tf.constant(-1)
    for code in reversed(range(len(kinds))):
        kind = tf.where(kinds[code], code, kind)
    return kind


def _has_end_marker(contents, kind):
    length = tf.strings.length(contents)
    tail_length = tf.minimum(length, TAIL_BYTES)
    tail = tf.io.decode_raw(
        tf.strings.substr(contents, length - tail_length, tail_length), tf.uint8
    )
    tail = tf.cast(tail, tf.int32)

    def contains(marker):
        windows = tf.maximum(tf.shape(tail)[0] - len(marker) + 1, 0)
        found = tf.ones([windows], tf.bool)
        for offset, byte in enumerate(marker):
            found = found & tf.equal(tail[offset : offset + windows], byte)
        return tf.reduce_any(found)

    return tf.switch_case(
        tf.clip_by_value(kind, 0, 3),
        [
            lambda: contains(b"\xff\xd9"),
            lambda: contains(b"IEND"),
            lambda: tf.constant(True),
            lambda: tf.constant(True),
        ],
    )


def random_resized_crop(contents, seed, image_size):
    """A random crop of 8-100 % of the area, aspect ratio 3/4-4/3, resized.

    JPEGs are decoded only inside the crop window. Returns float32 in
    [0, 255] of shape `(image_size, image_size, 3)`.
    """

    def window(shape):
        begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
            shape,
            bounding_boxes=tf.constant([[[0.0, 0.0, 1.0, 1.0]]]),
            seed=seed,
            min_object_covered=0.0,
            aspect_ratio_range=ASPECT_RATIO_RANGE,
            area_range=AREA_RANGE,
            max_attempts=10,
            use_image_if_no_bounding_boxes=True,
        )
        return begin[0], begin[1], size[0], size[1]

    return _decode_window(contents, window, image_size)


def center_crop(contents, image_size):
    """The central `CROP_FRACTION` of the shorter side, resized; float32 in [0, 255]."""

    def window(shape):
        height, width = shape[0], shape[1]
        side = tf.cast(
            CROP_FRACTION * tf.cast(tf.minimum(height, width), tf.float32),
            tf.int32,
        )
        side = tf.maximum(side, 1)
        return (height - side + 1) // 2, (width - side + 1) // 2, side, side

    return _decode_window(contents, window, image_size)


def _decode_window(contents, window, image_size):
    def jpeg():
        top, left, height, width = window(tf.image.extract_jpeg_shape(contents))
        return tf.image.decode_and_crop_jpeg(
            contents, tf.stack([top, left, height, width]), channels=3
        )

    def other():
        image = tf.io.decode_image(
            contents, channels=3, expand_animations=False
        )
        top, left, height, width = window(tf.shape(image))
        return tf.slice(
            image, tf.stack([top, left, 0]), tf.stack([height, width, 3])
        )

    is_jpeg = tf.strings.substr(contents, 0, 3) == b"\xff\xd8\xff"
    image = tf.cond(is_jpeg, jpeg, other)
    image.set_shape([None, None, 3])
    return tf.image.resize(image, [image_size, image_size], method="bilinear")


def _to_uint8(image):
    return tf.cast(tf.clip_by_value(tf.round(image), 0.0, 255.0), tf.uint8)


def verify_images(paths, verbose=0):
    """The files among `paths` that cannot be decoded, whole, as images.

    Decodes every file once, in parallel in tf.data (a full epoch's worth of
    decoding, without augmentation), and returns the paths that are missing,
    empty, of an unknown format, truncated or corrupt, in input order.

    Example:

    >>> with open("broken.jpg", "wb") as f:
    ...     _ = f.write(b"\\xff\\xd8\\xff\\xe0 not really a JPEG")
    >>> kmix.data.verify_images(["broken.jpg"])
    ['broken.jpg']
    """
    paths = [str(path) for path in paths]
    if not paths:
        return []

    def decode(path):
        contents = read_checked(path)
        image = tf.io.decode_image(
            contents, channels=3, expand_animations=False
        )
        return path, tf.shape(image)

    dataset = (
        tf.data.Dataset.from_tensor_slices(paths)
        .map(decode, num_parallel_calls=tf.data.AUTOTUNE)
        .ignore_errors()
        .batch(256)
    )
    progbar = keras.utils.Progbar(len(paths)) if verbose else None
    readable = set()
    for batch_paths, _ in dataset.as_numpy_iterator():
        readable.update(path.decode() for path in batch_paths)
        if progbar is not None:
            progbar.update(len(readable))
    if progbar is not None:
        progbar.update(len(paths), finalize=True)
    return [path for path in paths if path not in readable]
