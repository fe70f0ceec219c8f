"""Guidance in the weights: the training objectives of guided models, shared by the paradigms' losses.

Every paradigm's loss compares a prediction with a target in its own space (ε for diffusion,
the velocity for flow matching) under its own weighting; an objective only says *which*
prediction meets *which* target. With ``pred(x_t, c, β)`` the network in the loss's space,
c the condition after dropout (∅ for some rows), ``target`` the ordinary regression target
and ``sg`` the stop-gradient (here: computed under :func:`torch.no_grad`):

* ``"cfg"``: ``pred(x_t, c)`` onto ``target`` — condition dropout alone (Ho & Salimans,
  arXiv 2207.12598); guided at sampling with a second forward on ∅.
* ``"gft"``: the implicit conditional ``β·pred(x_t, c, β) + (1 − β)·sg[pred(x_t, ∅, 1)]`` onto
  ``target`` (GFT, Chen et al., arXiv 2501.15420); β is drawn per sample and rows whose
  condition is ∅ take β = 1 (they train the unconditional model ``pred(x_t, ∅, 1)``, as under
  CFG). The network at β = 1/s is CFG at scale s in one forward.
* ``"model_guidance"``: ``pred(x_t, c)`` onto ``target + w·sg[pred(x_t, c) − pred(x_t, ∅)]``
  (MG, Tang et al., arXiv 2502.12154), a fixed w ∈ [0, 1); ∅ rows regress onto ``target``.
  Its fixed point is ``pred(c) = pred(∅) + (pred*(c) − pred(∅))/(1 − w)``: CFG at s = 1/(1 − w),
  sampled with no guidance (scale 1).
* ``"distill"``: ``pred(x_t, c, β)`` onto a frozen teacher's CFG output
  ``s·teacher(x_t, c) − (s − 1)·teacher(x_t, ∅)`` at ``β = 1/s`` (guidance distillation,
  Meng et al., arXiv 2210.03142, stage one; their w is s − 1); ∅ rows match ``teacher(x_t, ∅)``.

Strengths are drawn per sample from a scale range (s_min, s_max): GFT draws β uniformly on
[1/s_max, 1/s_min] (the paper: β ~ U(0, 1), the default range (1, ∞)); distillation draws s
uniformly on [s_min, s_max] (Meng et al.: w = s − 1 ~ U[0, 4], the default range (1, 5)).
Every combination here has weights summing to one (or adds a difference), so it may be formed
in any prediction space that is affine in the network's output at fixed (x_t, t).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import Tensor

from ..core.conditions import Cond, batch_size_of, cat_batch, take_rows
from ..core.model import ConditionalModel
from ..core.shapes import broadcast_like

Predict = Callable[[Tensor, Tensor, Cond, "Tensor | None"], Tensor]
"""``(x_t (B, ...), t (B,), cond, β (B,) or None) -> prediction (B, ...)`` in the loss's space."""

Convert = Callable[[ConditionalModel, Tensor, Tensor, Tensor], Tensor]
"""``(model, output, x_t, t) -> the output in the loss's space`` (diffusion: to ε)."""

OBJECTIVES: tuple[str, ...] = ("cfg", "gft", "model_guidance", "distill")
DEFAULT_SCALE_RANGES: dict[str, tuple[float, float]] = {"gft": (1.0, math.inf), "distill": (1.0, 5.0)}


@dataclass(frozen=True)
class Objective:
    """A training objective and its options (see the module docstring for the equations).

    Args:
        name: one of :data:`OBJECTIVES`.
        scale_range: (s_min, s_max) of the drawn strengths for ``"gft"`` and ``"distill"``,
            1 ≤ s_min ≤ s_max (s_max may be ``inf`` for GFT); ``None``: :data:`DEFAULT_SCALE_RANGES`.
        mg_scale: MG's fixed w ∈ [0, 1) (the equivalent CFG scale is 1/(1 − w)).
        teacher: ``"distill"``: the frozen teacher (required), a trained CFG
            :class:`~unified_guidance.core.ConditionalModel` with ∅ (or a :data:`Predict` in the loss's space);
            ``"model_guidance"``: the model giving the stop-gradient term (``None``: the student itself).
    """

    name: str = "cfg"
    scale_range: tuple[float, float] | None = None
    mg_scale: float = 0.5
    teacher: ConditionalModel | Predict | None = None

    def __post_init__(self) -> None:
        if self.name not in OBJECTIVES:
            raise ValueError(f"objective: expected one of {', '.join(OBJECTIVES)}, got {self.name!r}")
        w = self.mg_scale
        if isinstance(w, bool) or not (isinstance(w, (int, float)) and 0.0 <= w < 1.0):
            raise ValueError(f"mg_scale: expected MG's w in [0, 1) (CFG scale 1/(1 − w)), got {self.mg_scale!r}")
        if self.scale_range is not None:
            lo, hi = (float(s) for s in self.scale_range)
            if not (1.0 <= lo <= hi) or math.isnan(hi) or (math.isinf(hi) and self.name == "distill"):
                raise ValueError(
                    f"scale_range: expected (s_min, s_max) with 1 <= s_min <= s_max (finite for distill), "
                    f"got {tuple(self.scale_range)}"
                )
        if self.name == "distill" and self.teacher is None:
            raise ValueError("teacher: the distill objective needs a teacher (a trained CFG model), got None")

    @property
    def takes_strength(self) -> bool:
        """Whether the student takes β (GFT, distillation): its network needs ``guidance_input``."""
        return self.name in ("gft", "distill")

    @property
    def scales(self) -> tuple[float, float]:
        """The scale range in use: :attr:`scale_range` or the objective's default."""
        if self.scale_range is not None:
            return (float(self.scale_range[0]), float(self.scale_range[1]))
        return DEFAULT_SCALE_RANGES.get(self.name, (1.0, 1.0))


