"""The interface every paradigm implements, prediction spaces, paths and shape checks."""

from .conditions import Cond, Conditions, NullSpec, batch_size_of, cat_batch, drop_condition, expand_null
from .model import ConditionalModel, ForwardStats, FunctionModel
from .path import Path, PathCoefficients
from .shapes import batch_time, broadcast_like, check_finite, check_pair, check_unit_interval
from .spaces import CONTINUOUS_SPACES, SPACES, TOKEN_SPACES, check_space, convert, from_x0_eps, to_x0_eps

__all__ = [
    "CONTINUOUS_SPACES",
    "SPACES",
    "TOKEN_SPACES",
    "Cond",
    "ConditionalModel",
    "Conditions",
    "ForwardStats",
    "FunctionModel",
    "NullSpec",
    "Path",
    "PathCoefficients",
    "batch_size_of",
    "batch_time",
    "broadcast_like",
    "cat_batch",
    "check_finite",
    "check_pair",
    "check_space",
    "check_unit_interval",
    "convert",
    "drop_condition",
    "expand_null",
    "from_x0_eps",
    "to_x0_eps",
]
