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

The streaming case (`--cases=streaming`) measures `kmix.data.load`'s
streaming path on a synthetic on-disk dataset it generates once and keeps
in `--streaming_dir`: JPEG files of varied sizes around 256x256 in class
folders (1,000 distinct images, repeated), and ImageNet-LT-style list
files naming the first 20,000 and all 100,000 of them
(`--streaming_sizes`). For each size, a fresh process loads the list,
reads `--streaming_batches` batches of random-resized 224x224 crops, and
reports images/s and its peak resident memory (which must not grow with
the dataset size, within 10 %). Another process measures the images/s at
which ResNet-50 (`kmix.experiment.building.resnet50`, MajorMix after
conv3_block4_out) trains at 224x224, batch 32, on in-memory random
batches and on the streamed batches, alternating the two for
`--resnet50_rounds` rounds: decoding keeps up when the streamed rate
matches the in-memory one. `--resnet50_steps=0` skips ResNet-50.

Usage:

    python benchmarks/data_throughput.py [--epochs=3] [--resnet_steps=10]
    python benchmarks/data_throughput.py --cases=streaming \\
        [--streaming_dir=/tmp/kmix_streaming_benchmark] \\
        [--streaming_sizes=20000,100000] [--resnet50_steps=4]
"""

import json
import os
import resource
import subprocess
import sys
import time

from absl import app
from absl import flags

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"


def define_flags():
    flags.DEFINE_integer("epochs", 3, "Timed epochs of each pipeline.")
    flags.DEFINE_integer(
        "batch_size", 128, "Batch size of pipelines and ResNet-32."
    )
    flags.DEFINE_integer("resnet_steps", 10, "Timed ResNet-32 training steps.")
    flags.DEFINE_list(
        "cases",
        ["in_memory", "streaming"],
        "What to measure: in_memory, streaming.",
    )
    flags.DEFINE_string(
        "streaming_dir",
        "/tmp/kmix_streaming_benchmark",
        "Where the synthetic JPEG dataset is generated once and kept.",
    )
    flags.DEFINE_list(
        "streaming_sizes",
        ["20000", "100000"],
        "Training images listed, per size.",
    )
    flags.DEFINE_integer(
        "streaming_classes", 100, "Classes of the synthetic dataset."
    )
    flags.DEFINE_integer(
        "streaming_batches", 100, "Timed batches of the streaming pipeline."
    )
    flags.DEFINE_integer(
        "streaming_batch_size",
        32,
        "Batch size of the streaming case and ResNet-50.",
    )
    flags.DEFINE_integer(
        "image_size",
        224,
        "Side of the streamed crops and of ResNet-50's input.",
    )
    flags.DEFINE_integer(
        "resnet50_steps",
        2,
        "Timed ResNet-50 training steps per input and round; 0 skips it.",
    )
    flags.DEFINE_integer(
        "resnet50_rounds",
        3,
        "Rounds of ResNet-50 timing, alternating the two inputs.",
    )
    flags.DEFINE_string(
        "child", None, "Internal: run one measurement (streaming or resnet50)."
    )
    flags.DEFINE_string(
        "child_list", None, "Internal: the list file the child streams."
    )


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
    model.fit(
        dataset, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0
    )
    return steps * batch_size / (time.perf_counter() - start)


def run(epochs, batch_size, resnet_steps):
    """Runs the benchmark, prints its report, and returns the ratio."""
    import numpy as np

    import kmix

    start = time.perf_counter()
    files = {
        split: (
            kmix.data.read_idx(
                f"{FASHION_MNIST_DIR}/{prefix}-images-idx3-ubyte.gz"
            ),
            kmix.data.read_idx(
                f"{FASHION_MNIST_DIR}/{prefix}-labels-idx1-ubyte.gz"
            ),
        )
        for split, prefix in (("train", "train"), ("test", "t10k"))
    }
    read_seconds = time.perf_counter() - start
    start = time.perf_counter()
    fashion = kmix.data.load(
        files,
        profile="step",
        imbalance_ratio=100,
        batch_size=batch_size,
        verbose=0,
    )
    build_seconds = time.perf_counter() - start
    del files
    fashion_cache_mb = (
        sum(fashion.class_counts) * np.prod(fashion.input_shape) / 2**20
    )
    print(
        f"Fashion-MNIST step-100: {sum(fashion.class_counts)} training images"
    )
    print(f"  read IDX files:                 {read_seconds:6.2f} s")
    print(
        f"  build (after files are read):   {build_seconds:6.2f} s (target < 3 s)"
    )

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
        cifar_like,
        profile="exp",
        imbalance_ratio=100,
        batch_size=batch_size,
        verbose=0,
    )
    del cifar_like
    cifar_cache_mb = (
        sum(cifar.class_counts) * np.prod(cifar.input_shape) / 2**20
    )

    rss_before = current_rss_mb()
    fashion_rate = pipeline_images_per_second(fashion.train, epochs)
    cifar_rate = pipeline_images_per_second(cifar.train, epochs)
    rss_growth = current_rss_mb() - rss_before
    print(
        f"Training pipelines with augmentation, batch {batch_size}, {epochs} epochs:"
    )
    print(
        f"  Fashion-MNIST step-100 ({fashion.augment}):  {fashion_rate:9.0f} images/s"
    )
    print(
        f"  CIFAR-10-LT-shaped ({cifar.augment}):   {cifar_rate:9.0f} images/s"
    )
    print("Memory:")
    print(
        f"  uint8 training caches: Fashion-MNIST {fashion_cache_mb:.1f} MiB, "
        f"CIFAR-10-LT {cifar_cache_mb:.1f} MiB (float32 copies would be "
        f"{4 * fashion_cache_mb:.1f} MiB and {4 * cifar_cache_mb:.1f} MiB)"
    )
    print(f"  resident memory growth while iterating: {rss_growth:.1f} MiB")
    print(
        f"  peak resident memory of the process so far: {peak_rss_mb():.0f} MiB"
    )

    resnet_rate = resnet32_images_per_second(
        batch_size, resnet_steps, cifar.class_counts
    )
    print(
        f"ResNet-32 training (32x32x3, batch {batch_size}): {resnet_rate:.0f} images/s"
    )
    ratio = min(fashion_rate, cifar_rate) / resnet_rate
    print(f"pipeline / ResNet-32 images/s ratio: {ratio:.1f} (must be >= 10)")
    return ratio


# ---------------------------------------------------------------- streaming

SYNTHETIC_VERSION = 1


def generate_synthetic_jpegs(
    root, num_train, num_classes, test_per_class=10, seed=0, distinct=1000
):
    """Writes the synthetic on-disk dataset once; returns the seconds it took (0 if cached).

    `num_train // num_classes` training JPEGs per class in
    `root/train/cXXX/` and `test_per_class` in `root/test/cXXX/`. `distinct`
    different JPEGs are encoded (tf.io.encode_jpeg, quality 90), each of a
    random size with height and width in [200, 320] (about 256x256 on
    average): a smooth random color field (bicubic upsampling of 6x6 random
    colors) plus Gaussian noise (sigma 12), so that they are about as hard
    to decode per pixel as photographs. File `i` holds JPEG `i % distinct`:
    decoding cost is that of distinct files, and generating 100,000 files
    takes seconds instead of many minutes on 2 cores. `root/dataset.json`
    marks a finished dataset.
    """
    import tensorflow as tf

    spec = {
        "version": SYNTHETIC_VERSION,
        "num_train": num_train,
        "num_classes": num_classes,
        "test_per_class": test_per_class,
        "seed": seed,
        "distinct": distinct,
    }
    marker = os.path.join(root, "dataset.json")
    if os.path.exists(marker):
        with open(marker) as f:
            if json.load(f).get("spec") == spec:
                return 0.0
    start = time.perf_counter()

    def encode(index):
        key = tf.stack([tf.constant(seed, tf.int64), index])
        size = tf.random.stateless_uniform([2], key, 200, 321, dtype=tf.int32)
        colors = tf.random.stateless_uniform([1, 6, 6, 3], key + 1, 0.0, 255.0)
        image = tf.image.resize(colors, size, method="bicubic")[0]
        image += 12.0 * tf.random.stateless_normal(
            tf.concat([size, [3]], 0), key + 2
        )
        return tf.io.encode_jpeg(
            tf.cast(tf.clip_by_value(image, 0, 255), tf.uint8), quality=90
        )

    bank = list(
        tf.data.Dataset.range(distinct)
        .map(encode, num_parallel_calls=tf.data.AUTOTUNE)
        .as_numpy_iterator()
    )
    per_class = num_train // num_classes
    files = total_bytes = 0
    for split, count in (("train", per_class), ("test", test_per_class)):
        for label in range(num_classes):
            folder = os.path.join(root, split, f"c{label:03d}")
            os.makedirs(folder, exist_ok=True)
            for i in range(count):
                content = bank[files % distinct]
                with open(
                    os.path.join(folder, f"{split}_{label:03d}_{i:05d}.jpg"),
                    "wb",
                ) as f:
                    f.write(content)
                files += 1
                total_bytes += len(content)
    seconds = time.perf_counter() - start
    with open(marker, "w") as f:
        json.dump(
            {
                "spec": spec,
                "files": files,
                "bytes": total_bytes,
                "seconds": seconds,
            },
            f,
        )
    return seconds


def write_list_files(root, sizes, num_classes):
    """`train_<n>.txt` for each size (the first n / num_classes images of each
    class) and `test.txt`, in ImageNet-LT's `relative/path.jpg label` format."""
    lists = {}
    for name, split, per_class in [
        (f"train_{n}", "train", n // num_classes) for n in sizes
    ] + [("test", "test", None)]:
        lines = []
        for label in range(num_classes):
            folder = os.path.join(root, split, f"c{label:03d}")
            files = sorted(os.listdir(folder))[:per_class]
            lines += [
                f"{split}/c{label:03d}/{file} {label}\n" for file in files
            ]
        lists[name] = os.path.join(root, f"{name}.txt")
        with open(lists[name], "w") as f:
            f.writelines(lines)
    return lists


def _streamed(list_file, batch_size, image_size):
    import kmix

    test_file = os.path.join(os.path.dirname(list_file), "test.txt")
    return kmix.data.load(
        None,
        lists={"train": list_file, "test": test_file},
        profile="none",
        batch_size=batch_size,
        image_size=image_size,
        verbose=0,
    )


def measure_streaming(list_file, batches, batch_size, image_size):
    """One process's figures for one list: images/s and resident memory."""
    import tensorflow as tf  # noqa: F401 (imported before the first RSS reading)

    rss_start = current_rss_mb()
    start = time.perf_counter()
    data = _streamed(list_file, batch_size, image_size)
    open_seconds = time.perf_counter() - start
    rss_open = current_rss_mb()
    iterator = iter(data.train.repeat())
    for _ in range(10):  # warm-up: files opened, AUTOTUNE settled
        next(iterator)
    images, start = 0, time.perf_counter()
    for _ in range(batches):
        _, labels = next(iterator)
        images += int(labels.shape[0])
    return {
        "images": len(data.train_files),
        "decoded_gib": data.decoded_bytes / 2**30,
        "open_seconds": open_seconds,
        "images_per_second": images / (time.perf_counter() - start),
        "rss_after_import_mb": rss_start,
        "rss_after_open_mb": rss_open,
        "rss_end_mb": current_rss_mb(),
        "peak_rss_mb": peak_rss_mb(),
    }


def measure_resnet50(list_file, steps, batch_size, image_size, rounds=3):
    """Images/s of ResNet-50 training on random in-memory batches and on streamed ones.

    The two inputs alternate for `rounds` rounds of `steps` steps each, so
    that a change in the load of a shared machine hits both; returns the
    median rate of each input and the rates of every round.
    """
    import keras
    import numpy as np
    import tensorflow as tf

    from kmix.experiment import building

    data = _streamed(list_file, batch_size, image_size)
    keras.utils.set_random_seed(0)
    model = building.resnet50(
        data.num_classes,
        data.input_shape,
        data.class_counts,
        mix_after=["conv3_block4_out"],
        weight_decay=5e-4,
        strength=0.5,
        seed=0,
    )
    model.compile(
        keras.optimizers.SGD(0.1, momentum=0.9),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.RandomState(0)
    batch = (
        rng.uniform(size=(batch_size,) + data.input_shape).astype("float32"),
        rng.randint(0, data.num_classes, size=batch_size).astype("int32"),
    )
    inputs = {
        "in_memory": tf.data.Dataset.from_tensors(batch).repeat(),
        "streamed": data.train.repeat(),
    }
    for dataset in inputs.values():
        model.fit(
            dataset, steps_per_epoch=2, epochs=1, verbose=0
        )  # trace, warm up
    rounds_rates = {name: [] for name in inputs}
    for _ in range(rounds):
        for name, dataset in inputs.items():
            start = time.perf_counter()
            model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
            rounds_rates[name].append(
                steps * batch_size / (time.perf_counter() - start)
            )
    result = {
        name: float(np.median(values)) for name, values in rounds_rates.items()
    }
    result["rounds"] = rounds_rates
    return result


def _child(case, list_file):
    """Runs one measurement in a fresh process; returns its JSON result."""
    command = [
        sys.executable,
        os.path.abspath(__file__),
        f"--child={case}",
        f"--child_list={list_file}",
    ]
    for name in (
        "streaming_batches",
        "streaming_batch_size",
        "image_size",
        "resnet50_steps",
        "resnet50_rounds",
    ):
        command.append(f"--{name}={flags.FLAGS[name].value}")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        command, capture_output=True, text=True, env=env, check=False
    )
    if result.returncode:
        raise RuntimeError(
            f"{case} measurement failed:\n{result.stderr[-3000:]}"
        )
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_streaming():
    """Generates the on-disk dataset (once), measures each size and ResNet-50; prints a report."""
    FLAGS = flags.FLAGS
    sizes = [int(size) for size in FLAGS.streaming_sizes]
    root = os.path.join(
        FLAGS.streaming_dir, f"jpeg_{max(sizes)}_{FLAGS.streaming_classes}"
    )
    print(f"Synthetic JPEG dataset in {root}:")
    seconds = generate_synthetic_jpegs(
        root, max(sizes), FLAGS.streaming_classes
    )
    with open(os.path.join(root, "dataset.json")) as f:
        info = json.load(f)
    print(
        f"  {info['files']} files, {info['bytes'] / 2**30:.2f} GiB, "
        + (
            f"generated in {seconds:.0f} s"
            if seconds
            else f"cached (generated in {info['seconds']:.0f} s)"
        )
    )
    lists = write_list_files(root, sizes, FLAGS.streaming_classes)
    results = {}
    for size in sizes:
        results[size] = _child("streaming", lists[f"train_{size}"])
    print(
        f"Streaming path, random-resized crops to {FLAGS.image_size}x{FLAGS.image_size}, "
        f"batch {FLAGS.streaming_batch_size}, {FLAGS.streaming_batches} timed batches "
        "(one fresh process per size):"
    )
    print(
        "  images  decoded size  open list  images/s  RSS after open  peak RSS"
    )
    for size, r in results.items():
        print(
            f"  {r['images']:6d}  {r['decoded_gib']:8.1f} GiB  {r['open_seconds']:7.2f} s"
            f"  {r['images_per_second']:8.0f}  {r['rss_after_open_mb']:10.0f} MiB"
            f"  {r['peak_rss_mb']:5.0f} MiB"
        )
    peaks = [r["peak_rss_mb"] for r in results.values()]
    growth = max(peaks) / min(peaks) - 1
    print(
        f"  peak resident memory, largest over smallest size: +{100 * growth:.1f} % "
        "(target <= 10 %)"
    )
    if not FLAGS.resnet50_steps:
        return {"sizes": results, "peak_rss_growth": growth}
    rates = _child("resnet50", lists[f"train_{min(sizes)}"])
    slowest = min(r["images_per_second"] for r in results.values())
    print(
        f"ResNet-50 training ({FLAGS.image_size}x{FLAGS.image_size}, batch "
        f"{FLAGS.streaming_batch_size}, MajorMix after conv3_block4_out), median of "
        f"{FLAGS.resnet50_rounds} alternating rounds of {FLAGS.resnet50_steps} steps: "
        f"{rates['in_memory']:.1f} images/s on in-memory random batches, "
        f"{rates['streamed']:.1f} images/s on streamed batches"
    )
    for name, values in rates["rounds"].items():
        print(
            f"  {name} rounds: " + ", ".join(f"{value:.2f}" for value in values)
        )
    print(
        f"streaming pipeline / ResNet-50 images/s: {slowest / rates['in_memory']:.1f} "
        "(must be >= 1)"
    )
    return {"sizes": results, "resnet50": rates, "peak_rss_growth": growth}


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    FLAGS = flags.FLAGS
    if FLAGS.child:
        if FLAGS.child == "streaming":
            result = measure_streaming(
                FLAGS.child_list,
                FLAGS.streaming_batches,
                FLAGS.streaming_batch_size,
                FLAGS.image_size,
            )
        else:
            result = measure_resnet50(
                FLAGS.child_list,
                FLAGS.resnet50_steps,
                FLAGS.streaming_batch_size,
                FLAGS.image_size,
                FLAGS.resnet50_rounds,
            )
        print(json.dumps(result))
        return
    unknown = sorted(set(FLAGS.cases) - {"in_memory", "streaming"})
    if unknown:
        raise app.UsageError(
            f"--cases must list in_memory and/or streaming; got {unknown}."
        )
    if "in_memory" in FLAGS.cases:
        if not os.path.isdir(FASHION_MNIST_DIR):
            raise app.UsageError(
                f"{FASHION_MNIST_DIR} is missing: apt-get install dataset-fashion-mnist"
            )
        run(FLAGS.epochs, FLAGS.batch_size, FLAGS.resnet_steps)
    if "streaming" in FLAGS.cases:
        run_streaming()


if __name__ == "__main__":
    define_flags()
    app.run(main)
