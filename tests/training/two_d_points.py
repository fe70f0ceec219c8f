"""A user's own DataModule, not digits: labelled 2-D points, importable by path (``two_d_points.TwoDPointsDataModule``).

docs/training.md shows this file as the worked example of ``--data`` (a test keeps the two equal).
"""

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from unified_guidance.training.loaders import resuming_loader


class TwoDPointsDataModule(L.LightningDataModule):
    """Three Gaussian blobs (std 0.5) centred on a circle of radius 4: ``(x (2,), label)`` batches."""

    def __init__(self, num_samples: int = 600, batch_size: int = 100, seed: int = 0, predict_per_class: int = 16):
        super().__init__()
        self.batch_size, self.seed, self.predict_per_class = batch_size, seed, predict_per_class
        gen = torch.Generator().manual_seed(seed)
        angles = torch.tensor([0.0, 2.0944, 4.1888])  # 0°, 120°, 240°
        centres = 4.0 * torch.stack([angles.cos(), angles.sin()], dim=1)
        self.labels = torch.randint(0, 3, (num_samples,), generator=gen)
        self.x = centres[self.labels] + 0.5 * torch.randn(num_samples, 2, generator=gen)

    def train_dataloader(self) -> DataLoader:  # shuffled by (seed, epoch): a resumed fit is exact
        points = TensorDataset(self.x, self.labels)
        return resuming_loader(points, self.batch_size, seed=self.seed, trainer=self.trainer)

    def predict_dataloader(self) -> DataLoader:  # one batch of labels per class: what predict samples
        return DataLoader(torch.arange(3).repeat_interleave(self.predict_per_class), batch_size=self.predict_per_class)
