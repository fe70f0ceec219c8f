"""The recipes on a user's own data: ``--data`` takes any LightningDataModule by class path
(LightningCLI's subclass mode) through the real CLI, the digits staying the YAML's default."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from recipe_runs import QUIET, SignalAt, assert_signal_resume_is_exact, cli
from two_d_points import TwoDPointsDataModule

from unified_guidance.training.data import DigitsDataModule

# The model fitted to the points: vectors of 2, three classes (∅ = 3), no clamp to [−1, 1].
POINTS = [
    "--data", "two_d_points.TwoDPointsDataModule", "--data.batch_size=50",
    "--model.sample_shape=[2]", "--model.num_classes=3", "--model.clip=false",
]  # fmt: skip


def test_the_yaml_default_is_still_the_digits(tmp_path):
    run = cli("diffusion", None, tmp_path, run=False)
    assert type(run.datamodule) is DigitsDataModule and run.datamodule.batch_size == 128


@pytest.mark.parametrize("name", ["diffusion", "flow"])
def test_data_by_class_path_on_the_command_line_trains_and_predicts(name, tmp_path):
    fit = cli(name, "fit", tmp_path / "fit", *POINTS, "--trainer.max_steps=3")
    assert type(fit.datamodule) is TwoDPointsDataModule and fit.datamodule.batch_size == 50
    assert fit.trainer.global_step == 3 and tuple(fit.model.hparams.sample_shape) == (2,)
    last = tmp_path / "fit" / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=False)["global_step"] == 3

    out = tmp_path / "predict"
    # The model's shape and classes come back from the checkpoint; the data are named again.
    data = ["--data", "two_d_points.TwoDPointsDataModule", "--data.predict_per_class=4"]
    cli(name, "predict", out, *data, f"--ckpt_path={last}")
    saved = torch.load(out / "predictions" / "samples.pt", weights_only=False)
    assert saved["labels"].tolist() == [c for c in range(3) for _ in range(4)]
    assert saved["samples"].shape == (12, 2) and not (out / "predictions" / "grid.png").exists()


def test_a_data_class_that_is_not_a_datamodule_is_refused_by_name(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli("flow", "fit", tmp_path, "--data", "torch.nn.Linear", *QUIET)
    assert "--data" in (err := capsys.readouterr().err) and "subclass of LightningDataModule" in err


def test_the_docs_worked_example_is_this_helper_module():
    root = Path(__file__).resolve().parents[2]
    docs = (root / "docs" / "training.md").read_text()
    block = re.search(r"`tests/training/two_d_points.py`:\n\n```python\n(.*?)```\n", docs, re.S)
    helper = (root / "tests" / "training" / "two_d_points.py").read_text()
    assert block is not None and helper.endswith(block.group(1))
    assert "--data two_d_points.TwoDPointsDataModule" in docs


@pytest.mark.parametrize("name", ["diffusion", "flow"])
def test_a_run_on_own_data_interrupted_by_sigint_resumes_to_the_uninterrupted_one(name, tmp_path, sigint_restored):
    """Two batches an epoch, a real SIGINT after the first batch of epoch 6, the shipped 5-epoch checkpoint:
    the resumed run replays epoch 6 in the same order and ends where the uninterrupted one ends."""
    data = [*POINTS, "--data.num_samples=100", "--trainer.max_epochs=7", "--trainer.max_steps=-1",
            "--trainer.limit_val_batches=0"]  # fmt: skip
    assert_signal_resume_is_exact(name, tmp_path, *data, steps=14, stop=SignalAt(6, batch=1),
                                  interrupted_at=13, saved_at=10)  # fmt: skip


TOKENS = [
    "--model", "unified_guidance.training.autoregressive.TokenSequenceModule", "--model.vocab=5", "--model.length=6",
    "--model.num_classes=3", "--data", "token_sequences.TokenSequencesDataModule",
]  # fmt: skip


def test_the_token_recipe_takes_a_users_model_and_data_and_resumes_exactly_after_sigint(tmp_path, sigint_restored):
    """The autoregressive recipe on one's own token sequences: --model and --data by class path, two
    batches an epoch, a real SIGINT after the first batch of epoch 6, resumed from the 5-epoch checkpoint."""
    run = [*TOKENS, "--trainer.max_epochs=7", "--trainer.max_steps=-1", "--trainer.limit_val_batches=0"]
    resumed = assert_signal_resume_is_exact("autoregressive", tmp_path, *run, steps=14, stop=SignalAt(6, batch=1),
                                            interrupted_at=13, saved_at=10)  # fmt: skip
    assert type(resumed.model).__name__ == "TokenSequenceModule" and resumed.model.layout.vocab == 5
