"""`ExperimentConfig`: every setting of one kmix training run, the one list of settings.

The flags of `experiments/run.py` and `experiments/tune.py` are generated from
its fields (`kmix.experiment.flags`): each field's metadata holds its help
text, its choices (the owning module's constants) and whether it decides
which data are loaded.
"""

import dataclasses
import os
import re

from kmix import validation
from kmix.callbacks import mix_schedule
from kmix.data import pipeline
from kmix.data import profiles
from kmix.layers import major_mix
from kmix.models.mix_points import check_mix_at

MODELS = ("small_cnn", "resnet32", "resnet50")
CLASSIFIERS = ("auto", "dense", "normed")
LOSSES = ("ce", "focal", "ldam", "la")
REWEIGHTS = ("none", "inverse", "cb")
BATCH_MIXERS = ("none", "mixup", "remix")
OPTIMIZERS = ("sgd", "adam")
LR_SCHEDULES = ("constant", "warmup_step", "cosine")


def _field(default, help=None, choices=None, data=False, flag=True):
    """A dataclass field whose metadata the flag generator and the tuner read."""
    metadata = {"help": help, "choices": choices, "data": data, "flag": flag}
    return dataclasses.field(default=default, metadata=metadata)


@dataclasses.dataclass
class ExperimentConfig:
    """Every setting of one training run, as `experiments/run.py` flags set them.

    `kmix.experiment.train_and_evaluate(config, output_dir)` runs it; the
    keras-tuner `HyperModel` of `kmix.tuning` fills one from hyper-parameters,
    so tuning and experiments share one code path. Field names equal the flag
    names of `experiments/run.py` (`docs/experiments.md` explains each); the
    flags are generated from the fields (`kmix.experiment.flags`).

    Example:

    >>> config = kmix.ExperimentConfig(
    ...     dataset="fashion_mnist",
    ...     profile="step",
    ...     imbalance_ratio=100,
    ...     epochs=10,
    ... )
    >>> config.validate().mix_at  # the defaults: MajorMix after the first stage
    ('stage1',)
    >>> kmix.ExperimentConfig(strength=1.5).validate()
    Traceback (most recent call last):
    ...
    ValueError: Argument `strength` must be in [0.0, 1.0]. Received: strength=1.5.
    """

    # Data.
    dataset: str = _field(
        "fashion_mnist",
        help="tfds name (cifar10, fashion_mnist, ...) or a local path.",
        data=True,
    )
    data_dir: str = _field(
        None, help="tensorflow-datasets data directory.", data=True
    )
    profile: str = _field(
        "step", help="Imbalance profile.", choices=profiles.PROFILES, data=True
    )
    imbalance_ratio: float = _field(
        100.0, help="Largest over smallest class count (>= 1).", data=True
    )
    minor_fraction: float = _field(
        0.5, help="Fraction of minor classes (step profile).", data=True
    )
    train_fraction: float = _field(
        1.0, help="Keep this fraction of every class (quick runs).", data=True
    )
    max_per_class: int = _field(
        None,
        help="Cap the largest class at this many training images.",
        data=True,
    )
    validation: float = _field(
        None,
        help="Hold out of the training split: images per class (>= 1) or a fraction in (0, 1).",
        data=True,
    )
    augment: str = _field(
        "auto",
        help="Augmentation of the training batches.",
        choices=pipeline.AUGMENTATIONS,
        data=True,
    )
    streaming: str = _field(
        "auto",
        help=(
            "Read images from disk on the fly (kmix.data.load_streaming): "
            "auto = for list files, iNaturalist JSON and image folders too "
            "large for memory; always; never."
        ),
        choices=("auto", "always", "never"),
        data=True,
    )
    image_size: int = _field(
        None,
        help="Streamed images: side of the square training and evaluation crops (default 224).",
        data=True,
    )
    # Model and mixing.
    model: str = _field("small_cnn", help="Network to train.", choices=MODELS)
    width: int = _field(16, help="Channels of the small CNN's first stage.")
    classifier: str = _field(
        "auto",
        help="Final layer: dense, normed (cosine logits), or auto (normed for LDAM).",
        choices=CLASSIFIERS,
    )
    mix_at: tuple = _field(
        ("stage1",),
        help="Where to put MajorMix: input, stem, stage1-3, pool; empty for none.",
    )
    mix_after: tuple = _field(
        (),
        help=(
            "Also put MajorMix after these named layers of the model, "
            "e.g. conv3_block4_out of resnet50."
        ),
    )
    strength: float = _field(0.5, help="MajorMix strength in [0, 1].")
    major_threshold: float = _field(
        0.5, help="Major classes: n_c >= threshold * max(n)."
    )
    mix_prob: float = _field(
        1.0, help="Probability that a major-class row is mixed."
    )
    distribution: str = _field(
        "uniform", help="Distribution of u.", choices=major_mix.DISTRIBUTIONS
    )
    alpha: float = _field(
        1.0, help="Beta(alpha, alpha) parameter when --distribution=beta."
    )
    frequency_gamma: float = _field(
        None,
        help=(
            "Graded mixing instead of the threshold: class c is mixed with "
            "probability (n_c / max n) ** gamma."
        ),
    )
    mix_partners: str = _field(
        "any",
        help=(
            "MajorMix partners: any row of the batch, or only rows of major "
            "classes."
        ),
        choices=major_mix.PARTNERS,
    )
    mix_schedule: str = _field(
        "constant",
        help="MajorMix strength over epochs.",
        choices=mix_schedule.SCHEDULES,
    )
    mix_stop_epoch: int = _field(
        None,
        help="With --mix_schedule=stop: the epoch from which strength is 0.",
    )
    mix_stop_fraction: float = _field(
        None,
        help="With --mix_schedule=stop: mixing stops after this fraction of --epochs.",
    )
    mix_final_strength: float = _field(
        0.0, help="Strength reached by the linear/cosine decay."
    )
    # Loss and re-weighting.
    loss: str = _field(
        "ce",
        help="ce, focal, ldam (LDAM) or la (logit adjusted).",
        choices=LOSSES,
    )
    focal_gamma: float = _field(2.0, help="Focal loss gamma.")
    ldam_max_margin: float = _field(0.5, help="LDAM's largest margin.")
    ldam_scale: float = _field(30.0, help="LDAM's logit scale.")
    la_tau: float = _field(
        1.0, help="Logit adjustment tau (1 = balanced softmax)."
    )
    reweight: str = _field(
        "none",
        help="Per-class loss weights: none, inverse, cb.",
        choices=REWEIGHTS,
    )
    cb_beta: float = _field(0.9999, help="Class-balanced beta.")
    drw_start_epoch: int = _field(
        None, help="Deferred re-weighting: weights apply from this epoch."
    )
    drw_start_fraction: float = _field(
        None,
        help="Deferred re-weighting from this fraction of --epochs (instead of --drw_start_epoch).",
    )
    # Batch mixing baselines.
    batch_mixer: str = _field(
        "none",
        help="Input MixUp or Remix on training batches.",
        choices=BATCH_MIXERS,
    )
    mixup_alpha: float = _field(
        1.0, help="Beta(alpha, alpha) of MixUp and Remix."
    )
    remix_kappa: float = _field(3.0, help="Remix kappa.")
    remix_tau: float = _field(0.5, help="Remix tau.")
    # Optimization.
    optimizer: str = _field(
        "sgd", help="sgd (with momentum) or adam.", choices=OPTIMIZERS
    )
    learning_rate: float = _field(0.1, help="Peak learning rate.")
    momentum: float = _field(0.9, help="SGD momentum.")
    lr_schedule: str = _field(
        "warmup_step",
        help="constant, warmup_step (CIFAR-LT) or cosine.",
        choices=LR_SCHEDULES,
    )
    weight_decay: float = _field(
        2e-4, help="Coupled weight decay of the kernels."
    )
    epochs: int = _field(200, help="Training epochs.")
    batch_size: int = _field(128, help="Global batch size.", data=True)
    seed: int = _field(0, flag=False, data=True)
    jit_compile: bool = _field(
        False,
        help=(
            "Compile the training step with XLA (TensorFlow; torch.compile on "
            "torch). On JAX the step is always compiled."
        ),
    )
    # Outputs.
    diagnostics: bool = _field(
        True, help="Record per-class progress and feature gradients."
    )

    def validate(self):
        """Checks every field and their combinations; returns `self`.

        Raises `ValueError` naming the field, the value and what was expected.
        """
        for field in dataclasses.fields(self):
            if field.metadata.get("choices"):
                validation.check_choice(
                    field.name,
                    getattr(self, field.name),
                    field.metadata["choices"],
                )
        self.mix_at = tuple(check_mix_at(self.mix_at))
        _check_dataset(self.dataset)
        # Every number is checked here, by its field (= flag) name, before
        # any data are read: the library would check some only later, under
        # its own argument names. `check_number` also rejects NaN and inf.
        for name, low, high, low_open, high_open in _RANGES:
            validation.check_number(
                name,
                getattr(self, name),
                low,
                high,
                low_open=low_open,
                high_open=high_open,
            )
        validation.check_int("epochs", self.epochs, 1)
        validation.check_int("batch_size", self.batch_size, 1)
        validation.check_int("width", self.width, 1)
        validation.check_int("seed", self.seed, 0)
        if self.max_per_class is not None:
            validation.check_int("max_per_class", self.max_per_class, 1)
        if self.validation is not None:
            validation.check_number(
                "validation", self.validation, 0.0, low_open=True
            )
            if self.validation >= 1 and self.validation != int(self.validation):
                raise ValueError(
                    "Argument `validation` must be a fraction in (0, 1) or a whole "
                    f"number of images per class. Received: validation={self.validation!r}."
                )
        if self.frequency_gamma is not None:
            validation.check_number(
                "frequency_gamma", self.frequency_gamma, 0.0
            )
            if self.mix_partners == "major":
                raise ValueError(
                    "Argument `mix_partners='major'` needs major classes, which "
                    "`frequency_gamma` does not name: drop one of them. "
                    f"Received: mix_partners='major', frequency_gamma={self.frequency_gamma!r}."
                )
        _check_one_of(
            "drw_start_epoch",
            self.drw_start_epoch,
            "drw_start_fraction",
            self.drw_start_fraction,
        )
        if (
            self.drw_start_epoch is not None
            or self.drw_start_fraction is not None
        ):
            if self.drw_start_epoch is not None:
                validation.check_int("drw_start_epoch", self.drw_start_epoch, 0)
            else:
                validation.check_number(
                    "drw_start_fraction",
                    self.drw_start_fraction,
                    0.0,
                    1.0,
                    high_open=True,
                )
            if self.reweight == "none":
                raise ValueError(
                    "Arguments `drw_start_epoch` / `drw_start_fraction` need "
                    "re-weighting to defer: set `reweight` to 'inverse' or 'cb'. "
                    f"Received: reweight='none', drw_start_epoch={self.drw_start_epoch}, "
                    f"drw_start_fraction={self.drw_start_fraction}."
                )
            if self.drw_start_at >= self.epochs:
                raise ValueError(
                    f"Deferred re-weighting would start at epoch {self.drw_start_at}, "
                    f"after the last epoch ({self.epochs - 1}): lower `drw_start_epoch` "
                    f"or `drw_start_fraction`, or raise `epochs`. Received: "
                    f"drw_start_epoch={self.drw_start_epoch}, "
                    f"drw_start_fraction={self.drw_start_fraction}, epochs={self.epochs}."
                )
        _check_one_of(
            "mix_stop_epoch",
            self.mix_stop_epoch,
            "mix_stop_fraction",
            self.mix_stop_fraction,
        )
        stop_given = (
            self.mix_stop_epoch is not None
            or self.mix_stop_fraction is not None
        )
        if self.mix_schedule == "stop" and not stop_given:
            raise ValueError(
                "Argument `mix_schedule='stop'` needs `mix_stop_epoch` (an int >= 0) "
                "or `mix_stop_fraction` (a fraction of `epochs` in (0, 1]). "
                "Received: neither."
            )
        if stop_given:
            if self.mix_schedule != "stop":
                raise ValueError(
                    "Arguments `mix_stop_epoch` / `mix_stop_fraction` take effect "
                    "only with `mix_schedule='stop'`. Received: "
                    f"mix_schedule={self.mix_schedule!r}, mix_stop_epoch="
                    f"{self.mix_stop_epoch}, mix_stop_fraction={self.mix_stop_fraction}."
                )
            if self.mix_stop_epoch is not None:
                validation.check_int("mix_stop_epoch", self.mix_stop_epoch, 0)
            else:
                validation.check_number(
                    "mix_stop_fraction",
                    self.mix_stop_fraction,
                    0.0,
                    1.0,
                    low_open=True,
                )
            if self.mix_stop_at > self.epochs:
                raise ValueError(
                    f"Mixing would stop at epoch {self.mix_stop_at}, after the last "
                    f"epoch ({self.epochs - 1}): lower `mix_stop_epoch`, or raise "
                    f"`epochs`. Received: mix_stop_epoch={self.mix_stop_epoch}, "
                    f"epochs={self.epochs}."
                )
        if self.mix_schedule != "constant" and not (
            self.mix_at or self.mix_after
        ):
            raise ValueError(
                f"Argument `mix_schedule={self.mix_schedule!r}` schedules MajorMix "
                "layers, but `mix_at` and `mix_after` are empty, so the model has none."
            )
        return self

    @property
    def drw_start_at(self):
        """The first (0-based) epoch of deferred re-weighting, or None.

        `drw_start_fraction` f gives `round(f * epochs)`, at most the last
        epoch, so a recipe holds for any training budget (with 2 epochs and
        f = 0.8, re-weighting starts at epoch 1).
        """
        if self.drw_start_fraction is not None:
            return min(
                int(round(self.drw_start_fraction * self.epochs)),
                self.epochs - 1,
            )
        return self.drw_start_epoch

    @property
    def mix_stop_at(self):
        """The first (0-based) epoch without mixing under `mix_schedule='stop'`, or None."""
        if self.mix_stop_fraction is not None:
            return int(round(self.mix_stop_fraction * self.epochs))
        return self.mix_stop_epoch

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


