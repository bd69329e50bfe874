"""`kmix.callbacks.ClassProgress`: per-class accuracy and feature-gradient norms."""

import csv
import json
import os
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import kmix
from kmix.classes import per_class_recall as _per_class_recall
from kmix.records import history_from_records
from kmix.records import read_records

COUNTS = [60, 60, 6, 6]


def per_class_recall(labels, scores, num_classes):
    return _per_class_recall(labels, np.argmax(scores, axis=-1), num_classes)


def _data(n=64, seed=0):
    rng = np.random.RandomState(seed)
    y = rng.choice(4, size=n, p=np.array(COUNTS) / sum(COUNTS)).astype("int32")
    y[:4] = [0, 1, 2, 3]  # every class present
    centers = rng.normal(size=(4, 8))
    x = (centers[y] + rng.normal(size=(n, 8))).astype("float32")
    return x, y


def _model(learning_rate=0.0, strength=0.0, jit_compile=False):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8,))
    h = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    h = kmix.MajorMix(strength=strength, seed=1, name="mix")(h)
    outputs = keras.layers.Dense(4, name="logits")(h)
    model = kmix.MixModel(inputs, outputs, class_counts=COUNTS)
    model.compile(
        keras.optimizers.SGD(learning_rate),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    return model


def _reference_norms(model, x, y, class_weights=(1, 1, 1, 1)):
    """Per-class mean of ||d loss_i / d h_i|| with a GradientTape."""
    features = keras.Model(model.input, model.get_layer("mix").output)(x)
    logits_layer = model.get_layer("logits")
    features = tf.constant(features)
    with tf.GradientTape() as tape:
        tape.watch(features)
        logits = tf.matmul(features, logits_layer.kernel) + logits_layer.bias
        losses = keras.losses.sparse_categorical_crossentropy(
            y, logits, from_logits=True
        )
        total = tf.reduce_sum(
            losses * tf.gather(tf.constant(class_weights, tf.float32), y)
        )
    norms = np.linalg.norm(tape.gradient(total, features).numpy(), axis=1)
    return np.array([norms[y == c].mean() for c in range(4)])


@pytest.mark.parametrize("jit_compile", [False, True])
def test_gradient_norms_match_gradient_tape(jit_compile):
    x, y = _data()
    model = _model(
        jit_compile=jit_compile
    )  # learning rate 0: weights stay fixed
    model.set_class_loss_weights([1.0, 1.0, 3.0, 3.0])
    expected = _reference_norms(model, x, y, class_weights=(1, 1, 3, 3))
    progress = kmix.callbacks.ClassProgress()
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=2,
        shuffle=False,
        verbose=0,
        callbacks=[progress],
    )
    epochs, norms = progress.series("feature_grad_norm")
    np.testing.assert_array_equal(epochs, [1, 2])
    np.testing.assert_allclose(norms, [expected, expected], rtol=1e-5)


def test_gradient_norms_under_mirrored_strategy(two_cpu_strategy):
    x, y = _data()
    assert two_cpu_strategy.num_replicas_in_sync == 2
    with two_cpu_strategy.scope():
        model = _model()
    expected = _reference_norms(model, x, y)
    progress = kmix.callbacks.ClassProgress()
    model.fit(
        x,
        y,
        batch_size=32,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[progress],
    )
    np.testing.assert_allclose(
        progress.series("feature_grad_norm")[1][0], expected, rtol=1e-5
    )
    np.testing.assert_allclose(
        progress.series("train_accuracy")[1][0],
        per_class_recall(y, model.predict(x, verbose=0), 4),
        rtol=1e-6,
    )


def test_train_accuracy_sees_the_mixed_batches():
    x, y = _data()
    clean = _model(strength=0.0)
    mixed = _model(strength=1.0)
    expected = per_class_recall(y, clean.predict(x, verbose=0), 4)
    progress_clean = kmix.callbacks.ClassProgress(gradients=False)
    progress_mixed = kmix.callbacks.ClassProgress(gradients=False)
    clean.fit(
        x,
        y,
        batch_size=16,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[progress_clean],
    )
    mixed.fit(
        x,
        y,
        batch_size=16,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[progress_mixed],
    )
    clean_acc = progress_clean.series("train_accuracy")[1][0]
    mixed_acc = progress_mixed.series("train_accuracy")[1][0]
    np.testing.assert_allclose(clean_acc, expected, rtol=1e-6)
    # Minor classes (2, 3) are never mixed, so their batch accuracy is unchanged.
    np.testing.assert_allclose(mixed_acc[2:], expected[2:], rtol=1e-6)
    assert not np.allclose(mixed_acc[:2], expected[:2])
    assert "feature_grad_norm" not in progress_mixed.history


