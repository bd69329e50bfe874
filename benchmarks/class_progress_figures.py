"""Paper-style per-class figures from a real run, with and without `MajorMix`.

Trains `kmix.models.small_cnn` on step-imbalanced Fashion-MNIST (5 classes
of 6000 images, 5 of 60: imbalance ratio 100) twice, once as a plain network
(a `MixModel` without `MajorMix`, which trains exactly like a plain
`keras.Model`) and once with `MajorMix` after the first stage, recording
`kmix.callbacks.ClassProgress` (training accuracy on the batches as seen,
feature-gradient norms of the penultimate features, test accuracy per class
from the validation pass). It writes, under `--out`:

- `<run>/class_progress.csv|json`: the recorded series of each run;
- `train_accuracy_<run>.png`, `grad_norm_<run>.png`: the two curves of
  "Procrustean Training for Imbalanced Deep Learning" (Ye, Zhan & Chao,
  ICCV 2021) for each run;
- `test_accuracy_bars.png`, `class_histogram.png`,
  `confusion_<run>.png`.

Usage:

    python benchmarks/class_progress_figures.py --epochs=12 --out=docs/results/diagnostics
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

FLAGS = flags.FLAGS


def define_flags():
    flags.DEFINE_integer("epochs", 12, "Training epochs of each run.")
    flags.DEFINE_float("train_fraction", 1.0, "Fraction of each class's training count.")
    flags.DEFINE_float("strength", 0.5, "MajorMix strength of the mixing run.")
    flags.DEFINE_integer("batch_size", 128, "Batch size.")
    flags.DEFINE_integer("seed", 0, "Seed of data selection and weights.")
    flags.DEFINE_string("out", "docs/results/diagnostics", "Output directory.")


def train_run(data, mix, epochs, strength, seed, out_dir):
    """Trains one run; returns `(progress, test_labels, test_scores)`."""
    import keras
    import numpy as np

    import kmix

    keras.utils.set_random_seed(seed)
    model = kmix.models.small_cnn(
        data.num_classes, input_shape=data.input_shape, class_counts=data.class_counts,
        mix_at=("stage1",) if mix else (), strength=strength, seed=seed,
    )
    model.compile(
        keras.optimizers.Adam(1e-3),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[kmix.metrics.BalancedAccuracy(data.num_classes)],
    )
    progress = kmix.callbacks.ClassProgress(output_dir=out_dir)
    model.fit(data.train, epochs=epochs, validation_data=data.test, callbacks=[progress],
              verbose=2)
    labels, scores = [], []
    for x, y in data.test:
        scores.append(np.asarray(model.predict_on_batch(x)))
        labels.append(np.asarray(y))
    return progress, np.concatenate(labels), np.concatenate(scores)


def make_figures(epochs, train_fraction, strength, batch_size, seed, out):
    import kmix
    from kmix.callbacks.class_progress import per_class_recall

    data = kmix.data.load(
        "fashion_mnist", profile="step", imbalance_ratio=100, batch_size=batch_size,
        seed=seed, train_fraction=train_fraction, verbose=0,
    )
    counts = list(data.class_counts)
    kmix.plots.plot_class_histogram(counts, os.path.join(out, "class_histogram.png"))
    test_accuracy = {}
    for run, mix in (("plain", False), ("majormix", True)):
        progress, labels, scores = train_run(
            data, mix, epochs, strength, seed, os.path.join(out, run))
        title = "with MajorMix" if mix else "without MajorMix"
        kmix.plots.plot_class_accuracy(
            progress, os.path.join(out, f"train_accuracy_{run}.png"), title=title)
        kmix.plots.plot_feature_gradients(
            progress, os.path.join(out, f"grad_norm_{run}.png"), title=title)
        kmix.plots.plot_confusion_matrix(
            labels, scores, os.path.join(out, f"confusion_{run}.png"), class_counts=counts,
            title=f"test confusion matrix, {title}")
        test_accuracy[title] = per_class_recall(labels, scores, data.num_classes)
        print(run, "per-class test accuracy:", [round(float(a), 3) for a in test_accuracy[title]])
    kmix.plots.plot_accuracy_bars(
        test_accuracy, os.path.join(out, "test_accuracy_bars.png"), class_counts=counts)


def main(argv):
    del argv
    make_figures(FLAGS.epochs, FLAGS.train_fraction, FLAGS.strength, FLAGS.batch_size,
                 FLAGS.seed, FLAGS.out)


if __name__ == "__main__":
    define_flags()
    app.run(main)
