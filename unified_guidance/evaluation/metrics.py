"""Sample-quality metrics for the guidance sweep, in float64.

* :func:`precision_recall` — improved precision and recall (Kynkäänniemi et al. 2019,
  arXiv 1904.06991): each set's manifold is the union of balls around its points
  with radius the distance to the k-th nearest neighbour in the same set.
* :func:`class_precision_recall` — the same per class, averaged over classes.
* :func:`frechet_distance` — between Gaussian fits of two feature sets
  (Heusel et al. 2017, arXiv 1706.08500).
* :func:`saturation` — share of values at the range bounds and mean |x|.
* :func:`adherence` — share of samples an evaluator assigns to the requested class.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class PrecisionRecall:
    """``precision``: share of generated samples inside the real manifold;
    ``recall``: share of real samples inside the generated manifold."""

    precision: float
    recall: float


@dataclass(frozen=True)
class Saturation:
    """``at_bounds``: share of values with |x| ≥ bound − tol; ``mean_abs``: mean |x|."""

    at_bounds: float
    mean_abs: float


def _check_features(name: str, x: Tensor) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a tensor of features (N, D), got {type(x).__name__}")
    if x.ndim != 2:
        raise ValueError(f"{name}: expected features of shape (N, D), got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name}: expected finite features, got NaN or inf")
    return x.detach().to(torch.float64)


def knn_radii(x: Tensor, k: int) -> Tensor:
    """Distance from each row of ``x`` ``(N, D)`` to its k-th nearest other row, ``(N,)``."""
    x = _check_features("x", x)
    if not 1 <= k < x.shape[0]:
        raise ValueError(f"k: expected 1 ≤ k < N = {x.shape[0]} (points in the set), got {k}")
    d = torch.cdist(x, x)
    # The smallest distance in each row is the point to itself (0); skip it.
    return d.topk(k + 1, dim=1, largest=False).values[:, k]


def _coverage(points: Tensor, centres: Tensor, radii: Tensor) -> float:
    """Share of ``points`` inside at least one ball (``centres``, ``radii``)."""
    inside = torch.cdist(points, centres) <= radii[None, :]
    return float(inside.any(dim=1).to(torch.float64).mean())


def precision_recall(real: Tensor, fake: Tensor, k: int = 5) -> PrecisionRecall:
    """Improved precision and recall (Kynkäänniemi et al. 2019, arXiv 1904.06991).

    precision = (1/M) Σⱼ 1[∃i: ‖fⱼ − rᵢ‖ ≤ NNₖ(rᵢ)],  recall = (1/N) Σᵢ 1[∃j: ‖rᵢ − fⱼ‖ ≤ NNₖ(fⱼ)],
    with NNₖ(·) the distance to the k-th nearest neighbour within the point's own set.

    Args:
        real: real features ``(N, D)``, N > k.
        fake: generated features ``(M, D)``, M > k.
        k: neighbourhood size (the paper uses 3; the demo 5).
    """
    real, fake = _check_features("real", real), _check_features("fake", fake)
    if real.shape[1] != fake.shape[1]:
        raise ValueError(f"fake: expected feature dimension {real.shape[1]} (that of real), got {fake.shape[1]}")
    precision = _coverage(fake, real, knn_radii(real, k))
    recall = _coverage(real, fake, knn_radii(fake, k))
    return PrecisionRecall(precision, recall)


def class_precision_recall(
    real: Tensor, real_labels: Tensor, fake: Tensor, fake_labels: Tensor, k: int = 5
) -> PrecisionRecall:
    """:func:`precision_recall` within each class of ``fake_labels`` (the requested classes), averaged.

    Args:
        real, real_labels: ``(N, D)`` features and ``(N,)`` labels of real data.
        fake, fake_labels: ``(M, D)`` features and ``(M,)`` requested labels of generated data.
    """
    if real_labels.shape != real.shape[:1] or fake_labels.shape != fake.shape[:1]:
        raise ValueError(
            f"labels: expected (N,) and (M,) labels matching features {tuple(real.shape)} and {tuple(fake.shape)}, "
            f"got {tuple(real_labels.shape)} and {tuple(fake_labels.shape)}"
        )
    scores = []
    for c in torch.unique(fake_labels).tolist():
        if not bool((real_labels == c).any()):
            raise ValueError(f"real_labels: class {c} is requested in fake_labels but has no real samples")
        scores.append(precision_recall(real[real_labels == c], fake[fake_labels == c], k))
    n = len(scores)
    return PrecisionRecall(sum(s.precision for s in scores) / n, sum(s.recall for s in scores) / n)


def gaussian_fit(x: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of features ``(N, D)``, N ≥ 2, in float64."""
    x = _check_features("x", x)
    if x.shape[0] < 2:
        raise ValueError(f"x: expected at least 2 rows to fit a covariance, got {x.shape[0]}")
    mu = x.mean(dim=0)
    centred = x - mu
    return mu, centred.T @ centred / (x.shape[0] - 1)


