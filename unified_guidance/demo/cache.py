"""A checkpoint cache that never silently uses a damaged file.

Each entry is ``KEY.pt`` (a state dict) and ``KEY.json`` (the configuration that
produced it and the SHA-256 of the ``.pt`` bytes). An entry is used only when the
metadata parses, the configuration matches and the checksum matches; otherwise
it is reported and the model is retrained and the entry rewritten.
"""

from __future__ import annotations

import hashlib
import io
import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import nn

from .io import atomic_write, atomic_write_json

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
            data = ckpt.read_bytes()
        except (OSError, ValueError) as err:
            return None, f"unreadable cache entry ({type(err).__name__}: {err})"
        if meta.get("config") != json.loads(json.dumps(dict(config))):
            return None, "configuration changed"
        if meta.get("sha256") != _sha256(data):
            return None, "checksum mismatch (corrupt or modified checkpoint)"
        try:
            state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as err:
            return None, f"checkpoint does not load ({type(err).__name__})"
        return state, "checksum and configuration match"

    def save(self, key: str, config: Mapping[str, Any], state: Mapping[str, Any]) -> str:
        """Write the state dict, then its metadata (both atomically); return the checksum."""
        self.root.mkdir(parents=True, exist_ok=True)
        ckpt, meta_path = self.paths(key)
        buffer = io.BytesIO()
        torch.save(dict(state), buffer)
        data = buffer.getvalue()
        atomic_write(ckpt, lambda f: f.write(data))
        digest = _sha256(data)
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
            warnings.warn(f"checkpoint cache: {key}: {reason}; retraining", CorruptCheckpointWarning, stacklevel=2)
        module = build()
        train(module)
        digest = self.save(key, config, module.state_dict())
        return module, CacheResult("trained", reason, digest)
