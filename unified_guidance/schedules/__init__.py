"""Scale schedules s(τ) over progress τ ∈ [0, 1], and noise schedules / flow paths."""

from .noise import (
    CosineSchedule,
    LinearBetaSchedule,
    LinearFlowPath,
    RectifiedFlowPath,
    sigma_interval_to_progress,
)
from .scale import Beta, Constant, Cosine, Custom, Decay, Interval, Linear, Piecewise, Power, Schedule

__all__ = [
    "Beta",
    "Constant",
    "Cosine",
    "CosineSchedule",
    "Custom",
    "Decay",
    "Interval",
    "Linear",
    "LinearBetaSchedule",
    "LinearFlowPath",
    "Piecewise",
    "Power",
    "RectifiedFlowPath",
    "Schedule",
    "sigma_interval_to_progress",
]
