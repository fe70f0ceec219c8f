"""Lightning data modules: scikit-learn's digits and samples of the exact 2-D mixture."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from ..core.numbers import check_int
from ..data import load_digits_split
from ..data.mixture import GaussianMixture
from .loaders import EpochShuffle, ResumingLoader, resuming_loader

__all__ = ["DigitsDataModule", "EpochShuffle", "MixtureDataModule", "ResumingLoader", "class_labels"]


def class_labels(num_classes: int, per_class: int) -> DataLoader:
    """Predict batches: one tensor of ``per_class`` copies of each class label ``0 … num_classes − 1``."""
    if per_class < 1:
        raise ValueError(f"predict_per_class: expected a positive number of samples per class, got {per_class}")
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    return DataLoader(labels, batch_size=per_class)  # type: ignore[arg-type]  # a Tensor is a map-style dataset; the stub wants Dataset


class DigitsDataModule(L.LightningDataModule):
    """Digits as ``(image (1, 8, 8) in [−1, 1], label)`` batches, with a fixed validation split.

    Args:
        batch_size: samples per batch.
        val_fraction: share of the 1,797 digits held out (the evaluator holds out the same ones).
        seed: the split's seed.
        predict_per_class: samples per class drawn by ``Trainer.predict`` (a batch per class).
    """

    def __init__(self, batch_size: int = 128, val_fraction: float = 0.2, seed: int = 0, predict_per_class: int = 8):
        super().__init__()
        check_int("batch_size", batch_size, lo=1)
        check_int("seed", seed)
        check_int("predict_per_class", predict_per_class, lo=1)
        self.save_hyperparameters()
        self.batch_size = batch_size
        self.split = load_digits_split(val_fraction, seed)
        if batch_size > len(self.split.train_labels):  # drop_last: not one training batch
            raise ValueError(
                f"batch_size: expected at most {len(self.split.train_labels)} (the training digits; the last "
                f"incomplete batch is dropped), got {batch_size}"
            )

    def predict_dataloader(self) -> DataLoader:
        return class_labels(10, self.hparams["predict_per_class"])

    def train_dataloader(self) -> DataLoader:
        ds = TensorDataset(self.split.train_images, self.split.train_labels)
        return resuming_loader(ds, self.batch_size, seed=self.hparams["seed"], trainer=self.trainer, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(TensorDataset(self.split.val_images, self.split.val_labels), batch_size=self.batch_size)


class MixtureDataModule(L.LightningDataModule):
    """Exact samples of a :class:`GaussianMixture` as ``(x (D,), label)`` batches.

    Args:
        mixture: the mixture to sample (labels drawn in proportion to the class masses).
        num_samples: size of the (fixed) training set.
        batch_size: samples per batch.
        seed: seed of the samples and of the shuffling.
        predict_per_class: samples per class drawn by ``Trainer.predict`` (a batch per class).
    """

    def __init__(
        self,
        mixture: GaussianMixture,
        num_samples: int = 20_000,
        batch_size: int = 256,
        seed: int = 0,
        predict_per_class: int = 64,
    ) -> None:
        super().__init__()
        check_int("num_samples", num_samples, lo=1)
        check_int("batch_size", batch_size, lo=1)
        check_int("seed", seed)
        check_int("predict_per_class", predict_per_class, lo=1)
        self.batch_size, self.seed, self.num_classes = batch_size, seed, mixture.num_classes
        self.predict_per_class = predict_per_class
        gen = torch.Generator().manual_seed(seed)
        null = torch.full((num_samples,), mixture.num_classes, dtype=torch.long)
        x = mixture.sample(null, generator=gen)
        # The class of each sample is the class of the component it came from: draw it from p(y | x) exactly.
        labels = torch.multinomial(mixture.class_posterior(x).float(), 1, generator=gen).squeeze(1)
        self.x, self.labels = x.float(), labels

    def train_dataloader(self) -> DataLoader:
        ds = TensorDataset(self.x, self.labels)
        return resuming_loader(ds, self.batch_size, seed=self.seed, trainer=self.trainer)

    def predict_dataloader(self) -> DataLoader:
        return class_labels(self.num_classes, self.predict_per_class)
