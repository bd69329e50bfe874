"""`ExperimentConfig`: every setting of one kmix training run."""

import dataclasses

from kmix import validation
from kmix.models.mix_points import check_mix_at

MODELS = ("small_cnn", "resnet32")
CLASSIFIERS = ("auto", "dense", "normed")
LOSSES = ("ce", "focal", "ldam", "la")
REWEIGHTS = ("none", "inverse", "cb")
BATCH_MIXERS = ("none", "mixup", "remix")
OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("constant", "warmup_step", "cosine")
MIX_SCHEDULES = ("constant", "stop", "linear", "cosine")


@dataclasses.dataclass
class ExperimentConfig:
    """Every setting of one training run, as `experiments/run.py` flags set them.

    `kmix.experiment.train_and_evaluate(config, output_dir)` runs it; the
    keras-tuner `HyperModel` of `kmix.tuning` fills one from hyper-parameters,
    so tuning and experiments share one code path. Field names equal the flag
    names of `experiments/run.py` (`docs/experiments.md` explains each).

    Example:

    >>> config = kmix.ExperimentConfig(dataset="fashion_mnist", profile="step",
    ...                                imbalance_ratio=100, epochs=10)
    >>> config.validate()
    """

    # Data.
    dataset: str = "fashion_mnist"
    data_dir: str = None
    profile: str = "step"
    imbalance_ratio: float = 100.0
    minor_fraction: float = 0.5
    train_fraction: float = 1.0
    validation: float = None
    augment: str = "auto"
    # Model and mixing.
    model: str = "small_cnn"
    width: int = 16
    classifier: str = "auto"
    mix_at: tuple = ("stage1",)
    strength: float = 0.5
    major_threshold: float = 0.5
    mix_prob: float = 1.0
    distribution: str = "uniform"
    alpha: float = 1.0
    mix_schedule: str = "constant"
    mix_stop_epoch: int = None
    mix_final_strength: float = 0.0
    # Loss and re-weighting.
    loss: str = "ce"
    focal_gamma: float = 2.0
    ldam_max_margin: float = 0.5
    ldam_scale: float = 30.0
    la_tau: float = 1.0
    reweight: str = "none"
    cb_beta: float = 0.9999
    drw_start_epoch: int = None
    # Batch mixing baselines.
    batch_mixer: str = "none"
    mixup_alpha: float = 1.0
    remix_kappa: float = 3.0
    remix_tau: float = 0.5
    # Optimization.
    optimizer: str = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.9
    lr_schedule: str = "warmup_step"
    weight_decay: float = 2e-4
    epochs: int = 200
    batch_size: int = 128
    seed: int = 0
    jit_compile: bool = False
    # Outputs.
    diagnostics: bool = True

    def validate(self):
        """Checks every field and their combinations; returns `self`.

        Raises `ValueError` naming the field, the value and what was expected.
        """
        validation.check_choice("model", self.model, MODELS)
        validation.check_choice("loss", self.loss, LOSSES)
        validation.check_choice("classifier", self.classifier, CLASSIFIERS)
        validation.check_choice("reweight", self.reweight, REWEIGHTS)
        validation.check_choice("batch_mixer", self.batch_mixer, BATCH_MIXERS)
        validation.check_choice("optimizer", self.optimizer, OPTIMIZERS)
        validation.check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        validation.check_choice("mix_schedule", self.mix_schedule, MIX_SCHEDULES)
        self.mix_at = tuple(check_mix_at(self.mix_at))
        validation.check_number("imbalance_ratio", self.imbalance_ratio, 1.0)
        validation.check_number("strength", self.strength, 0.0, 1.0)
        validation.check_number("major_threshold", self.major_threshold, 0.0, 1.0, low_open=True)
        validation.check_number("learning_rate", self.learning_rate, 0.0, low_open=True)
        validation.check_number("weight_decay", self.weight_decay, 0.0)
        validation.check_int("epochs", self.epochs, 1)
        validation.check_int("batch_size", self.batch_size, 1)
        validation.check_int("width", self.width, 1)
        if self.drw_start_epoch is not None:
            validation.check_int("drw_start_epoch", self.drw_start_epoch, 0)
            if self.reweight == "none":
                raise ValueError(
                    "Argument `drw_start_epoch` needs re-weighting to defer: set "
                    "`reweight` to 'inverse' or 'cb'. Received: reweight='none', "
                    f"drw_start_epoch={self.drw_start_epoch}."
                )
        if self.mix_schedule == "stop":
            validation.check_int("mix_stop_epoch", self.mix_stop_epoch, 0)
        if self.mix_schedule != "constant" and not self.mix_at:
            raise ValueError(
                f"Argument `mix_schedule={self.mix_schedule!r}` schedules MajorMix "
                "layers, but `mix_at` is empty, so the model has none."
            )
        return self

    @property
    def classifier_head(self):
        """`"normed"` (cosine logits) for LDAM under `"auto"`, as LDAM-DRW does; else `"dense"`."""
        if self.classifier == "auto":
            return "normed" if self.loss == "ldam" else "dense"
        return self.classifier

    @property
    def needs_one_hot_labels(self):
        """Whether training labels must be one-hot (focal loss, MixUp, Remix)."""
        return self.loss == "focal" or self.batch_mixer != "none"
