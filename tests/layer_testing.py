"""Contract checks shared by the tests of kmix's layers, metrics and losses.

In the spirit of Keras' own `run_layer_test` (keras/src/testing/test_case.py):
one call checks what every public kmix layer, metric or loss promises,

- `run_layer_test`: `get_config()` returns the constructor arguments and
  `from_config` rebuilds an equal layer; the layer is registered as
  `kmix>Name` and survives `serialize_keras_object`; output shape and dtype,
  eager and symbolic (`compute_output_shape` too); weight counts; seeded
  determinism (same seed, same draws; another seed, other draws) or plain
  determinism; inference identity where it applies; the mixed-precision
  output dtype; a `.keras` file round trip (same config, same weights, same
  predictions).
- `run_metric_test`: config and registration; the result of given batches;
  results that do not depend on how the data is split into batches;
  `reset_state`; a `.keras` file round trip of a model compiled with it
  (the same `evaluate` numbers after loading).
- `run_loss_test`: config and registration; the value for given data;
  `reduction="none"` gives per-example losses whose mean is the default
  reduction and whose weighted mean is the `sample_weight` result; integer
  and one-hot labels agree; a `.keras` file round trip.

Each check fails with a message that names the class and the contract.
"""

import os
import warnings

import keras
import numpy as np

REGISTERED_PACKAGE = "kmix"


def _numpy(value):
    if isinstance(value, dict):
        return {key: _numpy(item) for key, item in value.items()}
    return np.asarray(keras.ops.convert_to_numpy(value))


def _plain(value):
    """Config values with tuples as lists and numpy scalars as Python ones."""
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def _shape(value):
    if isinstance(value, dict):
        return {key: _shape(item) for key, item in value.items()}
    return tuple(value.shape)


def _dtype(value):
    if isinstance(value, dict):
        return {key: _dtype(item) for key, item in value.items()}
    return keras.backend.standardize_dtype(value.dtype)


def _equal(a, b):
    a, b = _numpy(a), _numpy(b)
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return a.shape == b.shape and np.array_equal(a, b, equal_nan=True)


def _map(value, function):
    if isinstance(value, dict):
        return {key: function(item) for key, item in value.items()}
    return function(value)


