"""Judging one setting's samples with an evaluator trained on the real digits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor

from ..evaluation.metrics import adherence, class_precision_recall, feature_frechet_distance, saturation


class Evaluator(Protocol):
    """What the demo needs of a classifier (:class:`~unified_guidance.evaluation.DigitsClassifier` is one):
    logits ``(B, 10)`` from ``__call__``, ``features(x) -> (B, F)``, and its accuracy on held-out digits."""

    held_out_accuracy: float

    def __call__(self, x: Tensor) -> Tensor: ...

    def features(self, x: Tensor) -> Tensor: ...


@dataclass(frozen=True)
class Reference:
    """Evaluator features ``(N, F)`` and labels ``(N,)`` of the real digits compared against."""

    features: Tensor
    labels: Tensor


@dataclass(frozen=True)
class SettingMetrics:
    """The measured numbers of one setting (see :mod:`~unified_guidance.evaluation.metrics`)."""

    adherence: float
    precision: float
    recall: float
    fd: float
    saturation: float
    mean_abs: float


@torch.no_grad()
def logits_and_features(evaluator: Evaluator, x: Tensor, chunk: int = 512) -> tuple[Tensor, Tensor]:
    """The evaluator's logits ``(N, classes)`` and features ``(N, F)`` of images ``x``, in float64,
    ``chunk`` images at a time."""
    logits, feats = [], []
    for part in x.split(chunk):
        logits.append(evaluator(part).double())
        feats.append(evaluator.features(part).double())
    return torch.cat(logits), torch.cat(feats)


def reference(evaluator: Evaluator, images: Tensor, labels: Tensor) -> Reference:
    """Features of the real ``images`` ``(N, 1, 8, 8)`` in [−1, 1]."""
    return Reference(logits_and_features(evaluator, images.float())[1], labels)


def measure(samples: Tensor, labels: Tensor, evaluator: Evaluator, ref: Reference, k: int = 5) -> SettingMetrics:
    """Metrics of ``samples`` ``(B, 1, 8, 8)`` requested as classes ``labels`` ``(B,)``.

    Saturation is measured on the samples as they came; the evaluator sees them
    clipped to [−1, 1], the data range.
    """
    sat = saturation(samples)
    logits, feats = logits_and_features(evaluator, samples.clamp(-1.0, 1.0).float())
    pr = class_precision_recall(ref.features, ref.labels, feats, labels, k)
    return SettingMetrics(
        adherence=adherence(logits, labels),
        precision=pr.precision,
        recall=pr.recall,
        fd=feature_frechet_distance(ref.features, feats),
        saturation=sat.at_bounds,
        mean_abs=sat.mean_abs,
    )
