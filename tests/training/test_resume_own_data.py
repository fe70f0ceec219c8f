"""Exact resume on a user's own data (2-D points, not digits): the documented loader resumes a
fit interrupted by a real SIGINT in the middle of an epoch, or stopped by a real SIGTERM (which
keeps the step reached), to the uninterrupted run exactly; a plain ``DataLoader(shuffle=True)``
gets a warning that names the fix when a fit resumes with it.
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


class SignalAtStep(L.Callback):
    """Sends this process a real SIGINT (as Ctrl-C does) or SIGTERM before the batch of global step ``step``."""

    def __init__(self, step: int, signum: int = signal.SIGINT) -> None:
        self.step, self.signum = step, signum

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.global_step == self.step:
            os.kill(os.getpid(), self.signum)


def module(init: int = 0) -> FlowMatchingModule:
    torch.manual_seed(init)  # initial weights
    return FlowMatchingModule(sample_shape=(2,), num_classes=3, width=8, sample_steps=2)


def test_a_sigint_mid_epoch_then_resume_equals_the_uninterrupted_run(tmp_path, sigint_restored, monkeypatch):
    # SIGINT before step 8 (epoch 1, batch 3 of 5); the last checkpoint is step 6 (epoch 1, batch 1)
    stop = _stopped(tmp_path, monkeypatch, SignalAtStep(8), every_n_steps=3)
    assert (stop.step, stop.kept_step, stop.exit_status) == (8, 6, 130)
    _assert_resumes_exactly(tmp_path, every_n_steps=3)


@pytest.mark.parametrize("before", [7, 9], ids=["mid-epoch", "epoch-end"])
def test_sigterm_keeps_the_step_reached_says_so_and_resumes_exactly(before, tmp_path, monkeypatch, capsys):
    """SIGTERM before step 8 (epoch 1, batch 3 of 5) or step 10 (its last batch): the demo's fit keeps a
    checkpoint of that step (not only the periodic one of step 6 or 9), exits with 143 and, rerun, says it resumes."""
    stop = _stopped(tmp_path, monkeypatch, SignalAtStep(before, signal.SIGTERM), every_n_steps=3)
    kept = before + 1  # Lightning finishes the batch in progress
    assert (stop.step, stop.kept_step, stop.exit_status, stop.checkpoint) == (kept, kept, 143, tmp_path / "run.ckpt")
    assert str(stop).startswith(f"training stopped by SIGTERM at step {kept}; kept the checkpoint of step {kept} at ")
    assert torch.load(tmp_path / "run.ckpt", weights_only=False)["global_step"] == kept
    assert not list(tmp_path.glob("*.tmp"))
    capsys.readouterr()
    _assert_resumes_exactly(tmp_path, every_n_steps=3)
    assert f"resuming training at step {kept} from {tmp_path / 'run.ckpt'}" in capsys.readouterr().err


def _stopped(tmp_path, monkeypatch, signaller: L.Callback, every_n_steps: int) -> TrainingInterrupted:
    """Fit to 12 steps with ``signaller`` among the callbacks, checkpointing to ``run.ckpt``: what it raised."""
    monkeypatch.setattr(L.Trainer, "fit", _with_callback(L.Trainer.fit, signaller))
    with resumable(tmp_path / "run.ckpt", every_n_steps=every_n_steps), pytest.raises(TrainingInterrupted) as stop:
        fit(module(), Points(documented=True), max_steps=12, seed=0, progress=False)
    monkeypatch.undo()
    return stop.value


def _assert_resumes_exactly(tmp_path, every_n_steps: int) -> None:
    """Resume ``run.ckpt`` to step 12 in a fresh module; every training tensor equals the uninterrupted run's."""
    straight = module()
    with resumable(tmp_path / "straight.ckpt", every_n_steps=every_n_steps):
        assert fit(straight, Points(documented=True), max_steps=12, seed=0, progress=False) == 12
    resumed = module(init=123)  # nothing but the checkpoint carries over
    with resumable(tmp_path / "run.ckpt", every_n_steps=every_n_steps), warnings.catch_warnings():
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
