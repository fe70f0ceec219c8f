"""Log-likelihood by the instantaneous change of variables, against closed forms."""

import math

import pytest
import torch

from unified_guidance.flow import VelocityModel, log_likelihood
from unified_guidance.flow.likelihood import divergence_exact, divergence_hutchinson


def normal_log_prob(x, mean, std):
    return torch.distributions.Normal(mean, std).log_prob(x).sum(1)


def test_guided_gaussian_field_has_the_density_of_the_guided_mean(gaussian, float64):
    # u is affine in the class mean, so CFG at scale s is the exact flow to N(μ_∅ + s(μ_y − μ_∅), s_data²·I).
    model = VelocityModel(gaussian, null_cond=2)
    labels = torch.tensor([0, 1, 0, 1, 0])
    for scale in (1.0, 3.0):
        guided_mean = gaussian.means[2] + scale * (gaussian.means[labels] - gaussian.means[2])
        x = guided_mean + gaussian.s * torch.randn(5, 2)
        ll = log_likelihood(model, scale, x, labels, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(ll.log_prob, normal_log_prob(x, guided_mean, gaussian.s), atol=1e-6, rtol=0)
        torch.testing.assert_close(ll.noise, (x - guided_mean) / gaussian.s, atol=1e-6, rtol=0)
        assert ll.stats.forward_rows == (5 if scale == 1.0 else 10) * ll.stats.nfe


def test_divergence_estimators_on_a_linear_field(float64):
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(6, 6, generator=gen)
    x = torch.randn(3, 6, requires_grad=True)
    v = x @ a.T
    torch.testing.assert_close(divergence_exact(v, x), torch.full((3,), float(a.trace())))
    probes = (2 * torch.randint(0, 2, (4000, 3, 6), generator=gen) - 1).to(x.dtype)
    est = divergence_hutchinson(v, x, probes)
    # Rademacher: var(εᵀAε) = Σ_{i≠j} (A_ij² + A_ij A_ji); 4 standard errors over 4000 probes.
    sym = a * a + a * a.T
    sd = math.sqrt(float(sym.sum() - sym.diagonal().sum()))
    assert bool(((est - a.trace()).abs() < 4 * sd / math.sqrt(4000)).all())


def test_linear_flow_in_64_dims_exact_and_hutchinson(float64):
    # dx/dt = A x maps noise z to x = e^A z, so log p1(x) = log N(e^{−A} x; 0, I) − tr A.
    gen = torch.Generator().manual_seed(1)
    a = 0.3 * torch.randn(64, 64, generator=gen)
    net = lambda x, t, c: (x.flatten(1) @ a.T).reshape(x.shape)  # noqa: E731
    model = VelocityModel(net, null_cond=0)
    labels = torch.zeros(64, dtype=torch.long)
    x = (torch.linalg.matrix_exp(a) @ torch.randn(64, 64, generator=gen).T).T.reshape(64, 1, 8, 8)
    z = (torch.linalg.matrix_exp(-a) @ x.flatten(1).T).T
    exact = normal_log_prob(z, 0.0, 1.0) - a.trace()
    ll = log_likelihood(model, 1.0, x, labels, divergence="exact", rtol=1e-8, atol=1e-8)
    torch.testing.assert_close(ll.log_prob, exact, atol=1e-5, rtol=0)
    # "auto" switches to Hutchinson above 32 dimensions: unbiased, its error averages out over samples.
    hutch = log_likelihood(model, 1.0, x, labels, generator=gen, rtol=1e-6, atol=1e-6)
    err = hutch.log_prob - exact
    assert float(err.abs().max()) > 1e-3  # it is an estimate…
    assert abs(float(err.mean())) < 4 * float(err.std()) / 8  # …with mean zero (4 standard errors, 64 samples)


def test_unknown_divergence_and_bad_probes_raise(gaussian):
    model = VelocityModel(gaussian, null_cond=2)
    x, labels = torch.randn(2, 2, dtype=torch.float64), torch.tensor([0, 1])
    with pytest.raises(ValueError, match="divergence: expected one of auto, exact, hutchinson, got 'trace'"):
        log_likelihood(model, 1.0, x, labels, divergence="trace")
    with pytest.raises(ValueError, match="probes: expected a positive number"):
        log_likelihood(model, 1.0, x, labels, divergence="hutchinson", probes=0)
