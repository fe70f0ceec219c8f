"""training.fit: exactly the configured optimiser steps, and the same weights from the same seed."""

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from unified_guidance.training.fit import fit


class Regression(L.LightningModule):
    """Least squares on random data; counts its training steps."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 1)
        self.steps = 0

    def training_step(self, batch, batch_idx):
        self.steps += 1
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Data(L.LightningDataModule):
    def train_dataloader(self):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(40, 4, generator=g)
        return DataLoader(TensorDataset(x, x.sum(1, keepdim=True)), batch_size=8, shuffle=True)


def test_fit_takes_exactly_max_steps_and_is_reproducible():
    first, second, third = Regression(), Regression(), Regression()
    second.load_state_dict(first.state_dict())
    third.load_state_dict(first.state_dict())
    assert fit(first, Data(), max_steps=13, seed=3, progress=False) == 13  # crosses epochs of 5 batches
    fit(second, Data(), max_steps=13, seed=3, progress=False)
    assert first.steps == 13
    fit(third, Data(), max_steps=13, seed=4, progress=False)
    assert torch.equal(first.net.weight, second.net.weight)  # same seed, same shuffles, same weights
    assert not torch.equal(first.net.weight, third.net.weight)  # the seed is what fixes them