def _psd_sqrt(a: Tensor) -> Tensor:
    """Square root of a symmetric positive semi-definite matrix via eigh (negative round-off clamped)."""
    vals, vecs = torch.linalg.eigh((a + a.T) / 2)
    return (vecs * vals.clamp_min(0).sqrt()) @ vecs.T


def frechet_distance(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """Fréchet (2-Wasserstein²) distance between N(μ₁, Σ₁) and N(μ₂, Σ₂) (arXiv 1706.08500).

    FD = ‖μ₁ − μ₂‖² + tr Σ₁ + tr Σ₂ − 2 tr (Σ₁^½ Σ₂ Σ₁^½)^½.

    The cross term is computed from symmetric PSD square roots (eigendecompositions
    in float64), so it stays real and finite for singular covariances, where
    the usual ``sqrtm(Σ₁Σ₂)`` of a non-symmetric product can turn complex.

    Args:
        mu1, mu2: means ``(D,)``.
        cov1, cov2: covariances ``(D, D)``, symmetric positive semi-definite.
    """
    mu1, mu2 = (torch.as_tensor(m, dtype=torch.float64) for m in (mu1, mu2))
    cov1, cov2 = (torch.as_tensor(c, dtype=torch.float64) for c in (cov1, cov2))
    d = mu1.shape[0]
    for name, value, shape in (("mu2", mu2, (d,)), ("cov1", cov1, (d, d)), ("cov2", cov2, (d, d))):
        if tuple(value.shape) != shape:
            raise ValueError(f"{name}: expected shape {shape} (from mu1), got {tuple(value.shape)}")
    root1 = _psd_sqrt(cov1)
    cross = torch.linalg.eigvalsh(root1 @ cov2 @ root1).clamp_min(0).sqrt().sum()
    fd = (mu1 - mu2).square().sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * cross
    return max(float(fd), 0.0)


def feature_frechet_distance(real: Tensor, fake: Tensor) -> float:
    """:func:`frechet_distance` between Gaussian fits of two feature sets ``(N, D)`` and ``(M, D)``."""
    return frechet_distance(*gaussian_fit(real), *gaussian_fit(fake))


def saturation(x: Tensor, bound: float = 1.0, tol: float = 1e-3) -> Saturation:
    """Share of values at the range bounds (|x| ≥ bound − tol) and mean |x|, over all of ``x``.

    Pass samples before any final clipping: then mean |x| > bound shows how far
    guidance pushed past the data range.
    """
    if not isinstance(x, Tensor) or x.numel() == 0:
        raise ValueError("x: expected a non-empty tensor of samples")
    if not bool(torch.isfinite(x).all()):
        raise ValueError("x: expected finite samples, got NaN or inf")
    a = x.detach().to(torch.float64).abs()
    return Saturation(float((a >= bound - tol).to(torch.float64).mean()), float(a.mean()))


def adherence(logits: Tensor, labels: Tensor) -> float:
    """Share of samples whose evaluator's top class is the requested one.

    Args:
        logits: evaluator outputs ``(B, K)``.
        labels: requested classes ``(B,)``.
    """
    if logits.ndim != 2 or labels.shape != logits.shape[:1]:
        raise ValueError(
            f"labels: expected logits (B, K) and labels (B,), got {tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    return float((logits.argmax(dim=1) == labels).to(torch.float64).mean())
