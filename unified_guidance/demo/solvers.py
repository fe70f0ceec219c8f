"""The demo's sampler adapter: plain guidance goes to the paradigm module, solver-level methods to their solver.

CFG++ (diffusion, arXiv 2406.08070) and Rectified-CFG++ (flow, arXiv 2510.07631)
change the integration step, not the guided prediction, so a :class:`Guidance`
alone cannot carry them; the sweep marks them with
:class:`~.sweep.SolverGuidance` and this wrapper dispatches. Everything else is
the wrapped module's own ``sample``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from ..flow.rectified import rectified_cfgpp
from ..guidance.engine import Guidance
from .sweep import SolverGuidance


def plain(g: SolverGuidance) -> Guidance:
    """The rule, schedule and reference of ``g`` as an ordinary :class:`Guidance`."""
    return Guidance(references=g.references, post=g.post, batch_branches=g.batch_branches,
                    check_finite=g.check_finite)  # fmt: skip


class SolverAdapter(nn.Module):
    """``.model`` and ``.sample(labels, guidance, *, generator)`` of ``module``, with solver-level methods."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module: Any = module  # any runner's module: .model, .sample(...) and, for flow, .hparams

    @property
    def model(self):
        return self.module.model

    @torch.no_grad()
    def sample(self, labels: Tensor, guidance: Guidance, *, generator: torch.Generator | None = None) -> Tensor:
        if not isinstance(guidance, SolverGuidance):
            return self.module.sample(labels, guidance, generator=generator)
        if guidance.solver == "cfgpp":
            return self.module.sample(labels, plain(guidance), generator=generator, cfgpp=True)
        if guidance.solver == "rectified_cfgpp":
            return self._rectified(labels, guidance, generator)
        raise ValueError(f"solver: expected 'cfgpp' or 'rectified_cfgpp', got {guidance.solver!r}")

    def _rectified(self, labels: Tensor, g: SolverGuidance, generator: torch.Generator | None) -> Tensor:
        hp = self.module.hparams  # the flow module's sampling settings: same noise and step count as its sample()
        device = next(self.module.parameters()).device
        x0 = torch.randn((labels.shape[0], *hp.sample_shape), generator=generator).to(device)
        x, _ = rectified_cfgpp(self.model, plain(g), x0, labels.to(device), steps=hp.sample_steps, gamma=g.gamma)
        return x.clamp(-1.0, 1.0) if len(hp.sample_shape) == 3 else x
