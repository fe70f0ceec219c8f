"""The recipes on a user's own data: ``--data`` takes any LightningDataModule by class path
(LightningCLI's subclass mode) through the real CLI, the digits staying the YAML's default."""

from __future__ import annotations

import pytest
import torch
from recipe_runs import QUIET, cli
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
    cli(name, "predict", out, *POINTS, "--data.predict_per_class=4", f"--ckpt_path={last}")
    saved = torch.load(out / "predictions" / "samples.pt", weights_only=False)
    assert saved["labels"].tolist() == [c for c in range(3) for _ in range(4)]
    assert saved["samples"].shape == (12, 2) and not (out / "predictions" / "grid.png").exists()


def test_a_data_class_that_is_not_a_datamodule_is_refused_by_name(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli("flow", "fit", tmp_path, "--data", "torch.nn.Linear", *QUIET)
    assert "--data" in (err := capsys.readouterr().err) and "subclass of LightningDataModule" in err
