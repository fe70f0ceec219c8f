"""DDIM/DDPM/CFG++ sampling against the exact Gaussian mixture: moments, guidance effects, forward counts."""

from __future__ import annotations

import pytest
import torch

from unified_guidance import Conditions, Guidance
from unified_guidance.core.spaces import to_x0_eps
from unified_guidance.data.mixture import two_d_mixture
from unified_guidance.diffusion import sample, time_grid
from unified_guidance.diffusion.sample import ddim_step, ddpm_step
from unified_guidance.guidance import (
    APG,
    CFG,
    CFGZeroStar,
    DynamicThreshold,
    ModelReference,
    NormCap,
    Rescale,
    Rule,
    StaticClip,
)
from unified_guidance.schedules import (
    Constant,
    CosineSchedule,
    Decay,
    Interval,
    Linear,
    LinearBetaSchedule,
    Piecewise,
    Power,
)
from unified_guidance.schedules import Cosine as CosineScale

PATHS = [LinearBetaSchedule(), CosineSchedule()]


def _labels(n: int, label: int = 0) -> torch.Tensor:
    return torch.full((n,), label, dtype=torch.long)


def test_ddpm_posterior_step_equals_ddim_at_eta_one(float64):
    path = LinearBetaSchedule()
    g = torch.Generator().manual_seed(0)
    x0, eps, z = (torch.randn(5, 3, generator=g) for _ in range(3))
    c_t, c_s = path.coefficients(torch.tensor(0.6)), path.coefficients(torch.tensor(0.35))
    x = c_t.alpha_t * x0 + c_t.sigma_t * eps
    torch.testing.assert_close(ddpm_step(x, x0, eps, c_t, c_s, z, 0.0), ddim_step(x, x0, eps, c_t, c_s, z, 1.0))
    # η = 0 is the deterministic DDIM update: re-noise along the same ε
    expected = c_s.alpha_t * x0 + c_s.sigma_t * eps
    torch.testing.assert_close(ddim_step(x, x0, eps, c_t, c_s, z, 0.0), expected)


def _moment_errors(mixture, x, label, n_ref=200_000):
    """(sample − true) mean and covariance, and their standard errors from exact data samples."""
    mu, cov = mixture.class_moments(label)
    data = mixture.sample(_labels(n_ref, label), generator=torch.Generator().manual_seed(99))
    centred = data - mu
    products = centred[:, :, None] * centred[:, None, :]
    n = x.shape[0]
    se_mean = (cov.diagonal() / n).sqrt()
    se_cov = products.std(dim=0) / n**0.5
    return x.mean(0) - mu, torch.cov(x.T) - cov, se_mean, se_cov


@pytest.mark.parametrize(("method", "path"), [("ddim", PATHS[0]), ("ddpm", PATHS[1])])
def test_scale_one_reproduces_class_moments(float64, method, path):
    """At s = 1 samples of class 0 have its exact mean and covariance, within 4 standard errors
    (N = 2000; 100 steps leave a discretisation bias below one standard error)."""
    mixture = two_d_mixture(path=path)
    n = 2000
    x, _ = sample(
        mixture, 1.0, (n, 2), _labels(n), steps=100, method=method, generator=torch.Generator().manual_seed(1)
    )
    d_mean, d_cov, se_mean, se_cov = _moment_errors(mixture, x, 0)
    assert bool((d_mean.abs() < 4 * se_mean).all()), (d_mean, se_mean)
    assert bool((d_cov.abs() < 4 * se_cov).all()), (d_cov, se_cov)


def test_purity_rises_and_spread_shrinks_with_scale(float64):
    mixture = two_d_mixture(path=LinearBetaSchedule())
    n, label = 600, 2
    purity, spread = [], []
    for s in (1.0, 2.0, 4.0):
        x, _ = sample(mixture, s, (n, 2), _labels(n, label), steps=20, generator=torch.Generator().manual_seed(2))
        purity.append(float(mixture.class_posterior(x)[:, label].mean()))
        spread.append(float(torch.cov(x.T).trace()))
    # at s = 1 the purity is that of the data itself, E_{x ~ p(x|y)} p(y | x)
    data = mixture.sample(_labels(20_000, label), generator=torch.Generator().manual_seed(3))
    p_data = mixture.class_posterior(data)[:, label]
    assert abs(purity[0] - float(p_data.mean())) < 4 * float(p_data.std()) / n**0.5 + 0.01
    assert purity[0] < purity[1] < purity[2]
    assert spread[0] > spread[1] > spread[2]


