"""The extrapolation engine: typed rules, the combination step, the plan and the guided-model wrapper.

:class:`Guidance` says what to do (references with their rules and scale schedules,
post-processes); :class:`GuidedModel` (:func:`guide`) applies it to a
:class:`~unified_guidance.core.ConditionalModel`, and :func:`~.combine.combine` is the one combination step
it shares with token decoding. The pure functions behind the rules (``cfg``, ``apg``,
``rescale`` …, tensors in, tensors out) are in :mod:`.functional` and :mod:`.frequency`.
"""

from .adaptive import Adaptive
from .engine import GuidedModel, guide
from .post import DynamicThreshold, NormCap, PostProcess, Rescale, StaticClip
from .rules import APG, CFG, FDG, TCFG, CFGZeroStar, MamboG, PerpNeg, Rule
from .spec import Guidance, ModelReference, PerturbedReference, Reference
from .stats import SampleOutput, SampleStats

__all__ = [
    "APG",
    "CFG",
    "FDG",
    "TCFG",
    "Adaptive",
    "CFGZeroStar",
    "DynamicThreshold",
    "Guidance",
    "GuidedModel",
    "MamboG",
    "ModelReference",
    "NormCap",
    "PerpNeg",
    "PerturbedReference",
    "PostProcess",
    "Reference",
    "Rescale",
    "Rule",
    "SampleOutput",
    "SampleStats",
    "StaticClip",
    "guide",
]
