"""Output directory, atomic writes and the checkpoint cache: user-visible behaviour on bad input."""

import json
import warnings

import pytest
import torch
from torch import nn

from unified_guidance.demo.cache import CheckpointCache, CorruptCheckpointWarning
from unified_guidance.demo.io import OutputDirError, atomic_write, atomic_write_json, prepare_output_dir


def test_unwritable_output_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(OutputDirError, match=r"--out: expected a writable directory, got .*a_file/out"):
        prepare_output_dir(blocker / "out")


def test_output_dir_is_created(tmp_path):
    out = prepare_output_dir(tmp_path / "x" / "y")
    assert out.is_dir() and list(out.iterdir()) == []  # the write probe leaves nothing behind


def test_interrupted_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "report.json"
    atomic_write_json(target, {"rows": [1]})

    def half_then_crash(f):
        f.write(b'{"rows": [')
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        atomic_write(target, half_then_crash)
    assert json.loads(target.read_text()) == {"rows": [1]}
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]  # no temporary file left


def test_json_refuses_nan(tmp_path):
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "r.json", {"fd": float("nan")})
    assert not (tmp_path / "r.json").exists()


class Counter:
    """Builds and 'trains' a linear model deterministically, counting the trainings."""

    def __init__(self):
        self.trained = 0

    def build(self):
        return nn.Linear(3, 2)

    def train(self, model):
        self.trained += 1
        with torch.no_grad():
            model.weight.copy_(torch.arange(6.0).reshape(2, 3))
            model.bias.fill_(0.5)


def test_cache_trains_once_then_reuses(tmp_path):
    cache, c, config = CheckpointCache(tmp_path), Counter(), {"steps": 10, "seed": 0}
    _, r1 = cache.load_or_train("diffusion", config, c.build, c.train)
    m2, r2 = cache.load_or_train("diffusion", config, c.build, c.train)
    assert (r1.status, r2.status, c.trained) == ("trained", "loaded", 1)
    assert r1.sha256 == r2.sha256
    assert torch.equal(m2.weight, torch.arange(6.0).reshape(2, 3))


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda pt, meta: pt.write_bytes(pt.read_bytes()[:-7] + b"garbage"), "checksum mismatch"),
        (lambda pt, meta: pt.write_bytes(b""), "checksum mismatch"),
        (lambda pt, meta: meta.write_text("{not json"), "unreadable cache entry"),
        (lambda pt, meta: meta.unlink(), "unreadable cache entry"),
    ],
)
def test_corrupt_checkpoint_is_retrained_never_used(tmp_path, damage, reason):
    cache, c, config = CheckpointCache(tmp_path), Counter(), {"steps": 10}
    cache.load_or_train("flow", config, c.build, c.train)
    damage(*cache.paths("flow"))
    with pytest.warns(CorruptCheckpointWarning, match=f"flow: {reason}.*retraining"):
        model, result = cache.load_or_train("flow", config, c.build, c.train)
    assert (result.status, c.trained) == ("trained", 2)
    assert torch.equal(model.bias, torch.full((2,), 0.5))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the rewritten entry is sound again
        assert cache.load_or_train("flow", config, c.build, c.train)[1].status == "loaded"


def test_changed_configuration_retrains(tmp_path):
    cache, c = CheckpointCache(tmp_path), Counter()
    cache.load_or_train("ar", {"steps": 10}, c.build, c.train)
    with pytest.warns(CorruptCheckpointWarning, match="configuration changed"):
        cache.load_or_train("ar", {"steps": 20}, c.build, c.train)
    assert c.trained == 2


def test_cache_key_must_be_a_plain_name(tmp_path):
    with pytest.raises(ValueError, match="key: expected a plain file name"):
        CheckpointCache(tmp_path).paths("../escape")


def test_json_safe_turns_non_finite_numbers_into_null():
    from unified_guidance.demo.run import json_safe

    value = {"a": [1.0, float("nan")], "b": {"c": float("inf"), "d": "x", "e": 3}}
    assert json_safe(value) == {"a": [1.0, None], "b": {"c": None, "d": "x", "e": 3}}


def test_atomic_files_get_ordinary_permissions(tmp_path):
    import os

    mask = os.umask(0o022)
    try:
        path = atomic_write_json(tmp_path / "r.json", {})
    finally:
        os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o644
