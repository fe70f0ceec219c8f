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

The objective and its options are the shared :class:`~unified_guidance.guidance.objectives.Objective`
(``scale_range``, ``mg_scale``, ``teacher``), its strengths drawn by
:func:`~unified_guidance.guidance.objectives.sample_strength`, and its formulas are those of
:mod:`unified_guidance.guidance.objectives` with the logits as the prediction (:func:`token_predict`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..core.conditions import Cond
from ..guidance.objectives import Objective, Predict, cfg_target, gft_prediction, mg_direction
from .loss import cross_entropy, teacher_forced
from .model import CausalLMModel


def token_logits(model: CausalLMModel, cond: Tensor, tokens: Tensor, beta: Tensor | None = None) -> Tensor:
    """ℓ_θ(c, β): logits ``(B, T, V)`` of ``tokens`` ``(B, T)`` after the condition token ``cond`` ``(B,)``,
    every position fed β ``(B,)`` (``None``: 1)."""
    seq = teacher_forced(cond, tokens)
    b = None if beta is None else beta[:, None].expand(seq.shape)
    return model.lm(**model.inputs(seq, b), attention_mask=torch.ones_like(seq)).logits


def token_predict(model: CausalLMModel) -> Predict:
    """``model``'s logits as a :data:`~unified_guidance.guidance.objectives.Predict`: ``(tokens (B, T), t,
    cond (B,), β (B,) or None) -> ℓ(c, β) (B, T, V)`` (``t`` unused), so the shared formulas run on logits."""

    def predict(tokens: Tensor, t: Tensor, cond: Cond, beta: Tensor | None) -> Tensor:
        assert isinstance(cond, Tensor)  # class tokens (B,)
        return token_logits(model, cond, tokens, beta)

    return predict


def soft_cross_entropy(logits: Tensor, target_logits: Tensor) -> Tensor:
    """Mean over positions of −Σ_v softmax(target)_v·log_softmax(logits)_v, in at least float32."""
    dtype = torch.promote_types(logits.dtype, torch.float32)
    q = torch.softmax(target_logits.to(dtype), dim=-1)
    return -(q * torch.log_softmax(logits.to(dtype), dim=-1)).sum(-1).mean()


def token_objective_loss(
    model: CausalLMModel,
    cond: Tensor,
    tokens: Tensor,
    objective: Objective | None = None,
    *,
    beta: Tensor | None = None,
) -> Tensor:
    """The loss of ``objective`` (module docstring; ``None``: ``"cfg"``) on ``tokens`` ``(B, T)`` after class
    tokens ``cond`` ``(B,)`` (∅ = the model's null token where dropout put it). ``beta`` ``(B,)``: the
    strengths (``"gft"``, ``"distill"``; :func:`~unified_guidance.guidance.objectives.sample_strength`), set
    to 1 on the ∅ rows here."""
    objective = Objective() if objective is None else objective
    null = model.null_condition(cond.shape[0], device=cond.device)
    assert isinstance(null, Tensor)
    if objective.takes_strength:
        if beta is None:
            raise ValueError(f"beta: the {objective.name} objective needs the strengths β (B,), got None")
        beta = torch.where((cond == null).cpu(), torch.ones_like(beta), beta.detach().cpu()).to(cond.device)
    if objective.teacher is not None:
        _teacher(objective)
    t = torch.zeros(cond.shape[0], device=cond.device)  # the token models' (unused) time
    return _LOSSES[objective.name](objective, token_predict(model), tokens, t, cond, null, beta)


def _cfg(o: Objective, predict: Predict, tokens: Tensor, t: Tensor, cond: Tensor, null: Tensor,
         beta: Tensor | None) -> Tensor:  # fmt: skip
    return cross_entropy(predict(tokens, t, cond, None), tokens)


def _gft(o: Objective, predict: Predict, tokens: Tensor, t: Tensor, cond: Tensor, null: Tensor,
         beta: Tensor | None) -> Tensor:  # fmt: skip
    assert beta is not None  # (checked by token_objective_loss)
    return cross_entropy(gft_prediction(predict, tokens, t, cond, null, beta), tokens)


def _model_guidance(o: Objective, predict: Predict, tokens: Tensor, t: Tensor, cond: Tensor, null: Tensor,
                    beta: Tensor | None) -> Tensor:  # fmt: skip
    logits = predict(tokens, t, cond, None)
    guide = None if o.teacher is None else token_predict(_teacher(o))
    return cross_entropy(logits - o.mg_scale * mg_direction(predict, tokens, t, cond, null, logits, guide), tokens)


def _distill(o: Objective, predict: Predict, tokens: Tensor, t: Tensor, cond: Tensor, null: Tensor,
             beta: Tensor | None) -> Tensor:  # fmt: skip
    assert beta is not None  # (checked by token_objective_loss)
    target = cfg_target(token_predict(_teacher(o)), tokens, t, cond, null, 1.0 / beta)
    return soft_cross_entropy(predict(tokens, t, cond, beta), target)


def _teacher(o: Objective) -> CausalLMModel:
    if not isinstance(o.teacher, CausalLMModel):
        raise ValueError(f"teacher: expected a CausalLMModel (a trained token model), got {type(o.teacher).__name__}")
    return o.teacher


_LOSSES = {"cfg": _cfg, "gft": _gft, "model_guidance": _model_guidance, "distill": _distill}
