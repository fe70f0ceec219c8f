"""An exact class-conditional Gaussian mixture: a :class:`ConditionalModel` with no training.

Data: x0 ~ Σₖ πₖ N(μₖ, Σₖ), each component k belonging to one class yₖ. On any
affine path x_t = α_t·x0 + σ_t·ε the marginal is again a mixture,
x_t | k ~ N(α_t μₖ, Cₖ), Cₖ = α_t²Σₖ + σ_t² I, and the posterior mean is

    E[x0 | x_t, k] = μₖ + α_t Σₖ Cₖ⁻¹ (x_t − α_t μₖ),
    E[x0 | x_t, y] = Σ_{k ∈ y} r_k(x_t) E[x0 | x_t, k],   r_k ∝ πₖ N(x_t; α_t μₖ, Cₖ).

That is the exact denoiser, so the exact ε, score, v and flow velocity follow by
the engine's conversions, conditional (components of class y) and unconditional
(all components, label ∅ = ``num_classes``). Guided with CFG at scale s, the ε
is that of the sharpened density p_t(x)·p_t(y|x)^s (:meth:`guided_log_density`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..core.conditions import Cond, check_labels
from ..core.model import ConditionalModel
from ..core.path import Path
from ..core.spaces import from_x0_eps


class GaussianMixture(ConditionalModel):
    """Exact predictions of a Gaussian mixture with labelled components.

    Args:
        means: ``(K, D)`` component means μₖ.
        covs: ``(K, D, D)`` component covariances Σₖ.
        weights: ``(K,)`` mixture weights πₖ (normalised here).
        labels: ``(K,)`` class of each component, in ``[0, num_classes)``.
        path: the path whose time ``t`` the model takes (diffusion schedule or flow path).
        space: the prediction space returned by ``forward``.

    ``forward(x (B, D), t, labels (B,))`` with label ``num_classes`` (or ``None``) meaning ∅.
    """

    means: Tensor  # buffers, registered in __init__
    covs: Tensor
    log_weights: Tensor
    labels: Tensor

    def __init__(
        self, means: Tensor, covs: Tensor, weights: Tensor, labels: Tensor, *, path: Path, space: str = "eps"
    ) -> None:
        k, d = means.shape
        if covs.shape != (k, d, d):
            raise ValueError(f"covs: expected shape ({k}, {d}, {d}), got {tuple(covs.shape)}")
        if weights.shape != (k,) or labels.shape != (k,):
            raise ValueError(f"weights/labels: expected shape ({k},), got {tuple(weights.shape)}/{tuple(labels.shape)}")
        if bool((weights <= 0).any()):
            raise ValueError("weights: expected positive mixture weights")
        self.num_classes = int(labels.max()) + 1
        super().__init__(space=space, path=path, null_cond=self.num_classes)
        self.register_buffer("means", means)
        self.register_buffer("covs", covs)
        self.register_buffer("log_weights", torch.log(weights / weights.sum()))
        self.register_buffer("labels", labels.long())
        self.dim = d

    # -- densities ----------------------------------------------------------------------------

    def _component_log_probs(self, x: Tensor, alpha: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        """log N(x; α μₖ, Cₖ) ``(B, K)`` and Cₖ ``(B, K, D, D)`` for per-sample α, σ ``(B,)``."""
        eye = torch.eye(self.dim, dtype=x.dtype, device=x.device)
        cov = alpha[:, None, None, None] ** 2 * self.covs + sigma[:, None, None, None] ** 2 * eye
        diff = x[:, None, :] - alpha[:, None, None] * self.means
        chol = torch.linalg.cholesky(cov)
        sol = torch.cholesky_solve(diff.unsqueeze(-1), chol).squeeze(-1)
        maha = (diff * sol).sum(-1)
        log_det = 2.0 * torch.log(torch.diagonal(chol, dim1=-2, dim2=-1)).sum(-1)
        return -0.5 * (maha + log_det + self.dim * math.log(2 * math.pi)), cov

    def _mask(self, labels: Tensor) -> Tensor:
        """``(B, K)``: which components each row's condition admits (∅ admits all)."""
        null = labels == self.num_classes
        return (self.labels[None, :] == labels[:, None]) | null[:, None]

    def _coeffs(self, x: Tensor, t: Tensor | float | None) -> tuple[Tensor, Tensor]:
        if t is None:
            one = torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
            return one, torch.zeros_like(one)
        c = self.coefficients(torch.as_tensor(t, dtype=x.dtype, device=x.device))
        expand = lambda v: torch.as_tensor(v, dtype=x.dtype, device=x.device).expand(x.shape[0])  # noqa: E731
        return expand(c.alpha_t), expand(c.sigma_t)

    def log_prob(self, x: Tensor, labels: Tensor | None = None, t: Tensor | float | None = None) -> Tensor:
        """log p_t(x | y) ``(B,)``; ``labels=None`` gives log p_t(x); ``t=None`` the data density."""
        labels = self._labels(x, labels)
        log_n, _ = self._component_log_probs(x, *self._coeffs(x, t))
        masked = torch.where(self._mask(labels), self.log_weights + log_n, torch.full_like(log_n, -math.inf))
        class_mass = torch.where(self._mask(labels), self.log_weights, torch.full_like(log_n, -math.inf))
        return torch.logsumexp(masked, dim=1) - torch.logsumexp(class_mass, dim=1)

    def class_posterior(self, x: Tensor, t: Tensor | float | None = None) -> Tensor:
        """p_t(y | x) ``(B, num_classes)``."""
        log_n, _ = self._component_log_probs(x, *self._coeffs(x, t))
        joint = self.log_weights + log_n
        onehot = torch.nn.functional.one_hot(self.labels, self.num_classes).to(x.dtype)
        per_class = torch.logsumexp(joint[:, :, None] + torch.log(onehot)[None], dim=1)
        return torch.softmax(per_class, dim=1)

    def guided_log_density(self, x: Tensor, labels: Tensor, scale: float, t: Tensor | float | None = None) -> Tensor:
        """log p_t(x) + s·log p_t(y | x), unnormalised: the density CFG at scale s samples."""
        log_px = self.log_prob(x, None, t)
        post = self.class_posterior(x, t).gather(1, labels[:, None]).squeeze(1)
        return log_px + scale * torch.log(post)

    # -- predictions ----------------------------------------------------------------------------

    def posterior_means(self, x: Tensor, t: Tensor | float, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """E[x0 | x_t, y] and E[ε | x_t, y], each ``(B, D)`` (∅ or ``None``: unconditional).

        Both in closed form, E[ε | x_t, k] = σ_t Cₖ⁻¹(x_t − α_t μₖ), so neither
        divides by α_t or σ_t: they stay finite at both ends of the path.
        """
        labels = self._labels(x, labels)
        alpha, sigma = self._coeffs(x, t)
        log_n, cov = self._component_log_probs(x, alpha, sigma)
        logits = torch.where(self._mask(labels), self.log_weights + log_n, torch.full_like(log_n, -math.inf))
        resp = torch.softmax(logits, dim=1)[..., None]
        diff = x[:, None, :] - alpha[:, None, None] * self.means
        gain = torch.linalg.solve(cov, diff.unsqueeze(-1)).squeeze(-1)
        comp_x0 = self.means + alpha[:, None, None] * (self.covs @ gain.unsqueeze(-1)).squeeze(-1)
        comp_eps = sigma[:, None, None] * gain
        return (resp * comp_x0).sum(1), (resp * comp_eps).sum(1)

    def posterior_mean(self, x: Tensor, t: Tensor | float, labels: Tensor | None = None) -> Tensor:
        """E[x0 | x_t, y] ``(B, D)`` (∅ or ``None``: E[x0 | x_t])."""
        return self.posterior_means(x, t, labels)[0]

    def predict(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x: expected shape (B, {self.dim}), got {tuple(x.shape)}")
        x0, eps = self.posterior_means(x, t, self._labels(x, cond))
        coeffs = self.coefficients(torch.as_tensor(t, dtype=x.dtype, device=x.device))
        return from_x0_eps(x0, eps, self.space, x, coeffs)

    # -- sampling the data --------------------------------------------------------------------

    def sample(self, labels: Tensor, *, generator: torch.Generator | None = None) -> Tensor:
        """Exact samples x0 ~ p(x | y) ``(B, D)`` (label ∅ samples the whole mixture)."""
        labels = labels.to(self.means.device)
        logits = torch.where(self._mask(labels), self.log_weights, torch.full((1,), -math.inf, device=labels.device))
        comp = torch.multinomial(torch.softmax(logits.float(), dim=1), 1, generator=generator).squeeze(1)
        z = torch.randn(labels.shape[0], self.dim, generator=generator, device=self.means.device).to(self.means.dtype)
        chol = torch.linalg.cholesky(self.covs)[comp]
        return self.means[comp] + (chol @ z.unsqueeze(-1)).squeeze(-1)

    def class_moments(self, label: int) -> tuple[Tensor, Tensor]:
        """Mean ``(D,)`` and covariance ``(D, D)`` of p(x | y = label) in closed form."""
        mask = self.labels == label
        w = torch.softmax(self.log_weights[mask], dim=0)
        mu, cov = self.means[mask], self.covs[mask]
        mean = (w[:, None] * mu).sum(0)
        centred = mu - mean
        second = (w[:, None, None] * (cov + centred[:, :, None] * centred[:, None, :])).sum(0)
        return mean, second

    def _labels(self, x: Tensor, labels: Cond | None) -> Tensor:
        if labels is None:
            return torch.full((x.shape[0],), self.num_classes, dtype=torch.long, device=x.device)
        check_labels("cond", labels, x.shape[0], self.num_classes)
        assert isinstance(labels, Tensor)  # check_labels raised otherwise
        return labels.to(x.device)


def two_d_mixture(*, path: Path, space: str = "eps", dtype: torch.dtype = torch.float64) -> GaussianMixture:
    """Three classes in 2-D, two components each, overlapping at their margins.

    The overlap is what makes guidance visible: at s = 1 some samples of a class
    fall where another class is as likely; as s grows they retreat to their own class.
    """
    means = torch.tensor([[-2.0, 0.0], [-1.0, 1.5], [2.0, 0.0], [1.0, 1.5], [0.0, -2.0], [0.0, -0.5]], dtype=dtype)
    stds = torch.tensor([0.6, 0.5, 0.6, 0.5, 0.6, 0.7], dtype=dtype)
    covs = torch.diag_embed(stds[:, None].expand(-1, 2) ** 2)
    weights = torch.tensor([1.0, 0.6, 1.0, 0.6, 1.0, 0.5], dtype=dtype)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    return GaussianMixture(means, covs, weights, labels, path=path, space=space)
