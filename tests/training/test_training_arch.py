"""The image network of the training modules is chosen by ``arch`` (TinyUNet or TinyDiT), through the
recipes' CLI, and rebuilt from a checkpoint's hyper-parameters alone."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from recipe_runs import cli

from unified_guidance.networks import TinyUNet
from unified_guidance.networks.default import default_net
from unified_guidance.networks.dit import TinyDiT
from unified_guidance.training.diffusion import DiffusionModule
from unified_guidance.training.flow import FlowMatchingModule


@pytest.mark.parametrize(("name", "module_class"), [("diffusion", DiffusionModule), ("flow", FlowMatchingModule)])
def test_recipe_arch_dit_trains_a_tinydit_that_reloads_from_its_checkpoint(tmp_path, name, module_class):
    run = cli(
        name, "fit", tmp_path, "--model.arch=dit", "--model.width=16", "--trainer.max_steps=2",
        "--trainer.limit_val_batches=0", "--trainer.enable_checkpointing=true",
    )  # fmt: skip
    net = run.model.net if name == "diffusion" else run.model.velocity.net
    assert isinstance(net, TinyDiT) and run.trainer.global_step == 2
    path = tmp_path / "last.ckpt"
    run.trainer.save_checkpoint(path)
    again = module_class.load_from_checkpoint(path)  # no network passed: built from hparams (arch, width)
    assert again.hparams.arch == "dit"
    for (k, a), (_, b) in zip(run.model.state_dict().items(), again.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_default_net_builds_by_arch_and_refuses_unknown_ones():
    assert isinstance(default_net((1, 8, 8), 10, 16), TinyUNet)
    dit = default_net((3, 8, 6), 10, 16, "dit")  # a DiT also takes H ≠ W
    assert isinstance(dit, TinyDiT) and dit.grid == (4, 3) and len(dit.blocks) == 4
    cross = default_net((1, 8, 8), 10, 16, "dit_cross")  # the label read by cross-attention (NAG)
    assert isinstance(cross, TinyDiT) and cross.cond_mode == "cross" and hasattr(cross.blocks[0], "cross")
    with pytest.raises(ValueError, match=r"arch: expected one of unet, dit, dit_cross, got 'vit'"):
        DiffusionModule(arch="vit")
    with pytest.raises(ValueError, match=r"arch: expected one of unet, dit, dit_cross, got 'vit'"):
        FlowMatchingModule(arch="vit")


def test_dit_module_samples_through_the_shared_contract():
    torch.manual_seed(0)
    module = DiffusionModule(arch="dit", width=16, sample_steps=3)
    x = module.sample(torch.tensor([0, 10]), 3.0, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 1, 8, 8) and module.model.stats.rows == 2 * 2 * 3
    assert isinstance(module, L.LightningModule)
