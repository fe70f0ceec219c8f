"""The EMA follows the optimiser step: a step-triggered checkpoint holds weights and average of the same step."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from unified_guidance.training.data import DigitsDataModule
from unified_guidance.training.diffusion import DiffusionModule
from unified_guidance.training.ema import ema_decay_at
from unified_guidance.training.flow import FlowMatchingModule


def test_warmup_decay_closed_form():
    assert [ema_decay_at(0.999, n) for n in (0, 1, 8, 90)] == [0.1, 2 / 11, 0.5, 0.91]
    assert ema_decay_at(0.9, 10_000) == 0.9 and ema_decay_at(0.9, 0, warmup=False) == 0.9


@pytest.mark.parametrize("make", [lambda: DiffusionModule(width=8), lambda: FlowMatchingModule(width=8)],
                         ids=["diffusion", "flow"])  # fmt: skip
def test_step_checkpoint_holds_the_ema_after_that_step(make, tmp_path):
    torch.manual_seed(0)
    module = make()
    saver = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=3, save_top_k=-1)
    trainer = L.Trainer(
        max_steps=3, logger=False, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        callbacks=[saver],
    )  # fmt: skip
    trainer.fit(module, DigitsDataModule(batch_size=32))
    (path,) = tmp_path.glob("*step=3.ckpt")
    saved = torch.load(path, weights_only=False)["state_dict"]
    ema_keys = [k for k in saved if "n_averaged" in k]
    assert len(ema_keys) == 1 and int(saved[ema_keys[0]]) == 3  # three updates, not two
    for key, value in module.state_dict().items():
        torch.testing.assert_close(saved[key], value, rtol=0, atol=0, msg=key)
