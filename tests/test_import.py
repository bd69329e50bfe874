"""`import kmix` is light: the experiment harness, plots and tuner load on first use."""

import json
import os
import subprocess
import sys

HARNESS = (
    "kmix.experiment",
    "kmix.plots",
    "kmix.tuning",
    "kmix.weights",
    "keras_tuner",
)

# Makes `matplotlib` and `keras_tuner` impossible to import, as if not installed.
_BLOCK = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("matplotlib", "keras_tuner"):
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None
sys.meta_path.insert(0, _Block())
"""


def _python(code):
    """Runs `code` in a fresh interpreter; returns the JSON it prints last."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_import_kmix_loads_no_harness_tuner_or_extra_matplotlib():
    found = _python(
        "import json, sys\n"
        "import keras\n"
        "matplotlib_from_keras = 'matplotlib' in sys.modules\n"
        "import kmix\n"
        "kmix.MajorMix, kmix.MixModel, kmix.layers.Remix, kmix.metrics.GroupAccuracy\n"
        "kmix.classes.major_class_mask, kmix.class_weights.class_balanced\n"
        f"loaded = [m for m in {HARNESS!r} if m in sys.modules]\n"
        "print(json.dumps({'loaded': loaded, 'matplotlib_from_keras': matplotlib_from_keras,\n"
        "                  'matplotlib': 'matplotlib' in sys.modules}))\n"
    )
    assert found["loaded"] == []
    # Keras imports matplotlib itself when it is installed; kmix adds nothing.
    assert found["matplotlib"] == found["matplotlib_from_keras"]


def test_kmix_layers_work_without_matplotlib_and_keras_tuner():
    found = _python(
        _BLOCK + "import json\n"
        "import numpy as np\n"
        "import kmix\n"
        "layer = kmix.MajorMix(strength=1.0, seed=1)\n"
        "x = np.arange(8, dtype='float32').reshape(4, 2)\n"
        "out = layer(x, training=True, labels=np.array([0, 0, 1, 1]),\n"
        "            class_counts=[100, 10])\n"
        "out = np.asarray(out)\n"
        "try:\n"
        "    kmix.plots\n"
        "    plots_error = None\n"
        "except ModuleNotFoundError as e:\n"
        "    plots_error = str(e)\n"
        "print(json.dumps({'minor_rows': out[2:].tolist(), 'plots_error': plots_error}))\n"
    )
    assert found["minor_rows"] == [
        [4.0, 5.0],
        [6.0, 7.0],
    ]  # minor rows untouched
    assert "matplotlib" in found["plots_error"]


def test_model_side_on_jax_loads_no_tensorflow_until_kmix_data():
    found = _python(
        "import json, os, sys\n"
        "os.environ['KERAS_BACKEND'] = 'jax'\n"
        "import keras\n"
        "import kmix\n"
        "inputs = keras.Input((4,))\n"
        "x = kmix.MajorMix()(keras.layers.Dense(8)(inputs))\n"
        "model = kmix.MixModel(inputs, keras.layers.Dense(2)(x), class_counts=[9, 1])\n"
        "model.compile('sgd', 'sparse_categorical_crossentropy',\n"
        "              metrics=[kmix.metrics.BalancedAccuracy(num_classes=2)])\n"
        "before = 'tensorflow' in sys.modules\n"
        "kmix.data.imbalance_counts\n"
        "print(json.dumps({'backend': keras.backend.backend(), 'before': before,\n"
        "                  'after': 'tensorflow' in sys.modules}))\n"
    )
    assert found == {"backend": "jax", "before": False, "after": True}


def test_harness_modules_load_on_first_attribute_access():
    found = _python(
        "import json, sys\n"
        "import kmix\n"
        "before = 'kmix.plots' in sys.modules\n"
        "plots = kmix.plots\n"
        "from kmix import tuning\n"
        "names = dir(kmix)\n"
        "try:\n"
        "    kmix.no_such_name\n"
        "    error = None\n"
        "except AttributeError as e:\n"
        "    error = str(e)\n"
        "print(json.dumps({'before': before, 'plots': plots.__name__,\n"
        "                  'tuning': tuning.parse_mix_at('stage1+stage2'),\n"
        "                  'experiment': kmix.experiment.__name__,\n"
        "                  'in_dir': [n in names for n in ('plots', 'tuning', 'experiment',\n"
        "                                                  'classes', 'MajorMix')],\n"
        "                  'error': error}))\n"
    )
    assert found["before"] is False
    assert found["plots"] == "kmix.plots"
    assert found["tuning"] == ["stage1", "stage2"]
    assert found["experiment"] == "kmix.experiment"
    assert found["in_dir"] == [True] * 5
    assert found["error"] == "module 'kmix' has no attribute 'no_such_name'"


if __name__ == "__main__":
    import pytest

    sys.exit(pytest.main([__file__, "-q"]))
