"""The interface every paradigm implements, prediction spaces, paths and shape checks."""

from .conditions import Conditions, drop_condition
from .model import ConditionalModel, ForwardStats, FunctionModel
from .path import Path, PathCoefficients
from .spaces import convert

__all__ = [
    "ConditionalModel",
    "Conditions",
    "ForwardStats",
    "FunctionModel",
    "Path",
    "PathCoefficients",
    "convert",
    "drop_condition",
]
