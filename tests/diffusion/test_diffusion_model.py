"""The EpsModel adapter, discrete timesteps and the ε-MSE loss: conversions, checks and identities."""

from __future__ import annotations

import pytest
import torch
from diffusers import DDPMScheduler

from unified_guidance import Guidance
from unified_guidance.data.mixture import two_d_mixture
from unified_guidance.diffusion import AlphasCumprodPath, EpsModel, diffusion_loss, sample
from unified_guidance.diffusion.loss import q_sample
from unified_guidance.diffusion.time import discrete_to_time, time_to_discrete
from unified_guidance.guidance import APG
from unified_guidance.schedules import LinearBetaSchedule


class _MixtureNet(torch.nn.Module):
    """The exact mixture as a plain network predicting ``space`` (what a trained x0/v net would be)."""

    def __init__(self, space: str) -> None:
        super().__init__()
        self.mixture = two_d_mixture(path=LinearBetaSchedule(), space=space)
        self.seen_t: list[torch.Tensor] = []

    def forward(self, x, t, labels):
        self.seen_t.append(t)
        return self.mixture(x, t, labels)


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_x0_and_v_networks_sample_like_the_eps_network(float64, prediction):
    """The same denoiser expressed as ε, x0 or v gives the same guided samples (APG runs in x0)."""
    noise = torch.randn(32, 2, generator=torch.Generator().manual_seed(0))
    labels = torch.randint(0, 3, (32,), generator=torch.Generator().manual_seed(1))
    g = Guidance(rule=APG(eta=0.5, momentum=-0.5), scale=3.0)
    ref, _ = sample(EpsModel(_MixtureNet("eps"), null_cond=3, num_classes=3), g, None, labels, steps=8, noise=noise)
    model = EpsModel(_MixtureNet(prediction), prediction=prediction, null_cond=3, num_classes=3)
    torch.testing.assert_close(sample(model, g, None, labels, steps=8, noise=noise).samples, ref)


def test_null_label_token_and_time_scale_reach_the_network(float64):
    net = _MixtureNet("eps")
    model = EpsModel(net, null_cond=3, num_classes=3, time_scale=1.0)
    x = torch.randn(4, 2)
    torch.testing.assert_close(model(x, 0.3), net.mixture(x, torch.tensor(0.3), None))
    seen = []
    scaled = EpsModel(lambda x, t, c: seen.append(t) or torch.zeros_like(x), null_cond=3, time_scale=1000.0)
    scaled(x, torch.tensor(0.25), torch.zeros(4, dtype=torch.long))
    torch.testing.assert_close(seen[0], torch.full((4,), 250.0))


def test_explicit_null_tensor_is_expanded_for_the_reference_branch(float64):
    rows = []

    def net(x, t, emb):
        rows.append(emb)
        return x * emb.sum(dim=(1, 2))[:, None]

    null = torch.zeros(3, 5)
    model = EpsModel(net, null_cond=null)
    emb = torch.ones(2, 3, 5)
    model(torch.randn(2, 4), 0.5, None)
    torch.testing.assert_close(rows[-1], torch.zeros(2, 3, 5))
    sample(model, 2.0, (2, 4), emb, steps=1)
    torch.testing.assert_close(rows[-1], torch.cat([emb, torch.zeros(2, 3, 5)]))  # one stacked forward


def test_bad_input_is_named(float64):
    net = _MixtureNet("eps")
    with pytest.raises(ValueError, match="prediction: expected one of eps, x0, v"):
        EpsModel(net, prediction="score")
    model = EpsModel(net, null_cond=3, num_classes=3, sample_shape=(2,))
    x = torch.randn(4, 2)
    with pytest.raises(TypeError, match=r"cond: expected integer class labels, got torch\.float64 tensor"):
        model(x, 0.5, torch.zeros(4))
    with pytest.raises(ValueError, match=r"cond: expected labels in \[0, 3\]"):
        model(x, 0.5, torch.tensor([0, 1, 2, 7]))
    with pytest.raises(ValueError, match="cond: expected batch size 4"):
        model(x, 0.5, torch.zeros(3, dtype=torch.long))
    with pytest.raises(ValueError, match=r"x: expected samples of shape \(2,\)"):
        model(torch.randn(4, 3), 0.5, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="t: expected a scalar or shape"):
        model(x, torch.rand(3), torch.zeros(4, dtype=torch.long))
    bad = EpsModel(lambda x, t, c: x[:, :1], null_cond=3)
    with pytest.raises(ValueError, match=r"net: expected an output of the shape of x \(4, 2\), got \(4, 1\)"):
        bad(x, 0.5, torch.zeros(4, dtype=torch.long))
    emb_model = EpsModel(lambda x, t, c: x, null_cond=torch.zeros(3, 5))
    with pytest.raises(ValueError, match=r"cond: expected shape \(4, 3, 5\)"):
        emb_model(x, 0.5, torch.zeros(4, 2, 5))
    with pytest.raises(TypeError, match="cond: expected a floating-point embedding"):
        emb_model(x, 0.5, torch.zeros(4, dtype=torch.long))