def test_reference_forward_batched_and_skipped_outside_interval(float64):
    mixture = two_d_mixture(path=LinearBetaSchedule())
    b, steps = 8, 10
    # τ at step i is i/10 (t_max = 1): the interval [0.15, 0.85] holds i = 2 … 8
    guidance = Guidance(scale=Interval(3.0, lo=0.15, hi=0.85))
    _, stats = sample(mixture, guidance, (b, 2), _labels(b), steps=steps)
    assert mixture.stats.calls == steps
    assert mixture.stats.rows == 7 * 2 * b + 3 * b
    assert (stats.nfe, stats.steps, stats.forward_calls, stats.forward_rows) == (steps, steps, steps, 7 * 2 * b + 3 * b)
    assert (stats.skipped_reference, stats.skipped_rows) == (3, 3 * b)
    mixture.reset_stats()
    sample(mixture, 1.0, (b, 2), _labels(b), steps=steps)
    assert (mixture.stats.calls, mixture.stats.rows) == (steps, steps * b)
    mixture.reset_stats()
    sample(mixture, Guidance(scale=3.0, batch_branches=False), (b, 2), _labels(b), steps=steps)
    assert (mixture.stats.calls, mixture.stats.rows) == (2 * steps, 2 * steps * b)


@pytest.mark.parametrize("method", ["ddim", "ddpm"])
def test_seeded_generator_gives_reproducible_samples(float64, method):
    mixture = two_d_mixture(path=LinearBetaSchedule())

    def run(seed: int) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        return sample(mixture, 2.0, (6, 2), _labels(6), steps=8, method=method, generator=gen).samples

    torch.testing.assert_close(run(5), run(5), rtol=0, atol=0)
    assert not torch.allclose(run(5), run(6))


class _RecordingX0Rule(Rule):
    """CFG in x0, recording what it receives."""

    space = "x0"

    def __init__(self) -> None:
        self.seen: list[tuple[torch.Tensor, torch.Tensor]] = []

    def __call__(self, cond, uncond, scale, *, tau, state=None):
        self.seen.append((cond, uncond))
        return uncond + scale * (cond - uncond), None


def test_rules_with_native_space_x0_receive_x0(float64):
    """The rule sees E[x0 | x_t, y] and E[x0 | x_t], the mixture's exact posterior means."""
    mixture = two_d_mixture(path=LinearBetaSchedule())
    rule = _RecordingX0Rule()
    noise = torch.randn(4, 2, generator=torch.Generator().manual_seed(0))
    out, _ = sample(mixture, Guidance(rule=rule, scale=2.5), None, _labels(4), steps=1, noise=noise)
    cond, uncond = rule.seen[0]
    torch.testing.assert_close(cond, mixture.posterior_mean(noise, 1.0, _labels(4)))
    torch.testing.assert_close(uncond, mixture.posterior_mean(noise, 1.0, None))
    torch.testing.assert_close(out, uncond + 2.5 * (cond - uncond))  # one step to t = 0 returns x̂0


GUIDANCES = [  # (guidance, bound on |x0| that its post-processing imposes)
    (Guidance(rule=CFG(), scale=Linear(1.0, 4.0)), None),
    (Guidance(rule=APG(eta=0.0, norm_threshold=2.0, momentum=-0.5), scale=CosineScale(1.0, 4.0)), None),
    (Guidance(rule=CFGZeroStar(zero_init=0.1), scale=Power(1.0, 4.0, exponent=2.0)), None),
    (Guidance(scale=Decay(4.0), post=(Rescale(0.7),)), None),
    (Guidance(scale=Piecewise(values=(1.0, 4.0, 2.0), boundaries=(0.3, 0.7)), post=(DynamicThreshold(0.9),)), 1.0),
    (Guidance(scale=Interval(4.0, 0.2, 0.8), post=(StaticClip(1.5), NormCap(1.5))), 1.5),
]


@pytest.mark.parametrize(("guidance", "bound"), GUIDANCES, ids=lambda g: getattr(getattr(g, "rule", None), "space", g))
@pytest.mark.parametrize("method", ["ddim", "ddim_cfgpp"])
def test_every_rule_schedule_and_postprocess_samples(float64, guidance, bound, method):
    """Each combination gives finite samples that differ from unguided ones; rules move them towards
    the class, thresholds keep the last x̂0 (the output) within their bound."""
    mixture = two_d_mixture(path=CosineSchedule())
    n, gen = 200, lambda: torch.Generator().manual_seed(4)
    guided, _ = sample(mixture, guidance, (n, 2), _labels(n, 1), steps=12, method=method, generator=gen())
    plain, _ = sample(mixture, 1.0, (n, 2), _labels(n, 1), steps=12, generator=gen())
    assert bool(torch.isfinite(guided).all()) and not torch.allclose(guided, plain)
    if bound is not None:
        assert float(guided.abs().max()) <= bound + 1e-12 < float(plain.abs().max())
    else:
        purity = lambda x: float(mixture.class_posterior(x)[:, 1].mean())  # noqa: E731
        assert purity(guided) > purity(plain)


