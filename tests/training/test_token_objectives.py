"""The token recipe's objectives: fine-tuning a CFG checkpoint into a guidance-free model starts at the
CFG model, runs with the new objectives resume exactly, and bad options are refused by name."""

from __future__ import annotations

import pytest
import torch
from recipe_runs import SignalAt, assert_signal_resume_is_exact, cli

from unified_guidance.training.autoregressive import TokenARModule

TINY = {"width": 16, "layers": 1, "heads": 2}  # the recipe's tiny overrides (recipe_runs.RECIPES)
EPOCHS = ["--trainer.max_epochs=7", "--trainer.max_steps=-1", "--trainer.limit_train_batches=1",
          "--trainer.limit_val_batches=0"]  # fmt: skip


@pytest.fixture(scope="module")
def cfg_ckpt(tmp_path_factory):
    """A token model trained two steps with the CFG objective: its fit-end last.ckpt."""
    root = tmp_path_factory.mktemp("cfg")
    cli("autoregressive", "fit", root, "--trainer.max_epochs=-1", "--trainer.max_steps=2",
        "--trainer.limit_train_batches=2", "--trainer.limit_val_batches=0")  # fmt: skip
    return root / "checkpoints" / "last.ckpt"


def test_fine_tuning_a_cfg_checkpoint_starts_at_the_cfg_model(cfg_ckpt):
    cfg = TokenARModule.load_from_checkpoint(cfg_ckpt, map_location="cpu")
    gft = TokenARModule(**TINY, objective="gft", init_from=str(cfg_ckpt))
    assert gft.model.guidance_input and not cfg.model.guidance_input
    gft.setup("fit")  # where a fit loads init_from
    for name, value in cfg.model.state_dict().items():
        torch.testing.assert_close(gft.model.state_dict()[name], value, rtol=0, atol=0)
    x, c = torch.randint(0, 17, (3, 5)), cfg.layout.class_tokens(torch.tensor([1, 4, 8]))
    want = cfg.model(x, 0.0, c)
    for beta in (1.0, 0.5, 0.2):  # the zero-initialised strength embedding: every β is the CFG model
        torch.testing.assert_close(gft.model(x, 0.0, c, beta=beta), want, rtol=0, atol=0)


@pytest.mark.parametrize("objective", ["gft", "distill"])
def test_a_run_with_a_new_objective_resumes_exactly_after_sigint(objective, cfg_ckpt, tmp_path, sigint_restored):
    """GFT fine-tuned from the CFG checkpoint, distillation from it as the teacher: SIGINT at epoch 6 of
    one-batch epochs, resumed from the 5-epoch checkpoint, ends where the uninterrupted run ends."""
    source = "--model.init_from" if objective == "gft" else "--model.teacher_ckpt"
    run = [*EPOCHS, f"--model.objective={objective}", f"{source}={cfg_ckpt}", "--model.scale_range=[1.0, 4.0]"]
    resumed = assert_signal_resume_is_exact("autoregressive", tmp_path, *run, steps=7, stop=SignalAt(6),
                                            interrupted_at=6, saved_at=5)  # fmt: skip
    assert resumed.model.hparams.objective == objective and resumed.model.model.guidance_input
    assert not any(k.startswith("_teacher") for k in resumed.model.state_dict())  # the teacher is not saved


def test_bad_objective_options_of_the_token_module_are_refused_by_name(cfg_ckpt, tmp_path):
    with pytest.raises(ValueError, match="objective: expected one of cfg, gft, model_guidance, distill"):
        TokenARModule(**TINY, objective="cca")
    with pytest.raises(ValueError, match="mg_scale: expected MG's w in"):
        TokenARModule(**TINY, objective="model_guidance", mg_scale=1.0)
    with pytest.raises(ValueError, match="scale_range: expected"):
        TokenARModule(**TINY, objective="gft", scale_range=(0.5, 2.0))
    with pytest.raises(ValueError, match="teacher_ckpt: expected the checkpoint of a trained CFG model"):
        TokenARModule(**TINY, objective="distill")
    with pytest.raises(FileNotFoundError, match="init_from: expected a checkpoint file"):
        TokenARModule(**TINY, objective="gft", init_from=str(tmp_path / "missing.ckpt")).setup("fit")
    mg = tmp_path / "mg.ckpt"  # the same weights, said to be trained with model guidance
    hparams = {**TINY, "objective": "model_guidance"}
    torch.save({**torch.load(cfg_ckpt, weights_only=False), "hyper_parameters": hparams}, mg)
    with pytest.raises(ValueError, match="teacher_ckpt: expected a model trained with objective='cfg', got 'model_g"):
        _ = TokenARModule(**TINY, objective="distill", teacher_ckpt=str(mg)).teacher
