"""Run by test_diffusion_ddp.py: 2 CPU processes under Lightning's ``ddp`` strategy (gloo).

Lightning relaunches this script for rank 1. Each rank saves what it saw: the
process group's backend and size, its batches, its step generator's first draw,
and its final weights.
"""

import sys

import lightning as L
import torch
import torch.distributed as dist
from torch import nn

from unified_guidance.training.data import DigitsDataModule
from unified_guidance.training.diffusion import DiffusionModule


class Probe(L.Callback):
    def __init__(self) -> None:
        self.batches: list[torch.Tensor] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches.append(batch[0].clone())

    def on_train_end(self, trainer, pl_module):
        torch.save(
            {
                "backend": dist.get_backend(),
                "world_size": dist.get_world_size(),
                "rank": trainer.global_rank,
                "batches": torch.stack(self.batches),
                "first_draw": torch.rand(4, generator=pl_module._generator(0)),
                "weights": nn.utils.parameters_to_vector(pl_module.net.parameters()).detach(),
                "ema": nn.utils.parameters_to_vector(pl_module.ema.module.parameters()).detach(),
            },
            f"{sys.argv[1]}/rank{trainer.global_rank}.pt",
        )


if __name__ == "__main__":
    torch.set_num_threads(1)
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp", max_steps=2, limit_train_batches=2, limit_val_batches=0,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[Probe()], default_root_dir=sys.argv[1],
    )  # fmt: skip
    trainer.fit(DiffusionModule(width=8), DigitsDataModule(batch_size=32))
