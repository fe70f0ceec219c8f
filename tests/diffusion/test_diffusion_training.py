"""Lightning training: per-sample condition dropout, EMA, sampling contract, sample grids, exact resume, CLI."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from unified_guidance import Guidance
from unified_guidance.schedules import Interval
from unified_guidance.training.data import DigitsDataModule
from unified_guidance.training.diffusion import DiffusionModule, SampleGridCallback, image_grid

RECIPES = Path(__file__).resolve().parents[2] / "unified_guidance" / "recipes"


def _trainer(tmp_path, **kwargs) -> L.Trainer:
    defaults = dict(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, limit_train_batches=3, limit_val_batches=0, default_root_dir=tmp_path,
    )  # fmt: skip
    return L.Trainer(**{**defaults, **kwargs})


class _LabelRecorder(nn.Module):
    """Wraps the network and records the labels it is trained on."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.labels = net, []

    def forward(self, x, t, labels):
        self.labels.append(labels.clone())
        return self.net(x, t, labels)


def test_condition_dropout_is_per_sample_with_probability_p(tmp_path):
    torch.manual_seed(0)
    module = DiffusionModule(width=8, p_uncond=0.1)
    module.net = recorder = _LabelRecorder(module.net)
    object.__setattr__(module._train_model, "net", recorder)
    _trainer(tmp_path, max_steps=3).fit(module, DigitsDataModule(batch_size=512))
    labels = torch.cat(recorder.labels)
    null = labels == 10
    n = labels.numel()
    assert abs(float(null.float().mean()) - 0.1) < 4 * (0.09 / n) ** 0.5
    assert all(0 < int((batch == 10).sum()) < batch.numel() for batch in recorder.labels)  # mixed in every batch


class _WeightRecorder(L.Callback):
    """Raw weights after each optimizer step (the module has updated its EMA by then)."""

    def __init__(self) -> None:
        self.weights: list[torch.Tensor] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.weights.append(nn.utils.parameters_to_vector(pl_module.net.parameters()).detach().clone())


@pytest.mark.parametrize("warmup", [True, False])
def test_ema_weights_follow_the_recursion_and_serve_sampling(tmp_path, warmup):
    torch.manual_seed(0)
    decay = 0.8
    module = DiffusionModule(width=8, ema_decay=decay, ema_warmup=warmup)
    rec = _WeightRecorder()
    _trainer(tmp_path, max_steps=4, callbacks=[rec]).fit(module, DigitsDataModule(batch_size=64))
    expected = rec.weights[0]  # the first update copies the weights
    for n, w in enumerate(rec.weights[1:], start=1):
        beta = min(decay, (1 + n) / (10 + n)) if warmup else decay  # warm-up: 2/11, 3/12, 4/13 < 0.8
        expected = beta * expected + (1 - beta) * w
    ema = nn.utils.parameters_to_vector(module.ema.module.parameters())
    torch.testing.assert_close(ema, expected)
    assert module.model.net is module.ema.module and module.trained_model.net is module.net
    assert not torch.allclose(ema, rec.weights[-1])


def test_sample_contract_shape_range_seed_and_forward_count():
    torch.manual_seed(0)
    module = DiffusionModule(width=8, sample_steps=10)
    with torch.no_grad():  # a non-zero output layer, so samples depend on the labels
        for p in module.ema.module.out[-1].parameters():
            p.normal_(0, 0.5)
    labels = torch.tensor([0, 3, 7])
    g = Guidance(scale=Interval(3.0, 0.15, 0.85))
    a = module.sample(labels, g, generator=torch.Generator().manual_seed(0))
    b = module.sample(labels, g, generator=torch.Generator().manual_seed(0))
    assert a.shape == (3, 1, 8, 8) and float(a.abs().max()) <= 1.0
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    # 10 steps: τ = 0, 0.1, …, 0.9, of which 0.2 … 0.8 lie in the interval (2B rows), the rest B rows
    assert (module.model.stats.calls, module.model.stats.rows) == (20, 2 * (7 * 6 + 3 * 3))


def test_sample_grid_callback_saves_one_grid_per_scale_every_n_epochs(tmp_path):
    torch.manual_seed(0)
    cb = SampleGridCallback(scales=(1.0, 3.0), per_class=2, steps=2, every_n_epochs=2)
    trainer = _trainer(tmp_path, max_epochs=3, limit_train_batches=1, limit_val_batches=1, callbacks=[cb])
    trainer.fit(DiffusionModule(width=8), DigitsDataModule(batch_size=32))
    assert sorted(cb.last_grids) == [1.0, 3.0]
    assert cb.last_grids[3.0].shape == (1, 10 * 9 - 1, 2 * 9 - 1)  # a row per class, one pixel of padding
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["epoch001_scale1.png", "epoch001_scale3.png"]
    images = torch.arange(6.0).reshape(6, 1, 1, 1)
    torch.testing.assert_close(image_grid(images, 3)[0], torch.tensor([[0.0, -1, 1, -1, 2], [-1, -1, -1, -1, -1],
                                                                        [3, -1, 4, -1, 5]]))  # fmt: skip