def check_config(obj, init_kwargs, rebuild=None):
    """`get_config()` holds the constructor arguments, `from_config` rebuilds.

    Also checks the registration (`kmix>ClassName`) and a
    `serialize_keras_object` / `deserialize_keras_object` round trip.
    Returns the config.
    """
    cls = type(obj)
    name = cls.__name__
    config = obj.get_config()
    for key, value in init_kwargs.items():
        assert key in config, (
            f"{name}.get_config() lacks the constructor argument {key!r}: "
            f"{sorted(config)}"
        )
        found, expected = _plain(config[key]), _plain(value)
        if isinstance(found, dict) and "class_name" in found:
            # A Keras object given by name ("he_normal") or as an object is
            # serialized as a dict: compare the class names.
            given = value if isinstance(value, str) else type(value).__name__
            found, expected = (
                name_.replace("_", "").lower()
                for name_ in (found["class_name"], given)
            )
        if not callable(value):
            assert found == expected, (
                f"{name}.get_config()[{key!r}] is {config[key]!r}, "
                f"but the layer was built with {value!r}"
            )
    clone = (rebuild or cls.from_config)(config)
    assert type(clone) is cls
    assert _plain(clone.get_config()) == _plain(config), (
        f"{name}.from_config(get_config()) does not give the same config"
    )
    registered = f"{REGISTERED_PACKAGE}>{name}"
    assert keras.saving.get_registered_name(cls) == registered, (
        f"{name} is not registered as {registered!r}: decorate it with "
        '@keras.saving.register_keras_serializable(package="kmix")'
    )
    serialized = keras.saving.serialize_keras_object(obj)
    assert serialized["registered_name"] == registered
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is cls
    assert _plain(restored.get_config()) == _plain(config)
    return config


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    tmp_path,
    call_kwargs=None,
    expected_output_shape=None,
    expected_output_dtype="float32",
    expected_num_trainable_weights=None,
    expected_num_non_trainable_weights=None,
    expected_mixed_precision_dtype=None,
    random=False,
    inference_identity=False,
    training_changes_output=None,
    symbolic=True,
    seed_state_saved=False,
):
    """Checks the contracts of a kmix layer; returns the layer it built.

    Args:
        layer_cls: the layer class.
        init_kwargs: constructor arguments; `random=True` layers need `seed`.
        input_data: a numpy array, or a dict of them, `(batch, ...)`.
        tmp_path: a directory for the `.keras` file (pytest's `tmp_path`).
        call_kwargs: extra arguments of a training call (e.g. `labels`,
            `class_counts` for `MajorMix`).
        expected_output_shape: the shape (or dict of shapes) of the output
            for `input_data`; None for the input's shape.
        expected_output_dtype: the output dtype (or dict of dtypes).
        expected_num_trainable_weights,
        expected_num_non_trainable_weights: counts after building, or None.
        expected_mixed_precision_dtype: the output dtype under the
            `"mixed_float16"` policy for float16 inputs, or None to skip.
        random: whether a training call draws random numbers from the
            layer's seed.
        inference_identity: whether `training=False` returns the inputs.
        training_changes_output: for `random` layers, whether a training
            call must differ from the inputs (None: not checked).
        symbolic: whether to check a call on `keras.Input`s and a `.keras`
            file of a functional model around the layer.
        seed_state_saved: for `random` layers with `symbolic`, whether the
            `.keras` file keeps the state of the random stream, so that the
            loaded layer draws what the saved one would have drawn next.
    """
    name = layer_cls.__name__
    call_kwargs = dict(call_kwargs or {})
    if expected_output_shape is None:
        expected_output_shape = _shape(input_data)

    layer = layer_cls(**init_kwargs)
    check_config(layer, init_kwargs)

    # Eager calls: shapes, dtypes, weights.
    trained = layer(input_data, training=True, **call_kwargs)
    assert _shape(trained) == expected_output_shape, (
        f"{name}: training output shape {_shape(trained)}, "
        f"expected {expected_output_shape}"
    )
    assert _dtype(trained) == expected_output_dtype, (
        f"{name}: training output dtype {_dtype(trained)}, "
        f"expected {expected_output_dtype}"
    )
    inferred = layer(input_data, training=False)
    if inference_identity:
        assert _equal(inferred, input_data), (
            f"{name}: training=False must return the inputs unchanged"
        )
    else:
        assert _shape(inferred) == expected_output_shape
        assert _dtype(inferred) == expected_output_dtype
    if expected_num_trainable_weights is not None:
        assert len(layer.trainable_weights) == expected_num_trainable_weights, (
            f"{name}: {len(layer.trainable_weights)} trainable weights, "
            f"expected {expected_num_trainable_weights}"
        )
    if expected_num_non_trainable_weights is not None:
        found = len(layer.non_trainable_weights)
        assert found == expected_num_non_trainable_weights, (
            f"{name}: {found} non-trainable weights, "
            f"expected {expected_num_non_trainable_weights}"
        )

    # Determinism.
    if random:
        assert "seed" in init_kwargs, (
            f"{name}: a random layer test needs a seed"
        )
        first = layer_cls(**init_kwargs)(
            input_data, training=True, **call_kwargs
        )
        again = layer_cls(**init_kwargs)(
            input_data, training=True, **call_kwargs
        )
        assert _equal(first, again), (
            f"{name}: two layers with seed={init_kwargs['seed']} gave "
            "different training outputs"
        )
        other_seed = dict(init_kwargs, seed=init_kwargs["seed"] + 1)
        other = layer_cls(**other_seed)(
            input_data, training=True, **call_kwargs
        )
        assert not _equal(first, other), (
            f"{name}: seeds {init_kwargs['seed']} and {other_seed['seed']} "
            "gave the same training output"
        )
        if training_changes_output is not None:
            changed = not _equal(first, input_data)
            assert changed == training_changes_output, (
                f"{name}: a training call "
                f"{'left' if not changed else 'changed'} the inputs"
            )
    else:
        again = layer(input_data, training=True, **call_kwargs)
        assert _equal(trained, again), (
            f"{name}: two training calls on the same data differ"
        )

    if expected_mixed_precision_dtype is not None:
        _check_mixed_precision(
            layer_cls,
            init_kwargs,
            input_data,
            call_kwargs,
            expected_mixed_precision_dtype,
        )

    if symbolic:
        _check_symbolic_and_keras_file(
            layer_cls,
            init_kwargs,
            input_data,
            tmp_path,
            expected_output_shape,
            call_kwargs if seed_state_saved else None,
        )
    return layer


def _check_mixed_precision(
    layer_cls, init_kwargs, input_data, call_kwargs, expected_dtype
):
    name = layer_cls.__name__
    layer = layer_cls(**dict(init_kwargs, dtype="mixed_float16"))
    half = _map(
        input_data,
        lambda x: (
            x.astype("float16") if np.issubdtype(x.dtype, np.floating) else x
        ),
    )
    for training in (True, False):
        extra = call_kwargs if training else {}
        output = layer(half, training=training, **extra)
        assert _dtype(output) == expected_dtype, (
            f"{name} under mixed_float16 (training={training}): output dtype "
            f"{_dtype(output)}, expected {expected_dtype}"
        )


