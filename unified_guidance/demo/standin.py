"""A stand-in paradigm for tests and figures: the exact Gaussian mixture sampled by DDIM.

:class:`MixtureSampler` honours the paradigm contract the demo relies on — a
``.model`` (a :class:`~unified_guidance.core.ConditionalModel` that counts its
forward rows) and ``.sample(labels, guidance, generator=None)`` — with no
network to train: the "training" of :func:`fit_digits_mixture` is a moment fit
of one Gaussian per digit class. Its denoiser is exact, so whatever the demo
measures on it is the effect of guidance alone.
"""

from __future__ import annotations

import itertools

import torch
from torch import Tensor, nn

from ..analytic.mixture import GaussianMixture
from ..guidance.engine import Guidance, guide
from ..schedules.noise import LinearBetaSchedule


class MixtureSampler(nn.Module):
    """Deterministic DDIM (Song et al., arXiv 2010.02502) on an exact mixture denoiser.

    x_{t'} = α_{t'}·x̂0 + σ_{t'}·ε̂, with x̂0 = (x_t − σ_t ε̂)/α_t and ε̂ the guided ε,
    over ``steps`` uniform steps of diffusion time from 1 to 0.

    Args:
        model: a :class:`GaussianMixture` predicting ``eps`` on a VP path.
        steps: DDIM steps (forward calls of the guided model per sample).
        image_shape: shape of one sample returned by :meth:`sample` (``(D,)`` if ``None``).
    """

    def __init__(self, model: GaussianMixture, *, steps: int = 20, image_shape: tuple[int, ...] | None = None):
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
        dtype, device = self.model.means.dtype, self.model.means.device
        x = torch.randn(labels.shape[0], self.model.dim, generator=generator, device=device, dtype=dtype)
        times = torch.linspace(1.0, 0.0, self.steps + 1, dtype=dtype, device=device)
        for t, t_next in itertools.pairwise(times):
            eps = guided(x, t, labels.to(device))
            now, nxt = self.model.coefficients(t), self.model.coefficients(t_next)
            x0 = (x - now.sigma_t * eps) / now.alpha_t
            x = nxt.alpha_t * x0 + nxt.sigma_t * eps
        return x.reshape(labels.shape[0], *self.image_shape)


def empty_digits_mixture(num_classes: int = 10, dim: int = 64) -> GaussianMixture:
    """A mixture of the digits' shape (one component per class) to load fitted buffers into."""
    eye = torch.eye(dim, dtype=torch.float64).expand(num_classes, dim, dim).clone()
    return GaussianMixture(
        torch.zeros(num_classes, dim, dtype=torch.float64),
        eye,
        torch.ones(num_classes, dtype=torch.float64),
        torch.arange(num_classes),
        path=LinearBetaSchedule(),
    )


def fit_digits_mixture(mixture: GaussianMixture, images: Tensor, labels: Tensor, ridge: float = 0.01) -> None:
    """Set each class's component to the mean and covariance (+ ``ridge``·I) of its images, in place."""
    x = images.reshape(images.shape[0], -1).to(torch.float64)
    eye = torch.eye(x.shape[1], dtype=torch.float64)
    with torch.no_grad():
        for c in range(mixture.num_classes):
            xc = x[labels == c]
            if xc.shape[0] < 2:
                raise ValueError(f"labels: expected at least 2 images of class {c}, got {xc.shape[0]}")
            mixture.means[c] = xc.mean(0)
            mixture.covs[c] = torch.cov(xc.T) + ridge * eye
            mixture.log_weights[c] = float(xc.shape[0])
        mixture.log_weights.copy_(torch.log_softmax(torch.log(mixture.log_weights), dim=0))
