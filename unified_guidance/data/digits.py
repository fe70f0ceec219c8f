"""Real data that ships with a package: scikit-learn's handwritten digits (no download).

1,797 grey-level images of 8×8 pixels (values 0…16) in 10 classes, scaled here to
[−1, 1]. The train/validation split is fixed by a seed, so every model and the
evaluator agree on which digits are held out.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from ..core.numbers import check_number

NUM_CLASSES = 10
IMAGE_SHAPE = (1, 8, 8)
GREY_LEVELS = 17


@dataclass(frozen=True)
class DigitsSplit:
    """Images ``(N, 1, 8, 8)`` in [−1, 1] and labels ``(N,)`` for train and validation."""

    train_images: Tensor
    train_labels: Tensor
    val_images: Tensor
    val_labels: Tensor


@lru_cache(maxsize=1)
def _load() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 8.0 - 1.0
    return images, torch.tensor(digits.target, dtype=torch.long)


def load_digits_split(val_fraction: float = 0.2, seed: int = 0) -> DigitsSplit:
    """The digits, split at random (fixed by ``seed``) into train and validation."""
    if not 0.0 < check_number("val_fraction", val_fraction) < 1.0:
        raise ValueError(f"val_fraction: expected a fraction in (0, 1), got {val_fraction}")
    images, labels = _load()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_val = round(val_fraction * len(labels))
    val, train = order[:n_val], order[n_val:]
    return DigitsSplit(images[train], labels[train], images[val], labels[val])


def to_grey_levels(images: Tensor) -> Tensor:
    """[−1, 1] images → integer grey levels 0…16 (the digits' own quantisation)."""
    return ((images.clamp(-1.0, 1.0) + 1.0) * 8.0).round().long()


def from_grey_levels(levels: Tensor) -> Tensor:
    """Integer grey levels 0…16 → [−1, 1] images."""
    return levels.float() / 8.0 - 1.0
