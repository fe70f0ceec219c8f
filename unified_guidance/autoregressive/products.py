"""The products of a decode step over a few rows, computed so that the weights are read once.

At small batch a decode step is bound by reading the weights, and that read is the same for
the 2 rows of a guided step (cond and reference) as for the 1 row of an unguided one — in
principle. On this project's CPU (AMD EPYC, torch's MKL 2024.2, one thread) it is not: MKL
computes 1 row as a matrix–vector product at memory speed, but 2 or more rows as a matrix
product at about half that (GPT-2's layers: 18 ms for 1 row, 27 ms for 2; its 50257 × 768
head 12.6 and 21 ms; weights streamed from memory as in a decode). Two products avoid it:

* **oneDNN** (:mod:`~unified_guidance.compat.onednn`, the product torch's compiler emits) on
  the weight as it is stored: GPT-2's layers 15 ms for 1 row and 17 ms for 2; from 16 to
  128 rows about half MKL's time for every layer shape of GPT-2 and SmolLM2. It pays for a
  weight too large for the core's cache (at least :data:`MIN_WEIGHTS` elements); below that
  its fixed ~20 µs a call loses to MKL.
* **weight-left**, ``(W @ hᵀ)ᵀ``, for a weight stored ``(out, in)`` (``nn.Linear``, the LM
  head) at 2–4 rows, where MKL then streams W once for all rows: GPT-2's head over 2 rows
  8.6 ms against oneDNN's 13.9, SmolLM2's 576 → 1536 layers 0.23 ms against 0.32 (on GPT-2's
  ``(in, out)`` layout it is 5–15× slower, so never taken there).

:func:`product_layers` finds a model's plain ``nn.Linear`` layers and transformers'
``Conv1D`` layers (weight stored ``(in, out)``) once; :func:`few_row_products` gives each of
them, for the duration of one forward, a ``forward`` that routes its call (:func:`route`) and
otherwise calls the layer's own. Only the product changes: anything a model does after its
head (soft-capping, scaling) is untouched. A route is taken only on the CPU, without a
gradient to record, outside ``torch.compile`` (its compiler makes its own choice) and outside
CPU autocast (whose casts belong to the layer's own product):

* oneDNN: float32, 1 to :data:`MAX_ROWS` rows (a decode step, a short prompt's prefill),
  where weight-left is not taken;
* weight-left: a weight stored ``(out, in)``, float32/float64, 2 to 4 rows (:data:`LEFT_ROWS`);

both only for weights of at least :data:`MIN_WEIGHTS` elements.

Results equal the layers' own up to the order of summation (float32: ~1e-6 relative;
weight-left in float64: ~1e-16); the tests check tokens and logits against the model's own
products. Only this CPU was measured; ``docs/benchmarks.md`` has the decode-level figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..compat import onednn
from ..compat import transformers as hf

LEFT_ROWS = (2, 4)
MAX_ROWS = 128
MIN_WEIGHTS = 1 << 18
PRODUCTS = ("auto", "model")


def weight_left_linear(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    """``x @ weightᵀ + bias`` computed as ``(weight @ xᵀ)ᵀ``: ``(..., D) -> (..., V)``."""
    rows = x.reshape(-1, x.shape[-1])
    out = torch.addmm(bias[:, None], weight, rows.T) if bias is not None else weight @ rows.T
    return out.T.contiguous().reshape(*x.shape[:-1], weight.shape[0])


@dataclass(frozen=True, eq=False)
class Layer:
    """A linear layer of the model: its weight ``(out, in)`` is ``weight.T`` where ``stored_in_out``."""

    module: nn.Module
    stored_in_out: bool = False

    def weight(self) -> Tensor:
        w = self.module.weight
        assert isinstance(w, Tensor)  # a linear layer's parameter
        return w.T if self.stored_in_out else w

    def bias(self) -> Tensor | None:
        b = self.module.bias
        assert b is None or isinstance(b, Tensor)
        return b


def product_layers(lm: nn.Module) -> tuple[Layer, ...]:
    """The model's plain ``nn.Linear`` layers and transformers' ``Conv1D`` layers (subclasses,
    quantised or adapted layers are left alone)."""
    conv = hf.conv1d_type()
    layers = []
    for module in lm.modules():
        if type(module) is nn.Linear:
            layers.append(Layer(module))
        elif conv is not None and type(module) is conv:
            layers.append(Layer(module, stored_in_out=True))
    return tuple(layers)


def route(layer: Layer, x: Tensor) -> str | None:
    """``"weight-left"``, ``"onednn"`` or ``None`` (the layer's own product) for this call."""
    w = layer.weight()
    rows = x.numel() // x.shape[-1] if x.shape[-1] else 0
    if w.device.type != "cpu" or x.dtype != w.dtype or not 1 <= rows <= MAX_ROWS or w.numel() < MIN_WEIGHTS:
        return None
    if torch.compiler.is_compiling() or torch.is_autocast_enabled("cpu"):
        return None
    if torch.is_grad_enabled() and (x.requires_grad or w.requires_grad):
        return None
    if not layer.stored_in_out and LEFT_ROWS[0] <= rows <= LEFT_ROWS[1] and w.dtype in (torch.float32, torch.float64):
        return "weight-left"
    if w.dtype == torch.float32 and onednn.available():
        return "onednn"
    return None


def routed_forward(layer: Layer) -> Callable[[Tensor], Tensor]:
    """The ``forward`` :func:`few_row_products` gives ``layer``: its call routed, or its own."""
    module, own = layer.module, type(layer.module).forward

    def forward(x: Tensor) -> Tensor:
        way = route(layer, x)
        if way is None:
            return own(module, x)
        w = layer.weight()
        if way == "weight-left":
            return weight_left_linear(x, w, layer.bias())
        out = onednn.linear(x.reshape(-1, x.shape[-1]), w, layer.bias())
        return out.reshape(*x.shape[:-1], w.shape[0])

    return forward


@contextmanager
def few_row_products(layers: Sequence[tuple[Layer, Callable[[Tensor], Tensor]]]) -> Iterator[None]:
    """Within the block each layer runs its routed ``forward`` (``(layer, forward)`` pairs from
    :func:`routed_forward`). A layer whose instance already has its own ``forward`` (another
    library's hook) is left alone; every layer is restored, on an exception too."""
    swapped = [(layer.module, forward) for layer, forward in layers if "forward" not in vars(layer.module)]
    for module, forward in swapped:
        module.__dict__["forward"] = forward
    try:
        yield
    finally:
        for module, _ in swapped:
            module.__dict__.pop("forward", None)
