"""Class-imbalanced datasets as tf.data pipelines.

Imbalance profiles (`imbalance_counts`, `class_order`), the CIFAR-LT image
selection rule (`subsample_indices`), and `load`, which builds an imbalanced
training set and the untouched test set from tensorflow-datasets or local
data. Data too large for memory (ImageNet-LT, Places-LT, iNaturalist) is
streamed from disk instead (`load_streaming`, chosen by `load` itself).

Example:

>>> data = kmix.data.load("fashion_mnist", profile="step", imbalance_ratio=100)
Data: fashion_mnist from ...
>>> data.class_counts
[6000, 6000, 6000, 6000, 6000, 60, 60, 60, 60, 60]
>>> images, labels = next(iter(data.train))
>>> tuple(images.shape), images.dtype.name  # scaled to [0, 1] after batching
((128, 28, 28, 1), 'float32')
"""

from kmix.data.image_file_list import ImageFileList
from kmix.data.imbalanced_dataset import ImbalancedDataset
from kmix.data.imbalanced_dataset import describe
from kmix.data.inaturalist import read_inaturalist
from kmix.data.list_files import read_list_file
from kmix.data.loader import load
from kmix.data.profiles import class_order
from kmix.data.profiles import imbalance_counts
from kmix.data.profiles import subsample_indices
from kmix.data.sources import read_idx
from kmix.data.streaming import load_streaming
from kmix.data.streaming_dataset import StreamingDataset
from kmix.data.streaming_pipeline import verify_images
