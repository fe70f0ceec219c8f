"""What every sampler returns: the samples and one frozen record of what they cost.

``diffusion.sample``, ``flow.sample``, ``flow.trajectory``, ``flow.rectified_cfgpp``, both
``sample_with_scheduler`` and ``autoregressive.decode`` return a :class:`SampleOutput`,
which unpacks as ``x, stats = …``. The costs are read from the models' own forward counters
(:attr:`~unified_guidance.core.ConditionalModel.stats`) and the guided model's skip counters
(:attr:`~unified_guidance.guidance.GuidedModel.stats`), before and after the run, so
nothing is estimated.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..core.model import ConditionalModel
from .engine import GuidedModel


@dataclass(frozen=True)
class SampleStats:
    """Cost of one sampling run.

    Attributes:
        nfe: evaluations of the (guided) model the sampler asked for: one a step for DDIM/DDPM and a
            scheduler's loop (Heun: two), the ODE right-hand side's evaluations for torchdiffeq, two a
            step for Rectified-CFG++ (one where its correction weight is 0), one a token for decoding.
        forward_calls: network forwards (one per evaluation when the branches are batched).
        forward_rows: rows through the network(s) (2B per guided evaluation, B where the scale is 1).
        skipped_reference: reference forwards skipped (scale exactly 1, or a rule that needed none).
        skipped_rows: model rows those skips saved.
        steps: solver steps (``None``: the solver reports none, e.g. torchdiffeq's scipy solver).
        accepted_steps: accepted steps of an adaptive ODE solver (``None`` elsewhere).
        rejected_steps: rejected steps of an adaptive ODE solver (``None`` elsewhere).
        jump_t: the jump points handed to an adaptive ODE solver (path time; ``()`` elsewhere).
    """

    nfe: int
    forward_calls: int
    forward_rows: int
    skipped_reference: int
    skipped_rows: int
    steps: int | None
    accepted_steps: int | None = None
    rejected_steps: int | None = None
    jump_t: tuple[float, ...] = ()


@dataclass(frozen=True)
class SampleOutput:
    """A sampler's result: ``samples`` (final states, a trajectory ``(T, B, ...)``, or token ids) and
    their cost; unpacks as ``samples, stats = …``."""

    samples: Any
    stats: SampleStats

    def __iter__(self) -> Iterator[Any]:
        return iter((self.samples, self.stats))


class CostMeter:
    """Counts a run: the models' forwards and the guided model's skips since the meter was made.

    Args:
        models: the models whose forwards the run costs (a guided model's model and reference models).
        guided: the guided model whose skipped references are counted (``None``: the caller counts them).
    """

    def __init__(self, models: Sequence[ConditionalModel], guided: GuidedModel | None = None) -> None:
        self.models, self.guided = list(models), guided
        self.before = [m.stats for m in self.models]
        self.guided_before = guided.stats if guided is not None else None

    @classmethod
    def of(cls, guided: GuidedModel) -> CostMeter:
        """A meter over ``guided``: its model, its reference models and its skips."""
        return cls([guided.model, *guided.guidance.reference_models()], guided)

    def stats(self, *, nfe: int, steps: int | None, **more: Any) -> SampleStats:
        """The cost since the meter was made; ``more``: the remaining :class:`SampleStats` fields
        (``skipped_reference``/``skipped_rows`` where no guided model is metered)."""
        used = [m.stats - b for m, b in zip(self.models, self.before, strict=True)]
        if self.guided is not None and self.guided_before is not None:
            now, then = self.guided.stats, self.guided_before
            more = {
                "skipped_reference": now.skipped_reference - then.skipped_reference,
                "skipped_rows": now.skipped_rows - then.skipped_rows,
                **more,
            }
        calls, rows = sum(u.calls for u in used), sum(u.rows for u in used)
        return SampleStats(nfe=nfe, forward_calls=calls, forward_rows=rows, steps=steps, **more)
