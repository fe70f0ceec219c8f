"""Shape and value checks shared by every layer.

One broadcasting helper (:func:`broadcast_like`) and the checks that turn bad
input into errors naming the argument, what was expected and what came.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from .checks import reads_back


def broadcast_like(value: Tensor | float, x: Tensor) -> Tensor:
    """Broadcast a per-sample value against ``x`` of shape ``(B, ...)``.

    ``value`` is a Python number, a 0-dim tensor, a ``(B,)`` tensor or a tensor of
    ``x``'s batch size with trailing singleton dimensions. The result has shape
    ``(B, 1, ..., 1)`` (or ``()``) so that ``value * x`` never broadcasts silently
    over the wrong axis; any other size raises.
    """
    if not isinstance(value, Tensor):
        return torch.as_tensor(value, dtype=x.dtype, device=x.device)
    value = value.to(device=x.device, dtype=x.dtype if value.is_floating_point() else None)
    if value.ndim == 0:
        return value
    if value.shape[0] != x.shape[0] or value.numel() != x.shape[0]:
        raise ValueError(
            f"expected a scalar or one value per sample (batch {x.shape[0]}), "
            f"got a tensor of shape {tuple(value.shape)}"
        )
    return value.reshape((x.shape[0],) + (1,) * (x.ndim - 1))


def as_time(t: Tensor | float, x: Tensor) -> Tensor:
    """``t`` as a tensor on x's device: the one way a time given to a model becomes a tensor.

    A Python float becomes a 0-dim tensor of :func:`time_dtype` of x's dtype (x's dtype when
    float32 or wider, float32 for a float16/bfloat16 ``x``), so ``0.37`` reaches a float64
    network as the float64 0.37, not rounded through float32. A Python int stays an integer
    (int64) tensor, the discrete timestep of an integer-time model; a tensor keeps its dtype.
    """
    if isinstance(t, float):
        return torch.tensor(t, dtype=time_dtype(x.dtype), device=x.device)
    return torch.as_tensor(t, device=x.device)


def batch_time(
    t: Tensor | float, batch_size: int, *, device: torch.device, dtype: torch.dtype, name: str = "t"
) -> Tensor:
    """Return ``t`` as a ``(B,)`` tensor: a scalar is repeated, a ``(B,)`` tensor is checked
    (``name``: the argument named by the error)."""
    t = torch.as_tensor(t, device=device, dtype=dtype)
    if t.ndim == 0:
        return t.expand(batch_size)
    if t.shape != (batch_size,):
        raise ValueError(f"{name}: expected a scalar or shape ({batch_size},), got shape {tuple(t.shape)}")
    return t


def check_strength(beta: Tensor | float, x: Tensor) -> Tensor:
    """The guidance strength β = 1/s of a guidance-free model as a ``(B,)`` tensor in the time dtype
    of ``x``; raise ``ValueError`` naming ``beta`` unless it lies in (0, 1] (s ≥ 1; one read-back)."""
    if isinstance(beta, bool) or not isinstance(beta, (Tensor, int, float)):
        raise TypeError(f"beta: expected a number or a tensor, got {type(beta).__name__}")
    b = batch_time(beta, x.shape[0], device=x.device, dtype=time_dtype(x.dtype), name="beta")
    if reads_back() and not bool(((b > 0.0) & (b <= 1.0)).all()):  # NaN fails both; one read-back when it holds
        check_finite("beta", b)
        raise ValueError(
            f"beta: expected values in (0, 1] (β = 1/s for a guidance scale s ≥ 1), got values in "
            f"[{float(b.min()):g}, {float(b.max()):g}]"
        )
    return b


def check_finite(name: str, value: Tensor | float) -> None:
    """Raise ``ValueError`` naming ``name`` if ``value`` holds NaN or infinity (a tensor's
    values are not read back inside a ``torch.compile`` graph: :func:`~.checks.reads_back`)."""
    if isinstance(value, Tensor):
        if not reads_back():
            return
        value = value.detach()
        if not bool(torch.isfinite(value).all()):
            bad = int((~torch.isfinite(value)).sum())
            raise ValueError(f"{name}: expected finite values, got {bad} non-finite entries")
    elif not math.isfinite(value):
        raise ValueError(f"{name}: expected a finite number, got {value}")


def check_batch(name: str, x: object) -> None:
    """A floating-point ``(B, ...)`` tensor of finite values: a sampler's starting noise, a loss's data
    (where a NaN would make the loss NaN and the optimiser carry it into every weight)."""
    if not isinstance(x, Tensor) or x.ndim < 1 or not x.is_floating_point():
        got = f"a {x.dtype} tensor of shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__
        raise ValueError(f"{name}: expected a floating-point (B, ...) tensor, got {got}")
    check_finite(name, x)


def check_unit_interval(name: str, value: Tensor | float) -> None:
    """Raise ``ValueError`` if ``value`` is not finite or leaves [0, 1] (a tensor: one read-back
    when it holds; the details are computed only when it does not)."""
    if isinstance(value, Tensor):
        if not reads_back():
            return
        value = value.detach()
        if bool(((value >= 0.0) & (value <= 1.0)).all()):  # NaN fails both comparisons
            return
        check_finite(name, value)
        lo, hi = float(value.min()), float(value.max())
    else:
        check_finite(name, value)
        lo, hi = value, value
    if lo < 0.0 or hi > 1.0:
        raise ValueError(f"{name}: expected values in [0, 1], got values in [{lo:g}, {hi:g}]")


def check_pair(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """Two predictions that are combined must agree in shape, dtype and device."""
    for what, va, vb in (
        ("shape", tuple(a.shape), tuple(b.shape)),
        ("dtype", a.dtype, b.dtype),
        ("device", a.device, b.device),
    ):
        if va != vb:
            raise ValueError(f"{name_b}: expected the {what} of {name_a} ({va}), got {vb}")


def time_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype times, noise levels and samplers' states are kept in: at least float32 (``dtype`` if wider).

    A float16 or bfloat16 time grid collapses (bfloat16 keeps 8 bits: 2,000 DDIM
    times become 635 distinct values), and a state accumulated in them loses the part
    of every increment below its resolution (a 500-step Euler flow drifts by tens of
    per cent), so neither drops below float32.
    """
    return torch.promote_types(dtype, torch.float32) if dtype.is_floating_point else torch.get_default_dtype()


