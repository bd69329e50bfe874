"""Puts `MajorMix` layers after named layers of an existing functional model."""

import keras

from kmix.layers.major_mix import MajorMix


def insert_major_mix(model, mix_after, **mix_kwargs):
    """The graph of `model` with a `kmix.MajorMix` after each layer of `mix_after`.

    Every layer of `model` is shared, not copied, so its weights (pre-trained
    ones included, e.g. a `keras.applications.ResNet50` with
    `weights="imagenet"`) are the weights of the result. The layer after
    `name` is a `MajorMix` named `mix_after_<name>`; its output replaces the
    named layer's output everywhere downstream. In inference `MajorMix` is the
    identity, so the result predicts exactly what `model` predicts.

    `kmix.MixModel.from_model(model, class_counts, mix_after=[...])` calls
    this and wraps the result in a `MixModel`.

    Args:
        model: a functional (or `Sequential`) `keras.Model` with defined
            inputs, e.g. any `keras.applications` model.
        mix_after: a non-empty list of names of top-level layers of `model`,
            each with a single output tensor (e.g. ResNet50's
            `"conv3_block4_out"`).
        **mix_kwargs: arguments of every `MajorMix` (`strength`,
            `major_threshold`, `seed`, ...). A `seed` is offset by the
            layer's position in `mix_after`, so each layer draws its own
            stream.

    Returns:
        `(inputs, outputs)` of the new graph.

    Example:

    >>> base = keras.applications.MobileNetV3Small(
    ...     input_shape=(32, 32, 3), weights=None, classes=4
    ... )
    >>> inputs, outputs = kmix.models.insert_major_mix(
    ...     base, ["expanded_conv_project_bn"], strength=0.5
    ... )
    >>> keras.Model(inputs, outputs).get_layer(
    ...     "mix_after_expanded_conv_project_bn"
    ... )
    <MajorMix name=mix_after_expanded_conv_project_bn, built=True>
    """
    names = _check_mix_after(model, mix_after)
    mix_layers = {}
    for index, name in enumerate(names):
        kwargs = dict(mix_kwargs)
        if kwargs.get("seed") is not None:
            kwargs["seed"] = kwargs["seed"] + index
        mix_layers[name] = MajorMix(name=f"mix_after_{name}", **kwargs)

    def call_function(layer, *args, **kwargs):
        output = layer(*args, **kwargs)
        mix = mix_layers.get(layer.name)
        return output if mix is None else mix(output)

    cloned = keras.models.clone_model(
        model, clone_function=lambda layer: layer, call_function=call_function
    )
    missing = [name for name, mix in mix_layers.items() if not mix.built]
    if missing:
        raise ValueError(
            f"Argument `mix_after` names layers {missing} that the model's "
            "functional graph never calls at its top level (e.g. layers inside "
            "a nested model). Name top-level layers of the model."
        )
    return cloned.inputs, cloned.outputs


def _check_mix_after(model, mix_after):
    if not isinstance(model, keras.Model):
        raise TypeError(
            "Argument `model` must be a keras.Model. "
            f"Received: model={model!r} (of type {type(model).__name__})."
        )
    try:
        has_graph = bool(model.inputs) and bool(model.outputs)
    except (AttributeError, ValueError):
        has_graph = False
    if not has_graph:
        raise ValueError(
            "`mix_after` needs a functional or Sequential model with defined "
            f"inputs. Received: model={model.name!r}, a subclassed model (or one "
            "without inputs): call `kmix.MajorMix` in its `call` instead."
        )
    if isinstance(mix_after, str) or not mix_after:
        raise ValueError(
            "Argument `mix_after` must be a non-empty list of layer names. "
            f"Received: mix_after={mix_after!r}."
        )
    names = list(mix_after)
    known = {layer.name: layer for layer in model.layers}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise ValueError(
            f"Argument `mix_after` names layers {unknown} that model "
            f"{model.name!r} does not have at its top level. Some of its layers: "
            f"{list(known)[:5]} ... {list(known)[-5:]} (see `model.summary()`)."
        )
    several = [name for name in names if not _has_one_output(known[name])]
    if several:
        raise ValueError(
            f"Argument `mix_after` names layers {several} with several outputs: "
            "MajorMix follows one feature tensor. Name a layer with one output."
        )
    return names


def _has_one_output(layer):
    """Whether `layer` returns one tensor (at its first call)."""
    try:
        output = layer.output
    except (AttributeError, ValueError):
        return False
    return not isinstance(output, (list, tuple, dict))
