"""Speed and memory of kmix.data's pipelines, against ResNet-32 training.

Measures:

1. the time to read Debian's Fashion-MNIST IDX files, and the time to build
   the step-100 imbalanced set from them (selection and tf.data pipelines);
2. the images/s of the augmented training pipelines: step-100
   Fashion-MNIST (28x28x1, crop) and a CIFAR-10-LT-shaped set (12,406
   random 32x32x3 images, exp profile at ratio 100, crop and flip);
3. the images/s ResNet-32 (`kmix.models.resnet_cifar.resnet32`) trains at
   on 32x32x3 batches already in memory;
4. the peak resident memory while the pipelines run, next to the size of
   their uint8 caches and of the float32 copy the pipeline never makes.

The last line prints the ratio of the slower pipeline's images/s to
ResNet-32's; it must be >= 10 for input never to be the bottleneck.

Usage:

    python benchmarks/data_throughput.py [--epochs=3] [--resnet_steps=10]
"""

import os
import resource
import time

from absl import app
from absl import flags

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def define_flags():
    flags.DEFINE_integer("epochs", 3, "Timed epochs of each pipeline.")
    flags.DEFINE_integer("batch_size", 128, "Batch size of pipelines and ResNet-32.")
    flags.DEFINE_integer("resnet_steps", 10, "Timed ResNet-32 training steps.")


def current_rss_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def pipeline_images_per_second(dataset, epochs):
    """Images/s over `epochs` timed epochs, after one warm-up epoch."""
    for _ in dataset:
        pass
    images, start = 0, time.perf_counter()
    for _ in range(epochs):
        for _, labels in dataset:
            images += int(labels.shape[0])
    return images / (time.perf_counter() - start)


def resnet32_images_per_second(batch_size, steps, class_counts):
    """Images/s of `fit` on ResNet-32 with MajorMix after stage 1."""
    import keras
    import numpy as np
    import tensorflow as tf

    from kmix.models.resnet_cifar import resnet32

    keras.utils.set_random_seed(0)
    model = resnet32(len(class_counts), class_counts=class_counts)
    model.compile(
        keras.optimizers.SGD(0.1, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.RandomState(0)
    batch = (
        rng.uniform(size=(batch_size, 32, 32, 3)).astype("float32"),
        rng.randint(0, len(class_counts), size=batch_size).astype("int32"),
    )
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    model.fit(dataset, steps_per_epoch=3, epochs=1, shuffle=False, verbose=0)
    start = time.perf_counter()
    model.fit(dataset, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)
    return steps * batch_size / (time.perf_counter() - start)


def run(epochs, batch_size, resnet_steps):
    """Runs the benchmark, prints its report, and returns the ratio."""
    import numpy as np

    import kmix

    start = time.perf_counter()
    files = {
        split: (
            kmix.data.read_idx(f"{FASHION_MNIST_DIR}/{prefix}-images-idx3-ubyte.gz"),
            kmix.data.read_idx(f"{FASHION_MNIST_DIR}/{prefix}-labels-idx1-ubyte.gz"),
        )
        for split, prefix in (("train", "train"), ("test", "t10k"))
    }
    read_seconds = time.perf_counter() - start
    start = time.perf_counter()
    fashion = kmix.data.load(
        files, profile="step", imbalance_ratio=100, batch_size=batch_size, verbose=0
    )
    build_seconds = time.perf_counter() - start
    del files
    fashion_cache_mb = sum(fashion.class_counts) * np.prod(fashion.input_shape) / 2**20
    print(f"Fashion-MNIST step-100: {sum(fashion.class_counts)} training images")
    print(f"  read IDX files:                 {read_seconds:6.2f} s")
    print(f"  build (after files are read):   {build_seconds:6.2f} s (target < 3 s)")

    rng = np.random.RandomState(0)
    cifar_like = {
        "train": (
            rng.randint(0, 256, (50000, 32, 32, 3), dtype=np.uint8),
            np.repeat(np.arange(10), 5000),
        ),
        "test": (
            rng.randint(0, 256, (10000, 32, 32, 3), dtype=np.uint8),
            np.repeat(np.arange(10), 1000),
        ),
    }
    cifar = kmix.data.load(
        cifar_like, profile="exp", imbalance_ratio=100, batch_size=batch_size, verbose=0
    )
    del cifar_like
    cifar_cache_mb = sum(cifar.class_counts) * np.prod(cifar.input_shape) / 2**20

    rss_before = current_rss_mb()
    fashion_rate = pipeline_images_per_second(fashion.train, epochs)
    cifar_rate = pipeline_images_per_second(cifar.train, epochs)
    rss_growth = current_rss_mb() - rss_before
    print(f"Training pipelines with augmentation, batch {batch_size}, {epochs} epochs:")
    print(f"  Fashion-MNIST step-100 ({fashion.augment}):  {fashion_rate:9.0f} images/s")
    print(f"  CIFAR-10-LT-shaped ({cifar.augment}):   {cifar_rate:9.0f} images/s")
    print("Memory:")
    print(f"  uint8 training caches: Fashion-MNIST {fashion_cache_mb:.1f} MiB, "
          f"CIFAR-10-LT {cifar_cache_mb:.1f} MiB (float32 copies would be "
          f"{4 * fashion_cache_mb:.1f} MiB and {4 * cifar_cache_mb:.1f} MiB)")
    print(f"  resident memory growth while iterating: {rss_growth:.1f} MiB")
    print(f"  peak resident memory of the process so far: {peak_rss_mb():.0f} MiB")

    resnet_rate = resnet32_images_per_second(batch_size, resnet_steps, cifar.class_counts)
    print(f"ResNet-32 training (32x32x3, batch {batch_size}): {resnet_rate:.0f} images/s")
    ratio = min(fashion_rate, cifar_rate) / resnet_rate
    print(f"pipeline / ResNet-32 images/s ratio: {ratio:.1f} (must be >= 10)")
    return ratio


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    if not os.path.isdir(FASHION_MNIST_DIR):
        raise app.UsageError(
            f"{FASHION_MNIST_DIR} is missing: apt-get install dataset-fashion-mnist"
        )
    run(flags.FLAGS.epochs, flags.FLAGS.batch_size, flags.FLAGS.resnet_steps)


if __name__ == "__main__":
    define_flags()
    app.run(main)
