"""The interface every paradigm implements, prediction spaces, paths and shape checks."""

from .conditions import Cond, Conditions, drop_condition
from .model import ConditionalModel, ForwardStats, FunctionModel
from .path import Path, PathCoefficients
from .spaces import SPACES, convert

__all__ = [
    "SPACES",
    "Cond",
    "ConditionalModel",
    "Conditions",
    "ForwardStats",
    "FunctionModel",
    "Path",
    "PathCoefficients",
    "convert",
    "drop_condition",
]