def model_predict(model: ConditionalModel, convert: Convert | None = None) -> Predict:
    """``model`` as a :data:`Predict`: its output (β handed on when given), converted by ``convert``."""

    def predict(x: Tensor, t: Tensor, cond: Cond, beta: Tensor | None) -> Tensor:
        out = model(x, t, cond) if beta is None else model(x, t, cond, beta=beta)
        return out if convert is None else convert(model, out, x, t)

    return predict


def bind(objective: Objective, model: ConditionalModel, convert: Convert | None = None) -> tuple[Predict, Objective]:
    """The student ``model`` and the objective's teacher as predictors in the loss's space, after checking
    that the student can be trained so: a null condition for every objective but ``"cfg"``, the strength
    input (``guidance_input``) for ``"gft"`` and ``"distill"``."""
    if objective.name != "cfg" and not model.has_null:
        raise ValueError(f"model: the {objective.name} objective needs a model with a null condition (null_cond=...)")
    if objective.takes_strength and not model.guidance_input:
        raise ValueError(
            f"model: the {objective.name} objective trains the guidance strength β, so the network needs "
            "guidance_input=True (e.g. default_net(..., guidance_input=True)); got a network without it"
        )
    teacher: Any = objective.teacher
    if isinstance(teacher, ConditionalModel):
        objective = replace(objective, teacher=model_predict(teacher, convert))
    return model_predict(model, convert), objective


def sample_strength(objective: Objective, batch: int, *, generator: torch.Generator | None = None) -> Tensor:
    """``(batch,)`` strengths β = 1/s ∈ (0, 1], drawn on the CPU from ``generator``: uniform in β on
    [1/s_max, 1/s_min] for GFT, uniform in s on [s_min, s_max] for distillation."""
    lo_s, hi_s = objective.scales
    u = 1.0 - torch.rand(batch, generator=generator, dtype=torch.float64)  # (0, 1]: β = 0 never drawn
    if objective.name == "distill":
        return 1.0 / (hi_s + (lo_s - hi_s) * u)
    lo, hi = 1.0 / hi_s, 1.0 / lo_s
    return lo + (hi - lo) * u


def null_rows(cond: Cond, null: Cond) -> Tensor:
    """``(B,)`` bool: the rows of a tensor condition equal to ∅ (all False for dict/tuple conditions)."""
    if not isinstance(cond, Tensor) or not isinstance(null, Tensor):
        return torch.zeros(batch_size_of(cond), dtype=torch.bool)
    return (cond == null.to(cond.dtype)).reshape(cond.shape[0], -1).all(dim=1).cpu()


def gft_prediction(predict: Predict, x_t: Tensor, t: Tensor, cond: Cond, null: Cond, beta: Tensor) -> Tensor:
    """GFT's implicit conditional ``β·pred(x_t, c, β) + (1 − β)·sg[pred(x_t, ∅, 1)]``, β ``(B,)``.

    The ∅ forward runs without gradient and only on the rows with β < 1 (a row at β = 1, every
    dropped row among them, does not use it)."""
    pred = predict(x_t, t, cond, beta)
    uncond = null_prediction(predict, x_t, t, null, beta < 1, torch.zeros_like(pred), torch.ones_like(beta))
    b = per_sample(beta, pred, x_t)
    return b * pred + (1.0 - b) * uncond


def per_sample(value: Tensor, pred: Tensor, x_t: Tensor) -> Tensor:
    """``value`` ``(B,)`` broadcast against ``pred`` ``(B, ...)``, in the dtype ``pred`` and ``x_t`` promote to
    (an input of integer tokens leaves the prediction's)."""
    return broadcast_like(value.to(torch.promote_types(pred.dtype, x_t.dtype)), pred)


