"""Files the demo writes: an output directory checked up front, and atomic writes.

Every file is written to a temporary file in the same directory and then renamed
over its target (``os.replace`` is atomic on POSIX), so an interrupted run leaves
the previous file or none, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


class OutputDirError(OSError):
    """The output directory cannot be created or written."""


class WriteError(OSError):
    """A file could not be written (disk full, quota, permissions); nothing partial was left behind."""


def write_error(path: str | os.PathLike, err: OSError) -> WriteError:
    """A one-line error naming ``path`` and the system's reason (e.g. "No space left on device")."""
    reason = err.strerror or str(err) or type(err).__name__
    return WriteError(err.errno, f"cannot write {str(path)!r}: {reason}; nothing partial was left behind")


def prepare_output_dir(path: str | os.PathLike, *, argument: str = "--out") -> Path:
    """Create ``path`` if needed and prove it writable; raise :class:`OutputDirError` naming ``argument``."""
    out = Path(path)
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-"):
            pass
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise OutputDirError(
            f"{argument}: expected a writable directory, got {str(out)!r} ({reason}); "
            f"pass another directory with {argument} DIR"
        ) from err
    return out


def atomic_write(path: str | os.PathLike, write: Callable[[IO[bytes]], Any]) -> Path:
    """Call ``write(f)`` on a temporary binary file beside ``path``, then rename it to ``path``."""
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as err:
        raise write_error(target, err) from err
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would make reports private
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as err:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(err, OSError) and not isinstance(err, WriteError):
            raise write_error(target, err) from err
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike, value: Any) -> Path:
    """Write ``value`` as indented JSON to ``path`` atomically (NaN is refused: JSON has none)."""
    return atomic_write_text(path, json.dumps(value, indent=2, allow_nan=False) + "\n")
