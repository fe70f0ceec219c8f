"""Bootstrap intervals for the demo's metrics, paired across settings.

Every setting of a paradigm draws the same number of samples per class from the
same noise seeds, so sample i of one setting and sample i of another share their
starting noise. One set of bootstrap draws (indices resampled with replacement
within each class) is therefore applied to every setting: the replicate metrics
of two settings are paired, and the interval of their *difference* is much
tighter than two separate intervals would suggest — the honest way to say
"method A beats CFG at this sample size" or "not resolved".

Precision and adherence resample cleanly (the real digits' k-NN balls do not
move). Recall's balls are the samples' own k-NN radii, and a resample's
duplicates shrink them, so recall's bootstrap distribution sits below the full
sample's value. Every
interval is therefore centred on the full-sample estimate: θ̂ + the 2.5 / 97.5 %
quantiles of θ* − mean(θ*), the bootstrap's spread without its shift. Claims use
paired differences, whose shift largely cancels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from ..evaluation.metrics import knn_radii
from .evaluate import Evaluator, Reference, logits_and_features

METRICS: tuple[str, ...] = ("adherence", "precision", "recall")
"""The metrics with intervals, in the column order of :class:`Replicates`. FD has a point estimate only:
its bootstrap costs one F × F eigendecomposition per draw (128-d features), which doubled a quick run."""

LEVEL = 0.95
"""Coverage of every interval in the report."""


def bootstrap_draws(labels: Tensor, draws: int, seed: int = 0) -> Tensor:
    """``(draws, B)`` resampled indices of ``labels`` ``(B,)``, with replacement within each class."""
    gen = torch.Generator().manual_seed(seed)
    out = torch.empty(draws, labels.shape[0], dtype=torch.long)
    for c in torch.unique(labels).tolist():
        members = (labels == c).nonzero().squeeze(1)
        pick = torch.randint(0, members.shape[0], (draws, members.shape[0]), generator=gen)
        out[:, members] = members[pick]
    return out


@dataclass(frozen=True)
class Replicates:
    """The metrics of one setting on the full sample (``point``, ``(len(METRICS),)``) and on each
    bootstrap draw (``values``, ``(draws, len(METRICS))``)."""

    point: Tensor
    values: Tensor

    def interval(self, metric: str, level: float = LEVEL) -> tuple[float, float]:
        """The interval of ``metric``, centred on the full-sample estimate."""
        i = METRICS.index(metric)
        return _centred(self.point[i], self.values[:, i], level)

    def difference(self, other: Replicates, metric: str, level: float = LEVEL) -> tuple[float, float]:
        """The paired interval of ``self − other`` on ``metric`` (same draws on both)."""
        i = METRICS.index(metric)
        return _centred(self.point[i] - other.point[i], self.values[:, i] - other.values[:, i], level)


def _centred(point: Tensor, x: Tensor, level: float) -> tuple[float, float]:
    q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
    lo, hi = (float(point) + torch.quantile(x - x.mean(), q)).tolist()
    return lo, hi


def replicates(
    samples: Tensor, labels: Tensor, evaluator: Evaluator, ref: Reference, draws: Tensor, k: int = 5
) -> Replicates:
    """Adherence and class-averaged precision/recall of ``samples`` on every row of ``draws``.

    The evaluator runs once; pairwise distances are computed once per class, and
    every draw is evaluated at once (batched indexing).
    """
    logits, feats = logits_and_features(evaluator, samples.clamp(-1.0, 1.0).float())
    every = torch.cat([torch.arange(labels.shape[0])[None, :], draws])  # row 0: the full sample
    adherence = (logits.argmax(1) == labels).to(torch.float64)[every].mean(1)
    precision = torch.zeros(every.shape[0], dtype=torch.float64)
    recall = torch.zeros_like(precision)
    classes = torch.unique(labels).tolist()
    for c in classes:
        real = ref.features[ref.labels == c].double()
        members = (labels == c).nonzero().squeeze(1)
        fake = feats[members]
        to_real = torch.cdist(fake, real)  # (n_c, N_c)
        inside_real = (to_real <= knn_radii(real, k)[None, :]).any(1).to(torch.float64)
        local = torch.searchsorted(members, every[:, members])  # (draws, n_c): a draw keeps class c in place
        precision += inside_real[local].mean(1)
        to_fake = torch.cdist(fake, fake)[local[:, :, None], local[:, None, :]]  # (draws, n_c, n_c)
        radii = to_fake.topk(k + 1, dim=2, largest=False).values[:, :, k]
        recall += (to_real[local] <= radii[:, :, None]).any(1).to(torch.float64).mean(1)
    out = torch.stack([adherence, precision / len(classes), recall / len(classes)], dim=1)
    return Replicates(out[0], out[1:])


def resolved(lo: float, hi: float, threshold: float = 0.0) -> bool | None:
    """``True`` if an interval lies above ``threshold``, ``False`` if below, ``None`` if it straddles it."""
    if lo > threshold:
        return True
    if hi < threshold:
        return False
    return None


def intervals(reps: Replicates, metrics: Sequence[str] = METRICS) -> dict[str, list[float]]:
    """``{metric: [lo, hi]}`` for a report row."""
    return {m: list(reps.interval(m)) for m in metrics}
