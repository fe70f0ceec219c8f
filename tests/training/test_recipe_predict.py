"""A user's path through each recipe: a short fit leaves last.ckpt, it reloads from its path alone,
and ``predict`` writes guided samples (a grid for images, token sequences for the token model)."""

from __future__ import annotations

import pytest
import torch
from recipe_runs import cli

from unified_guidance import Guidance
from unified_guidance.training.autoregressive import TokenARModule
from unified_guidance.training.diffusion import DiffusionModule
from unified_guidance.training.flow import FlowMatchingModule

MODULES = {"diffusion": DiffusionModule, "flow": FlowMatchingModule, "autoregressive": TokenARModule}
SHORT = ["--trainer.max_steps=2", "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=0"]


@pytest.mark.parametrize("name", ["diffusion", "flow", "autoregressive"])
def test_short_fit_reload_from_path_and_predict(name, tmp_path):
    fit = cli(name, "fit", tmp_path / "fit", *SHORT)
    # max_steps = 2 stops long before the 5-epoch interval: last.ckpt is still written at the end of fit
    last = tmp_path / "fit" / "checkpoints" / "last.ckpt"
    assert last.exists() and torch.load(last, weights_only=False)["global_step"] == 2

    reloaded = MODULES[name].load_from_checkpoint(last)  # the path alone
    for (k, a), b in zip(fit.model.state_dict().items(), reloaded.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)

    out = tmp_path / "predict"
    # The guidance from the command line: the writer is the YAML's last callback.
    cli(
        name,
        "predict",
        out,
        f"--ckpt_path={last}",
        "--data.predict_per_class=2",
        "--trainer.callbacks.init_args.scale=5",
    )
    saved = torch.load(out / "predictions" / "samples.pt", weights_only=False)
    assert saved["labels"].tolist() == [c for c in range(10) for _ in range(2)]
    assert saved["samples"].shape == (20, 1, 8, 8) and float(saved["samples"].abs().max()) <= 1.0
    assert (out / "predictions" / "grid.png").stat().st_size > 0
    assert "scale=Constant(scale=5.0)" in saved["guidance"] and saved["ema"] is True
    # The first batch (class 0) is exactly the module's own guided sample with the predict generator.
    seed = reloaded.hparams.seed * 100_003
    own = reloaded.sample(
        torch.zeros(2, dtype=torch.long), Guidance(scale=5.0), generator=torch.Generator().manual_seed(seed)
    )
    torch.testing.assert_close(saved["samples"][:2], own, rtol=0, atol=0)
    if name == "autoregressive":
        assert saved["tokens"].shape == (20, 64) and int(saved["tokens"].max()) <= 16
        torch.testing.assert_close(reloaded.layout.images(saved["tokens"]), saved["samples"])


def test_predict_on_the_2d_mixture_writes_vectors_without_a_grid(tmp_path):
    import lightning as L

    from unified_guidance.data import two_d_mixture
    from unified_guidance.schedules import LinearBetaSchedule
    from unified_guidance.training.data import MixtureDataModule
    from unified_guidance.training.sampling import GuidedSampleWriter

    module = DiffusionModule(sample_shape=(2,), num_classes=3, width=8, sample_steps=3, clip=False)
    data = MixtureDataModule(two_d_mixture(path=LinearBetaSchedule()), num_samples=64, predict_per_class=5)
    writer = GuidedSampleWriter(scale=2.0, ema=False, directory=tmp_path)
    L.Trainer(logger=False, enable_progress_bar=False, callbacks=[writer]).predict(module, datamodule=data)
    saved = torch.load(tmp_path / "samples.pt", weights_only=False)
    assert saved["labels"].tolist() == [0] * 5 + [1] * 5 + [2] * 5 and saved["samples"].shape == (15, 2)
    assert saved["ema"] is False and not (tmp_path / "grid.png").exists()
    gen = torch.Generator().manual_seed(0)  # batch 0, seed 0
    own = module.sample(torch.zeros(5, dtype=torch.long), Guidance(scale=2.0), generator=gen, ema=False)
    torch.testing.assert_close(saved["samples"][:5], own, rtol=0, atol=0)
