"""Damage to a file on disk, as a bad copy or a failing disk makes it: cut short, or bits flipped in a weight.

The flips act on the bytes of one float32 tensor as ``torch.save`` stored them (uncompressed
in the zip), found by value: a sign bit (the file still loads, as another valid model) or the
exponent bits set to all ones (the weight becomes NaN). The file is rewritten in place, its
digest file left as it was.
"""

from __future__ import annotations

from pathlib import Path

import torch


def _offset(data: bytes, tensor: torch.Tensor) -> int:
    raw = tensor.detach().to(torch.float32).contiguous().numpy().tobytes()
    at = data.find(raw)
    assert at >= 0, "the tensor's bytes are not in the file"
    return at


def truncate(path: Path, tensor: torch.Tensor) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def flip_sign(path: Path, tensor: torch.Tensor) -> None:
    data = bytearray(path.read_bytes())
    data[_offset(data, tensor) + 3] ^= 0x80  # little-endian float32: the sign is the top bit of byte 3
    path.write_bytes(bytes(data))


def make_nan(path: Path, tensor: torch.Tensor) -> None:
    data = bytearray(path.read_bytes())
    at = _offset(data, tensor)
    data[at + 3] |= 0x7F  # the exponent's eight bits (byte 3's low 7, byte 2's top one) all set …
    data[at + 2] |= 0x80
    data[at] |= 0x01  # … with a non-zero mantissa: NaN
    path.write_bytes(bytes(data))


def a_weight(path: Path) -> torch.Tensor:
    """A float weight of the Lightning checkpoint at ``path`` (its first with at least 8 entries)."""
    state = torch.load(path, weights_only=False)["state_dict"]
    return next(v for v in state.values() if v.is_floating_point() and v.numel() >= 8)


DAMAGES = {"truncated": truncate, "sign bit": flip_sign, "exponent bits (NaN)": make_nan}
"""name → ``damage(path, tensor)``; ``tensor``: a weight whose stored bytes the flips act on."""
