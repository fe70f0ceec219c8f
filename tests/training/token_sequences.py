"""A user's own token data, not digits: class-conditional sequences, importable by path
(``token_sequences.TokenSequencesDataModule``) for the autoregressive recipe's ``--data``."""

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from unified_guidance.training.loaders import resuming_loader


class TokenSequencesDataModule(L.LightningDataModule):
    """``(tokens (B, 6) in 0 … 4, label)``: class c counts up from c (mod 5), one token in six replaced at random."""

    def __init__(self, num_samples: int = 96, batch_size: int = 48, seed: int = 0) -> None:
        super().__init__()
        self.batch_size, self.seed = batch_size, seed
        gen = torch.Generator().manual_seed(seed)
        self.labels = torch.randint(0, 3, (num_samples,), generator=gen)
        tokens = (self.labels[:, None] + torch.arange(6)) % 5
        noise = torch.rand(num_samples, 6, generator=gen) < 1 / 6
        self.tokens = torch.where(noise, torch.randint(0, 5, (num_samples, 6), generator=gen), tokens)

    def train_dataloader(self) -> DataLoader:  # shuffled by (seed, epoch): a resumed fit is exact
        return resuming_loader(TensorDataset(self.tokens, self.labels), self.batch_size, seed=self.seed,
                               trainer=self.trainer)  # fmt: skip
