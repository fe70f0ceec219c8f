"""The extrapolation engine: pure rule functions, typed rules and the guided-model wrapper.

The functional core (``cfg``, ``rescale``, ``cfg_zero_star``, ``dynamic_threshold``,
``apg`` …) takes tensors and returns tensors; :class:`Guidance` and
:class:`GuidedModel` apply them to a :class:`~unified_guidance.core.ConditionalModel`.
"""

from .engine import Guidance, GuidanceStats, GuidedModel, GuidedPrediction, ModelReference, guide
from .functional import (
    APGState,
    apg,
    cfg,
    cfg_zero_star,
    dynamic_threshold,
    multi_cfg,
    norm_cap,
    optimized_scale,
    project,
    rescale,
    static_clip,
)
from .rules import (
    APG,
    CFG,
    POSTPROCESSES,
    RULES,
    CFGZeroStar,
    DynamicThreshold,
    NormCap,
    PostProcess,
    Rescale,
    Rule,
    StaticClip,
    postprocess_from_name,
    rule_from_name,
)

__all__ = [
    "APG",
    "CFG",
    "POSTPROCESSES",
    "RULES",
    "APGState",
    "CFGZeroStar",
    "DynamicThreshold",
    "Guidance",
    "GuidanceStats",
    "GuidedModel",
    "GuidedPrediction",
    "ModelReference",
    "NormCap",
    "PostProcess",
    "Rescale",
    "Rule",
    "StaticClip",
    "apg",
    "cfg",
    "cfg_zero_star",
    "dynamic_threshold",
    "guide",
    "multi_cfg",
    "norm_cap",
    "optimized_scale",
    "postprocess_from_name",
    "project",
    "rescale",
    "rule_from_name",
    "static_clip",
]
