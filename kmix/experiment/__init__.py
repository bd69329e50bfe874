"""One training run, and several seeds of it, from an `ExperimentConfig`.

`experiments/run.py`, `experiments/tune.py` and the keras-tuner `HyperModel`
of `kmix.tuning` all go through this package, so an experiment and a tuning
trial train the same way. One job per module:

- `config`: `ExperimentConfig`, the one list of settings;
- `flags`: the absl flags generated from it;
- `loading`: the data (`load_data`);
- `building`: model, loss, optimizer, loss weights (`build_compiled_model`);
- `training`: callbacks, `fit_model`, one whole run (`train_and_evaluate`);
- `evaluation`: accuracy overall, per class and per group (`evaluate`);
- `outputs`: atomic JSON writes and the plots of a run;
- `runs`: several seeds, resumption and aggregation (`run_seeds`);
- `console`: what a run says about itself (the closing summary of
  `experiments/run.py`, the opening of `results.md`);
- `distribution`: `tf.distribute` strategies, and one model trained by
  several processes on JAX (`initialize_processes`).

Example:

>>> config = kmix.ExperimentConfig(epochs=1, width=4, batch_size=16)
>>> data = kmix.data.load(
...     {"train": (x_train, y_train), "test": (x_test, y_test)},
...     profile="none",
...     batch_size=config.batch_size,
... )
>>> result = kmix.experiment.train_and_evaluate(
...     config, "runs/demo/seed_0", data=data, verbose=0
... )
>>> 0.0 <= result["balanced_accuracy"] <= 1.0
True
>>> import os
>>> sorted(os.listdir("runs/demo/seed_0"))
[...'metrics.json', 'model.keras'...]

Without `data`, `train_and_evaluate` loads `config.dataset` itself (by
default Fashion-MNIST, made imbalanced as `config` says).
"""

from kmix.experiment.building import build_compiled_model
from kmix.experiment.building import build_loss
from kmix.experiment.building import build_model
from kmix.experiment.building import build_optimizer
from kmix.experiment.building import compile_model
from kmix.experiment.building import loss_weights
from kmix.experiment.config import ExperimentConfig
from kmix.experiment.evaluation import evaluate
from kmix.experiment.loading import load_data
from kmix.experiment.loading import validation_split
from kmix.experiment.runs import StaleOutputError
from kmix.experiment.runs import results_table
from kmix.experiment.runs import run_seeds
from kmix.experiment.runs import summarize
from kmix.experiment.training import NonFiniteLossError
from kmix.experiment.training import fit_model
from kmix.experiment.training import prepare_training_set
from kmix.experiment.training import train_and_evaluate
from kmix.experiment.training import training_callbacks
