"""The registries of rules and post-processes by name (plain dicts; unknown names list the valid ones)."""

from __future__ import annotations

from typing import Any

from .adaptive import Adaptive
from .post import DynamicThreshold, NormCap, PostProcess, Rescale, StaticClip
from .rules import APG, CFG, FDG, TCFG, CFGZeroStar, MamboG, PerpNeg, Rule

RULES: dict[str, type[Rule]] = {
    "cfg": CFG,
    "apg": APG,
    "cfg_zero_star": CFGZeroStar,
    "tcfg": TCFG,
    "fdg": FDG,
    "mambo_g": MamboG,
    "perp_neg": PerpNeg,
    "adaptive": Adaptive,
}
POSTPROCESSES: dict[str, type[PostProcess]] = {
    "rescale": Rescale,
    "dynamic_threshold": DynamicThreshold,
    "static_clip": StaticClip,
    "norm_cap": NormCap,
}


def rule_from_name(name: str, **kwargs: Any) -> Rule:
    """Build a registered rule by name; unknown names list the valid ones."""
    if name not in RULES:
        raise ValueError(f"rule: unknown rule {name!r}; valid rules: {', '.join(RULES)}")
    return RULES[name](**kwargs)


def postprocess_from_name(name: str, **kwargs: Any) -> PostProcess:
    """Build a registered post-process by name; unknown names list the valid ones."""
    if name not in POSTPROCESSES:
        raise ValueError(f"post: unknown post-process {name!r}; valid ones: {', '.join(POSTPROCESSES)}")
    return POSTPROCESSES[name](**kwargs)
