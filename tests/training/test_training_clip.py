"""One clamping rule for both modules' samples: clip=True clamps to [−1, 1], False never, None (the
default) images only — so 2-D points in [−5, 5] come back as sampled."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import unified_guidance as ug
from unified_guidance.training.diffusion import DiffusionModule
from unified_guidance.training.flow import FlowMatchingModule

LABELS = torch.arange(64) % 3


def _fit_on_points(module: L.LightningModule) -> None:
    """Two steps on 2-D points uniform in [−5, 5] (three classes)."""
    gen = torch.Generator().manual_seed(0)
    points = 10.0 * torch.rand(256, 2, generator=gen) - 5.0
    data = DataLoader(TensorDataset(points, torch.arange(256) % 3), batch_size=64)
    trainer = L.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)  # fmt: skip
    trainer.fit(module, data)


def test_two_d_diffusion_samples_are_not_clamped_unless_asked():
    torch.manual_seed(0)
    module = DiffusionModule(sample_shape=(2,), num_classes=3, width=8, sample_steps=4)
    _fit_on_points(module)
    noise = 5.0 * torch.randn(64, 2, generator=torch.Generator().manual_seed(1))  # a start at the data's scale
    g = ug.Guidance(scale=4.0)
    x = module.sample(LABELS, g, noise=noise)
    unclamped, _ = ug.diffusion.sample(module.model, g, (64, 2), LABELS, steps=4, noise=noise)
    assert torch.equal(x, unclamped) and float(x.abs().max()) > 1.0
    module.hparams["clip"] = True  # asked for: [−1, 1]
    assert torch.equal(module.sample(LABELS, g, noise=noise), unclamped.clamp(-1.0, 1.0))


def test_flow_follows_the_same_rule_and_images_are_clamped_by_default():
    torch.manual_seed(0)
    module = FlowMatchingModule(sample_shape=(2,), num_classes=3, width=8, sample_steps=4)
    _fit_on_points(module)
    g = ug.Guidance(scale=4.0)
    x = module.sample(LABELS, g, generator=torch.Generator().manual_seed(1))
    noise = torch.randn(64, 2, generator=torch.Generator().manual_seed(1))
    unclamped, _ = ug.flow.sample(module.model, g, noise, LABELS, method="midpoint", steps=4)
    assert torch.equal(x, unclamped) and float(x.abs().max()) > 1.0
    for make in (DiffusionModule, FlowMatchingModule):  # images (C, H, W): clamped unless clip=False
        images = make(width=8, sample_steps=2).sample(torch.arange(2), 9.0, generator=torch.Generator())
        assert float(images.abs().max()) <= 1.0
        with pytest.raises(TypeError, match="clip: expected True, False or None"):
            make(width=8, clip="yes")
