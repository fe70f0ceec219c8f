"""Evidence on the exact Gaussian mixture: the s = 1 flow reproduces the data, guidance sharpens it."""

import torch

from unified_guidance.flow import log_likelihood, sample


def draw(mixture, scale, n, label, t_end, seed=0):
    gen = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, 2, generator=gen)
    labels = torch.full((n,), label)
    x, stats = sample(mixture, scale, x0, labels, t_span=(0.0, t_end), rtol=1e-6, atol=1e-6)
    return x, labels, stats


def test_s1_dopri5_samples_match_class_mean_and_covariance(mixture, t_end, float64):
    n = 1500
    x, _, _ = draw(mixture, 1.0, n, 0, t_end)
    mean, cov = mixture.class_moments(0)
    # Standard errors from the sample itself: se(mean_i) = sd_i/√n, se(cov_ij) = sd((x_i − m_i)(x_j − m_j))/√n.
    centred = x - x.mean(0)
    products = centred[:, :, None] * centred[:, None, :]
    se_mean = x.std(0) / n**0.5
    se_cov = products.reshape(n, -1).std(0).reshape(2, 2) / n**0.5
    # 4 standard errors (a false alarm ~1e-4 per entry); the path's end at 1 − 1e-4 shifts moments by ~1e-4.
    assert bool(((x.mean(0) - mean).abs() <= 4 * se_mean + 1e-3).all()), (x.mean(0), mean, se_mean)
    assert bool(((torch.cov(x.T) - cov).abs() <= 4 * se_cov + 1e-3).all()), (torch.cov(x.T), cov, se_cov)
    # The test has power: the unconditional mean is far outside these bounds.
    uncond_mean = (torch.softmax(mixture.log_weights, 0)[:, None] * mixture.means).sum(0)
    assert bool(((uncond_mean - mean).abs() > 10 * se_mean).any())


def test_likelihood_under_s1_field_matches_the_true_class_density(mixture, t_end, float64):
    x, labels, _ = draw(mixture, 1.0, 200, 1, t_end, seed=1)
    ll = log_likelihood(mixture, 1.0, x, labels, t_span=(t_end, 0.0), rtol=1e-7, atol=1e-7)
    exact = mixture.log_prob(x, labels, t=t_end)  # the exact marginal density at the path's end
    torch.testing.assert_close(ll.log_prob, exact, atol=1e-5, rtol=0)  # measured error 2.5e-7
    assert ll.stats.nfe > 0 and ll.stats.forward_rows == 200 * ll.stats.nfe
    # Under the other class's field, the same points are far less likely: the check discriminates.
    other = log_likelihood(mixture, 1.0, x, torch.zeros_like(labels), t_span=(t_end, 0.0), rtol=1e-5, atol=1e-5)
    assert float((ll.log_prob - other.log_prob).mean()) > 1.0


def test_purity_rises_and_spread_shrinks_with_scale(mixture, t_end, float64):
    purity, spread = [], []
    for scale in (1.0, 2.0, 4.0):
        x, _, _ = draw(mixture, scale, 400, 2, t_end, seed=2)
        posterior = mixture.class_posterior(x)  # p(y | x) under the data distribution
        purity.append(float(posterior[:, 2].mean()))
        spread.append(float(torch.cov(x.T).trace()))
    assert purity[0] < purity[1] < purity[2] and purity[2] > 0.99
    assert spread[0] > spread[1] > spread[2]
