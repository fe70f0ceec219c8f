"""Metrics against exact oracles: hand-computed k-NN manifolds, closed-form Fréchet distances."""

import math

import pytest
import torch

from unified_guidance.evaluation.metrics import (
    adherence,
    class_precision_recall,
    feature_frechet_distance,
    frechet_distance,
    knn_radii,
    precision_recall,
    saturation,
)


def col(*values):
    return torch.tensor(values, dtype=torch.float64)[:, None]


def test_identical_sets_have_full_precision_and_recall():
    x = torch.randn(50, 4, generator=torch.Generator().manual_seed(0))
    pr = precision_recall(x, x.clone(), k=5)
    assert (pr.precision, pr.recall) == (1.0, 1.0)


def test_disjoint_far_sets_have_zero_precision_and_recall():
    g = torch.Generator().manual_seed(1)
    real, fake = torch.randn(40, 3, generator=g), torch.randn(40, 3, generator=g) + 100.0
    pr = precision_recall(real, fake, k=5)
    assert (pr.precision, pr.recall) == (0.0, 0.0)


def test_knn_radii_by_hand():
    # Points 0, 1, 2, 3: nearest other at 1 for all; second nearest at 2, 1, 1, 2.
    assert knn_radii(col(0, 1, 2, 3), 1).tolist() == [1, 1, 1, 1]
    assert knn_radii(col(0, 1, 2, 3), 2).tolist() == [2, 1, 1, 2]


def test_precision_recall_by_hand():
    # Real balls of radius 1 around 0..3 hold 0.5 but not 5; fake balls (radius 4.5) hold every real point.
    pr = precision_recall(col(0, 1, 2, 3), col(0.5, 5), k=1)
    assert (pr.precision, pr.recall) == (0.5, 1.0)
    # Fake radii (k=2) are 10, 9.5, 10: the ball around 10 reaches 0 exactly (≤ counts), so recall is 1.
    pr = precision_recall(col(0, 1, 2, 3), col(10, 10.5, 20), k=2)
    assert (pr.precision, pr.recall) == (0.0, 1.0)


def test_class_precision_recall_averages_classes():
    real = col(0, 1, 2, 3, 50, 51, 52, 53)
    labels = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    # Class 0 generated exactly; class 1 generated far away: (1 + 0)/2 each.
    fake = col(0, 1, 2, 3, 500, 501, 502, 503)
    pr = class_precision_recall(real, labels, fake, labels, k=2)
    assert (pr.precision, pr.recall) == (0.5, 0.5)


def test_precision_recall_rejects_bad_input():
    with pytest.raises(ValueError, match="k: expected 1 ≤ k < N = 3"):
        precision_recall(col(0, 1, 2), col(0, 1, 2, 3), k=5)
    with pytest.raises(ValueError, match="fake: expected feature dimension 1"):
        precision_recall(col(0, 1, 2), torch.zeros(3, 2), k=1)
    with pytest.raises(ValueError, match="real: expected finite features"):
        precision_recall(col(0, float("nan"), 2), col(0, 1, 2), k=1)
    with pytest.raises(ValueError, match="class 7 is requested"):
        class_precision_recall(col(0, 1, 2), torch.zeros(3, dtype=torch.long), col(0, 1, 2), torch.full((3,), 7), k=1)


def test_frechet_distance_commuting_closed_form():
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    a, b = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([9.0, 1.0, 0.0])  # b singular
    expected = 1 + 0 + 4 + sum((math.sqrt(x) - math.sqrt(y)) ** 2 for x, y in zip(a.tolist(), b.tolist(), strict=True))
    assert frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b)) == pytest.approx(expected, abs=1e-12)


def test_frechet_distance_non_commuting_2x2_closed_form():
    # For 2×2 PSD M: tr √M = √(tr M + 2√det M), with M = Σ₁^½ Σ₂ Σ₁^½ (tr M = tr Σ₁Σ₂, det M = det Σ₁ det Σ₂).
    s1 = torch.tensor([[2.0, 0.7], [0.7, 1.0]], dtype=torch.float64)
    s2 = torch.tensor([[0.5, -0.3], [-0.3, 3.0]], dtype=torch.float64)
    mu1, mu2 = torch.tensor([0.3, -1.0], dtype=torch.float64), torch.tensor([1.0, 2.0], dtype=torch.float64)
    cross = math.sqrt(torch.trace(s1 @ s2) + 2 * math.sqrt(torch.det(s1) * torch.det(s2)))
    expected = float((mu1 - mu2).square().sum() + torch.trace(s1) + torch.trace(s2)) - 2 * cross
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, abs=1e-12)
    assert frechet_distance(mu2, s2, mu1, s1) == pytest.approx(expected, abs=1e-12)


def test_frechet_distance_of_a_singular_gaussian_to_itself_is_zero():
    v = torch.randn(16, 1, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    cov = v @ v.T  # rank 1: a naive sqrtm of the product would meet round-off negatives
    fd = frechet_distance(torch.zeros(16), cov, torch.zeros(16), cov)
    assert 0.0 <= fd < 1e-9


def test_feature_frechet_distance_matches_gaussian_fit():
    x = torch.tensor([[0.0, 0.0], [2.0, 0.0], [0.0, 2.0], [2.0, 2.0]])
    # Mean (1, 1), unbiased covariance (4/3)·I; shifting by (3, 4) adds 25 only.
    assert feature_frechet_distance(x, x + torch.tensor([3.0, 4.0])) == pytest.approx(25.0, abs=1e-12)
    with pytest.raises(ValueError, match="cov2: expected shape"):
        frechet_distance(torch.zeros(2), torch.eye(2), torch.zeros(2), torch.eye(3))


def test_saturation_counts_values_at_the_bounds():
    x = torch.tensor([[-1.0, 1.0, 0.0, 0.5], [2.0, -0.9995, 0.2, -0.3]])
    s = saturation(x)
    assert s.at_bounds == pytest.approx(4 / 8)  # −1, 1, 2, −0.9995 (within tol 1e-3)
    assert s.mean_abs == pytest.approx((1 + 1 + 0 + 0.5 + 2 + 0.9995 + 0.2 + 0.3) / 8)
    with pytest.raises(ValueError, match="x: expected finite samples"):
        saturation(torch.tensor([float("inf")]))


def test_adherence_is_the_share_of_requested_classes():
    logits = torch.tensor([[3.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0], [1.0, 2.0, 0.0]])
    assert adherence(logits, torch.tensor([0, 1, 1, 1])) == 0.75
    with pytest.raises(ValueError, match="labels: expected logits"):
        adherence(logits, torch.tensor([0, 1]))
