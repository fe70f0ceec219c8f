"""Flow matching: guided velocity fields integrated with torchdiffeq.

Time convention: noise at t = 0, data at t = 1, ``x_t = t·x1 + (1 − t)·x0``
(:class:`~unified_guidance.schedules.LinearFlowPath`) unless a model says otherwise.
"""

from .field import GuidedField, IntegrationError
from .likelihood import LogLikelihood, divergence_exact, divergence_hutchinson, log_likelihood
from .loss import TIME_SAMPLERS, flow_matching_loss, sample_time
from .model import Reparametrized, VelocityModel
from .rectified import rectified_cfgpp
from .sampler import FlowStats, jump_times, sample, trajectory
from .solvers import ADAPTIVE, FIXED, SOLVERS

__all__ = [
    "ADAPTIVE",
    "FIXED",
    "SOLVERS",
    "TIME_SAMPLERS",
    "FlowStats",
    "GuidedField",
    "IntegrationError",
    "LogLikelihood",
    "Reparametrized",
    "VelocityModel",
    "divergence_exact",
    "divergence_hutchinson",
    "flow_matching_loss",
    "jump_times",
    "log_likelihood",
    "rectified_cfgpp",
    "sample",
    "sample_time",
    "trajectory",
]