def _symbolic_inputs(input_data):
    if isinstance(input_data, dict):
        return {
            key: keras.Input(value.shape[1:], dtype=value.dtype.name, name=key)
            for key, value in input_data.items()
        }
    return keras.Input(input_data.shape[1:], dtype=input_data.dtype.name)


def _check_symbolic_and_keras_file(
    layer_cls,
    init_kwargs,
    input_data,
    tmp_path,
    expected_output_shape,
    seed_call_kwargs=None,
):
    name = layer_cls.__name__
    inputs = _symbolic_inputs(input_data)
    layer = layer_cls(**init_kwargs)
    outputs = layer(inputs)

    def batchless(shape):
        return (None,) + tuple(shape[1:])

    expected = (
        _map(expected_output_shape, batchless)
        if isinstance(expected_output_shape, dict)
        else batchless(expected_output_shape)
    )
    symbolic = _map(outputs, lambda x: tuple(x.shape))
    assert symbolic == expected, (
        f"{name}: symbolic output shape {symbolic}, expected {expected}"
    )
    computed = layer.compute_output_shape(
        _map(inputs, lambda x: tuple(x.shape))
    )
    computed = (
        _map(computed, tuple) if isinstance(computed, dict) else tuple(computed)
    )
    assert computed == expected, (
        f"{name}.compute_output_shape gives {computed}, expected {expected}"
    )

    model = keras.Model(inputs, outputs)
    if seed_call_kwargs is not None:  # move the random stream on first
        layer(input_data, training=True, **seed_call_kwargs)
    path = os.path.join(str(tmp_path), f"{name}.keras")
    model.save(path)
    loaded = _load_model(path)
    loaded_layer = loaded.get_layer(layer.name)
    assert type(loaded_layer) is layer_cls
    assert _plain(loaded_layer.get_config()) == _plain(layer.get_config()), (
        f"{name}: the config changed in a .keras file round trip"
    )
    assert len(loaded_layer.weights) == len(layer.weights)
    for saved, restored in zip(layer.weights, loaded_layer.weights):
        assert _equal(saved, restored), (
            f"{name}: weight {saved.path} changed in a .keras file round trip"
        )
    assert _equal(
        loaded.predict(input_data, verbose=0),
        model.predict(input_data, verbose=0),
    ), f"{name}: predictions changed in a .keras file round trip"
    if seed_call_kwargs is not None:
        assert _equal(
            loaded_layer(input_data, training=True, **seed_call_kwargs),
            layer(input_data, training=True, **seed_call_kwargs),
        ), f"{name}: the loaded layer draws other numbers than the saved one"


def run_metric_test(
    metric_cls,
    init_kwargs,
    batches,
    expected_result,
    tmp_path,
    rtol=1e-6,
):
    """Checks the contracts of a kmix metric; returns the metric it fed.

    Args:
        metric_cls: the metric class.
        init_kwargs: constructor arguments.
        batches: a list of `(y_true, y_pred)` numpy pairs, fed in order.
        expected_result: the result after all batches: a float, or a dict
            from result name to float (NaN allowed).
        tmp_path: a directory for the `.keras` file.
        rtol: tolerance of the comparisons of results.
    """
    name = metric_cls.__name__
    metric = metric_cls(**init_kwargs)
    check_config(metric, init_kwargs)

    def result(m):
        return _numpy(m.result())

    def close(found, expected):
        if isinstance(expected, dict):
            assert set(found) == set(expected), (
                f"{name}: result keys {sorted(found)}, "
                f"expected {sorted(expected)}"
            )
            for key in expected:
                close(found[key], expected[key])
            return
        np.testing.assert_allclose(
            np.asarray(found, "float64"),
            np.asarray(expected, "float64"),
            rtol=rtol,
            equal_nan=True,
            err_msg=f"{name}: result",
        )

    initial = result(metric)
    for y_true, y_pred in batches:
        metric.update_state(y_true, y_pred)
    close(result(metric), expected_result)

    # A streaming metric: the same data in one batch gives the same result.
    whole = metric_cls(**init_kwargs)
    whole.update_state(
        np.concatenate([np.asarray(y) for y, _ in batches]),
        np.concatenate([np.asarray(p) for _, p in batches]),
    )
    close(result(whole), expected_result)

    metric.reset_state()
    close(result(metric), initial)

    _check_metric_in_keras_file(
        metric_cls, init_kwargs, batches, tmp_path, close
    )
    return metric


