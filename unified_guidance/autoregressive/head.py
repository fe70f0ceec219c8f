"""The LM head over a few rows, with the weight as the left operand of the product.

A guided decode step carries 2B rows; at small B the step is bound by reading the
weights, which is the same for 1 row as for 2 — in principle. The largest matrix
is the LM head (vocabulary × width: 50257 × 768 for GPT-2, 38.6 M weights), and
``F.linear(h, W)`` = ``h @ Wᵀ`` over 2–8 rows makes CPU BLAS pack and stream W
once per few rows: 2 rows cost about twice 1 row. The same product written as
``(W @ hᵀ)ᵀ`` streams W once for all rows (measured on this project's CPU, 1
thread: 20.4 ms → 7.0 ms for 2 rows of GPT-2's head, 17.2 → 7.8 ms for 4; no
gain at 1 or 16 rows, none for the smaller per-layer matrices, which stay in
cache). ``docs/benchmarks.md`` has the decode-level figures.

The head module is the model's own (``get_output_embeddings()``), so anything a
model does after it (logit soft-capping, scaling) is untouched; only its product
changes, for the duration of one forward, and only where it pays:

* the head is a plain ``nn.Linear`` on the CPU in float32/float64,
* with at least :data:`MIN_VOCAB` outputs,
* over 2 to :data:`MAX_ROWS` rows.

The result equals ``F.linear`` up to the order of summation (float64: ~1e-16
relative); the tests check tokens and logits against the plain path.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MIN_VOCAB = 8192
MAX_ROWS = 8
HEAD_PRODUCTS = ("auto", "linear", "weight-left")


def weight_left_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``x @ weightᵀ + bias`` computed as ``(weight @ xᵀ)ᵀ``: ``(..., D) -> (..., V)``."""
    rows = x.reshape(-1, x.shape[-1])
    out = torch.addmm(bias[:, None], weight, rows.T) if bias is not None else weight @ rows.T
    return out.T.contiguous().reshape(*x.shape[:-1], weight.shape[0])


def output_head(lm: nn.Module) -> nn.Linear | None:
    """The model's LM head if it is a plain ``nn.Linear`` (else ``None``: left alone)."""
    get = getattr(lm, "get_output_embeddings", None)
    head = get() if callable(get) else None
    return head if type(head) is nn.Linear else None


def pays_off(head: nn.Linear, rows: int) -> bool:
    """Whether ``(W @ hᵀ)ᵀ`` beats ``F.linear`` for ``rows`` rows of this head (see the module docstring)."""
    w = head.weight
    return (
        w.device.type == "cpu"
        and w.dtype in (torch.float32, torch.float64)
        and head.out_features >= MIN_VOCAB
        and 2 <= rows <= MAX_ROWS
    )


@contextmanager
def head_product(head: nn.Linear | None, mode: str = "auto") -> Iterator[None]:
    """Within the block, ``head`` computes its product weight-left where ``mode`` asks for it:
    ``"auto"`` where :func:`pays_off` for the rows of each call, ``"weight-left"`` always,
    ``"linear"`` never. A head whose instance already has its own ``forward`` (another
    library's hook) is left alone."""
    if head is None or mode == "linear" or "forward" in vars(head):
        yield
        return

    def forward(x: Tensor) -> Tensor:
        if mode == "weight-left" or pays_off(head, x.numel() // x.shape[-1]):
            return weight_left_linear(x, head.weight, head.bias)
        return F.linear(x, head.weight, head.bias)

    head.forward = forward
    try:
        yield
    finally:
        del head.forward
