"""The demo's resume checkpoint is checked before a rerun resumes from it, and the rerun says what it does.

A paradigm's training is run as ``run_paradigm`` runs it (``resumable`` around the cache's
``load_or_train`` and the runner's real ``fit``), tiny: the flow model at width 8, 8 steps,
a resume checkpoint every 5. A first run is cut at step 5 (its checkpoint kept, as Ctrl-C
or a kill leaves it); the rerun either resumes from step 5, saying so, or — with the file
damaged on disk — deletes it, says why, and trains from step 0. Either way the model equals
an uninterrupted 8-step training exactly.
"""

import io
import shutil

import pytest
import torch
from damage import DAMAGES, a_weight

from unified_guidance.demo.cache import CheckpointCache
from unified_guidance.demo.runners import get_runner
from unified_guidance.training.resume import resumable
from unified_guidance.training.stages import LineSink, reporting
from unified_guidance.training.verified import digest_path, save_verified

STEPS, EVERY = 8, 5


def config(steps: int) -> dict:
    return get_runner("flow").config(True) | {"width": 8, "max_steps": steps, "batch_size": 16, "sample_steps": 2}


def train(cache_dir, steps: int = STEPS, resume=None):
    """The demo's way: a resumable training through the cache; the model, steps run here, progress output."""
    runner, progress, ran = get_runner("flow"), io.StringIO(), []

    def build():
        module = runner.make(config(steps))
        step = module.training_step
        module.training_step = lambda *a, **k: ran.append(1) or step(*a, **k)
        return module

    cache = CheckpointCache(cache_dir)
    with reporting(LineSink(progress)), resumable(resume or cache_dir / "flow.resume.ckpt", every_n_steps=EVERY):
        module, _ = cache.load_or_train("flow", config(steps), build, lambda m: runner.train(m, config(steps)))
    return module, len(ran), progress.getvalue()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """An uninterrupted training, and the resume checkpoint a training cut at step 5 kept."""
    root = tmp_path_factory.mktemp("runs")
    straight, _, _ = train(root / "straight")
    kept = root / "kept.ckpt"
    train(root / "cut", steps=EVERY, resume=kept)  # stops at step 5, its step-5 checkpoint left behind
    assert torch.load(kept, weights_only=False)["global_step"] == EVERY and digest_path(kept).exists()
    return straight.state_dict(), kept


def rerun_state(runs, tmp_path, damage=None):
    straight, kept = runs
    tmp_path.mkdir(exist_ok=True)
    resume = tmp_path / "flow.resume.ckpt"
    shutil.copy(kept, resume)
    shutil.copy(digest_path(kept), digest_path(resume))
    if damage is not None:
        damage(resume)
    module, ran, said = train(tmp_path, resume=resume)
    for key, value in straight.items():  # the same model as an uninterrupted training, whatever happened
        torch.testing.assert_close(module.state_dict()[key], value, rtol=0, atol=0, msg=key)
    return ran, said, resume


def test_a_rerun_resumes_from_the_kept_step_and_says_so(runs, tmp_path):
    ran, said, resume = rerun_state(runs, tmp_path)
    assert ran == STEPS - EVERY
    assert said.splitlines()[0] == f"flow: resuming training at step {EVERY} from {resume} (kept by a stopped run)"


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_resume_checkpoint_is_deleted_said_and_the_training_starts_over(runs, tmp_path, damage):
    ran, said, resume = rerun_state(runs, tmp_path, lambda p: DAMAGES[damage](p, a_weight(p)))
    assert ran == STEPS  # from step 0: nothing of the damaged file was used
    first = said.splitlines()[0]
    assert first.startswith(f"flow: resume checkpoint '{resume}' cannot be used: checksum mismatch: ")
    assert first.endswith("; deleted it; the training starts again from step 0")


def test_a_resume_checkpoint_without_digest_or_with_nan_weights_is_not_used(runs, tmp_path):
    ran, said, _ = rerun_state(runs, tmp_path, lambda p: digest_path(p).unlink())  # an earlier build's file
    assert ran == STEPS and "cannot be used: it has no digest file (flow.resume.ckpt.sha256)" in said

    def nan(path):  # a consistent file whose weights are not finite
        ckpt = torch.load(path, weights_only=False)
        next(iter(ckpt["state_dict"].values())).view(-1)[0] = float("nan")
        save_verified(ckpt, path)

    ran, said, _ = rerun_state(runs, tmp_path / "nan", nan)
    assert ran == STEPS and "cannot be used: it holds non-finite weights (NaN or inf in " in said