def _cfgpp_by_hand(mixture, noise, labels, scale, steps, negative=None):
    """CFG++ DDIM written out: x̂0 guided, re-noised with the reference ε."""
    x, grid = noise, time_grid(mixture.path, steps)
    for i in range(steps):
        t, s = grid[i], grid[i + 1]
        c_t = mixture.coefficients(t)
        x0_c, _ = to_x0_eps(mixture(x, t, labels), "eps", x, c_t)
        x0_u, eps_u = to_x0_eps(mixture(x, t, negative), "eps", x, c_t)
        c_s = mixture.coefficients(s)
        alpha_s, sigma_s = (1.0, 0.0) if i == steps - 1 else (c_s.alpha_t, c_s.sigma_t)
        x = alpha_s * (x0_u + scale * (x0_c - x0_u)) + sigma_s * eps_u
    return x


@pytest.mark.parametrize("batch_branches", [True, False])
def test_cfgpp_renoises_with_the_reference_eps(float64, batch_branches):
    mixture = two_d_mixture(path=LinearBetaSchedule())
    noise = torch.randn(16, 2, generator=torch.Generator().manual_seed(7))
    labels = _labels(16, 1)
    g = Guidance(scale=0.6, batch_branches=batch_branches)  # CFG++ uses λ ∈ [0, 1]
    out, _ = sample(mixture, g, None, labels, steps=6, method="ddim_cfgpp", noise=noise)
    torch.testing.assert_close(out, _cfgpp_by_hand(mixture, noise, labels, 0.6, 6))
    # a negative condition is the reference: it supplies the re-noising ε
    neg = _labels(16, 2)
    out, _ = sample(mixture, g, None, Conditions.single(labels, neg), steps=6, method="ddim_cfgpp", noise=noise)
    torch.testing.assert_close(out, _cfgpp_by_hand(mixture, noise, labels, 0.6, 6, negative=neg))
    # and differs from plain CFG at the same scale
    assert not torch.allclose(
        out, sample(mixture, g, None, Conditions.single(labels, neg), steps=6, noise=noise).samples
    )


def test_cfgpp_with_reference_model_uses_its_eps(float64):
    strong, weak = two_d_mixture(path=LinearBetaSchedule()), two_d_mixture(path=LinearBetaSchedule())
    noise = torch.randn(8, 2, generator=torch.Generator().manual_seed(8))
    g = Guidance(scale=0.5, reference=ModelReference(weak, condition="null"))
    out, _ = sample(strong, g, None, _labels(8), steps=5, method="ddim_cfgpp", noise=noise)
    torch.testing.assert_close(out, _cfgpp_by_hand(strong, noise, _labels(8), 0.5, 5))
    assert weak.stats.rows == 5 * 8


def test_cfgpp_at_scale_one_is_the_plain_sampler(float64):
    mixture = two_d_mixture(path=LinearBetaSchedule())
    noise = torch.randn(8, 2, generator=torch.Generator().manual_seed(9))
    a, _ = sample(mixture, Guidance(scale=Constant(1.0)), None, _labels(8), steps=5, method="ddim_cfgpp", noise=noise)
    torch.testing.assert_close(a, sample(mixture, 1.0, None, _labels(8), steps=5, noise=noise).samples)
    assert mixture.stats.rows == 2 * 5 * 8  # no reference forward in either run


def test_bad_input_is_named(float64):
    mixture = two_d_mixture(path=LinearBetaSchedule())
    lab = _labels(4)
    with pytest.raises(ValueError, match="steps"):
        sample(mixture, 2.0, (4, 2), lab, steps=0)
    with pytest.raises(ValueError, match=r"method.*ddim, ddpm, ddim_cfgpp, ddpm_cfgpp"):
        sample(mixture, 2.0, (4, 2), lab, method="euler")
    with pytest.raises(ValueError, match="eta"):
        sample(mixture, 2.0, (4, 2), lab, method="ddpm_cfgpp", eta=0.5)
    with pytest.raises(ValueError, match="eta"):
        sample(mixture, 2.0, (4, 2), lab, eta=1.5)
    with pytest.raises(ValueError, match="eta"):
        sample(mixture, 2.0, (4, 2), lab, method="ddpm", eta=0.5)
    with pytest.raises(ValueError, match="shape"):
        sample(mixture, 2.0, None, lab)
    with pytest.raises(ValueError, match="cond: expected batch size 4"):
        sample(mixture, 2.0, (4, 2), _labels(3))
    with pytest.raises(ValueError, match="x: expected shape"):
        sample(mixture, 2.0, (4, 3), lab)
    with pytest.raises(ValueError, match="t_max"):
        sample(mixture, 2.0, (4, 2), lab, t_max=1.5)


def test_progress_bar_only_when_asked_or_on_a_terminal(float64, capsys):
    mixture = two_d_mixture(path=LinearBetaSchedule())
    sample(mixture, 2.0, (2, 2), _labels(2), steps=3)  # stderr is captured here, not a terminal: no bar
    assert capsys.readouterr().err == ""
    sample(mixture, 2.0, (2, 2), _labels(2), steps=3, progress=True)
    assert "ddim sampling" in capsys.readouterr().err
