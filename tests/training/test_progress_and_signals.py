"""Progress names the stage and counts steps over the whole fit; SIGTERM stops a sweep after the current item."""

from __future__ import annotations

import os
import signal

import lightning as L
import pytest

from unified_guidance.data import two_d_mixture
from unified_guidance.demo.standin import MixtureSampler
from unified_guidance.guidance import Guidance
from unified_guidance.schedules import LinearBetaSchedule
from unified_guidance.training.data import DigitsDataModule
from unified_guidance.training.diffusion import DiffusionModule
from unified_guidance.training.predict import WorkItem, predict_sweep
from unified_guidance.training.progress import StepProgressBar


def test_the_training_bar_counts_steps_over_epochs_and_names_the_stage(tmp_path):
    bar = StepProgressBar("diffusion")
    trainer = L.Trainer(
        max_steps=5, max_epochs=-1, limit_train_batches=2, limit_val_batches=0, logger=False,
        enable_checkpointing=False, enable_model_summary=False, callbacks=[bar], default_root_dir=tmp_path,
    )  # fmt: skip
    trainer.fit(DiffusionModule(width=8), DigitsDataModule(batch_size=32))
    tqdm = bar.train_progress_bar
    assert (tqdm.n, tqdm.total) == (5, 5) and trainer.current_epoch == 3  # one bar across three epochs
    assert tqdm.desc.startswith("diffusion: training")
    assert bar.predict_description == "diffusion: sampling" and StepProgressBar().predict_description == "sampling"


class SigtermOnFirstItem(MixtureSampler):
    """Sends this process SIGTERM while sampling the first item."""

    def sample(self, labels, guidance, *, generator=None):
        if not getattr(self, "sent", False):
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)
        return super().sample(labels, guidance, generator=generator)


def test_sigterm_stops_the_sweep_after_the_current_item_and_keeps_it(tmp_path, capsys):
    items = [WorkItem(i, f"mix/cfg/{i}", i % 3, 4, seed=i, guidance=Guidance(scale=2.0)) for i in range(6)]
    sampler = SigtermOnFirstItem(two_d_mixture(path=LinearBetaSchedule()), steps=4)
    with pytest.raises(SystemExit) as stopped:
        predict_sweep(sampler, items, tmp_path, progress=False)
    assert stopped.value.code == 143
    assert sorted(p.name for p in tmp_path.glob("item-*.pt")) == ["item-00000.pt"]
    assert "sweep stopped by SIGTERM: 1 of 6 items kept" in capsys.readouterr().err
    assert signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None)  # Lightning gave the handler back
    results = predict_sweep(MixtureSampler(two_d_mixture(path=LinearBetaSchedule()), steps=4), items, tmp_path,
                            label="mixture")  # fmt: skip
    assert len(results) == 6  # the rerun samples the rest
    assert "mixture: sampling: 100%" in " ".join(capsys.readouterr().out.split("\r"))