def _state(module: DiffusionModule, trainer: L.Trainer) -> list[torch.Tensor]:
    opt = trainer.optimizers[0].state_dict()["state"]
    return [*module.state_dict().values(), *(v for s in opt.values() for v in s.values())]


class _Interrupt(L.Callback):
    """Presses Ctrl-C at the first batch of the second epoch."""

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == 1:
            raise KeyboardInterrupt


def test_checkpoint_interrupt_and_resume_is_exact(tmp_path):
    data = lambda: DigitsDataModule(batch_size=64)  # noqa: E731
    torch.manual_seed(0)
    straight = DiffusionModule(width=8)
    t_straight = _trainer(tmp_path / "a", max_epochs=3)
    t_straight.fit(straight, data())

    torch.manual_seed(0)
    saver = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_epochs=1)
    t_first = _trainer(tmp_path / "b", max_epochs=3, enable_checkpointing=True, callbacks=[saver, _Interrupt()])
    with pytest.raises(SystemExit):  # Lightning tears down and exits on Ctrl-C
        t_first.fit(DiffusionModule(width=8), data())
    assert t_first.interrupted and t_first.global_step == 3

    torch.manual_seed(123)  # a fresh process: nothing but the checkpoint carries over
    resumed = DiffusionModule(width=8)
    t_resumed = _trainer(tmp_path / "c", max_epochs=3)
    t_resumed.fit(resumed, data(), ckpt_path=tmp_path / "ckpt" / "last.ckpt")
    assert t_resumed.global_step == t_straight.global_step == 9
    for a, b in zip(_state(straight, t_straight), _state(resumed, t_resumed), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_cli_recipe_trains_from_yaml(tmp_path):
    from recipes.train_diffusion import main

    args = [
        "fit", "--config", str(RECIPES / "diffusion_digits.yaml"), f"--trainer.default_root_dir={tmp_path}",
        "--trainer.max_epochs=25", "--trainer.limit_train_batches=1", "--trainer.limit_val_batches=1",
        "--trainer.enable_progress_bar=false", "--model.width=8", "--model.sample_steps=2",
    ]  # fmt: skip
    cli = main(args)  # validation and the grids come at epoch 25, as the YAML says
    assert cli.model.hparams.p_uncond == 0.1 and cli.model.hparams.ema_decay == 0.995  # from the YAML
    assert cli.trainer.global_step == 25
    assert list(tmp_path.rglob("last.ckpt")) and len(list(tmp_path.rglob("samples/*.png"))) == 3
    with pytest.raises(SystemExit):  # a typo in an argument is refused by the CLI, naming it
        main(["fit", "--config", str(RECIPES / "diffusion_digits.yaml"), "--model.p_uncnd=0.2"])


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="schedule: expected one of linear_beta, cosine"):
        DiffusionModule(schedule="sigmoid")
    with pytest.raises(ValueError, match="p_uncond"):
        DiffusionModule(p_uncond=1.5)
    with pytest.raises(ValueError, match="sample_shape"):
        DiffusionModule(sample_shape=(1, 8, 6))


def test_two_d_mixture_data_trains_an_mlp(tmp_path):
    from unified_guidance.data.mixture import two_d_mixture
    from unified_guidance.networks import MLPNet
    from unified_guidance.schedules import LinearBetaSchedule
    from unified_guidance.training.data import MixtureDataModule

    torch.manual_seed(0)
    module = DiffusionModule(sample_shape=(2,), num_classes=3, width=16, sample_steps=4, clip=False)
    assert isinstance(module.net, MLPNet)
    data = MixtureDataModule(two_d_mixture(path=LinearBetaSchedule(), dtype=torch.float32), num_samples=256)
    _trainer(tmp_path, max_steps=3).fit(module, data)
    x = module.sample(torch.tensor([0, 1, 2]), 2.0, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, 2) and bool(torch.isfinite(x).all())
    noise = torch.full((3, 2), 50.0)  # a start far out, which an unclipped sampler does not clamp
    assert float(module.sample(torch.tensor([0, 1, 2]), 1.0, noise=noise).abs().max()) > 1.0
