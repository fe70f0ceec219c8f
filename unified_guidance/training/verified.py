"""Files the library writes and later trusts: written atomically with a SHA-256 digest, checked before use.

One mechanism serves the demo's cached models and resume checkpoints and the recipes'
Lightning checkpoints (through :class:`~.verified_io.VerifiedCheckpointIO`):

* :func:`write_verified` writes the bytes to a temporary file beside ``PATH``, flushes and
  fsyncs it and renames it over ``PATH``; then, the same way and **last**, the digest file
  ``PATH.sha256`` (one line, ``sha256sum``'s format: ``sha256sum -c PATH.sha256`` checks it by
  hand). A kill at any moment leaves the old pair, or new bytes beside the old digest — which
  fails the check — never a half-written file that passes it.
* :func:`read_verified` reads ``PATH`` and compares its SHA-256 with the digest file. Any
  damage — a truncated file, one flipped bit anywhere (an exponent bit that makes a NaN, a sign
  bit that makes another valid model) — raises :class:`DamagedFileError`, one message naming
  the file, what is wrong and what to do. :func:`load_verified` then ``torch.load`` s the checked
  bytes, and :func:`check_finite` refuses a state dict with NaN or ±inf weights.

A file without a digest file (written by an earlier build of unified_guidance, or by a
Trainer without the verified checkpoint IO) cannot be checked: ``require_digest=True`` refuses
it (the demo: it then retrains), ``False`` loads it with an :class:`UnverifiedFileWarning` (a
user's own ``ckpt_path``). :func:`atomic_write_bytes` alone (no digest) also writes the demo's
reports and figures and the sweep's result files (which carry their own checksum inside).
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

DIGEST_SUFFIX = ".sha256"


class DamagedFileError(ValueError):
    """A file the library wrote failed its check: ``path``, ``reason``; the message says what to do."""

    def __init__(self, path: str | os.PathLike, reason: str, remedy: str, what: str = "checkpoint") -> None:
        self.path, self.reason, self.remedy, self.what = Path(path), reason, remedy, what
        super().__init__(f"{what} '{path}' cannot be used: {reason}; {remedy}")

    def __reduce__(self):  # pickles whole (the demo's worker processes send errors back)
        return type(self), (self.path, self.reason, self.remedy, self.what)


class UnverifiedFileWarning(UserWarning):
    """A file without a digest file was used unchecked (``require_digest=False``)."""


def digest_path(path: str | os.PathLike) -> Path:
    """Where the digest of ``path`` is kept: ``PATH.sha256``."""
    return Path(f"{os.fspath(path)}{DIGEST_SUFFIX}")


def atomic_write_bytes(path: str | os.PathLike, data: bytes | memoryview) -> Path:
    """Write ``data`` to a temporary file beside ``path``, fsync it and rename it to ``path``.

    A failed write (disk full, quota) raises an ``OSError`` naming ``path`` and leaves no file.
    """
    target = Path(path)
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would make the files private
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as err:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError):
            message = f"cannot write {str(target)!r}: {err.strerror or err}; nothing partial was left behind"
            raise OSError(err.errno, message) from err
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_verified(path: str | os.PathLike, data: bytes | memoryview) -> str:
    """Write ``data`` to ``path`` atomically, then its digest to ``PATH.sha256`` (last); return the digest."""
    digest = hashlib.sha256(data).hexdigest()
    atomic_write_bytes(path, data)
    atomic_write_bytes(digest_path(path), f"{digest}  {Path(path).name}\n".encode())
    return digest


def save_verified(obj: Any, path: str | os.PathLike) -> str:
    """``torch.save(obj)`` to ``path`` through :func:`write_verified`; return the digest."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)  # in memory first: a failed write stays an OSError naming the file
    return write_verified(path, buffer.getbuffer())


def remove_verified(path: str | os.PathLike) -> None:
    """Remove ``path`` and its digest file (either may be missing)."""
    Path(path).unlink(missing_ok=True)
    digest_path(path).unlink(missing_ok=True)


def read_verified(
    path: str | os.PathLike, *, remedy: str, what: str = "checkpoint", require_digest: bool = True
) -> bytes:
    """The bytes of ``path`` after their SHA-256 matched ``PATH.sha256``.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DamagedFileError: the digest does not match, the digest file is unreadable, or (with
            ``require_digest``) missing; the message ends with ``remedy``.
    """
    path = Path(path)
    data = path.read_bytes()  # FileNotFoundError names the path
    sidecar = digest_path(path)
    if not sidecar.exists():
        reason = (
            f"it has no digest file ({sidecar.name}), so it cannot be checked "
            "(written by an older version of unified_guidance, or by a Trainer without VerifiedCheckpointIO)"
        )
        if require_digest:
            raise DamagedFileError(path, reason, remedy, what)
        warnings.warn(f"{what} '{path}': {reason}; loading it unchecked", UnverifiedFileWarning, stacklevel=2)
        return data
    try:
        expected = sidecar.read_text().split()[0].lower()
    except (OSError, UnicodeDecodeError, IndexError) as err:
        raise DamagedFileError(path, f"its digest file {sidecar.name} is unreadable ({err!r})", remedy, what) from err
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        reason = (
            f"checksum mismatch: its SHA-256 is {actual[:12]}…, {sidecar.name} says {expected[:12]}… "
            f"(the file changed after it was written: truncated, or bits flipped; {len(data)} bytes now)"
        )
        raise DamagedFileError(path, reason, remedy, what)
    return data


def load_verified(
    path: str | os.PathLike,
    *,
    remedy: str,
    what: str = "checkpoint",
    require_digest: bool = True,
    map_location: Any = "cpu",
    weights_only: bool | None = True,
) -> Any:
    """``torch.load`` of the bytes :func:`read_verified` returns; a file that passes but does not load
    (possible only without a digest) raises :class:`DamagedFileError` too."""
    data = read_verified(path, remedy=remedy, what=what, require_digest=require_digest)
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=weights_only)
    except Exception as err:
        reason = f"it does not load as a torch file ({type(err).__name__}: {str(err).splitlines()[0][:200]})"
        raise DamagedFileError(path, reason, remedy, what) from err


def nonfinite_entries(state: Mapping[str, Any]) -> list[str]:
    """The names of the floating tensors in ``state`` holding NaN or ±inf."""
    return [
        name
        for name, value in state.items()
        if isinstance(value, Tensor) and value.is_floating_point() and not bool(torch.isfinite(value).all())
    ]


def check_finite(state: Mapping[str, Any], path: str | os.PathLike, *, remedy: str, what: str = "checkpoint") -> None:
    """Raise :class:`DamagedFileError` when a floating tensor of the state dict ``state`` is not finite."""
    bad = nonfinite_entries(state)
    if bad:
        shown = ", ".join(bad[:3]) + (f" and {len(bad) - 3} more" if len(bad) > 3 else "")
        raise DamagedFileError(path, f"it holds non-finite weights (NaN or inf in {shown})", remedy, what)
