"""`ExperimentConfig`: phase boundaries as fractions of the budget, and its checks."""

import pytest

import kmix
from kmix import callbacks
from kmix import experiment


def _callbacks(config):
    return experiment.training_callbacks(
        config.validate(), [500, 5], output_dir=None
    )


@pytest.mark.parametrize(
    "epochs, stop, drw", [(10, 5, 8), (60, 30, 48), (3, 2, 2)]
)
def test_phase_fractions_give_epochs_for_any_budget(epochs, stop, drw):
    config = kmix.ExperimentConfig(
        epochs=epochs,
        mix_schedule="stop",
        mix_stop_fraction=0.5,
        reweight="cb",
        drw_start_fraction=0.8,
    )
    schedule, reweighting = _callbacks(config)
    assert isinstance(schedule, callbacks.MixSchedule)
    assert schedule.stop_epoch == stop == config.mix_stop_at
    assert [schedule.strength_at(e, initial=0.5) for e in (stop - 1, stop)] == [
        0.5,
        0.0,
    ]
    assert isinstance(reweighting, callbacks.DeferredReweighting)
    assert reweighting.start_epoch == drw == config.drw_start_at


def test_mix_stop_epoch_reaches_the_callback():
    config = kmix.ExperimentConfig(
        epochs=6, mix_schedule="stop", mix_stop_epoch=4
    )
    (schedule,) = _callbacks(config)
    assert [schedule.strength_at(e, initial=0.5) for e in range(6)] == [
        0.5
    ] * 4 + [0.0] * 2


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"mix_schedule": "stop"}, "needs `mix_stop_epoch`"),
        ({"mix_stop_epoch": 3}, "only with `mix_schedule='stop'`"),
        (
            {
                "mix_schedule": "stop",
                "mix_stop_epoch": 3,
                "mix_stop_fraction": 0.5,
            },
            "give one",
        ),
        (
            {"mix_schedule": "stop", "mix_stop_fraction": 1.5},
            "mix_stop_fraction",
        ),
        (
            {"reweight": "cb", "drw_start_epoch": 10, "epochs": 10},
            "after the last epoch",
        ),
        ({"reweight": "cb", "drw_start_fraction": 1.0}, "drw_start_fraction"),
        ({"drw_start_fraction": 0.5}, "need re-weighting"),
        ({"max_per_class": 0}, "max_per_class"),
        ({"validation": 2.5}, "whole number"),
        ({"frequency_gamma": -1.0}, "frequency_gamma"),
    ],
)
def test_bad_combinations_name_the_fields(fields, message):
    with pytest.raises(ValueError, match=message):
        kmix.ExperimentConfig(**fields).validate()
