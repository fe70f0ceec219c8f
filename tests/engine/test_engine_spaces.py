"""Prediction spaces: round trips, closed forms on Gaussians, and which rules depend on the space."""

import itertools

import pytest
import torch

from unified_guidance.core import convert
from unified_guidance.core.spaces import CONTINUOUS_SPACES
from unified_guidance.data import GaussianMixture, two_d_mixture
from unified_guidance.guidance.functional import apg, cfg, rescale
from unified_guidance.schedules import CosineSchedule, LinearBetaSchedule, LinearFlowPath, RectifiedFlowPath

PATHS = [LinearBetaSchedule(), CosineSchedule(), LinearFlowPath(), RectifiedFlowPath()]
T = torch.tensor([0.2, 0.5, 0.7], dtype=torch.float64)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: type(p).__name__)
@pytest.mark.parametrize("src,dst", list(itertools.permutations(CONTINUOUS_SPACES, 2)))
def test_every_conversion_round_trips(path, src, dst):
    gen = torch.Generator().manual_seed(0)
    x, pred = (
        torch.randn(3, 4, 5, generator=gen, dtype=torch.float64),
        torch.randn(3, 4, 5, generator=gen, dtype=torch.float64),
    )
    coeffs = path.coefficients(T)
    back = convert(convert(pred, src, dst, x, coeffs), dst, src, x, coeffs)
    torch.testing.assert_close(back, pred, rtol=1e-10, atol=1e-10)


def gaussian(path, mean=0.7, std=0.5):
    """One isotropic Gaussian N(mean, std² I) in 2-D as a mixture of one component."""
    means = torch.full((1, 2), mean, dtype=torch.float64)
    covs = (std**2 * torch.eye(2, dtype=torch.float64))[None]
    return GaussianMixture(means, covs, torch.ones(1, dtype=torch.float64), torch.zeros(1, dtype=torch.long), path=path)


@pytest.mark.parametrize("path", PATHS, ids=lambda p: type(p).__name__)
def test_conversions_match_gaussian_closed_form(path):
    """x_t ~ N(αμ, α²s² + σ²): E[ε|x] = σ(x − αμ)/(α²s²+σ²), score = −(x − αμ)/(α²s²+σ²),
    velocity = α'E[x0|x] + σ'E[ε|x]; each space of the exact model must say the same."""
    mean, std = 0.7, 0.5
    x = torch.randn(3, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    c = path.coefficients(T)
    a, s, da, ds = (v[:, None] for v in (c.alpha_t, c.sigma_t, c.d_alpha_t, c.d_sigma_t))
    var = a**2 * std**2 + s**2
    eps = s * (x - a * mean) / var
    x0 = (x - s * eps) / a
    expected = {
        "eps": eps,
        "score": -(x - a * mean) / var,
        "x0": x0,
        "v": a * eps - s * x0,
        "velocity": da * x0 + ds * eps,
    }
    for space, want in expected.items():
        model = gaussian(path)
        model.space = space
        torch.testing.assert_close(model(x, T), want, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("path", PATHS[:1] + PATHS[2:3], ids=lambda p: type(p).__name__)
def test_score_space_is_the_gradient_of_the_exact_log_density(path):
    model = two_d_mixture(path=path, space="score")
    x = torch.randn(5, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64, requires_grad=True)
    labels = torch.tensor([0, 1, 2, 0, 3])  # 3 is ∅
    t = torch.tensor(0.4, dtype=torch.float64)
    cond_rows = labels < 3
    log_p = torch.where(cond_rows, model.log_prob(x, labels.clamp(max=2), t), model.log_prob(x, None, t))
    (grad,) = torch.autograd.grad(log_p.sum(), x)
    torch.testing.assert_close(model(x.detach(), t, labels), grad, rtol=1e-8, atol=1e-8)


def _in_space(rule, space, c, u, x, coeffs):
    to = lambda p: convert(p, "eps", space, x, coeffs)  # noqa: E731
    return convert(rule(to(c), to(u)), space, "eps", x, coeffs)


def test_cfg_is_the_same_in_every_space_and_rescale_apg_are_not():
    gen = torch.Generator().manual_seed(3)
    x, c, u = (torch.randn(4, 3, 8, 8, generator=gen, dtype=torch.float64) for _ in range(3))
    coeffs = LinearBetaSchedule().coefficients(torch.full((4,), 0.6, dtype=torch.float64))
    rules = {
        "cfg": lambda c, u: cfg(c, u, 4.0),
        "rescale": lambda c, u: rescale(cfg(c, u, 4.0), c, 0.7),
        "apg": lambda c, u: apg(c, u, 4.0)[0],
    }
    results = {name: {sp: _in_space(r, sp, c, u, x, coeffs) for sp in CONTINUOUS_SPACES} for name, r in rules.items()}
    for sp in CONTINUOUS_SPACES:
        torch.testing.assert_close(results["cfg"][sp], results["cfg"]["eps"], rtol=1e-9, atol=1e-9)
    for name in ("rescale", "apg"):
        gap = (results[name]["x0"] - results[name]["eps"]).abs().max()
        assert gap > 1e-2, f"{name} should depend on its space, max difference {gap}"


def test_token_spaces():
    logits = torch.randn(2, 7, dtype=torch.float64)
    logprobs = convert(logits, "logits", "logprobs")
    torch.testing.assert_close(logprobs.exp().sum(-1), torch.ones(2, dtype=torch.float64))
    assert convert(logprobs, "logprobs", "logits") is logprobs
    with pytest.raises(ValueError, match="token space"):
        convert(logits, "logits", "eps", logits, LinearFlowPath().coefficients(torch.tensor(0.5)))
    with pytest.raises(ValueError, match="valid spaces: eps, x0"):
        convert(logits, "logit", "logprobs")
    with pytest.raises(ValueError, match="coeffs"):
        convert(logits, "eps", "x0")


@pytest.mark.parametrize("space", ["eps", "x0", "v", "velocity"])
def test_exact_mixture_stays_finite_at_the_data_end_of_the_flow_path(space):
    """At t = 1 on the linear path σ_t = 0: ε and velocity come in closed form, no 0/0."""
    model = two_d_mixture(path=LinearFlowPath(), space=space)
    x = torch.randn(4, 2, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    out = model(x, torch.tensor(1.0, dtype=torch.float64), torch.tensor([0, 1, 2, 3]))
    assert bool(torch.isfinite(out).all())
    if space == "x0":  # at the data end the posterior mean is x itself
        torch.testing.assert_close(out, x)
