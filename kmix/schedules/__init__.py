"""kmix learning-rate schedules (Keras `LearningRateSchedule`s)."""

from kmix.schedules.warmup_step_decay import WarmupStepDecay
