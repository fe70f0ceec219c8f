"""torch's oneDNN matrix product, an internal operator: probed once, used only where it answers right.

``torch.ops.mkldnn._linear_pointwise(x, w, b, "none", [], "")`` is the product torch's own
compiler emits for linear layers on the CPU (``x @ wᵀ + b`` with ``w`` ``(out, in)``, any
strides, float32). It is not public API, so :func:`available` tries it once on a small
case against ``F.linear`` and answers ``False`` (callers keep their own product) where the
operator is missing, refuses its arguments or gives another answer.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor


def linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``x @ weightᵀ + bias`` by oneDNN: ``(R, in), (out, in) -> (R, out)`` (float32)."""
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


@functools.cache
def available() -> bool:
    """Whether :func:`linear` runs here and equals ``F.linear`` (for both weight layouts)."""
    if not torch.backends.mkldnn.is_available():
        return False
    g = torch.Generator().manual_seed(0)
    x, w, b = (torch.randn(shape, generator=g) for shape in ((3, 8), (5, 8), (5,)))
    try:
        answers = [linear(x, weight, b) for weight in (w, w.T.contiguous().T)]
    except (AttributeError, RuntimeError, TypeError, NotImplementedError):
        return False
    expected = F.linear(x, w, b)
    return all(a.shape == expected.shape and torch.allclose(a, expected, rtol=1e-5, atol=1e-5) for a in answers)
