"""What kmix assumes of Keras internals (`kmix/_keras_compat.py`).

A failure here means the installed Keras is not one kmix was tested with:
read the message, then kmix/_keras_compat.py.
"""

import inspect
import pathlib
import re
import sys

import keras
import pytest
from packaging.specifiers import SpecifierSet

import kmix
from kmix import _keras_compat as compat

HINT = (
    "kmix/_keras_compat.py relies on this; kmix is tested with "
    f"keras{compat.TESTED_KERAS}. Check the assumption against this Keras, "
    "then update the compat module, TESTED_KERAS and setup.py's pin."
)


def test_installed_keras_is_a_tested_version():
    assert keras.__version__ in SpecifierSet(compat.TESTED_KERAS), (
        f"Keras {keras.__version__} is outside the versions kmix is tested with "
        f"(keras{compat.TESTED_KERAS}). {HINT}"
    )


def test_setup_py_pins_the_tested_versions():
    setup = pathlib.Path(__file__).resolve().parents[1] / "setup.py"
    if not setup.exists():
        pytest.skip("setup.py is not beside the tests (e.g. under Bazel)")
    pins = re.findall(r'"keras([<>=!~][^"]*)"', setup.read_text())
    assert pins == [compat.TESTED_KERAS], (
        f"setup.py pins keras{pins} but kmix/_keras_compat.py says it is tested "
        f"with keras{compat.TESTED_KERAS}: keep the two the same."
    )


def test_functional_constructor_and_argument_detection_are_as_assumed():
    parameters = list(inspect.signature(compat.Functional.__init__).parameters)
    assert parameters[:4] == ["self", "inputs", "outputs", "name"], (
        f"Functional.__init__ now takes {parameters}. {HINT}"
    )
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(2)(inputs)
    assert compat.functional_init_arguments((inputs, outputs), {}), HINT
    assert compat.functional_init_arguments(
        (), {"inputs": inputs, "outputs": outputs}
    ), HINT
    assert not compat.functional_init_arguments((), {"class_counts": [1, 2]}), (
        HINT
    )
    assert issubclass(compat.Functional, keras.Model), HINT


def test_functional_mix_model_is_a_keras_functional_model():
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(2, name="logits")(
        kmix.MajorMix(name="mix")(inputs)
    )
    model = kmix.MixModel(inputs, outputs, class_counts=[5, 1])
    assert isinstance(model, compat.Functional) and isinstance(
        model, kmix.MixModel
    ), HINT
    assert model.name.startswith("mix_model"), HINT
    assert [layer.name for layer in model.layers][-2:] == ["mix", "logits"], (
        HINT
    )


def test_flatten_layers_walks_nested_models_once():
    inner_dense = keras.layers.Dense(2, name="inner_dense")
    inner = keras.Sequential([keras.Input((3,)), inner_dense], name="inner")
    inputs = keras.Input((3,))
    outputs = keras.layers.Dense(2, name="head")(inner(inputs))
    outer = keras.Model(inputs, outputs, name="outer")
    names = [layer.name for layer in compat.flatten_layers(outer)]
    assert names[0] == "outer", f"flatten_layers gave {names}. {HINT}"
    assert {"inner", "inner_dense", "head"} <= set(names), (
        f"flatten_layers gave {names}. {HINT}"
    )
    assert len(names) == len(set(names)), f"flatten_layers gave {names}. {HINT}"
    assert "outer" not in [
        layer.name for layer in compat.flatten_layers(outer, include_self=False)
    ]


def test_keras_still_rewrites_bases_of_functional_subclasses():
    """Why the compat routing exists; if this fails, it may no longer be needed."""

    class Probe(keras.Model):
        pass

    inputs = keras.Input((3,))
    Probe(inputs, keras.layers.Dense(2)(inputs))
    assert compat.Functional in Probe.__mro__, (
        "Keras no longer injects Functional into a keras.Model subclass called "
        "with (inputs, outputs): kmix.MixModel may be able to use the public "
        "subclassing pattern alone (see kmix/_keras_compat.py)."
    )


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
