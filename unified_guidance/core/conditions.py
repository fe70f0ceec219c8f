"""Conditions, null conditions and batching of several branches into one forward.

A condition is whatever the network takes: class labels ``(B,)``, embeddings
``(B, L, D)``, or a dict/tuple of such tensors (an embedding and its mask). The
null condition ∅ is described once per model, for a single sample, and expanded
to a batch here, so the same code serves labels, embeddings and token prompts.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor

from .checks import reads_back

Cond = Tensor | Mapping[str, Any] | Sequence[Any]
"""A network condition: a tensor with a batch dimension, or a dict/tuple of them."""

NullSpec = int | Tensor | Callable[[int], Any]
"""How a model describes ∅: a label index, one sample's tensor, or ``batch_size -> cond``."""


def batch_size_of(cond: Cond) -> int:
    """The batch size of a condition (the first tensor's leading dimension)."""
    if isinstance(cond, Tensor):
        if cond.ndim == 0:
            raise ValueError("cond: expected a tensor with a batch dimension, got a 0-dim tensor")
        return cond.shape[0]
    if isinstance(cond, Mapping):
        for value in cond.values():
            if isinstance(value, (Tensor, Mapping, list, tuple)):
                return batch_size_of(value)
    elif isinstance(cond, (list, tuple)) and cond:
        return batch_size_of(cond[0])
    raise TypeError(f"cond: expected a tensor, dict or tuple of tensors, got {type(cond).__name__}")


def cat_batch(conds: Sequence[Cond]) -> Cond:
    """Concatenate conditions of the same structure along the batch dimension."""
    first, same = conds[0], cast(Sequence[Any], conds)  # every condition has the structure of the first
    if isinstance(first, Tensor):
        return torch.cat(list(same), dim=0)
    if isinstance(first, Mapping):
        for other in same[1:]:  # a key of one branch only would be dropped or fail as a KeyError
            if not isinstance(other, Mapping) or set(other) != set(first):
                got = sorted(other) if isinstance(other, Mapping) else type(other).__name__
                raise ValueError(
                    f"cond: every branch's condition (the condition, ∅ = null_cond, a negative) must carry the same "
                    f"inputs, got {sorted(first)} and {got}"
                )
        return {k: cat_batch([c[k] for c in same]) if _batched(first[k]) else first[k] for k in first}
    if isinstance(first, (list, tuple)):
        return type(first)(cat_batch([c[i] for c in same]) for i in range(len(first)))
    raise TypeError(f"cond: cannot batch a {type(first).__name__}; expected tensors, dicts or tuples")


def take_rows(cond: Cond, index: Tensor) -> Cond:
    """The rows ``index`` ``(k,)`` of a condition (a tensor, or every batched tensor of a dict/tuple)."""
    if isinstance(cond, Tensor):
        return cond[index.to(cond.device)]
    if isinstance(cond, Mapping):
        return {k: take_rows(v, index) if _batched(v) else v for k, v in cond.items()}
    if isinstance(cond, (list, tuple)):
        return type(cond)(take_rows(v, index) for v in cond)
    raise TypeError(f"cond: cannot select rows of a {type(cond).__name__}; expected tensors, dicts or tuples")


def _batched(value: Any) -> bool:
    return isinstance(value, (Tensor, Mapping, list, tuple))


def expand_null(null: NullSpec, batch_size: int, *, device: torch.device | None = None) -> Cond:
    """Expand a single-sample null condition to ``batch_size`` rows.

    * ``int``: a label index (the learned null token), returned as a ``(B,)`` long tensor;
    * ``Tensor``: one sample's condition (no batch dimension), repeated along a new batch dimension;
    * callable: called with the batch size.
    """
    if isinstance(null, bool):
        raise TypeError("null_cond: expected an int label, a tensor or a callable, got a bool")
    if isinstance(null, int):
        return torch.full((batch_size,), null, dtype=torch.long, device=device)
    if isinstance(null, Tensor):
        out = null.unsqueeze(0).expand(batch_size, *null.shape)
        return out if device is None else out.to(device)
    if callable(null):
        return null(batch_size)
    raise TypeError(f"null_cond: expected an int label, a tensor or a callable, got {type(null).__name__}")


