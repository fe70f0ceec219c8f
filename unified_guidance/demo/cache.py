"""A checkpoint cache that never silently uses a damaged file.

Each entry is ``KEY.pt`` (a state dict), its digest ``KEY.pt.sha256`` and ``KEY.json`` (the
configuration that produced it, and the same SHA-256 for the report), each written atomically,
the ``.pt`` through :func:`~unified_guidance.training.verified.write_verified` (digest last). An
entry is used only when the metadata parses, the configuration matches, the ``.pt`` passes its
digest check (:func:`~unified_guidance.training.verified.load_verified`), loads, holds only
finite weights and fits the model; otherwise it is reported — a
:class:`CorruptCheckpointWarning` and a line on the progress output, naming the file — and the
model is retrained and the entry rewritten. An entry without a digest file (written before
digests existed) is retrained too: an earlier build could cache a model trained from a damaged
resume checkpoint under a valid checksum. A model whose weights are not finite is never cached.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from ..training.stages import current, note
from ..training.verified import DamagedFileError, check_finite, load_verified, nonfinite_entries, save_verified
from .io import atomic_write_json

M = TypeVar("M", bound=nn.Module)


class CorruptCheckpointWarning(UserWarning):
    """A cached checkpoint failed its checks and is being retrained."""


@dataclass(frozen=True)
class CacheResult:
    """How a model was obtained: ``"loaded"`` from the cache or ``"trained"`` (``reason`` says why)."""

    status: str
    reason: str
    sha256: str


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class CheckpointCache:
    """Checkpoints under ``root``, keyed by name and checked against config and checksum."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def paths(self, key: str) -> tuple[Path, Path]:
        if not key or any(c in key for c in "/\\") or key.startswith("."):
            raise ValueError(f"key: expected a plain file name, got {key!r}")
        return self.root / f"{key}.pt", self.root / f"{key}.json"

    def resume_path(self, key: str, config: Mapping[str, Any]) -> Path:
        """Where an interrupted training of ``key`` under ``config`` keeps its resumable checkpoint
        (the configuration's digest is in the name: another configuration never resumes from it)."""
        digest = _sha256(json.dumps(dict(config), sort_keys=True).encode())[:12]
        return self.root / f"{key}-{digest}.resume.ckpt"

    def check(self, key: str, config: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
        """The cached state dict if the entry is sound, else ``None``, and the reason."""
        ckpt, meta_path = self.paths(key)
        if not ckpt.exists() and not meta_path.exists():
            return None, "no cached checkpoint"
        try:
            meta = json.loads(meta_path.read_text())
            if not ckpt.exists():
                raise FileNotFoundError(f"no {ckpt.name} beside it")
        except (OSError, ValueError) as err:
            return None, f"unreadable cache entry ({type(err).__name__}: {err})"
        if not isinstance(meta, dict) or meta.get("config") != json.loads(json.dumps(dict(config))):
            return None, "configuration changed"
        what, remedy = "cached model", "retraining it"
        try:
            state = load_verified(ckpt, what=what, remedy=remedy)
            if not isinstance(state, dict):
                raise DamagedFileError(ckpt, f"it holds a {type(state).__name__}, not a state dict", remedy, what)
            check_finite(state, ckpt, what=what, remedy=remedy)
        except (OSError, DamagedFileError) as err:
            return None, err.reason if isinstance(err, DamagedFileError) else f"unreadable ({err})"
        return state, "checksum and configuration match"

    def save(self, key: str, config: Mapping[str, Any], state: Mapping[str, Any]) -> str:
        """Write the state dict and its digest, then its metadata (all atomically); return the checksum.

        Raises:
            ValueError: a weight is NaN or infinite (the training diverged): nothing is cached.
        """
        bad = nonfinite_entries(state)
        if bad:
            raise ValueError(
                f"state: expected finite weights to cache as {key!r}, got NaN or inf in {', '.join(bad[:3])}; "
                "the training diverged (lower the learning rate or check the data), nothing was cached"
            )
        self.root.mkdir(parents=True, exist_ok=True)
        ckpt, meta_path = self.paths(key)
        digest = save_verified(dict(state), ckpt)
        atomic_write_json(meta_path, {"config": dict(config), "sha256": digest, "torch": torch.__version__})
        return digest

    def load_or_train(
        self, key: str, config: Mapping[str, Any], build: Callable[[], M], train: Callable[[M], None]
    ) -> tuple[M, CacheResult]:
        """A model from ``build()`` with cached weights, or trained by ``train(model)`` and cached.

        A damaged or mismatched entry is reported with a
        :class:`CorruptCheckpointWarning` and retrained from a fresh ``build()``
        (so a retrained model equals one trained on the first run); a missing
        entry is trained quietly.
        """
        state, reason = self.check(key, config)
        if state is not None:
            module = build()
            try:
                module.load_state_dict(state)
                return module, CacheResult("loaded", reason, _sha256(self.paths(key)[0].read_bytes()))
            except (RuntimeError, KeyError) as err:
                reason = f"state dict does not fit the model ({type(err).__name__})"
        if reason != "no cached checkpoint":
            message = f"checkpoint cache: {key}: {reason} ({self.paths(key)[0]}); retraining"
            warnings.warn(message, CorruptCheckpointWarning, stacklevel=2)
            if current() is not None:  # the demo's progress output, where the retraining shows
                note(message)
        module = build()
        train(module)
        digest = self.save(key, config, module.state_dict())
        return module, CacheResult("trained", reason, digest)
