"""Class-imbalanced datasets as tf.data pipelines.

Imbalance profiles (`imbalance_counts`, `class_order`), the CIFAR-LT image
selection rule (`subsample_indices`), and `load`, which builds an imbalanced
training set and the untouched test set from tensorflow-datasets or local
data. Data too large for memory (ImageNet-LT, Places-LT, iNaturalist) is
streamed from disk instead (`load_streaming`, chosen by `load` itself).

Each name is imported on first use (PEP 562), so the pure-numpy modules
(`kmix.data.profiles`, `kmix.data.idx_files`) and their names, e.g.
`from kmix.data import imbalance_counts`, load without TensorFlow; `load`,
`ImbalancedDataset` and the other `tf.data` names import it.

Example:

>>> data = kmix.data.load("fashion_mnist", profile="step", imbalance_ratio=100)
Data: fashion_mnist from ...
>>> data.class_counts
[6000, 6000, 6000, 6000, 6000, 60, 60, 60, 60, 60]
>>> images, labels = next(iter(data.train))
>>> tuple(images.shape), images.dtype.name  # scaled to [0, 1] after batching
((128, 28, 28, 1), 'float32')
"""

import importlib
import pkgutil
import typing

if (
    typing.TYPE_CHECKING
):  # seen by static readers (mkdocstrings, type checkers) only
    from kmix.data.idx_files import read_idx
    from kmix.data.image_file_list import ImageFileList
    from kmix.data.imbalanced_dataset import ImbalancedDataset
    from kmix.data.imbalanced_dataset import describe
    from kmix.data.inaturalist import read_inaturalist
    from kmix.data.list_files import read_list_file
    from kmix.data.loader import load
    from kmix.data.profiles import class_order
    from kmix.data.profiles import imbalance_counts
    from kmix.data.profiles import subsample_indices
    from kmix.data.streaming import load_streaming
    from kmix.data.streaming_dataset import StreamingDataset
    from kmix.data.streaming_pipeline import verify_images

# The public names, each with the submodule it is imported from on first
# access (PEP 562). Only `profiles` and `idx_files` are free of TensorFlow.
_EXPORTS = {
    "ImageFileList": "image_file_list",
    "ImbalancedDataset": "imbalanced_dataset",
    "describe": "imbalanced_dataset",
    "read_inaturalist": "inaturalist",
    "read_list_file": "list_files",
    "load": "loader",
    "class_order": "profiles",
    "imbalance_counts": "profiles",
    "subsample_indices": "profiles",
    "read_idx": "idx_files",
    "load_streaming": "streaming",
    "StreamingDataset": "streaming_dataset",
    "verify_images": "streaming_pipeline",
}
_SUBMODULES = frozenset(info.name for info in pkgutil.iter_modules(__path__))


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(
            importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name
        )
        globals()[name] = value  # later reads skip __getattr__
        return value
    if name in _SUBMODULES:
        # e.g. `kmix.data.pipeline` after `import kmix`; importing a
        # submodule also sets it as an attribute, so this runs once.
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)
