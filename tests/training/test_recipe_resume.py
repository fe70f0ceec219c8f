"""Each recipe, stopped by a real SIGINT or SIGTERM (or by max_steps) and resumed from its last.ckpt,
ends exactly where an uninterrupted run ends: every tensor of the final state (weights, EMA, buffers,
optimiser moments) equal.

The recipes' YAMLs are used as shipped (checkpoint every 5 epochs, validation every 10 or 25),
with epochs cut to a few batches so that the 5-epoch checkpoint comes quickly. The stops cover a
checkpoint in the middle of an epoch and one exactly at an epoch end, under ``max_epochs`` and
under ``max_steps`` (how the autoregressive recipe is bounded as shipped: an epoch-end checkpoint
of a ``max_steps`` run used to resume one batch off, 49 of its 65 tensors different).
"""

from __future__ import annotations

import signal

import pytest
import torch
from recipe_runs import SignalAt, assert_resumes_exactly, assert_signal_resume_is_exact, cli

RECIPES = ["diffusion", "flow", "autoregressive"]
NO_VAL = "--trainer.limit_val_batches=0"
BOUNDS = {  # steps=7 by one-batch epochs (max_epochs), or steps=14 by two-batch epochs (max_steps)
    "max_epochs": ["--trainer.max_epochs=7", "--trainer.max_steps=-1", "--trainer.limit_train_batches=1", NO_VAL],
    "max_steps": ["--trainer.max_epochs=-1", "--trainer.max_steps=14", "--trainer.limit_train_batches=2", NO_VAL],
}
# Three batches an epoch, bounded by max_steps = 8: epoch 0 is steps 1–3, epoch 1 steps 4–6.
THREE = ["--trainer.max_epochs=-1", "--trainer.limit_train_batches=3", NO_VAL]


@pytest.mark.parametrize("bound", ["max_epochs", "max_steps"])
@pytest.mark.parametrize("name", RECIPES)
def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(name, bound, tmp_path, sigint_restored):
    """SIGINT at the start of epoch 6; the shipped 5-epoch checkpoint (saved at the end of epoch 4) resumes."""
    per_epoch = 1 if bound == "max_epochs" else 2
    assert_signal_resume_is_exact(name, tmp_path, *BOUNDS[bound], steps=7 * per_epoch, stop=SignalAt(6),
                                  interrupted_at=6 * per_epoch, saved_at=5 * per_epoch)  # fmt: skip


@pytest.mark.parametrize("batch", [0, 2], ids=["mid-epoch", "epoch-end"])
@pytest.mark.parametrize("name", RECIPES)
def test_sigterm_keeps_the_step_reached_and_resumes_exactly(name, batch, tmp_path):
    """A real SIGTERM during batch 0 (step 4: mid-epoch) or batch 2 (step 6: the epoch's last) of epoch 1:
    Lightning stops after that batch, LastCheckpoint saves last.ckpt there, and it resumes to step 8."""
    stop = SignalAt(1, batch=batch, signum=signal.SIGTERM)
    assert_signal_resume_is_exact(name, tmp_path, *THREE, "--trainer.max_steps=8", steps=8, stop=stop,
                                  interrupted_at=4 + batch, saved_at=4 + batch)  # fmt: skip
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None)  # Lightning gave the handler back


@pytest.mark.parametrize("stop", [4, 6], ids=["mid-epoch", "epoch-end"])
@pytest.mark.parametrize("name", RECIPES)
def test_a_fit_stopped_by_max_steps_resumes_exactly(name, stop, tmp_path):
    """max_steps = 4 (in epoch 1) or 6 (its last batch) with 3 batches per epoch; the fit-end last.ckpt
    continues to step 8."""
    cli(name, "fit", tmp_path / "first", *THREE, f"--trainer.max_steps={stop}")
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == stop
    assert_resumes_exactly(name, tmp_path, last, *THREE, "--trainer.max_steps=8", steps=8)


def test_diffusion_recipe_checkpoints_every_5_epochs_though_it_validates_every_25(tmp_path):
    run = cli("diffusion", "fit", tmp_path, *BOUNDS["max_epochs"][:3], "--trainer.limit_val_batches=1",
              "--trainer.max_epochs=6")  # fmt: skip
    assert run.trainer.check_val_every_n_epoch == 25
    saved = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert saved == ["epoch=4-step=5.ckpt", "epoch=4-step=5.ckpt.sha256", "last.ckpt", "last.ckpt.sha256"]  # digests
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 6  # fit end
