"""The diffusion and flow modules' objectives under Lightning: chosen from the recipes' YAML/CLI, resumed
exactly (the distillation teacher re-loaded, not saved), fine-tuned from a CFG checkpoint (starting equal to
it), and a short distillation on the 2-D mixture reaching its teacher's guided output."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from recipe_runs import SignalAt, assert_signal_resume_is_exact, cli

from unified_guidance.data import two_d_mixture
from unified_guidance.guidance.objectives import Objective
from unified_guidance.schedules import LinearFlowPath
from unified_guidance.training.data import MixtureDataModule
from unified_guidance.training.diffusion import DiffusionModule
from unified_guidance.training.flow import FlowMatchingModule

EPOCHS = ["--trainer.max_epochs=7", "--trainer.max_steps=-1", "--trainer.limit_train_batches=1",
          "--trainer.limit_val_batches=0"]  # fmt: skip


@pytest.fixture(scope="module")
def cfg_checkpoints(tmp_path_factory):
    """A tiny CFG run of each recipe (two one-batch epochs): the teacher and the fine-tuning source."""
    root = tmp_path_factory.mktemp("cfg")
    out = {}
    for name in ("diffusion", "flow"):
        cli(name, "fit", root / name, *EPOCHS[1:], "--trainer.max_epochs=2")
        out[name] = root / name / "checkpoints" / "last.ckpt"
    return out


@pytest.mark.parametrize(
    ("name", "objective"),
    [("diffusion", "gft"), ("diffusion", "model_guidance"), ("diffusion", "distill"), ("flow", "gft"),
     ("flow", "distill")],
)  # fmt: skip
def test_new_objectives_resume_exactly(name, objective, cfg_checkpoints, tmp_path, sigint_restored):
    """SIGINT at epoch 6 of one-batch epochs; the shipped 5-epoch checkpoint (step 5) resumes to step 7. Distillation
    starts from its teacher (init_from) and loads the teacher from its path again after the resume."""
    extra = [f"--model.objective={objective}", "--model.mg_scale=0.5"]
    if objective == "distill":
        extra += [f"--model.teacher_ckpt={cfg_checkpoints[name]}", f"--model.init_from={cfg_checkpoints[name]}"]
    run = assert_signal_resume_is_exact(
        name, tmp_path, *EPOCHS, *extra, steps=7, stop=SignalAt(6), interrupted_at=6, saved_at=5
    )
    assert run.model.hparams.objective == objective
    assert run.model.trained_model.guidance_input == (objective != "model_guidance")
    saved = torch.load(tmp_path / "first" / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    assert not any("teacher" in k for k in saved)  # the teacher is no part of the trained state


@pytest.mark.parametrize("name", ["diffusion", "flow"])
def test_fine_tuning_a_cfg_checkpoint_into_gft_starts_equal_to_the_cfg_model(name, cfg_checkpoints):
    module_type = DiffusionModule if name == "diffusion" else FlowMatchingModule
    source = module_type.load_from_checkpoint(cfg_checkpoints[name])
    gft = module_type(width=8, objective="gft", init_from=str(cfg_checkpoints[name]))
    assert gft.model.guidance_input and not source.model.guidance_input
    before = [p.clone() for p in gft.trained_model.net.parameters()]
    gft.setup("fit")
    assert any(not torch.equal(a, b) for a, b in zip(before, gft.trained_model.net.parameters(), strict=True))
    gen = torch.Generator().manual_seed(0)
    x, t = torch.randn(6, 1, 8, 8, generator=gen), torch.rand(6, generator=gen) * 0.9 + 0.05
    labels = torch.tensor([0, 3, 10, 9, 1, 2])  # 10 is ∅
    with torch.no_grad():
        want = source.model(x, t, labels)
        for model in (gft.model, gft.trained_model):  # both start from the CFG checkpoint's sampling weights
            for beta in (1.0, 0.5, 0.2):
                torch.testing.assert_close(model(x, t, labels, beta=beta), want, rtol=0, atol=0)


def test_init_from_refuses_another_network(cfg_checkpoints):
    wider = DiffusionModule(width=16, objective="gft", init_from=str(cfg_checkpoints["diffusion"]))
    with pytest.raises(ValueError, match="init_from: expected a checkpoint of the same network"):
        wider.setup("fit")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"objective": "gfd"}, "objective: expected one of cfg, gft, model_guidance, distill, got 'gfd'"),
        ({"objective": "distill"}, "teacher_ckpt: expected the checkpoint of a trained CFG model"),
        ({"objective": "gft", "teacher_ckpt": "t.ckpt"}, "teacher_ckpt: expected .* with objective='distill'"),
        ({"objective": "model_guidance", "mg_scale": 1.5}, r"mg_scale: expected MG's w in \[0, 1\)"),
        ({"objective": "gft", "scale_range": (3.0, 2.0)}, r"scale_range: expected \(s_min, s_max\)"),
    ],
)
@pytest.mark.parametrize("module_type", [DiffusionModule, FlowMatchingModule])
def test_bad_objective_options_are_refused_by_name(module_type, kwargs, message):
    with pytest.raises(ValueError, match=message):
        module_type(width=8, **kwargs)


def test_a_missing_teacher_checkpoint_is_named(tmp_path):
    module = FlowMatchingModule(width=8, sample_shape=(2,), num_classes=3, objective="distill",
                                teacher_ckpt=str(tmp_path / "nowhere.ckpt"))  # fmt: skip
    with pytest.raises(FileNotFoundError, match="teacher_ckpt: expected a checkpoint file of a FlowMatchingModule"):
        module.training_objective()


def fit(module: L.LightningModule, data: L.LightningDataModule, steps: int, root) -> L.Trainer:
    trainer = L.Trainer(
        max_steps=steps, accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False,
        default_root_dir=root, limit_val_batches=0,
    )  # fmt: skip
    trainer.fit(module, data)
    return trainer


def test_a_distilled_student_matches_its_teachers_guided_output(tmp_path):
    """A CFG teacher on the 2-D mixture (flow matching), then a student distilled from it (started from its
    weights, s ∈ [1, 4], 150 steps): on the training distribution (data points on the path, their labels, drawn s)
    the student's one forward at β = 1/s is within 1 % (mean squared error relative to the output's mean square)
    of the teacher's s·u_c − (s − 1)·u_∅, where it started at 39 % (the teacher's conditional alone)."""
    torch.manual_seed(0)
    mixture = two_d_mixture(path=LinearFlowPath(), space="velocity")
    data = MixtureDataModule(mixture, num_samples=4096, batch_size=256)
    small = {"width": 64, "num_classes": 3, "sample_shape": (2,), "lr": 3e-3, "ema_decay": 0.99}
    teacher = FlowMatchingModule(**small)
    trainer = fit(teacher, data, 200, tmp_path / "teacher")
    trainer.save_checkpoint(tmp_path / "teacher.ckpt")
    ckpt = str(tmp_path / "teacher.ckpt")
    student = FlowMatchingModule(**small, objective="distill", teacher_ckpt=ckpt, init_from=ckpt,
                                 scale_range=(1.0, 4.0))  # fmt: skip

    def gap() -> float:  # relative MSE to the teacher's guided output, on fresh draws of the training problem
        gen = torch.Generator().manual_seed(123)
        x1, labels = data.x[:2048], data.labels[:2048]
        t = torch.rand(2048, generator=gen)
        x_t = t[:, None] * x1 + (1 - t[:, None]) * torch.randn(x1.shape, generator=gen)
        beta = 1 / (1 + 3 * torch.rand(2048, generator=gen))
        with torch.no_grad():
            c, u = student.teacher(x_t, t, labels), student.teacher(x_t, t, torch.full_like(labels, 3))
            guided = u + (1 / beta)[:, None] * (c - u)
            got = student.model(x_t, t, labels, beta=beta)
        return float((got - guided).pow(2).mean() / guided.pow(2).mean())

    student.setup("fit")
    start = gap()
    fit(student, data, 150, tmp_path / "student")
    end = gap()
    assert end < 0.01 and end < start / 20, (start, end)  # measured 0.39 → 0.0019


def test_recipes_take_the_objective_from_the_command_line(tmp_path):
    run = cli("flow", None, tmp_path, "--model.objective=model_guidance", "--model.mg_scale=0.25", run=False)
    objective = run.model.training_objective()
    assert objective == Objective("model_guidance", mg_scale=0.25)
    assert not run.model.trained_model.guidance_input
    run = cli("flow", None, tmp_path, "--model.objective=model_guidance", "--model.mg_ema=true", run=False)
    assert run.model.training_objective().teacher is run.model.model  # MG's stop-gradient term from the EMA
    run = cli("diffusion", None, tmp_path, "--model.objective=gft", "--model.scale_range=[1.0, 8.0]", run=False)
    assert run.model.training_objective().scales == (1.0, 8.0) and run.model.trained_model.guidance_input


def test_the_docs_gft_yaml_runs(tmp_path):
    """docs/training.md's ``gft.yaml`` block, read after the recipe's YAML, trains a GFT model."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "training.md").read_text()
    block = text.split("```yaml\n# gft.yaml")[1].split("```")[0]
    (tmp_path / "gft.yaml").write_text("# gft.yaml" + block)
    run = cli("diffusion", "fit", tmp_path, "--config", str(tmp_path / "gft.yaml"), *EPOCHS[1:],
              "--trainer.max_epochs=1")  # fmt: skip
    assert run.trainer.global_step == 1 and run.model.hparams.objective == "gft"
    assert run.model.training_objective().scales == (1.0, 10.0) and run.model.model.guidance_input
