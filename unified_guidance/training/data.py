"""Lightning data modules: scikit-learn's digits and samples of the analytic 2-D mixture."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from ..analytic.mixture import GaussianMixture
from ..data import load_digits_split


class DigitsDataModule(L.LightningDataModule):
    """Digits as ``(image (1, 8, 8) in [−1, 1], label)`` batches, with a fixed validation split.

    Args:
        batch_size: samples per batch.
        val_fraction: share of the 1,797 digits held out (the evaluator holds out the same ones).
        seed: the split's seed.
    """

    def __init__(self, batch_size: int = 128, val_fraction: float = 0.2, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.batch_size = batch_size
        self.split = load_digits_split(val_fraction, seed)

    def train_dataloader(self) -> DataLoader:
        ds = TensorDataset(self.split.train_images, self.split.train_labels)
        gen = torch.Generator().manual_seed(self.hparams.seed)
        return DataLoader(ds, batch_size=self.batch_size, shuffle=True, drop_last=True, generator=gen)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.split.val_images, self.split.val_labels), batch_size=self.batch_size)


class MixtureDataModule(L.LightningDataModule):
    """Exact samples of a :class:`GaussianMixture` as ``(x (D,), label)`` batches.

    Args:
        mixture: the mixture to sample (labels drawn in proportion to the class masses).
        num_samples: size of the (fixed) training set.
        batch_size: samples per batch.
        seed: seed of the samples and of the shuffling.
    """

    def __init__(self, mixture: GaussianMixture, num_samples: int = 20_000, batch_size: int = 256, seed: int = 0):
        super().__init__()
        self.batch_size, self.seed = batch_size, seed
        gen = torch.Generator().manual_seed(seed)
        null = torch.full((num_samples,), mixture.num_classes, dtype=torch.long)
        x = mixture.sample(null, generator=gen)
        # The class of each sample is the class of the component it came from: draw it from p(y | x) exactly.
        labels = torch.multinomial(mixture.class_posterior(x).float(), 1, generator=gen).squeeze(1)
        self.x, self.labels = x.float(), labels

    def train_dataloader(self) -> DataLoader:
        gen = torch.Generator().manual_seed(self.seed)
        return DataLoader(TensorDataset(self.x, self.labels), batch_size=self.batch_size, shuffle=True, generator=gen)
