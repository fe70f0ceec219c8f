"""The token objectives equal their formulas, hand-computed from the stateless oracle on float64 GPT-2s,
with their stop-gradients checked by gradients."""

import pytest
import torch
from ar_models import PAD, prompts, tiny_gpt2

from unified_guidance.autoregressive import CausalLMModel
from unified_guidance.autoregressive.objectives import token_objective_loss
from unified_guidance.guidance.objectives import Objective, sample_strength

NULL, T = 3, 5


def gft_model(seed: int = 0, guidance_input: bool = True) -> CausalLMModel:
    model = CausalLMModel(tiny_gpt2(seed), null_cond=NULL, pad_token_id=PAD, guidance_input=guidance_input)
    if guidance_input:
        torch.manual_seed(seed + 10)
        for p in model.strength.parameters():
            torch.nn.init.normal_(p, std=0.5)
    return model


def oracle_logits(model: CausalLMModel, cond: torch.Tensor, tokens: torch.Tensor, beta=None) -> torch.Tensor:
    """ℓ(c, β) ``(B, T, V)`` from T stateless calls, one per prefix of ``tokens``."""
    return torch.stack([model(tokens[:, :k], 0.0, cond, beta=beta) for k in range(tokens.shape[1])], dim=1)


def ce(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    return -torch.log_softmax(logits, -1).gather(-1, tokens[..., None]).mean()


def grads(model: CausalLMModel, loss: torch.Tensor) -> list[torch.Tensor]:
    params = [p for p in model.parameters() if p.requires_grad]
    return list(torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True, materialize_grads=True))


def assert_same_grads(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-12)


DATA = (torch.tensor([5, NULL, 9, 11]), prompts(4, T, seed=3))  # row 1 was dropped to ∅
BETA = torch.tensor([0.25, 0.7, 0.5, 1.0], dtype=torch.float64)


def test_gft_loss_is_its_formula_with_the_null_branch_stopped():
    model = gft_model()
    cond, tokens = DATA
    loss = token_objective_loss(model, cond, tokens, Objective("gft"), beta=BETA)
    b = torch.where(cond == NULL, 1.0, BETA)  # the ∅ row trains ℓ(∅, 1)
    null = torch.full_like(cond, NULL)
    conditional, uncond = oracle_logits(model, cond, tokens, b), oracle_logits(model, null, tokens)
    implicit = b[:, None, None] * conditional + (1 - b[:, None, None]) * uncond
    torch.testing.assert_close(loss, ce(implicit, tokens), rtol=1e-12, atol=0)
    stopped = b[:, None, None] * conditional + (1 - b[:, None, None]) * uncond.detach()
    assert_same_grads(grads(model, loss), grads(model, ce(stopped, tokens)))
    differs = [(x - y).abs().max() for x, y in zip(grads(model, loss), grads(model, ce(implicit, tokens)), strict=True)]
    assert max(differs) > 1e-6  # without the stop-gradient the ∅ branch would be trained too


def test_gft_at_beta_1_and_mg_at_w_0_are_the_cfg_loss():
    model = gft_model()
    cond, tokens = DATA
    cfg = token_objective_loss(model, cond, tokens)
    torch.testing.assert_close(cfg, ce(oracle_logits(model, cond, tokens), tokens), rtol=1e-12, atol=0)
    ones = torch.ones(4, dtype=torch.float64)
    for loss in (
        token_objective_loss(model, cond, tokens, Objective("gft"), beta=ones),
        token_objective_loss(model, cond, tokens, Objective("model_guidance", mg_scale=0.0)),
    ):
        torch.testing.assert_close(loss, cfg, rtol=1e-12, atol=0)
        assert_same_grads(grads(model, loss), grads(model, cfg))


def test_model_guidance_on_logits_is_its_formula_with_the_direction_stopped():
    model, w = gft_model(guidance_input=False), 0.6
    cond, tokens = DATA
    loss = token_objective_loss(model, cond, tokens, Objective("model_guidance", mg_scale=w))
    c, u = oracle_logits(model, cond, tokens), oracle_logits(model, torch.full_like(cond, NULL), tokens)
    shifted = c - w * (c - u).detach()
    torch.testing.assert_close(loss, ce((1 - w) * c + w * u, tokens), rtol=1e-12, atol=0)  # the value: CFG's line
    assert_same_grads(grads(model, loss), grads(model, ce(shifted, tokens)))  # the gradient: through ℓ(c) alone


def test_distillation_matches_the_teachers_cfg_distribution():
    student, teacher = gft_model(seed=1), gft_model(seed=2, guidance_input=False)
    cond, tokens = DATA
    loss = token_objective_loss(student, cond, tokens, Objective("distill", teacher=teacher), beta=BETA)
    b = torch.where(cond == NULL, 1.0, BETA)
    c, u = oracle_logits(teacher, cond, tokens), oracle_logits(teacher, torch.full_like(cond, NULL), tokens)
    q = torch.softmax(u + (1 / b)[:, None, None] * (c - u), -1)
    want = -(q * torch.log_softmax(oracle_logits(student, cond, tokens, b), -1)).sum(-1).mean()
    torch.testing.assert_close(loss, want, rtol=1e-12, atol=0)
    assert all(p.grad is None for p in teacher.parameters())
    loss.backward()
    assert all(p.grad is None for p in teacher.parameters())  # the teacher stays frozen


def test_strengths_are_drawn_in_the_scale_range():
    gen = torch.Generator().manual_seed(0)
    gft = sample_strength(Objective("gft", (1.0, 4.0)), 4000, generator=gen)
    assert float(gft.min()) >= 0.25 and float(gft.max()) <= 1.0 and abs(float(gft.mean()) - 0.625) < 0.01
    distill = sample_strength(Objective("distill", teacher=gft_model()), 4000, generator=gen)  # s ~ U[1, 5]
    assert abs(float((1 / distill).mean()) - 3.0) < 0.05
    default = sample_strength(Objective("gft"), 4000, generator=gen)  # β ~ U(0, 1]
    assert float(default.min()) > 0.0 and abs(float(default.mean()) - 0.5) < 0.015


def test_bad_objective_options_are_refused_by_name():
    model, (cond, tokens) = gft_model(), DATA
    with pytest.raises(ValueError, match="objective: expected one of cfg, gft, model_guidance, distill"):
        token_objective_loss(model, cond, tokens, Objective("cca"))
    with pytest.raises(ValueError, match="beta: the gft objective needs"):
        token_objective_loss(model, cond, tokens, Objective("gft"))
    with pytest.raises(ValueError, match="teacher: the distill objective needs"):
        token_objective_loss(model, cond, tokens, Objective("distill"), beta=BETA)
