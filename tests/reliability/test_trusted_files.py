"""Files written with a digest and checked before use (training/verified.py), and the demo's model cache on it.

Real files written by ``torch.save``, damaged on disk (cut short, a sign bit, exponent bits
giving NaN): each is refused with one message naming the file and what to do; the cache
retrains and says so on the progress output.
"""

import hashlib
import io
import pickle

import pytest
import torch
from damage import DAMAGES, flip_sign
from torch import nn

from unified_guidance.demo.cache import CheckpointCache, CorruptCheckpointWarning
from unified_guidance.training.stages import LineSink, reporting
from unified_guidance.training.verified import (
    DamagedFileError,
    UnverifiedFileWarning,
    atomic_write_bytes,
    check_finite,
    digest_path,
    load_verified,
    save_verified,
)


def weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return nn.Linear(6, 4).state_dict()


def test_the_digest_file_is_written_last_in_sha256sums_format_and_the_file_loads_back(tmp_path):
    path = tmp_path / "model.pt"
    digest = save_verified(weights(), path)
    assert digest == hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest_path(path).read_text() == f"{digest}  model.pt\n"  # `sha256sum -c model.pt.sha256` checks it
    assert digest_path(path).stat().st_mtime_ns >= path.stat().st_mtime_ns
    for key, value in load_verified(path, remedy="x").items():
        assert torch.equal(value, weights()[key])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.pt", "model.pt.sha256"]  # no temporary file left


@pytest.mark.parametrize("damage", DAMAGES)
def test_damage_is_refused_naming_the_file_and_what_to_do(tmp_path, damage):
    path = tmp_path / "model.pt"
    save_verified(weights(), path)
    DAMAGES[damage](path, weights()["weight"])
    if damage == "sign bit":  # unchecked, it is another valid model
        assert not torch.equal(torch.load(path, weights_only=True)["weight"], weights()["weight"])
    with pytest.raises(DamagedFileError) as caught:
        load_verified(path, what="cached model", remedy="delete it and train again")
    message = str(caught.value)
    assert message.startswith(f"cached model '{path}' cannot be used: checksum mismatch: its SHA-256 is ")
    assert message.endswith("; delete it and train again") and caught.value.path == path


def test_a_file_without_digest_is_refused_or_loaded_with_a_warning(tmp_path):
    path = tmp_path / "old.ckpt"
    torch.save(weights(), path)  # as an earlier build wrote it: no digest file
    with pytest.raises(DamagedFileError, match=r"'.*old\.ckpt' cannot be used: it has no digest file \(old\.ckpt\."):
        load_verified(path, remedy="x")
    with pytest.warns(UnverifiedFileWarning, match=r"old\.ckpt': it has no digest file.*loading it unchecked"):
        assert torch.equal(load_verified(path, remedy="x", require_digest=False)["bias"], weights()["bias"])
    digest_path(path).write_bytes(b"")  # an empty digest file
    with pytest.raises(DamagedFileError, match=r"its digest file old\.ckpt\.sha256 is unreadable"):
        load_verified(path, remedy="x")


def test_non_finite_weights_are_named_and_the_error_pickles_whole(tmp_path):
    state = weights()
    state["bias"][1] = float("nan")
    with pytest.raises(DamagedFileError, match=r"it holds non-finite weights \(NaN or inf in bias\); retrain") as e:
        check_finite(state, tmp_path / "m.pt", remedy="retrain")
    again = pickle.loads(pickle.dumps(e.value))  # the demo's worker processes send errors back
    assert (str(again), again.path, again.reason) == (str(e.value), e.value.path, e.value.reason)


class Counter:
    """Builds a linear model and 'trains' it deterministically, counting the trainings."""

    def __init__(self):
        self.trained = 0

    def build(self):
        return nn.Linear(6, 4)

    def train(self, model):
        self.trained += 1
        model.load_state_dict(weights())


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_cached_model_is_retrained_and_the_progress_output_says_so(tmp_path, damage):
    cache, c, config = CheckpointCache(tmp_path), Counter(), {"steps": 10}
    cache.load_or_train("flow", config, c.build, c.train)
    pt = cache.paths("flow")[0]
    DAMAGES[damage](pt, weights()["weight"])
    progress = io.StringIO()
    with reporting(LineSink(progress)), pytest.warns(CorruptCheckpointWarning, match=f"checksum mismatch.*{pt}"):
        model, result = cache.load_or_train("flow", config, c.build, c.train)
    assert (result.status, c.trained) == ("trained", 2)
    assert torch.equal(model.weight, weights()["weight"])
    line = progress.getvalue()
    assert line.startswith("checkpoint cache: flow: checksum mismatch") and line.endswith(f"({pt}); retraining\n")
    assert cache.load_or_train("flow", config, c.build, c.train)[1].status == "loaded"  # sound again


def test_a_cached_model_with_a_valid_digest_but_nan_weights_is_refused(tmp_path):
    cache, c, config = CheckpointCache(tmp_path), Counter(), {"steps": 10}
    cache.load_or_train("flow", config, c.build, c.train)
    state = weights()
    state["weight"][0, 0] = float("nan")
    save_verified(state, cache.paths("flow")[0])  # consistent file and digest: what an earlier build could cache
    with pytest.warns(CorruptCheckpointWarning, match=r"flow: it holds non-finite weights \(NaN or inf in weight\)"):
        model, result = cache.load_or_train("flow", config, c.build, c.train)
    assert result.status == "trained" and bool(torch.isfinite(model.weight).all())


def test_the_cache_never_stores_non_finite_weights(tmp_path):
    state = weights()
    state["bias"][0] = float("inf")
    with pytest.raises(ValueError, match=r"state: expected finite weights to cache as 'flow', got NaN or inf in bias"):
        CheckpointCache(tmp_path).save("flow", {}, state)
    assert list(tmp_path.iterdir()) == []


def test_an_entry_of_an_earlier_build_without_digest_is_retrained(tmp_path):
    cache, c, config = CheckpointCache(tmp_path), Counter(), {"steps": 10}
    cache.load_or_train("ar", config, c.build, c.train)
    digest_path(cache.paths("ar")[0]).unlink()  # the .pt and its .json (with its sha256) as before digests
    with pytest.warns(CorruptCheckpointWarning, match=r"ar: it has no digest file \(ar\.pt\.sha256\)"):
        assert cache.load_or_train("ar", config, c.build, c.train)[1].status == "trained"
    assert digest_path(cache.paths("ar")[0]).exists()


def test_a_sign_flip_in_the_evaluator_cache_is_caught(tmp_path):
    """The flip that made every report row change silently: a valid file, another model."""
    cache, c = CheckpointCache(tmp_path), Counter()
    cache.load_or_train("evaluator", {}, c.build, c.train)
    flip_sign(cache.paths("evaluator")[0], weights()["bias"])
    with pytest.warns(CorruptCheckpointWarning, match="evaluator: checksum mismatch"):
        model, _ = cache.load_or_train("evaluator", {}, c.build, c.train)
    assert torch.equal(model.bias, weights()["bias"])


def test_a_kill_between_the_file_and_its_digest_fails_the_check(tmp_path):
    """New bytes renamed in, the process killed before the digest followed: the old digest refuses them."""
    path = tmp_path / "model.pt"
    save_verified(weights(), path)
    buffer = io.BytesIO()
    torch.save({k: v + 1 for k, v in weights().items()}, buffer)
    atomic_write_bytes(path, buffer.getvalue())  # the first of write_verified's two renames only
    with pytest.raises(DamagedFileError, match="checksum mismatch"):
        load_verified(path, remedy="x")
