"""Each recipe, stopped by a real SIGINT (or by max_steps mid-epoch) and resumed from its last.ckpt,
ends exactly where an uninterrupted run ends.

The recipes' YAMLs are used as shipped (checkpoint every 5 epochs, validation every
10 or 25): epochs are cut to one batch so that the 5-epoch checkpoint comes quickly.
"""

from __future__ import annotations

import pytest
import torch
from recipe_runs import SigintAtEpoch, assert_sigint_resume_is_exact, cli, training_state

EPOCHS = ["--trainer.max_epochs=7", "--trainer.max_steps=-1", "--trainer.limit_train_batches=1",
          "--trainer.limit_val_batches=0"]  # fmt: skip


@pytest.mark.parametrize("name", ["diffusion", "flow", "autoregressive"])
def test_interrupted_and_resumed_run_equals_the_uninterrupted_one(name, tmp_path, sigint_restored):
    """SIGINT at epoch 6 of one-batch epochs; the shipped 5-epoch checkpoint (step 5) resumes to step 7."""
    assert_sigint_resume_is_exact(name, tmp_path, *EPOCHS, steps=7, stop=SigintAtEpoch(6), interrupted_at=6, saved_at=5)


def test_diffusion_recipe_checkpoints_every_5_epochs_though_it_validates_every_25(tmp_path):
    run = cli("diffusion", "fit", tmp_path, *EPOCHS[:3], "--trainer.limit_val_batches=1", "--trainer.max_epochs=6")
    assert run.trainer.check_val_every_n_epoch == 25
    saved = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert saved == ["epoch=4-step=5.ckpt", "epoch=4-step=5.ckpt.sha256", "last.ckpt", "last.ckpt.sha256"]  # digests
    assert torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 6  # fit end


@pytest.mark.parametrize("name", ["diffusion", "flow", "autoregressive"])
def test_a_fit_stopped_mid_epoch_resumes_exactly(name, tmp_path):
    """max_steps = 4 with 3 batches per epoch stops in epoch 1; fit-end last.ckpt continues to step 7."""
    batches = ["--trainer.max_epochs=-1", "--trainer.limit_train_batches=3", "--trainer.limit_val_batches=0"]
    straight = cli(name, None, tmp_path / "straight", *batches, "--trainer.max_steps=7", run=False)
    straight.trainer.fit(straight.model, straight.datamodule)
    cli(name, "fit", tmp_path / "first", *batches, "--trainer.max_steps=4")
    last = tmp_path / "first" / "checkpoints" / "last.ckpt"
    torch.manual_seed(123)
    resumed = cli(name, None, tmp_path / "resumed", *batches, "--trainer.max_steps=7", run=False)
    resumed.trainer.fit(resumed.model, resumed.datamodule, ckpt_path=last)
    assert resumed.trainer.global_step == straight.trainer.global_step == 7
    for x, y in zip(training_state(straight.model, straight.trainer), training_state(resumed.model, resumed.trainer),
                    strict=True):  # fmt: skip
        torch.testing.assert_close(x, y, rtol=0, atol=0)