@dataclass(frozen=True)
class Precision:
    """A sampler's two dtypes: ``network``, the one its model is called in, and ``state``,
    :func:`time_dtype` of it, in which the state, the times and every step's arithmetic are kept.

    The network's dtype is the dtype of the input the user gave (the noise, or x), so a float16
    network is called with float16 states and its predictions come back in float32; the sampler
    returns its samples in the network's dtype again. For float32 and float64 both dtypes are the
    same and every cast is a no-op.
    """

    network: torch.dtype
    state: torch.dtype

    @classmethod
    def of(cls, x: Tensor) -> Precision:
        """The precision of a run started from ``x``: its dtype for the network, ≥ float32 for the state."""
        return cls(x.dtype, time_dtype(x.dtype))

    def to_state(self, value: Tensor) -> Tensor:
        """``value`` (a state, a prediction) in the state's dtype."""
        return value.to(self.state)

    def to_network(self, value: Tensor) -> Tensor:
        """``value`` in the network's dtype: a state for the model call, the samples returned."""
        return value.to(self.network)


def check_module_input(name: str, x: Tensor, module: object) -> None:
    """``x`` has the dtype and device of ``module``'s first floating-point parameter (if it has one).

    Catches a float16 ``x`` for a float32 network (or a CPU ``x`` for a CUDA one) before
    torch reports it from deep inside a convolution as "Input type … and bias type …".
    """
    params = getattr(module, "parameters", None)
    if not isinstance(x, Tensor) or params is None:
        return
    param = next((p for p in params() if p.is_floating_point()), None)
    if param is None:
        return
    if x.dtype != param.dtype or x.device != param.device:
        raise TypeError(
            f"{name}: expected {param.dtype} on {param.device} (the network's parameters), "
            f"got {x.dtype} on {x.device}; cast x (or the network with .to(...))"
        )


def randn(shape: Sequence[int], generator: torch.Generator | None, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Standard normal noise drawn on the generator's device (a CPU generator serves a GPU model), then moved."""
    where = generator.device if generator is not None else device
    return torch.randn(tuple(shape), generator=generator, dtype=dtype, device=where).to(device)
