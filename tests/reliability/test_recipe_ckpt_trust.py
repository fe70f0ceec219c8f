"""The recipes' checkpoints: written with a digest, refused when damaged, and ``predict`` overrides that win.

One real fit of the flow recipe through its LightningCLI (width 8, 2 steps) leaves
``last.ckpt`` and ``last.ckpt.sha256``; copies of it are damaged on disk and handed back as
``--ckpt_path``.
"""

import shutil

import lightning as L
import pytest
import torch
from damage import DAMAGES, a_weight

from unified_guidance import Guidance
from unified_guidance.recipes import train_flow
from unified_guidance.training.checkpoints import LastCheckpoint
from unified_guidance.training.data import DigitsDataModule
from unified_guidance.training.flow import FlowMatchingModule
from unified_guidance.training.verified import DamagedFileError, UnverifiedFileWarning, digest_path
from unified_guidance.training.verified_io import load_verified_module

QUIET = ["--trainer.logger=false", "--trainer.enable_progress_bar=false", "--trainer.enable_model_summary=false"]
SHORT = ["--trainer.max_steps=2", "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=0"]


def recipe(subcommand: str, root, *args: str, config: bool = False):
    """The flow recipe; ``config``: its YAML given again as a ``--config`` (besides being the default)."""
    again = ["--config", str(train_flow.CONFIG)] if config else []
    return train_flow.main([subcommand, *again, f"--trainer.default_root_dir={root}", *QUIET, *args])


@pytest.fixture(scope="module")
def last(tmp_path_factory):
    root = tmp_path_factory.mktemp("fit")
    recipe("fit", root, *SHORT, "--model.width=8", "--model.sample_steps=2")
    path = root / "checkpoints" / "last.ckpt"
    assert digest_path(path).exists()
    return path


def damaged_copy(last, tmp_path, damage: str):
    copy = tmp_path / "last.ckpt"
    shutil.copy(last, copy)
    shutil.copy(digest_path(last), digest_path(copy))
    DAMAGES[damage](copy, a_weight(copy))
    return copy


@pytest.mark.parametrize("damage", DAMAGES)
def test_predict_refuses_a_damaged_checkpoint_naming_it(last, tmp_path, damage, capsys):
    copy = damaged_copy(last, tmp_path, damage)
    with pytest.raises(SystemExit) as stop:
        recipe("predict", tmp_path / "predict", f"--ckpt_path={copy}")
    assert stop.value.code == 2  # argparse's status, before any model is built
    err = capsys.readouterr().err
    assert f"error: --ckpt_path: checkpoint '{copy}' cannot be used: checksum mismatch: " in err
    assert err.rstrip().endswith("or train again") and not (tmp_path / "predict").exists()


def test_fit_refuses_to_resume_from_a_damaged_checkpoint(last, tmp_path, capsys):
    copy = damaged_copy(last, tmp_path, "sign bit")
    with pytest.raises(SystemExit):
        recipe("fit", tmp_path / "fit", f"--ckpt_path={copy}", *SHORT, "--model.width=8")
    assert f"--ckpt_path: checkpoint '{copy}' cannot be used: checksum mismatch" in capsys.readouterr().err


def test_from_python_the_checkpoint_callback_and_the_loader_refuse_it(last, tmp_path):
    copy = damaged_copy(last, tmp_path, "exponent bits (NaN)")
    trainer = L.Trainer(
        max_steps=3, logger=False, enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
        default_root_dir=tmp_path, callbacks=[LastCheckpoint()],
    )  # fmt: skip
    with pytest.raises(DamagedFileError, match=f"checkpoint '{copy}' cannot be used: checksum mismatch"):
        trainer.fit(FlowMatchingModule(width=8), DigitsDataModule(batch_size=16), ckpt_path=copy)
    with pytest.raises(DamagedFileError, match="checksum mismatch"):
        load_verified_module(FlowMatchingModule, copy)
    assert load_verified_module(FlowMatchingModule, last).hparams.width == 8  # the intact one loads


def test_a_checkpoint_without_digest_is_used_with_a_warning(last, tmp_path):
    copy = tmp_path / "old.ckpt"
    shutil.copy(last, copy)  # as an earlier build left it: no digest file
    with pytest.warns(UnverifiedFileWarning, match=r"old\.ckpt': it has no digest file"):
        cli = recipe("predict", tmp_path / "predict", f"--ckpt_path={copy}", "--data.predict_per_class=1")
    assert (tmp_path / "predict" / "predictions" / "samples.pt").exists() and cli.model.hparams.width == 8


@pytest.mark.parametrize("override", [["--model.sample_steps=7"], ["--model.sample_steps", "7"]])
def test_predict_overrides_win_over_the_checkpoint_and_the_checkpoint_over_the_yaml(last, tmp_path, override):
    out = tmp_path / "predict"
    cli = recipe("predict", out, *override, f"--ckpt_path={last}", "--data.predict_per_class=2", config=True)
    assert cli.model.hparams.sample_steps == 7  # the command line (the checkpoint says 2)
    assert cli.model.hparams.width == 8  # the checkpoint (the YAML, here also a --config, says 32)
    saved = torch.load(out / "predictions" / "samples.pt", weights_only=False)
    module = FlowMatchingModule.load_from_checkpoint(last)
    gen = torch.Generator().manual_seed(module.hparams.seed * 100_003)  # the predict generator of batch 0
    labels, guidance = torch.zeros(2, dtype=torch.long), Guidance(scale=3.0)
    seven = FlowMatchingModule.load_from_checkpoint(last, sample_steps=7).sample(labels, guidance, generator=gen)
    torch.testing.assert_close(saved["samples"][:2], seven, rtol=0, atol=0)
    two = module.sample(labels, guidance, generator=torch.Generator().manual_seed(module.hparams.seed * 100_003))
    assert not torch.equal(saved["samples"][:2], two)  # 7 steps, not the checkpoint's 2


def test_a_removed_checkpoint_takes_its_digest_with_it(last, tmp_path):
    """``ModelCheckpoint`` drops older ``epoch=E-step=S.ckpt`` files through the IO: no digest is left orphaned."""
    from unified_guidance.training.verified_io import VerifiedCheckpointIO

    copy = tmp_path / "epoch=0-step=1.ckpt"
    shutil.copy(last, copy)
    shutil.copy(digest_path(last), digest_path(copy))
    VerifiedCheckpointIO().remove_checkpoint(copy)
    assert list(tmp_path.iterdir()) == []
