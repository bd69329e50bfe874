"""`MajorMixHyperModel`: a keras-tuner HyperModel over kmix's mixing settings."""

import collections
import dataclasses

import keras
import keras_tuner

from kmix import experiment
from kmix.experiment.config import ExperimentConfig
from kmix.tuning import search_space

OBJECTIVE = "val_balanced_accuracy"


class MajorMixHyperModel(keras_tuner.HyperModel):
    """Searches MajorMix's strength, major-class threshold and mixing points.

    "Procrustean Training for Imbalanced Deep Learning" (Ye, Zhan & Chao,
    ICCV 2021) weakens the features of major-class examples by mixing them
    with other examples of the mini-batch. How strongly, which classes count
    as major and where in the network to mix are not given for kmix's
    datasets, so this HyperModel lets keras-tuner find them: `build` declares
    the search space (see `kmix.tuning.search_space`) and builds the model,
    `fit` trains it, both through `kmix.experiment` (`build_compiled_model`
    and `fit_model`), the code path of `experiments/run.py`. A trial's
    `kmix.ExperimentConfig` is the base `config` with the trial's
    hyper-parameter values (`config_for`).

    The objective is `"val_balanced_accuracy"` (maximized): the balanced
    accuracy, at the last epoch, on the validation split that
    `kmix.data.load` holds out of the training split (`config.validation`),
    never the test set. `fit` returns the last epoch's `val_*` metrics, so the
    tuner ranks trials by the model that `run.py` would keep, not by their
    best epoch.

    With `executions_per_trial=E` the tuner builds and fits a trial E times;
    execution `e` uses `seeds[e]` (the data selection, validation split,
    weights and mixing all follow it) and the tuner averages the results.

    Args:
        config: the base `kmix.ExperimentConfig`; it must set `validation`
            (an int per class or a fraction) so trials can be scored.
        space: the search space, a dict from hyper-parameter name to its
            range (`kmix.tuning.search_space`); default
            `kmix.tuning.DEFAULT_SPACE` (strength in [0, 1], major_threshold
            in [0.01, 1] on a log scale, mix_at in stem / stage1 / stage2).
        seeds: the seed of each execution of a trial; default
            `[config.seed]`.
        name: the HyperModel's name.

    Example:

    >>> np.savez(
    ...     "tiny.npz",
    ...     x_train=x_train,
    ...     y_train=y_train,
    ...     x_test=x_test,
    ...     y_test=y_test,
    ... )
    >>> config = kmix.ExperimentConfig(
    ...     dataset="tiny.npz",
    ...     profile="none",
    ...     validation=1,
    ...     epochs=1,
    ...     width=4,
    ...     batch_size=16,
    ...     diagnostics=False,
    ... )
    >>> hypermodel = kmix.tuning.MajorMixHyperModel(config)
    >>> tuner = keras_tuner.RandomSearch(
    ...     hypermodel,
    ...     objective=kmix.tuning.objective(),
    ...     max_trials=2,
    ...     directory="runs/tuning",
    ...     project_name="tiny",
    ... )
    >>> tuner.search(verbose=0)
    >>> best = hypermodel.config_for(tuner.get_best_hyperparameters()[0])
    >>> 0.0 <= best.strength <= 1.0
    True

    On Fashion-MNIST (`dataset="fashion_mnist"`, `profile="step"`,
    `imbalance_ratio=100`, `validation=200`), with more epochs and trials,
    the same lines run the search of `experiments/tune.py`.
    """

    def __init__(self, config, space=None, seeds=None, name=None):
        super().__init__(name=name)
        if config.validation is None:
            raise ValueError(
                "Argument `config.validation` must hold out a validation split "
                "(an int per class or a fraction in (0, 1)) to score trials on. "
                "Received: validation=None."
            )
        self.config = dataclasses.replace(config).validate()
        self.space = search_space.check_space(
            search_space.DEFAULT_SPACE if space is None else space
        )
        if "drw_start_epoch" in self.space and self.config.reweight == "none":
            raise ValueError(
                "Argument `space` searches `drw_start_epoch`, which needs "
                "re-weighting to defer: set `config.reweight` to 'inverse' or "
                "'cb'. Received: reweight='none'."
            )
        self.seeds = [self.config.seed] if seeds is None else list(seeds)
        if not self.seeds:
            raise ValueError(
                f"Argument `seeds` must list at least one seed. Received: seeds={seeds!r}."
            )
        self._builds = collections.Counter()
        self._configs = {}
        self._data = {}

    def declare_hyperparameters(self, hp):
        search_space.declare(hp, self.space)

    def config_for(self, hp, execution=0):
        """The `ExperimentConfig` of a trial's hyper-parameters and execution.

        Args:
            hp: a `keras_tuner.HyperParameters` (a trial's, or the best).
            execution: which execution of the trial, an index into `seeds`.
        """
        if not 0 <= execution < len(self.seeds):
            raise ValueError(
                f"Argument `execution` must be in [0, {len(self.seeds)}) (one per "
                f"seed of seeds={self.seeds}). Received: execution={execution!r}."
            )
        values = search_space.declare(hp, self.space)
        if "mix_at" in values:
            values["mix_at"] = search_space.parse_mix_at(values["mix_at"])
        config = dataclasses.replace(
            self.config, seed=self.seeds[execution], **values
        )
        return config.validate()

    def build(self, hp):
        """Declares the search space on `hp`; returns the compiled `kmix.MixModel`.

        The n-th build with the same `hp` (the tuner's n-th execution of a
        trial) uses `seeds[n % len(seeds)]`.
        """
        execution = self._builds[id(hp)] % len(self.seeds)
        self._builds[id(hp)] += 1
        config = self.config_for(hp, execution)
        keras.utils.set_random_seed(config.seed)
        self._configs[id(hp)] = config
        return experiment.build_compiled_model(config, self._load(config))

    def fit(
        self,
        hp,
        model,
        *args,
        callbacks=None,
        epochs=None,
        initial_epoch=0,
        verbose=1,
        **kwargs,
    ):
        """Trains `model` (from `build(hp)`); returns the last epoch's `val_*` metrics.

        `callbacks` (the tuner's) run after the config's own; `epochs` and
        `initial_epoch` are set by Hyperband. The data come from the config,
        so `tuner.search()` takes no data arguments.
        """
        if args or kwargs:
            raise TypeError(
                "MajorMixHyperModel loads its data from the config: call "
                "`tuner.search()` without data arguments. Received: "
                f"args={args!r}, kwargs={sorted(kwargs)!r}."
            )
        config = self._configs[id(hp)]
        history = experiment.fit_model(
            model,
            config,
            self._load(config),
            extra_callbacks=callbacks or (),
            verbose=verbose,
            epochs=epochs,
            initial_epoch=initial_epoch,
        )
        return {
            name: float(values[-1])
            for name, values in history.history.items()
            if name.startswith("val_")
        }

    def _load(self, config):
        """The config's `ImbalancedDataset`, loaded once per data setting."""
        key = tuple(getattr(config, field) for field in data_fields())
        if key not in self._data:
            self._data[key] = experiment.load_data(config)
        return self._data[key]


def data_fields():
    """The `ExperimentConfig` fields that decide what `kmix.experiment.load_data` loads.

    Read from the fields' metadata (`data=True`), so a new data setting is
    never forgotten here.
    """
    return tuple(
        f.name
        for f in dataclasses.fields(ExperimentConfig)
        if f.metadata["data"]
    )


def objective():
    """The tuning objective: `val_balanced_accuracy`, maximized."""
    return keras_tuner.Objective(OBJECTIVE, direction="max")
