"""The extrapolation engine: pure rule functions, typed rules and the guided-model wrapper.

The functional core (``cfg``, ``rescale``, ``cfg_zero_star``, ``dynamic_threshold``,
``apg`` …) takes tensors and returns tensors; :class:`Guidance` and
:class:`GuidedModel` apply them to a :class:`~unified_guidance.core.ConditionalModel`.
"""

from .adaptive import Adaptive, AdaptiveState
from .combine import combine
from .engine import GuidedModel, guide
from .frequency import fdg, laplacian_pyramid, rebuild_pyramid
from .functional import (
    APGState,
    apg,
    cfg,
    cfg_zero_star,
    cosine,
    dynamic_threshold,
    mambo_g,
    mambo_scale,
    multi_cfg,
    norm_cap,
    optimized_scale,
    perp_neg,
    project,
    rescale,
    static_clip,
    tangential_reference,
    tcfg,
)
from .plan import Plan
from .post import DynamicThreshold, NormCap, PostProcess, Rescale, StaticClip
from .registry import POSTPROCESSES, RULES, postprocess_from_name, rule_from_name
from .rules import APG, CFG, FDG, TCFG, CFGZeroStar, MamboG, PerpNeg, Rule
from .spec import (
    Guidance,
    GuidanceStats,
    GuidedPrediction,
    ModelReference,
    PerturbedReference,
    Reference,
    as_guidance,
)
from .stats import SampleOutput, SampleStats

__all__ = [
    "APG",
    "CFG",
    "FDG",
    "POSTPROCESSES",
    "RULES",
    "TCFG",
    "APGState",
    "Adaptive",
    "AdaptiveState",
    "CFGZeroStar",
    "DynamicThreshold",
    "Guidance",
    "GuidanceStats",
    "GuidedModel",
    "GuidedPrediction",
    "MamboG",
    "ModelReference",
    "NormCap",
    "PerpNeg",
    "PerturbedReference",
    "Plan",
    "PostProcess",
    "Reference",
    "Rescale",
    "Rule",
    "SampleOutput",
    "SampleStats",
    "StaticClip",
    "apg",
    "as_guidance",
    "cfg",
    "cfg_zero_star",
    "combine",
    "cosine",
    "dynamic_threshold",
    "fdg",
    "guide",
    "laplacian_pyramid",
    "mambo_g",
    "mambo_scale",
    "multi_cfg",
    "norm_cap",
    "optimized_scale",
    "perp_neg",
    "postprocess_from_name",
    "project",
    "rebuild_pyramid",
    "rescale",
    "rule_from_name",
    "static_clip",
    "tangential_reference",
    "tcfg",
]
