"""`import kmix` is light: the experiment harness, plots and tuner load on first use.

So do `kmix.data`'s names: its pure-numpy modules import no TensorFlow.
"""

import json
import os
import sys

from helpers import run_python

HARNESS = (
    "kmix.experiment",
    "kmix.plots",
    "kmix.tuning",
    "kmix.weights",
    "keras_tuner",
)


def _blocking(*packages):
    """Code that makes `packages` impossible to import, as if not installed."""
    return f"""
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {packages!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}} (blocked by the test)")
        return None
sys.meta_path.insert(0, _Block())
"""


def _python(code):
    """Runs `code` in a fresh interpreter; returns the JSON it prints last."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return json.loads(run_python(code, env).strip().splitlines()[-1])


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
        _blocking("matplotlib", "keras_tuner") + "import json\n"
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
        "import kmix.data.profiles, kmix.data.idx_files\n"
        "from kmix.data import imbalance_counts, read_idx\n"
        "kmix.data.class_order, kmix.data.subsample_indices\n"
        "numpy_side = 'tensorflow' in sys.modules\n"
        "load = kmix.data.load\n"
        "print(json.dumps({'backend': keras.backend.backend(), 'before': before,\n"
        "                  'numpy_side': numpy_side, 'load': load.__module__,\n"
        "                  'after': 'tensorflow' in sys.modules}))\n"
    )
    assert found == {
        "backend": "jax",
        "before": False,
        "numpy_side": False,  # kmix.data.profiles and kmix.data.idx_files
        "load": "kmix.data.loader",
        "after": True,
    }


# The public names of `kmix.data`, each imported on first access.
DATA_NAMES = (
    "ImageFileList",
    "ImbalancedDataset",
    "StreamingDataset",
    "class_order",
    "describe",
    "imbalance_counts",
    "load",
    "load_streaming",
    "read_idx",
    "read_inaturalist",
    "read_list_file",
    "subsample_indices",
    "verify_images",
)


def test_kmix_data_numpy_modules_work_without_tensorflow(tmp_path):
    found = _python(
        _blocking("tensorflow") + "import gzip, json, os\n"
        "os.environ['KERAS_BACKEND'] = 'jax'\n"
        "import numpy as np\n"
        "from kmix.data.idx_files import read_idx\n"
        "from kmix.data.profiles import imbalance_counts, subsample_indices\n"
        "import kmix.data\n"
        "labels = np.repeat(np.arange(3, dtype=np.uint8), 10)\n"
        f"path = {str(tmp_path / 'labels-idx1-ubyte.gz')!r}\n"
        "with gzip.open(path, 'wb') as f:\n"
        "    f.write(bytes([0, 0, 8, 1]) + len(labels).to_bytes(4, 'big') + labels.tobytes())\n"
        "read = read_idx(path)\n"
        "counts = imbalance_counts([10, 10, 10], 'step', 10)\n"
        "kept = subsample_indices(read.astype('int64'), counts, 0)\n"
        "try:\n"
        "    kmix.data.load\n"
        "    load_error = None\n"
        "except ModuleNotFoundError as e:\n"
        "    load_error = str(e)\n"
        "print(json.dumps({'read': read.tolist() == labels.tolist(), 'counts': counts,\n"
        "                  'kept': len(kept), 'same': kmix.data.read_idx is read_idx,\n"
        "                  'load_error': load_error}))\n"
    )
    assert found["read"] is True
    assert found["counts"] == [10, 1, 1]
    assert found["kept"] == 12
    assert found["same"] is True
    assert "tensorflow" in found["load_error"]


def test_kmix_data_names_load_on_first_attribute_access():
    in_dir = DATA_NAMES + ("pipeline", "sources")  # and the submodules
    found = _python(
        "import json, os, sys\n"
        "os.environ['KERAS_BACKEND'] = 'jax'\n"
        "import kmix.data\n"
        "before = 'tensorflow' in sys.modules\n"
        "from kmix.data import sources\n"
        f"resolved = [n for n in {DATA_NAMES!r} if getattr(kmix.data, n, None) is not None]\n"
        "names = dir(kmix.data)\n"
        "try:\n"
        "    kmix.data.no_such_name\n"
        "    error = None\n"
        "except AttributeError as e:\n"
        "    error = str(e)\n"
        "print(json.dumps({'before': before, 'resolved': resolved,\n"
        f"                  'in_dir': [n for n in {in_dir!r} if n in names],\n"
        "                  'pipeline': kmix.data.pipeline.__name__,\n"
        "                  'same_read_idx': sources.read_idx is kmix.data.read_idx,\n"
        "                  'error': error}))\n"
    )
    assert found["before"] is False
    assert found["resolved"] == list(DATA_NAMES)
    assert found["in_dir"] == list(in_dir)
    assert found["pipeline"] == "kmix.data.pipeline"
    assert found["same_read_idx"] is True
    assert (
        found["error"] == "module 'kmix.data' has no attribute 'no_such_name'"
    )


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
