"""Multi-process training with Lightning's DDP strategy: 2 CPU processes, gloo backend.

``ddp_fork`` is Lightning's ``ddp`` strategy with a fork launcher: the two ranks
share this process's imports, so the test costs seconds rather than two fresh
interpreters (``--trainer.strategy=ddp`` in the recipe runs the same strategy
with a subprocess launcher).
"""

from __future__ import annotations

import os

import lightning as L
import torch
import torch.distributed as dist
from torch import nn

from unified_guidance.training.checkpoints import LastCheckpoint
from unified_guidance.training.data import DigitsDataModule
from unified_guidance.training.diffusion import DiffusionModule


class _Probe(L.Callback):
    """Each rank saves the process group it ran in, its batches, its first draw and its final weights."""

    def __init__(self, out_dir) -> None:
        self.out_dir, self.batches = out_dir, []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batches.append(batch[0].clone())

    def on_train_end(self, trainer, pl_module):
        record = {
            "backend": dist.get_backend(), "world_size": dist.get_world_size(), "rank": trainer.global_rank,
            "batches": torch.stack(self.batches), "first_draw": torch.rand(4, generator=pl_module._generator(0)),
            "weights": nn.utils.parameters_to_vector(pl_module.net.parameters()).detach(),
            "ema": nn.utils.parameters_to_vector(pl_module.ema.module.parameters()).detach(),
        }  # fmt: skip
        torch.save(record, self.out_dir / f"rank{trainer.global_rank}.pt")


def test_ddp_on_two_cpu_processes_with_gloo(tmp_path):
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_fork", max_steps=2, limit_train_batches=2, limit_val_batches=0,
        logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        callbacks=[_Probe(tmp_path)], default_root_dir=tmp_path,
    )  # fmt: skip
    initial = DiffusionModule(width=8)
    before = nn.utils.parameters_to_vector(initial.net.parameters()).detach().clone()
    trainer.fit(initial, DigitsDataModule(batch_size=32))
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1))
    assert (r0["backend"], r0["world_size"], r0["rank"], r1["rank"]) == ("gloo", 2, 0, 1)
    assert r0["batches"].shape == r1["batches"].shape == (2, 32, 1, 8, 8)
    # the distributed sampler gives each rank its own samples ...
    flat0, flat1 = r0["batches"].flatten(0, 1).flatten(1), r1["batches"].flatten(0, 1).flatten(1)
    assert not bool((torch.cdist(flat0, flat1) == 0).any())
    # ... each rank draws its own times, noise and dropout ...
    assert not torch.equal(r0["first_draw"], r1["first_draw"])
    # ... and gradient all-reduce keeps the trained replicas (and their EMA) identical
    assert not torch.allclose(r0["weights"], before)
    torch.testing.assert_close(r0["weights"], r1["weights"], rtol=0, atol=0)
    torch.testing.assert_close(r0["ema"], r1["ema"], rtol=0, atol=0)


def test_last_checkpoint_under_ddp_is_written_by_rank_0_alone(tmp_path, monkeypatch):
    """LastCheckpoint writes through a temporary file renamed over last.ckpt: on rank 0 only (the other
    rank takes part in the save's barrier; a rename of its own would put an empty file in place)."""
    renames, rename = tmp_path / "renames.txt", os.replace

    def logged(src, dst):  # each rank (a forked process) notes its renames, then renames
        with open(renames, "a") as f:
            f.write(f"{os.getpid()} {dst}\n")
        rename(src, dst)

    monkeypatch.setattr(os, "replace", logged)
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(
        accelerator="cpu", devices=2, strategy="ddp_fork", max_steps=3, limit_train_batches=2, limit_val_batches=0,
        logger=False, enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
        callbacks=[LastCheckpoint(every_n_epochs=1, dirpath=str(tmp_path / "checkpoints"))],
    )  # fmt: skip
    trainer.fit(DiffusionModule(width=8), DigitsDataModule(batch_size=32))
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 3
    writers = {line.split()[0] for line in renames.read_text().splitlines() if line.endswith(str(last))}
    assert len(writers) == 1