# (field, low, high, low_open, high_open) of every float field with a range.
_RANGES = (
    ("imbalance_ratio", 1.0, None, False, False),
    ("minor_fraction", 0.0, 1.0, True, True),
    ("train_fraction", 0.0, 1.0, True, False),
    ("strength", 0.0, 1.0, False, False),
    ("major_threshold", 0.0, 1.0, True, False),
    ("mix_prob", 0.0, 1.0, False, False),
    ("alpha", 0.0, None, True, False),
    ("mix_final_strength", 0.0, 1.0, False, False),
    ("focal_gamma", 0.0, None, False, False),
    ("ldam_max_margin", 0.0, None, False, False),
    ("ldam_scale", 0.0, None, True, False),
    ("la_tau", 0.0, None, False, False),
    ("cb_beta", 0.0, 1.0, False, True),
    ("mixup_alpha", 0.0, None, True, False),
    ("remix_kappa", 1.0, None, False, False),
    ("remix_tau", 0.0, 1.0, False, False),
    ("learning_rate", 0.0, None, True, False),
    ("momentum", 0.0, 1.0, False, False),
    ("weight_decay", 0.0, None, False, False),
)
_TFDS_NAME = re.compile(r"[a-z0-9_]+(/[\w.-]+)?(:[\w.*]+)?")


def _check_dataset(dataset):
    """A local path must exist; anything else must be a tensorflow-datasets name."""
    if not isinstance(dataset, str) or not dataset.strip():
        raise ValueError(
            "Argument `dataset` must be a tensorflow-datasets name (e.g. 'cifar10') or "
            f"the path of local data. Received: dataset={dataset!r}."
        )
    path = os.path.expanduser(dataset)
    if os.path.exists(path):
        return
    if dataset.startswith(("/", "~", ".")) or dataset.endswith(".npz"):
        raise ValueError(
            "Argument `dataset` points to a local path that does not exist. "
            f"Received: dataset={dataset!r}."
        )
    if not _TFDS_NAME.fullmatch(dataset):
        raise ValueError(
            "Argument `dataset` must be a tensorflow-datasets name (lower case, e.g. "
            "'cifar10' or 'cifar10:3.0.2') or the path of local data (a .npz file, a "
            f"folder of IDX files or of images). Received: dataset={dataset!r}."
        )


def _check_one_of(name, value, other_name, other_value):
    if value is not None and other_value is not None:
        raise ValueError(
            f"Arguments `{name}` and `{other_name}` set the same epoch; give one. "
            f"Received: {name}={value!r}, {other_name}={other_value!r}."
        )
