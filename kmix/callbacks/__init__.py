"""kmix callbacks: schedules that change variables during `fit`, never the graph."""

from kmix.callbacks.class_progress import ClassProgress
from kmix.callbacks.deferred_reweighting import DeferredReweighting
from kmix.callbacks.mix_schedule import MixSchedule
