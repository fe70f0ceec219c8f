"""A classifier trained on the real digits: the judge of adherence and the feature space of the metrics."""

from __future__ import annotations

from functools import lru_cache

import torch
from torch import Tensor, nn

from ..data.digits import IMAGE_SHAPE, NUM_CLASSES, load_digits_split


class DigitsClassifier(nn.Module):
    """A small CNN on 8×8 digits in [−1, 1]: ``(B, 1, 8, 8) -> (B, 10)`` logits.

    :meth:`features` gives the 128-dimensional penultimate layer used for the
    Fréchet distance and precision/recall; :attr:`held_out_accuracy` is its
    accuracy on the validation digits it never saw.
    """

    feature_dim = 128

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.SiLU(),
            nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.SiLU(),
            nn.Flatten(), nn.Linear(64 * 4 * 4, self.feature_dim), nn.SiLU(),
        )  # fmt: skip
        self.head = nn.Linear(self.feature_dim, NUM_CLASSES)
        self.held_out_accuracy = float("nan")

    def features(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
            raise ValueError(f"x: expected digits of shape (B, 1, 8, 8), got {tuple(x.shape)}")
        return self.body(x.float())

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))

    @torch.no_grad()
    def predict(self, x: Tensor) -> Tensor:
        """Predicted class ``(B,)``."""
        return self(x).argmax(dim=1)


def train_digits_classifier(seed: int = 0, epochs: int = 30, val_fraction: float = 0.2) -> DigitsClassifier:
    """Train (once per process and arguments) the evaluator on the training digits.

    Light augmentation (±1 pixel shifts) makes it judge shapes rather than exact
    pixel positions. Takes a few seconds on 2 CPU cores.
    """
    return _train(seed, epochs, val_fraction)


@lru_cache(maxsize=4)
def _train(seed: int, epochs: int, val_fraction: float) -> DigitsClassifier:
    split = load_digits_split(val_fraction, seed=0)
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = DigitsClassifier()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    x, y = split.train_images, split.train_labels
    for _ in range(epochs):
        order = torch.randperm(len(y), generator=gen)
        for idx in order.split(128):
            shift = torch.randint(-1, 2, (2,), generator=gen).tolist()
            xb = torch.roll(x[idx], shifts=shift, dims=(2, 3))
            loss = nn.functional.cross_entropy(model(xb), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    model.held_out_accuracy = float((model.predict(split.val_images) == split.val_labels).float().mean())
    return model.requires_grad_(False)