def test_discrete_timesteps_map_onto_the_continuous_schedule(float64):
    """DDPM's 1000 linear βs (1e-4 … 0.02) are the continuous linear-β schedule at t = (k + 1)/1000."""
    k = torch.arange(1000)
    t = discrete_to_time(k, 1000)
    torch.testing.assert_close(time_to_discrete(t, 1000), k.double())
    alphas_cumprod = DDPMScheduler(num_train_timesteps=1000).alphas_cumprod.double()
    table = AlphasCumprodPath(alphas_cumprod)
    torch.testing.assert_close(table.coefficients(t).alpha_t, alphas_cumprod.sqrt())
    continuous = LinearBetaSchedule().coefficients(t).alpha_t
    torch.testing.assert_close(continuous, alphas_cumprod.sqrt(), rtol=2e-2, atol=1e-4)
    # the table's derivative is that of its own interpolant (central differences between knots)
    tm = torch.tensor([0.2505, 0.7005])
    h = 1e-7
    fd = (table.coefficients(tm + h).alpha_t - table.coefficients(tm - h).alpha_t) / (2 * h)
    torch.testing.assert_close(table.coefficients(tm).d_alpha_t, fd, rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="num_train_timesteps"):
        discrete_to_time(3, 0)
    with pytest.raises(ValueError, match="alphas_cumprod"):
        AlphasCumprodPath(torch.tensor([0.5, 1.5]))


def _loss_setup():
    gen = torch.Generator().manual_seed(0)
    x0 = torch.randn(64, 2, generator=gen)
    labels = torch.randint(0, 4, (64,), generator=gen)
    t = torch.rand(64, generator=gen) * 0.9 + 0.05
    eps = torch.randn(64, 2, generator=gen)
    return x0, labels, t, eps


def test_loss_weightings_are_the_stated_identities(float64):
    """ε-MSE weighted by 1/SNR is the x0-MSE; a v-network's ε-MSE is α²·its v-MSE; Min-SNR caps SNR at γ."""
    x0, labels, t, eps = _loss_setup()
    path = LinearBetaSchedule()
    model = EpsModel(_MixtureNet("x0"), prediction="x0", null_cond=3)
    x_t = q_sample(path, x0, t, eps)
    x0_err = (model(x_t, t, labels) - x0).pow(2).mean(1).mean()
    torch.testing.assert_close(diffusion_loss(model, x0, labels, t=t, eps=eps, weighting="x0"), x0_err)

    v_model = EpsModel(_MixtureNet("v"), prediction="v", null_cond=3)
    c = path.coefficients(t)
    v_true = c.alpha_t[:, None] * eps - c.sigma_t[:, None] * x0
    v_err = (c.alpha_t**2 * (v_model(x_t, t, labels) - v_true).pow(2).mean(1)).mean()
    torch.testing.assert_close(diffusion_loss(v_model, x0, labels, t=t, eps=eps), v_err)

    snr = (c.alpha_t / c.sigma_t) ** 2
    plain = diffusion_loss(v_model, x0, labels, t=t, eps=eps)
    assert float(snr.min()) < 5.0 < float(snr.max())
    uncapped = diffusion_loss(v_model, x0, labels, t=t, eps=eps, weighting="min_snr", snr_gamma=1e9)
    torch.testing.assert_close(uncapped, plain)
    assert float(diffusion_loss(v_model, x0, labels, t=t, eps=eps, weighting="min_snr")) < float(plain)


def test_loss_is_reproducible_with_a_generator_and_checks_input(float64):
    x0, labels, _, _ = _loss_setup()
    model = EpsModel(_MixtureNet("eps"), null_cond=3)
    run = lambda seed: diffusion_loss(model, x0, labels, generator=torch.Generator().manual_seed(seed))  # noqa: E731
    assert float(run(1)) == float(run(1)) != float(run(2))
    with pytest.raises(ValueError, match="weighting: expected one of none, min_snr, x0"):
        diffusion_loss(model, x0, labels, weighting="snr")
    with pytest.raises(ValueError, match=r"t: expected shape \(64,\)"):
        diffusion_loss(model, x0, labels, t=torch.rand(3))
    with pytest.raises(ValueError, match="eps: expected the shape of x0"):
        diffusion_loss(model, x0, labels, eps=torch.randn(64, 3))
