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
- `distribution`: `tf.distribute` strategies.

Example:

>>> config = kmix.ExperimentConfig(epochs=2, train_fraction=0.05)
>>> result = kmix.experiment.train_and_evaluate(config, "runs/demo/seed_0")
>>> result["balanced_accuracy"]
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
from kmix.experiment.runs import results_table
from kmix.experiment.runs import run_seeds
from kmix.experiment.runs import summarize
from kmix.experiment.training import fit_model
from kmix.experiment.training import prepare_training_set
from kmix.experiment.training import train_and_evaluate
from kmix.experiment.training import training_callbacks
