"""An exponential moving average of a network's weights, with the warm-up established trainers use.

With a fixed decay β the average after n updates still holds β^n of the random
initial weights (β = 0.995: 60 % after 100 steps), so samples from a short run
are noise. The warm-up caps the decay at update n by (1 + n)/(10 + n), which
forgets the initialisation within the first few dozen steps and tends to β after.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor, nn
from torch.optim.swa_utils import AveragedModel


def ema_decay_at(decay: float, updates: int, warmup: bool = True) -> float:
    """The decay of the EMA update after ``updates`` earlier ones:

        β_n = min(β, (1 + n)/(10 + n))    (warm-up)    or    β_n = β

    ``updates`` counts the updates before this one (the first average copies the weights).
    """
    return min(decay, (1.0 + updates) / (10.0 + updates)) if warmup else decay


class _WarmupEMA:
    """``multi_avg_fn`` for :class:`~torch.optim.swa_utils.AveragedModel`: avg ← avg + (1 − β_n)(w − avg).

    A class, not a closure, so a module holding it pickles (``ddp_spawn``).
    """

    def __init__(self, decay: float, warmup: bool) -> None:
        self.decay, self.warmup = decay, warmup

    def __call__(self, averaged: Sequence[Tensor], current: Sequence[Tensor], num_averaged: Tensor | int) -> None:
        weight = 1.0 - ema_decay_at(self.decay, int(num_averaged), self.warmup)
        for a, w in zip(averaged, current, strict=True):
            a.lerp_(w, weight)


def ema_copy(net: nn.Module, decay: float, warmup: bool = True) -> AveragedModel:
    """A frozen EMA copy of ``net`` (parameters and buffers); update it with ``.update_parameters(net)``.

    It calls ``net``'s forward and keeps its ``guidance_input`` attribute, so a model adapter over the
    copy takes the guidance strength when ``net`` does (a guidance-free network)."""
    if not 0.0 <= decay <= 1.0:
        raise ValueError(f"ema_decay: expected a value in [0, 1], got {decay}")
    ema = AveragedModel(net, multi_avg_fn=_WarmupEMA(decay, warmup), use_buffers=True)
    object.__setattr__(ema, "guidance_input", bool(getattr(net, "guidance_input", False)))
    return ema.requires_grad_(False)