def _classifier(num_classes, num_features, class_counts=None):
    """A tiny `kmix.MixModel` (dense, `MajorMix`, dense) giving logits."""
    import kmix

    inputs = keras.Input((num_features,))
    h = keras.layers.Dense(
        8,
        activation="relu",
        kernel_initializer=keras.initializers.GlorotUniform(seed=1),
    )(inputs)
    h = kmix.MajorMix(strength=0.5, seed=0)(h)
    outputs = keras.layers.Dense(
        num_classes, kernel_initializer=keras.initializers.GlorotUniform(seed=2)
    )(h)
    counts = class_counts or [1] * num_classes
    return kmix.MixModel(inputs, outputs, class_counts=counts)


def _load_model(path):
    """`keras.saving.load_model`, quiet about the unused optimizer's state."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", message="Skipping variable loading for optimizer"
        )
        return keras.saving.load_model(path)


def _check_metric_in_keras_file(
    metric_cls, init_kwargs, batches, tmp_path, close
):
    name = metric_cls.__name__
    y = np.concatenate([np.asarray(y) for y, _ in batches])
    num_classes = np.asarray(batches[0][1]).shape[-1]
    x = np.random.RandomState(0).normal(size=(len(y), 6)).astype("float32")
    model = _classifier(num_classes, x.shape[-1])
    model.compile(
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[metric_cls(**init_kwargs)],
    )
    before = model.evaluate(x, y, verbose=0, return_dict=True)
    path = os.path.join(str(tmp_path), f"{name}.keras")
    model.save(path)
    loaded = _load_model(path)
    after = loaded.evaluate(x, y, verbose=0, return_dict=True)
    close(after, before)


def run_loss_test(
    loss_cls,
    init_kwargs,
    y_true,
    y_pred,
    tmp_path,
    expected_value=None,
    rtol=1e-5,
):
    """Checks the contracts of a kmix loss; returns the loss.

    Args:
        loss_cls: the loss class.
        init_kwargs: constructor arguments (without `reduction`).
        y_true: integer labels `(batch,)`.
        y_pred: logits `(batch, num_classes)`, float32.
        tmp_path: a directory for the `.keras` file.
        expected_value: the default-reduction value, or None.
        rtol: tolerance of the comparisons.
    """
    name = loss_cls.__name__
    loss = loss_cls(**init_kwargs)
    check_config(loss, init_kwargs)
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred, "float32")
    num_classes = y_pred.shape[-1]

    value = loss(y_true, y_pred)
    assert _dtype(value) == "float32" and _shape(value) == (), (
        f"{name}: the loss is {_dtype(value)} of shape {_shape(value)}, "
        "expected a float32 scalar"
    )
    value = float(_numpy(value))
    assert np.isfinite(value), f"{name}: the loss is {value}"
    if expected_value is not None:
        np.testing.assert_allclose(
            value, expected_value, rtol=rtol, err_msg=f"{name}: loss value"
        )

    per_example = _numpy(
        loss_cls(**init_kwargs, reduction=None)(y_true, y_pred)
    )
    assert per_example.shape == y_true.shape, (
        f"{name}: reduction=None gives shape {per_example.shape}, "
        f"expected {y_true.shape}"
    )
    np.testing.assert_allclose(
        per_example.mean(),
        value,
        rtol=rtol,
        err_msg=f"{name}: mean of the per-example losses",
    )
    weights = np.linspace(0.5, 2.0, len(y_true)).astype("float32")
    weighted = float(_numpy(loss(y_true, y_pred, sample_weight=weights)))
    np.testing.assert_allclose(
        weighted,
        (per_example * weights).sum() / len(y_true),
        rtol=rtol,
        err_msg=f"{name}: sample_weight",
    )
    one_hot = np.eye(num_classes, dtype="float32")[y_true]
    np.testing.assert_allclose(
        float(_numpy(loss(one_hot, y_pred))),
        value,
        rtol=rtol,
        err_msg=f"{name}: one-hot labels and integer labels disagree",
    )

    # In a .keras file: same loss config, same evaluation.
    x = np.random.RandomState(0).normal(size=(len(y_true), 6)).astype("float32")
    model = _classifier(
        num_classes, x.shape[-1], init_kwargs.get("class_counts")
    )
    model.compile(loss=loss_cls(**init_kwargs))
    path = os.path.join(str(tmp_path), f"{name}.keras")
    model.save(path)
    loaded = _load_model(path)
    assert type(loaded.loss) is loss_cls
    assert _plain(loaded.loss.get_config()) == _plain(loss.get_config())
    np.testing.assert_allclose(
        loaded.evaluate(x, y_true, verbose=0),
        model.evaluate(x, y_true, verbose=0),
        rtol=rtol,
        err_msg=f"{name}: evaluate changed in a .keras file round trip",
    )
    return loss
