"""The data of an `ExperimentConfig`."""

from kmix import data as kdata


def load_data(config):
    """The `kmix.data.ImbalancedDataset` the config describes."""
    return kdata.load(
        config.dataset,
        profile=config.profile,
        imbalance_ratio=config.imbalance_ratio,
        minor_fraction=config.minor_fraction,
        seed=config.seed,
        batch_size=config.batch_size,
        augment=config.augment,
        validation=validation_split(config.validation),
        train_fraction=config.train_fraction,
        max_per_class=config.max_per_class,
        data_dir=config.data_dir,
        streaming=config.streaming,
        image_size=config.image_size,
    )


def validation_split(value):
    """`config.validation` as `kmix.data.load` takes it: images per class (>= 1) or a fraction."""
    if value is not None and value >= 1:
        return int(value)
    return value
