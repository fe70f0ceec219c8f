"""A stand-in paradigm for tests and figures: the exact Gaussian mixture sampled by DDIM.

:class:`MixtureSampler` honours the paradigm contract the demo relies on — a
``.model`` (a :class:`~unified_guidance.core.ConditionalModel` that counts its
forward rows) and ``.sample(labels, guidance, generator=None)`` — with no
network to train: the "training" of :func:`fit_digits_mixture` is a moment fit
of one Gaussian per digit class (:class:`ClassGaussians`). Its denoiser is exact, so whatever the demo
measures on it is the effect of guidance alone.
"""

from __future__ import annotations

import itertools
import math

import torch
from torch import Tensor, nn

from ..core.conditions import Cond
from ..core.model import ConditionalModel
from ..data.mixture import GaussianMixture
from ..guidance.engine import Guidance, guide
from ..schedules.noise import LinearBetaSchedule


class MixtureSampler(nn.Module):
    """Deterministic DDIM (Song et al., arXiv 2010.02502) on an exact Gaussian denoiser.

    x_{t'} = α_{t'}·x̂0 + σ_{t'}·ε̂, with x̂0 = (x_t − σ_t ε̂)/α_t and ε̂ the guided ε,
    over ``steps`` uniform steps of diffusion time from 1 to 0.

    Args:
        model: an exact model predicting ``eps`` on a VP path, with ``.dim`` (a
            :class:`~unified_guidance.data.GaussianMixture` or :class:`ClassGaussians`).
        steps: DDIM steps (forward calls of the guided model per sample).
        image_shape: shape of one sample returned by :meth:`sample` (``(D,)`` if ``None``).
    """

    def __init__(
        self, model: GaussianMixture | ClassGaussians, *, steps: int = 20, image_shape: tuple[int, ...] | None = None
    ):
        super().__init__()
        if model.space != "eps":
            raise ValueError(f"model: expected a mixture predicting 'eps', got space {model.space!r}")
        if steps < 1:
            raise ValueError(f"steps: expected a positive number of steps, got {steps}")
        self.model, self.steps = model, steps
        self.image_shape = tuple(image_shape) if image_shape is not None else (model.dim,)

    @torch.no_grad()
    def sample(self, labels: Tensor, guidance: Guidance, *, generator: torch.Generator | None = None) -> Tensor:
        """Samples ``(B, *image_shape)`` for class ``labels`` ``(B,)`` under ``guidance`` (not clipped)."""
        guided = guide(self.model, guidance)
        dtype, device = self.model.means.dtype, self.model.means.device  # both models keep their means
        x = torch.randn(labels.shape[0], self.model.dim, generator=generator, device=device, dtype=dtype)
        times = torch.linspace(1.0, 0.0, self.steps + 1, dtype=dtype, device=device)
        for t, t_next in itertools.pairwise(times):
            eps = guided(x, t, labels.to(device))
            now, nxt = self.model.coefficients(t), self.model.coefficients(t_next)
            x0 = (x - now.sigma_t * eps) / now.alpha_t
            x = nxt.alpha_t * x0 + nxt.sigma_t * eps
        return x.reshape(labels.shape[0], *self.image_shape)


class ClassGaussians(ConditionalModel):
    """One Gaussian N(μ_y, Σ_y) per class, with exact predictions on a VP path (ε space).

    The same posterior mean as :class:`~unified_guidance.data.GaussianMixture`
    (one component per class), computed in each class's eigenbasis Σ_y = U diag(λ) Uᵀ:

        E[x0 | x_t, y] = μ_y + U diag(α_t λ / (α_t² λ + σ_t²)) Uᵀ (x_t − α_t μ_y),

    and for ∅ the responsibilities r_y ∝ π_y N(x_t; α_t μ_y, α_t² Σ_y + σ_t² I).
    No per-step factorisation, so 64-dimensional digits sample in milliseconds.

    Shapes: ``x (B, D)``, ``t`` scalar or ``(B,)``, ``labels (B,)`` with ``num_classes`` = ∅.
    """

    means: Tensor  # buffers, registered in __init__
    eigvals: Tensor
    eigvecs: Tensor
    log_weights: Tensor

    def __init__(self, num_classes: int = 10, dim: int = 64) -> None:
        super().__init__(space="eps", path=LinearBetaSchedule(), null_cond=num_classes)
        self.num_classes, self.dim = num_classes, dim
        self.register_buffer("means", torch.zeros(num_classes, dim, dtype=torch.float64))
        self.register_buffer("eigvals", torch.ones(num_classes, dim, dtype=torch.float64))
        self.register_buffer("eigvecs", torch.eye(dim, dtype=torch.float64).repeat(num_classes, 1, 1))
        self.register_buffer("log_weights", torch.full((num_classes,), -math.log(num_classes), dtype=torch.float64))

    def predict(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"x: expected shape (B, {self.dim}), got {tuple(x.shape)}")
        c = self.coefficients(torch.as_tensor(t, dtype=x.dtype, device=x.device))
        alpha = torch.as_tensor(c.alpha_t, dtype=x.dtype).expand(x.shape[0])[:, None, None]
        sigma = torch.as_tensor(c.sigma_t, dtype=x.dtype).expand(x.shape[0])[:, None, None]
        z = torch.einsum("kde,bkd->bke", self.eigvecs, x[:, None, :] - alpha * self.means)  # (B, K, D)
        var = alpha**2 * self.eigvals + sigma**2
        log_n = -0.5 * (z**2 / var + torch.log(2 * math.pi * var)).sum(-1)  # (B, K)
        labels = torch.as_tensor(cond, device=x.device)
        classes = torch.arange(self.num_classes, device=x.device)
        admit = (labels[:, None] == classes) | (labels == self.num_classes)[:, None]
        resp = torch.softmax(torch.where(admit, self.log_weights + log_n, -math.inf), dim=1)
        x0 = self.means + torch.einsum("kde,bke->bkd", self.eigvecs, alpha * self.eigvals / var * z)
        x0 = (resp[..., None] * x0).sum(1)
        return (x - alpha[:, 0] * x0) / sigma[:, 0]

    @torch.no_grad()
    def fit(self, images: Tensor, labels: Tensor, ridge: float = 0.01) -> ClassGaussians:
        """Set each class to the mean and covariance (+ ``ridge``·I) of its ``images`` ``(N, ...)``; returns self."""
        x = images.reshape(images.shape[0], -1).to(torch.float64)
        if x.shape[1] != self.dim:
            raise ValueError(f"images: expected {self.dim} values per image, got {x.shape[1]}")
        counts = torch.bincount(labels, minlength=self.num_classes)
        if bool((counts[: self.num_classes] < 2).any()):
            raise ValueError(f"labels: expected at least 2 images of each class, got counts {counts.tolist()}")
        for k in range(self.num_classes):
            xk = x[labels == k]
            self.means[k] = xk.mean(0)
            vals, vecs = torch.linalg.eigh(torch.cov(xk.T) + ridge * torch.eye(self.dim, dtype=torch.float64))
            self.eigvals[k], self.eigvecs[k] = vals, vecs
        self.log_weights.copy_(torch.log(counts[: self.num_classes].double() / counts.sum()))
        return self
