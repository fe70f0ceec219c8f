"""Post-processes: adjustments of the guided prediction that know the conditional one.

Rescaled CFG, Imagen's thresholding, a norm cap; each declares its native ``space`` (``None``:
the space the guided prediction is in) and the engine converts there and back. They run on
every guided call, also where no reference runs (s = 1).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

from torch import Tensor

from . import functional as F
from .rules import check_space_or_none
from .validation import check_number, check_parameter


class PostProcess(ABC):
    """Adjusts a guided prediction, knowing the conditional one."""

    space: str | None = None
    reads_cond: bool = True
    """Whether the adjustment reads the conditional prediction (a guidance-free model's folded call
    has none to give it, so its reference runs instead)."""

    @abstractmethod
    def __call__(self, guided: Tensor, cond: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class Rescale(PostProcess):
    """Rescaled CFG (Lin et al., arXiv 2305.08891): ``φ·x·std(c)/std(x) + (1 − φ)·x``.

    Applied to x0 by default (the denoised image whose spread over-exposure inflates).
    """

    phi: float = 0.7
    space: str | None = "x0"

    def __post_init__(self) -> None:
        check_parameter("phi", self.phi)
        check_space_or_none(self.space)

    def __call__(self, guided, cond):
        return F.rescale(guided, cond, self.phi)


@dataclass(frozen=True)
class DynamicThreshold(PostProcess):
    """Imagen's dynamic thresholding of x0 (Saharia et al., arXiv 2205.11487)."""

    percentile: float = 0.995
    max_value: float = float("inf")
    space = "x0"
    reads_cond = False

    def __post_init__(self) -> None:
        check_number("percentile", self.percentile, lo=0.0, hi=1.0)
        if not self.max_value >= 1.0:
            raise ValueError(f"max_value: expected a value ≥ 1, got {self.max_value}")

    def __call__(self, guided, cond):
        return F.dynamic_threshold(guided, self.percentile, self.max_value, check_finite=False)


@dataclass(frozen=True)
class StaticClip(PostProcess):
    """Clamp x0 to [−bound, bound] (the data range)."""

    bound: float = 1.0
    space = "x0"
    reads_cond = False

    def __post_init__(self) -> None:
        check_parameter("bound", self.bound)

    def __call__(self, guided, cond):
        return F.static_clip(guided, self.bound)


@dataclass(frozen=True)
class NormCap(PostProcess):
    """Cap ‖guided‖ at ``k``·‖c‖ per sample; in x0 by default, any space on request."""

    k: float = 1.0
    space: str | None = "x0"

    def __post_init__(self) -> None:
        check_parameter("k", self.k)
        check_space_or_none(self.space)

    def __call__(self, guided, cond):
        return F.norm_cap(guided, cond, self.k)
