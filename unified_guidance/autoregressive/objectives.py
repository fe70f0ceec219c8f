"""Guidance in the weights of a token model: training objectives on next-token logits.

With ℓ_θ(c, β) the logits ``(B, T, V)`` of a class-conditional :class:`~.model.CausalLMModel`
teacher-forced on ``tokens`` after the condition token c (∅ for the rows condition dropout
replaced), y the tokens, CE the mean cross-entropy and sg the stop-gradient (computed under
:func:`torch.no_grad`):

* ``"cfg"``: CE(ℓ_θ(c), y), condition dropout alone (Ho & Salimans, arXiv 2207.12598);
  :func:`~.loss.next_token_loss`.
* ``"gft"``: CE(β·ℓ_θ(c, β) + (1 − β)·sg[ℓ_θ(∅, 1)], y) (GFT, Chen et al., arXiv 2501.15420),
  β drawn per sample, 1 on the ∅ rows (they train the unconditional model as under CFG). The
  implicit conditional is the line CFG extrapolates, so ℓ_θ(c, 1/s) is CFG at scale s on raw
  logits (its softmax: CFG on log-probs, the decoder's default) in one forward.
* ``"model_guidance"``: CE(ℓ_θ(c) − w·sg[ℓ_θ(c) − ℓ_θ(∅)], y), MG (Tang et al., arXiv 2502.12154)
  on logits: MG regresses the prediction onto target + w·sg[Δ], i.e. prediction − w·sg[Δ] onto the
  target, and CE takes logits where the MSE took ε. Fixed point ℓ_θ(c) = ℓ(∅) + (ℓ(c) − ℓ(∅))/(1 − w):
  CFG at s = 1/(1 − w), decoded unguided (scale 1). ∅ rows: Δ = 0, plain CE.
* ``"distill"``: the soft cross-entropy −Σ_v q(v)·log softmax(ℓ_θ(c, β))_v against a frozen CFG
  teacher's guided distribution q = softmax(ℓ_T(∅) + s·(ℓ_T(c) − ℓ_T(∅))) at β = 1/s (guidance
  distillation, Meng et al., arXiv 2210.03142, on the data's token prefixes); ∅ rows match ℓ_T(∅).

Strengths follow the diffusion and flow objectives' convention (``scale_range`` (s_min, s_max)):
GFT draws β uniformly on [1/s_max, 1/s_min] (default (1, ∞): β ~ U(0, 1], the paper's),
distillation draws s uniformly on [s_min, s_max] (default (1, 5)).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .loss import teacher_forced
from .model import CausalLMModel

TOKEN_OBJECTIVES: tuple[str, ...] = ("cfg", "gft", "model_guidance", "distill")
DEFAULT_SCALE_RANGES: dict[str, tuple[float, float]] = {"gft": (1.0, math.inf), "distill": (1.0, 5.0)}


def check_token_objective(objective: str, scale_range: tuple[float, float] | None, mg_scale: float) -> None:
    """Raise, naming the argument, unless the objective and its options are valid."""
    if objective not in TOKEN_OBJECTIVES:
        raise ValueError(f"objective: expected one of {', '.join(TOKEN_OBJECTIVES)}, got {objective!r}")
    if isinstance(mg_scale, bool) or not isinstance(mg_scale, (int, float)) or not 0.0 <= mg_scale < 1.0:
        raise ValueError(f"mg_scale: expected MG's w in [0, 1) (CFG scale 1/(1 − w)), got {mg_scale!r}")
    if scale_range is not None:
        lo, hi = (float(s) for s in scale_range)
        if not 1.0 <= lo <= hi or math.isnan(hi) or (math.isinf(hi) and objective == "distill"):
            raise ValueError(
                f"scale_range: expected (s_min, s_max) with 1 <= s_min <= s_max (finite for distill), "
                f"got {tuple(scale_range)}"
            )


def draw_strength(
    objective: str, batch: int, scale_range: tuple[float, float] | None = None, generator: torch.Generator | None = None
) -> Tensor:
    """``(batch,)`` float64 strengths β = 1/s ∈ (0, 1] on the CPU: uniform in β on [1/s_max, 1/s_min]
    (``"gft"``), uniform in s on [s_min, s_max] (``"distill"``)."""
    lo_s, hi_s = scale_range if scale_range is not None else DEFAULT_SCALE_RANGES[objective]
    u = 1.0 - torch.rand(batch, generator=generator, dtype=torch.float64)  # (0, 1]: β = 0 never drawn
    if objective == "distill":
        return 1.0 / (hi_s + (lo_s - hi_s) * u)
    lo, hi = 1.0 / hi_s, 1.0 / lo_s
    return lo + (hi - lo) * u


def token_logits(model: CausalLMModel, cond: Tensor, tokens: Tensor, beta: Tensor | None = None) -> Tensor:
    """ℓ_θ(c, β): logits ``(B, T, V)`` of ``tokens`` ``(B, T)`` after the condition token ``cond`` ``(B,)``,
    every position fed β ``(B,)`` (``None``: 1)."""
    seq = teacher_forced(cond, tokens)
    b = None if beta is None else beta[:, None].expand(seq.shape)
    return model.lm(**model.inputs(seq, b), attention_mask=torch.ones_like(seq)).logits


def cross_entropy(logits: Tensor, tokens: Tensor) -> Tensor:
    """Mean CE of ``tokens`` ``(B, T)`` under ``logits`` ``(B, T, V)``, in at least float32."""
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens.reshape(-1))


def gft_logits(model: CausalLMModel, cond: Tensor, null: Tensor, tokens: Tensor, beta: Tensor) -> Tensor:
    """GFT's implicit conditional β·ℓ_θ(c, β) + (1 − β)·sg[ℓ_θ(∅, 1)] ``(B, T, V)``; the ∅ forward runs
    only for the rows with β < 1 (the others weigh it 0)."""
    logits = token_logits(model, cond, tokens, beta)
    b = beta.to(logits)[:, None, None]
    rows = (beta < 1).nonzero()[:, 0].to(cond.device)
    uncond = torch.zeros_like(logits)
    if rows.numel():
        with torch.no_grad():
            uncond = uncond.index_copy(0, rows, token_logits(model, null[rows], tokens[rows]))
    return b * logits + (1.0 - b) * uncond


def mg_logits(
    model: CausalLMModel, cond: Tensor, null: Tensor, tokens: Tensor, w: float, teacher: CausalLMModel | None = None
) -> Tensor:
    """MG on logits: ℓ_θ(c) − w·sg[ℓ(c) − ℓ(∅)] ``(B, T, V)``, the direction from ``teacher`` (default: the
    model); it is 0 on the ∅ rows, whose forwards are not run."""
    logits = token_logits(model, cond, tokens)
    rows = (cond != null).nonzero()[:, 0]
    direction = torch.zeros_like(logits)
    if rows.numel():
        with torch.no_grad():
            c = logits[rows].detach() if teacher is None else token_logits(teacher, cond[rows], tokens[rows])
            u = token_logits(model if teacher is None else teacher, null[rows], tokens[rows])
            direction = direction.index_copy(0, rows, c - u)
    return logits - w * direction


def guided_teacher_logits(teacher: CausalLMModel, cond: Tensor, null: Tensor, tokens: Tensor, beta: Tensor) -> Tensor:
    """The teacher's CFG logits ℓ_T(∅) + s·(ℓ_T(c) − ℓ_T(∅)) at s = 1/β ``(B,)``, one forward of 2B rows,
    without gradient."""
    with torch.no_grad():
        c, u = token_logits(teacher, torch.cat([cond, null]), torch.cat([tokens, tokens])).chunk(2)
        return u + (1.0 / beta).to(c)[:, None, None] * (c - u)


def soft_cross_entropy(logits: Tensor, target_logits: Tensor) -> Tensor:
    """Mean over positions of −Σ_v softmax(target)_v·log_softmax(logits)_v, in at least float32."""
    dtype = torch.promote_types(logits.dtype, torch.float32)
    q = torch.softmax(target_logits.to(dtype), dim=-1)
    return -(q * torch.log_softmax(logits.to(dtype), dim=-1)).sum(-1).mean()


def token_objective_loss(
    model: CausalLMModel,
    cond: Tensor,
    tokens: Tensor,
    *,
    objective: str = "cfg",
    beta: Tensor | None = None,
    mg_scale: float = 0.5,
    teacher: CausalLMModel | None = None,
) -> Tensor:
    """The loss of ``objective`` (module docstring) on ``tokens`` ``(B, T)`` after class tokens ``cond``
    ``(B,)`` (∅ = the model's null token where dropout put it). ``beta`` ``(B,)``: the strengths
    (``"gft"``, ``"distill"``; :func:`draw_strength`), set to 1 on the ∅ rows here."""
    null = model.null_condition(cond.shape[0], device=cond.device)
    assert isinstance(null, Tensor)
    if objective in ("gft", "distill"):
        if beta is None:
            raise ValueError(f"beta: the {objective} objective needs the strengths β (B,), got None")
        beta = torch.where((cond == null).cpu(), torch.ones_like(beta), beta.detach().cpu())
    if objective == "distill" and teacher is None:
        raise ValueError("teacher: the distill objective needs a trained CFG teacher, got None")
    if objective not in _LOSSES:
        raise ValueError(f"objective: expected one of {', '.join(TOKEN_OBJECTIVES)}, got {objective!r}")
    return _LOSSES[objective](model, cond, null, tokens, beta, mg_scale, teacher)


def _cfg(model, cond, null, tokens, beta, mg_scale, teacher) -> Tensor:
    return cross_entropy(token_logits(model, cond, tokens), tokens)


def _gft(model, cond, null, tokens, beta, mg_scale, teacher) -> Tensor:
    return cross_entropy(gft_logits(model, cond, null, tokens, beta), tokens)


def _model_guidance(model, cond, null, tokens, beta, mg_scale, teacher) -> Tensor:
    return cross_entropy(mg_logits(model, cond, null, tokens, mg_scale, teacher), tokens)


def _distill(model, cond, null, tokens, beta, mg_scale, teacher) -> Tensor:
    target = guided_teacher_logits(teacher, cond, null, tokens, beta)
    return soft_cross_entropy(token_logits(model, cond, tokens, beta), target)


_LOSSES = {"cfg": _cfg, "gft": _gft, "model_guidance": _model_guidance, "distill": _distill}
