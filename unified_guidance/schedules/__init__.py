"""Scale schedules s(τ) over progress τ ∈ [0, 1], and noise schedules / flow paths."""

from .noise import (
    PATHS,
    CosineSchedule,
    LinearBetaSchedule,
    LinearFlowPath,
    RectifiedFlowPath,
    sigma_interval_to_progress,
)
from .scale import (
    SCHEDULES,
    Beta,
    Constant,
    Cosine,
    Custom,
    Decay,
    Interval,
    Linear,
    Piecewise,
    Power,
    Product,
    Schedule,
    as_schedule,
    schedule_from_name,
)

__all__ = [
    "PATHS",
    "SCHEDULES",
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
    "Product",
    "RectifiedFlowPath",
    "Schedule",
    "as_schedule",
    "schedule_from_name",
    "sigma_interval_to_progress",
]
