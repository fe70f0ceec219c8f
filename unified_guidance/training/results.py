"""Sweep result files that are never silently reused when damaged.

Each ``item-NNNNN.pt`` carries the SHA-256 of its own fields (the samples' bytes
included). A file whose checksum does not match (a flipped bit), that does not load
(a truncated write), or whose samples are not finite is reported with a
:class:`DamagedResultWarning` and resampled, as the checkpoint cache does for models.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .verified import atomic_write_bytes


class DamagedResultWarning(UserWarning):
    """A saved sweep result failed its checks and is being resampled."""


def fields_digest(fields: dict[str, Any]) -> str:
    """SHA-256 over every field but ``sha256`` (tensors by dtype, shape and raw bytes)."""
    h = hashlib.sha256()
    for name in sorted(fields):
        if name == "sha256":
            continue
        value = fields[name]
        h.update(name.encode())
        if isinstance(value, Tensor):
            flat = value.detach().contiguous().cpu().reshape(-1)
            h.update(f"{value.dtype}{tuple(value.shape)}".encode())
            h.update(flat.view(torch.uint8).numpy().tobytes())
        else:
            h.update(repr(value).encode())
    return h.hexdigest()


def save_fields(path: Path, fields: dict[str, Any]) -> None:
    """Write ``fields`` with their checksum to ``path`` (temporary file + rename: all or nothing).

    A failed write (disk full, quota) raises an ``OSError`` naming ``path`` and leaves no file.
    """
    buffer = io.BytesIO()
    torch.save({**fields, "sha256": fields_digest(fields)}, buffer)  # in memory: write errors stay OSErrors
    atomic_write_bytes(path, buffer.getbuffer())


def load_fields(path: Path) -> dict[str, Any] | None:
    """The fields saved at ``path`` if they pass their checks; ``None`` (with a warning) if damaged."""
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        _damaged(path, f"does not load ({type(err).__name__})")
        return None
    if not isinstance(data, dict) or data.get("sha256") != fields_digest(data):
        _damaged(path, "checksum mismatch (corrupt or modified file)")
        return None
    samples = data.get("samples")
    if isinstance(samples, Tensor) and samples.is_floating_point() and not bool(torch.isfinite(samples).all()):
        _damaged(path, "non-finite samples")
        return None
    data.pop("sha256")
    return data


def _damaged(path: Path, reason: str) -> None:
    warnings.warn(f"sweep result {path}: {reason}; resampling it", DamagedResultWarning, stacklevel=3)
    return None
