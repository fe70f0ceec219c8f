"""Exact resume on a user's own data (2-D points, not digits): the documented loader resumes a
fit interrupted by a real SIGINT in the middle of an epoch to the uninterrupted run exactly; a
plain ``DataLoader(shuffle=True)`` gets a warning that names the fix when a fit resumes with it.
"""

from __future__ import annotations

import os
import signal
import warnings

import lightning as L
import pytest
import torch
from recipe_runs import training_state
from torch.utils.data import DataLoader, TensorDataset

from unified_guidance.training.checkpoints import LastCheckpoint
from unified_guidance.training.fit import fit
from unified_guidance.training.flow import FlowMatchingModule
from unified_guidance.training.loaders import resuming_loader
from unified_guidance.training.resume import TrainingInterrupted, resumable


class Points(L.LightningDataModule):
    """40 labelled 2-D points: 5 batches of 8 per epoch, through the documented loader or shuffle=True."""

    def __init__(self, documented: bool) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(7)
        labels = torch.arange(40) % 3
        self.data = TensorDataset(torch.randn(40, 2, generator=gen) + 3.0 * labels[:, None], labels)
        self.documented = documented

    def train_dataloader(self) -> DataLoader:
        if self.documented:
            return resuming_loader(self.data, 8, seed=1, trainer=self.trainer)
        return DataLoader(self.data, batch_size=8, shuffle=True)


class SigintAtStep(L.Callback):
    """Sends this process a real SIGINT (as Ctrl-C does) before the batch of global step ``step``."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGINT)


def module(init: int = 0) -> FlowMatchingModule:
    torch.manual_seed(init)  # initial weights
    return FlowMatchingModule(sample_shape=(2,), num_classes=3, width=8, sample_steps=2)


def test_a_sigint_mid_epoch_then_resume_equals_the_uninterrupted_run(tmp_path, sigint_restored, monkeypatch):
    straight = module()
    with resumable(tmp_path / "straight.ckpt", every_n_steps=3):
        assert fit(straight, Points(documented=True), max_steps=12, seed=0, progress=False) == 12

    first = module()
    # SIGINT before step 8 (epoch 1, batch 3 of 5); the last checkpoint is step 6 (epoch 1, batch 1)
    monkeypatch.setattr(L.Trainer, "fit", _with_callback(L.Trainer.fit, SigintAtStep(8)))
    with resumable(tmp_path / "run.ckpt", every_n_steps=3), pytest.raises(TrainingInterrupted) as stop:
        fit(first, Points(documented=True), max_steps=12, seed=0, progress=False)
    monkeypatch.undo()
    assert (stop.value.step, stop.value.kept_step) == (8, 6)

    resumed = module(init=123)  # nothing but the checkpoint carries over
    with resumable(tmp_path / "run.ckpt", every_n_steps=3), warnings.catch_warnings():
        warnings.filterwarnings("error", message="resume is not exact")  # none for the documented loader
        assert fit(resumed, Points(documented=True), max_steps=12, seed=0, progress=False) == 12
    a = training_state(straight, straight.trainer)
    b = training_state(resumed, resumed.trainer)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=0, atol=0)


def _with_callback(fit_method, callback):
    def patched(trainer, *args, **kwargs):
        trainer.callbacks.append(callback)
        return fit_method(trainer, *args, **kwargs)

    return patched


def _trainer(tmp_path, steps: int) -> L.Trainer:
    return L.Trainer(
        max_steps=steps, accelerator="cpu", default_root_dir=tmp_path, logger=False, enable_progress_bar=False,
        enable_model_summary=False, limit_val_batches=0, callbacks=[LastCheckpoint(every_n_epochs=1)],
    )  # fmt: skip


def test_resuming_with_a_shuffled_dataloader_warns_and_names_the_fix(tmp_path):
    _trainer(tmp_path, 5).fit(module(), Points(documented=False))
    last = tmp_path / "checkpoints" / "last.ckpt"
    with pytest.warns(UserWarning, match=r"resume is not exact: .*RandomSampler.*resuming_loader\(dataset"):
        _trainer(tmp_path, 10).fit(module(), Points(documented=False), ckpt_path=last)


def test_a_fresh_fit_with_a_shuffled_dataloader_does_not_warn(tmp_path):
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        _trainer(tmp_path, 2).fit(module(), Points(documented=False))
    assert not [w for w in seen if "resume is not exact" in str(w.message)]


def test_resuming_loader_refuses_its_own_shuffle_arguments():
    data = TensorDataset(torch.zeros(4, 2))
    with pytest.raises(TypeError, match="shuffle cannot be given"):
        resuming_loader(data, 2, seed=0, trainer=None, shuffle=True)
    with pytest.raises(ValueError, match="batch_size"):
        resuming_loader(data, 0, seed=0, trainer=None)
