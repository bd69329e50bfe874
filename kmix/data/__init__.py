"""Class-imbalanced datasets as tf.data pipelines.

Imbalance profiles (`imbalance_counts`, `class_order`), the CIFAR-LT image
selection rule (`subsample_indices`), and `load`, which builds an imbalanced
training set and the untouched test set from tensorflow-datasets or local
data.

Example:

>>> data = kmix.data.load("fashion_mnist", profile="step", imbalance_ratio=100)
>>> print(data)
"""

from kmix.data.imbalanced_dataset import ImbalancedDataset
from kmix.data.imbalanced_dataset import describe
from kmix.data.loader import load
from kmix.data.profiles import class_order
from kmix.data.profiles import imbalance_counts
from kmix.data.profiles import subsample_indices
from kmix.data.sources import read_idx
