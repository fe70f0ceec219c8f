"""Files the demo writes: an output directory checked up front, and atomic writes.

Every file is written to a temporary file in the same directory and then renamed
over its target (``os.replace`` is atomic on POSIX), so an interrupted run leaves
the previous file or none, never half of one.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from ..training.verified import atomic_write_bytes


class OutputDirError(OSError):
    """The output directory cannot be created or written."""


class WriteError(OSError):
    """A file could not be written (disk full, quota, permissions); nothing partial was left behind."""


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
    """Call ``write(f)`` on an in-memory binary file, then write its bytes to a temporary file beside
    ``path``, fsync it and rename it to ``path`` (:func:`~unified_guidance.training.verified.atomic_write_bytes`)."""
    buffer = io.BytesIO()
    write(buffer)  # an error here leaves nothing on disk
    try:
        return atomic_write_bytes(path, buffer.getbuffer())
    except OSError as err:  # already one line naming the file
        raise WriteError(err.errno, err.strerror) from err


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text.encode("utf-8")))


def atomic_write_json(path: str | os.PathLike, value: Any) -> Path:
    """Write ``value`` as indented JSON to ``path`` atomically (NaN is refused: JSON has none)."""
    return atomic_write_text(path, json.dumps(value, indent=2, allow_nan=False) + "\n")