def drop_condition(
    cond: Tensor, null: NullSpec, p: float, *, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Replace each sample's condition by ∅ with probability ``p`` (per sample).

    The training trick of Ho & Salimans (arXiv 2207.12598): one network learns
    both ``pred(x, t, y)`` and ``pred(x, t, ∅)``. Returns the new condition and the
    boolean mask of dropped rows ``(B,)``.
    """
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p: expected a probability in [0, 1], got {p}")
    batch = cond.shape[0]
    drop = torch.rand(batch, generator=generator, device="cpu").to(cond.device) < p
    null_rows = expand_null(null, batch, device=cond.device)
    if not isinstance(null_rows, Tensor) or null_rows.shape != cond.shape:
        got = tuple(null_rows.shape) if isinstance(null_rows, Tensor) else type(null_rows).__name__
        raise ValueError(f"null_cond: expected the shape of cond {tuple(cond.shape)}, got {got}")
    mask = drop.reshape((batch,) + (1,) * (cond.ndim - 1))
    return torch.where(mask, null_rows.to(cond.dtype), cond), drop


@dataclass(frozen=True)
class Conditions:
    """The branches of one guided call: weighted conditions and an optional negative.

    The guided prediction is ``u + s·Σᵢ wᵢ(cᵢ − u)`` (Liu et al., arXiv 2206.01714),
    where ``u`` comes from ``negative`` if given, else from ∅ (or the guidance's
    reference model). A plain condition is ``Conditions((cond,), (1.0,))``.
    Negative weights push away from a condition (composition "NOT").
    """

    conds: tuple[Cond, ...]
    weights: tuple[float, ...]
    negative: Cond | None = None

    def __post_init__(self) -> None:
        if not self.conds:
            raise ValueError("conds: expected at least one condition, got none")
        if len(self.conds) != len(self.weights):
            raise ValueError(
                f"weights: expected {len(self.conds)} weights (one per condition), got {len(self.weights)}"
            )
        for w in self.weights:
            if isinstance(w, bool) or not isinstance(w, (int, float)):
                raise TypeError(f"weights: expected numbers, got {type(w).__name__}")
        if not all(math.isfinite(w) for w in self.weights):
            raise ValueError(f"weights: expected finite numbers, got {tuple(self.weights)}")
        sizes = {batch_size_of(c) for c in self.conds}
        if self.negative is not None:
            sizes.add(batch_size_of(self.negative))
        if len(sizes) != 1:
            raise ValueError(f"conds/negative: expected one batch size for every branch, got {sorted(sizes)}")

    @classmethod
    def single(cls, cond: Cond, negative: Cond | None = None) -> Conditions:
        return cls((cond,), (1.0,), negative)

    @classmethod
    def compose(cls, pairs: Sequence[tuple[Cond, float]], negative: Cond | None = None) -> Conditions:
        """Several conditions with their own weights, e.g. ``[(dog, 1.0), (snow, 0.5)]``."""
        return cls(tuple(c for c, _ in pairs), tuple(float(w) for _, w in pairs), negative)

    @property
    def is_single(self) -> bool:
        return len(self.conds) == 1 and self.weights[0] == 1.0


def check_labels(name: str, cond: Cond, batch: int, num_classes: int | None) -> None:
    """Class labels: an integer ``(B,)`` tensor in ``[0, num_classes]`` (``num_classes`` is the null token)."""
    if not isinstance(cond, Tensor) or cond.is_floating_point() or cond.dtype == torch.bool:
        got = f"{cond.dtype} tensor" if isinstance(cond, Tensor) else type(cond).__name__
        raise TypeError(f"{name}: expected integer class labels, got {got}")
    if tuple(cond.shape) != (batch,):
        raise ValueError(f"{name}: expected labels of shape ({batch},), got {tuple(cond.shape)}")
    if num_classes is None or not cond.numel() or not reads_back():
        return
    if bool(((cond < 0) | (cond > num_classes)).any()):  # one read-back per call; the range only on failure
        raise ValueError(
            f"{name}: expected labels in [0, {num_classes}] ({num_classes} = null token), "
            f"got values in [{int(cond.min())}, {int(cond.max())}]"
        )