def test_clean_pass_over_a_dataset_takes_the_same_per_class_sample_as_arrays():
    x, y = _data()
    model = _model(learning_rate=0.0)
    batches = tf.data.Dataset.from_tensor_slices((x, y)).batch(7)
    progress = kmix.callbacks.ClassProgress(
        clean_data=batches, clean_per_class=3, gradients=False
    )
    model.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[progress])
    order = np.random.RandomState(0).permutation(len(y))
    sample = np.sort(
        np.concatenate([order[y[order] == c][:3] for c in range(4)])
    )
    np.testing.assert_allclose(
        progress.series("clean_accuracy")[1][0],
        per_class_recall(y[sample], model.predict(x[sample], verbose=0), 4),
        rtol=1e-6,
    )


def test_short_fit_writes_files_and_history(tmp_path):
    x, y = _data()
    x_val, y_val = _data(48, seed=1)
    model = _model(learning_rate=0.1, strength=0.5)
    progress = kmix.callbacks.ClassProgress(
        clean_data=(x, y),
        clean_every=2,
        clean_per_class=3,
        output_dir=str(tmp_path / "out"),
        log_dir=str(tmp_path / "tb"),
    )
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=4,
        verbose=0,
        callbacks=[progress],
        validation_data=(x_val, y_val),
    )
    history = progress.history
    assert set(history) == {
        "train_accuracy",
        "feature_grad_norm",
        "clean_accuracy",
        "val_accuracy",
    }
    assert history["train_accuracy"]["epoch"] == [1, 2, 3, 4]
    assert history["clean_accuracy"]["epoch"] == [2, 4]
    # The last validation and clean values are those of the final weights.
    np.testing.assert_allclose(
        history["val_accuracy"]["value"][-1],
        per_class_recall(y_val, model.predict(x_val, verbose=0), 4),
        rtol=1e-6,
    )
    rng_sample = np.random.RandomState(0).permutation(len(y))
    sample = np.sort(
        np.concatenate([rng_sample[y[rng_sample] == c][:3] for c in range(4)])
    )
    np.testing.assert_allclose(
        history["clean_accuracy"]["value"][-1],
        per_class_recall(y[sample], model.predict(x[sample], verbose=0), 4),
        rtol=1e-6,
    )
    assert np.all(np.asarray(history["feature_grad_norm"]["value"]) > 0)

    csv_path = tmp_path / "out" / "class_progress.csv"
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "class", "quantity", "value"]
    assert (
        len(rows) == 4 * (4 + 4 + 4) + 2 * 4
    )  # 3 quantities x 4 epochs + 2 clean passes
    assert len(rows) == len(progress.records)
    with open(tmp_path / "out" / "class_progress.json") as f:
        content = json.load(f)
    assert content["class_counts"] == COUNTS
    assert len(content["records"]) == len(rows)
    for path in (csv_path, tmp_path / "out" / "class_progress.json"):
        records, _ = read_records(str(path))
        rebuilt = history_from_records(records)
        for quantity in history:
            assert rebuilt[quantity]["epoch"] == history[quantity]["epoch"]
            np.testing.assert_allclose(
                rebuilt[quantity]["value"],
                history[quantity]["value"],
                rtol=1e-6,
            )
    assert any(
        name.startswith("events.out.tfevents")
        for name in os.listdir(tmp_path / "tb")
    )


def test_hooks_are_removed_after_fit():
    x, y = _data()
    model = _model(learning_rate=0.1)
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=1,
        verbose=0,
        callbacks=[kmix.callbacks.ClassProgress()],
    )
    assert model.batch_observers == ()
    assert model.feature_probes == ()
    history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_no_attribute_of_a_layer_or_the_model_is_replaced():
    x, y = _data()
    model = _model(learning_rate=0.1)
    model.fit(
        x, y, batch_size=16, epochs=1, verbose=0
    )  # Keras' own first-fit state
    layers = [model] + model.layers

    def attributes():
        return [dict(vars(layer)) for layer in layers]

    before = attributes()
    replaced = []

    class Spy(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            for layer in layers:
                if (
                    "call" in vars(layer)
                    or type(layer).call is not before_types[id(layer)]
                ):
                    replaced.append(layer.name)

    before_types = {id(layer): type(layer).call for layer in layers}
    progress = kmix.callbacks.ClassProgress()
    model.fit(
        x, y, batch_size=16, epochs=1, verbose=0, callbacks=[progress, Spy()]
    )
    assert replaced == []
    assert np.all(progress.series("feature_grad_norm")[1] > 0)
    after = attributes()
    for layer, old, new in zip(layers, before, after):
        assert set(new) == set(old), (layer.name, set(new) ^ set(old))
        for key, value in old.items():  # fit's retraced functions aside
            if callable(value) and not key.endswith("_function"):
                assert new[key] is value, (layer.name, key)


def _probed_model(probes=("features",)):
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8,))
    h = keras.layers.Dense(16, activation="relu", name="hidden")(inputs)
    for name in probes:
        h = kmix.layers.FeatureProbe(name=name)(h)
    h = kmix.MajorMix(strength=0.0, seed=1, name="mix")(h)
    outputs = keras.layers.Dense(4, name="logits")(h)
    model = kmix.MixModel(inputs, outputs, class_counts=COUNTS)
    model.compile(
        keras.optimizers.SGD(0.0),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    return model


def test_model_feature_probe_is_read_and_left_without_observers():
    x, y = _data()
    model = _probed_model()
    # The probe sits before MajorMix at strength 0, i.e. on the classifier's input.
    expected = _reference_norms(model, x, y)
    progress = kmix.callbacks.ClassProgress()
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[progress],
    )
    np.testing.assert_allclose(
        progress.series("feature_grad_norm")[1][0], expected, rtol=1e-5
    )
    assert model.get_layer("features").gradient_observers == ()
    assert model.feature_probes == ()  # nothing was inserted