def mg_direction(predict: Predict, x_t: Tensor, t: Tensor, cond: Cond, null: Cond, pred: Tensor,
                 guide: Predict | None = None) -> Tensor:  # fmt: skip
    """MG's stop-gradient direction ``sg[pred(x_t, c) − pred(x_t, ∅)]`` ``(B, ...)`` from ``guide`` (``None``:
    the student, whose ``pred`` = pred(x_t, c) serves); 0 on the ∅ rows, whose forwards are not run."""
    with torch.no_grad():
        c = pred.detach() if guide is None else guide(x_t, t, cond, None)
    u = null_prediction(predict if guide is None else guide, x_t, t, null, ~null_rows(cond, null), c)
    return c - u


def null_prediction(predict: Predict, x_t: Tensor, t: Tensor, null: Cond, rows: Tensor, fill: Tensor,
                    beta: Tensor | None = None) -> Tensor:  # fmt: skip
    """``sg[pred(x_t, ∅)]`` on the rows where ``rows`` ``(B,)`` is true (one forward of those rows only),
    ``fill`` on the others."""
    index = rows.nonzero().squeeze(1).to(x_t.device)
    out = fill.detach().clone()
    if index.numel():
        with torch.no_grad():
            strength = None if beta is None else beta[index]
            out[index] = predict(x_t[index], t[index], take_rows(null, index), strength)
    return out


def cfg_target(predict: Predict, x_t: Tensor, t: Tensor, cond: Cond, null: Cond, scale: Tensor) -> Tensor:
    """``s·pred(x_t, c) − (s − 1)·pred(x_t, ∅)`` without gradient, one forward of 2B rows; ``scale`` ``(B,)``."""
    with torch.no_grad():
        c, u = predict(torch.cat([x_t, x_t]), torch.cat([t, t]), cat_batch([cond, null]), None).chunk(2)
        return u + per_sample(scale, c, x_t) * (c - u)


def objective_pair(
    objective: Objective,
    predict: Predict,
    x_t: Tensor,
    t: Tensor,
    cond: Cond,
    null: Cond,
    target: Tensor,
    *,
    beta: Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[Tensor, Tensor]:
    """The (prediction, target) pair ``objective`` regresses, both ``(B, ...)`` in the loss's space.

    ``null`` is ∅ expanded to the B rows; ``beta`` ``(B,)`` (GFT, distillation) is drawn with
    ``generator`` (:func:`sample_strength`) unless given; rows whose condition is ∅ take β = 1.
    """
    if objective.takes_strength:
        if beta is None:
            beta = sample_strength(objective, x_t.shape[0], generator=generator)
        beta = torch.where(null_rows(cond, null), torch.ones_like(beta), beta.detach().cpu()).to(x_t.device)
    return _PAIRS[objective.name](objective, predict, x_t, t, cond, null, target, beta)


def _cfg(o: Objective, predict: Predict, x_t: Tensor, t: Tensor, cond: Cond, null: Cond, target: Tensor,
         beta: Tensor | None) -> tuple[Tensor, Tensor]:  # fmt: skip
    return predict(x_t, t, cond, None), target


def _gft(o: Objective, predict: Predict, x_t: Tensor, t: Tensor, cond: Cond, null: Cond, target: Tensor,
         beta: Tensor | None) -> tuple[Tensor, Tensor]:  # fmt: skip
    assert beta is not None  # (drawn by objective_pair)
    return gft_prediction(predict, x_t, t, cond, null, beta), target


def _model_guidance(o: Objective, predict: Predict, x_t: Tensor, t: Tensor, cond: Cond, null: Cond, target: Tensor,
                    beta: Tensor | None) -> tuple[Tensor, Tensor]:  # fmt: skip
    pred = predict(x_t, t, cond, None)
    teacher: Any = o.teacher  # a Predict after bind
    return pred, target + o.mg_scale * mg_direction(predict, x_t, t, cond, null, pred, teacher)


def _distill(o: Objective, predict: Predict, x_t: Tensor, t: Tensor, cond: Cond, null: Cond, target: Tensor,
             beta: Tensor | None) -> tuple[Tensor, Tensor]:  # fmt: skip
    assert beta is not None and o.teacher is not None  # (drawn by objective_pair; checked by Objective)
    return predict(x_t, t, cond, beta), cfg_target(o.teacher, x_t, t, cond, null, 1.0 / beta)


_PAIRS = {"cfg": _cfg, "gft": _gft, "model_guidance": _model_guidance, "distill": _distill}