def test_several_probes_need_feature_layer():
    x, y = _data()
    model = _probed_model(probes=("first", "second"))
    with pytest.raises(ValueError, match="feature_layer=<name>"):
        model.fit(
            x,
            y,
            epochs=1,
            verbose=0,
            callbacks=[kmix.callbacks.ClassProgress()],
        )
    progress = kmix.callbacks.ClassProgress(feature_layer="second")
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[progress],
    )
    np.testing.assert_allclose(
        progress.series("feature_grad_norm")[1][0],
        _reference_norms(model, x, y),
        rtol=1e-5,
    )


class ProbedNet(kmix.MixModel):
    def __init__(self, probe=True, **kwargs):
        super().__init__(class_counts=COUNTS, **kwargs)
        self.hidden = keras.layers.Dense(16, activation="relu")
        self.probe = kmix.layers.FeatureProbe() if probe else None
        self.logits = keras.layers.Dense(4)

    def call(self, inputs, training=False):
        h = self.hidden(inputs)
        if self.probe is not None:
            h = self.probe(h, training=training)
        return self.logits(h)


def test_subclassed_model_with_probe_records_gradients_without_probe_refuses():
    x, y = _data()
    keras.utils.set_random_seed(2)
    model = ProbedNet()
    model.compile(
        keras.optimizers.SGD(0.0),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    model(x[:1])
    features = tf.constant(model.hidden(x))
    with tf.GradientTape() as tape:
        tape.watch(features)
        losses = keras.losses.sparse_categorical_crossentropy(
            y, model.logits(features), from_logits=True
        )
        total = tf.reduce_sum(losses)
    norms = np.linalg.norm(tape.gradient(total, features).numpy(), axis=1)
    progress = kmix.callbacks.ClassProgress()
    model.fit(
        x,
        y,
        batch_size=16,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[progress],
    )
    np.testing.assert_allclose(
        progress.series("feature_grad_norm")[1][0],
        [norms[y == c].mean() for c in range(4)],
        rtol=1e-5,
    )
    plain = ProbedNet(probe=False)
    plain.compile(
        "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    plain(x[:1])
    with pytest.raises(TypeError, match="gradients=False"):
        plain.fit(
            x,
            y,
            epochs=1,
            verbose=0,
            callbacks=[kmix.callbacks.ClassProgress()],
        )
    progress = kmix.callbacks.ClassProgress(gradients=False)
    plain.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[progress])
    assert progress.series("train_accuracy")[1].shape == (1, 4)


def test_feature_layer_by_name_and_errors():
    x, y = _data()
    model = _model()
    progress = kmix.callbacks.ClassProgress(feature_layer="mix")
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[progress])
    # The input of "mix" is the hidden ReLU output; a gradient reached it.
    assert np.all(progress.series("feature_grad_norm")[1] > 0)
    with pytest.raises(ValueError, match="feature_layer='nope'"):
        model.fit(
            x,
            y,
            epochs=1,
            verbose=0,
            callbacks=[kmix.callbacks.ClassProgress(feature_layer="nope")],
        )
    plain = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    plain.compile(
        "sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    with pytest.raises(TypeError, match="MixModel.from_model"):
        plain.fit(
            x,
            y,
            epochs=1,
            verbose=0,
            callbacks=[kmix.callbacks.ClassProgress()],
        )
    with pytest.raises(ValueError, match="clean_every=0"):
        kmix.callbacks.ClassProgress(clean_every=0)


if __name__ == "__main__":
    import sys

    import pytest

    sys.exit(pytest.main([__file__, "-q"]))
