"""Self- or cross-attention, told by what a module does with its inputs (not by its class).

While a selected attention module runs its first call under a perturbation, every torch function
it calls is followed and each tensor it makes is labelled with the module inputs it was computed
from. At its ``scaled_dot_product_attention`` call the module is *self-attention* when its keys
and values come from inputs its queries come from too (a KV cache's past entries carry no label,
so a cached decoder still is; SD3's joint attention, whose queries, keys and values all span both
streams, is). It attends to *another sequence* when its keys or values come from an input the
queries do not use (a text context; ``nn.MultiheadAttention``'s separate ``key``/``value``) or from
no input at all (learned memory tokens): identity attention there would hand each query the value
of some other sequence's token, so the attention kinds refuse such modules.
"""

from __future__ import annotations

import inspect
import weakref
from collections.abc import Callable, Iterator
from typing import Any

from torch import Tensor, nn

_VERDICTS: weakref.WeakKeyDictionary[nn.Module, str | None] = weakref.WeakKeyDictionary()
"""Per module: ``None`` for self-attention, else why it is not (judged on its first call)."""


def verdict(module: nn.Module) -> tuple[bool, str | None]:
    """``(judged, reason)``: whether ``module`` was judged already, and why it is not self-attention."""
    return (module in _VERDICTS), _VERDICTS.get(module)


def record_verdict(module: nn.Module, reason: str | None) -> None:
    _VERDICTS[module] = reason


def bound_inputs(module: nn.Module, args: tuple, kwargs: dict) -> dict[str, Any]:
    """The inputs of a call of ``module`` by parameter name (keywords only where binding fails)."""
    try:
        bound = inspect.signature(module.forward).bind_partial(*args, **kwargs)
    except TypeError:
        return dict(kwargs)
    return dict(bound.arguments)


def _tensors(obj: Any) -> Iterator[Tensor]:
    """The tensors in ``obj``, through tuples, lists and dicts."""
    if isinstance(obj, Tensor):
        yield obj
    elif isinstance(obj, (tuple, list)):
        for item in obj:
            yield from _tensors(item)
    elif isinstance(obj, dict):
        for item in obj.values():
            yield from _tensors(item)


class Provenance:
    """Labels of the tensors made during one module call: the names of the inputs each came from."""

    def __init__(self, inputs: dict[str, Any]) -> None:
        self.labels: dict[int, tuple[Tensor, frozenset[str]]] = {}
        for name, value in inputs.items():
            for i, t in enumerate(_tensors(value)):
                self._add(t, frozenset({name if isinstance(value, Tensor) else f"{name}[{i}]"}))

    def _add(self, t: Tensor, labels: frozenset[str]) -> None:
        old = self.labels.get(id(t))
        self.labels[id(t)] = (t, labels | old[1] if old is not None and old[0] is t else labels)

    def of(self, obj: Any) -> frozenset[str]:
        out: frozenset[str] = frozenset()
        for t in _tensors(obj):
            entry = self.labels.get(id(t))
            if entry is not None and entry[0] is t:
                out |= entry[1]
        return out

    def follow(self, func: Callable, args: tuple, kwargs: dict, result: Any) -> None:
        """Label what ``func(*args, **kwargs)`` made (and, for an in-place op, changed) with its inputs' labels."""
        labels = self.of((args, kwargs))
        if not labels:
            return
        name = getattr(func, "__name__", "")
        in_place = name == "__setitem__" or (name.endswith("_") and not name.startswith("__"))
        if in_place and args and isinstance(args[0], Tensor):
            self._add(args[0], labels)
        for t in _tensors(result):
            self._add(t, labels)

    def judge(self, query: Tensor, key: Tensor, value: Tensor) -> str | None:
        """``None`` for self-attention, else why the attention reads another sequence."""
        q, k, v = self.of(query), self.of(key), self.of(value)
        if k and v and k <= q and v <= q:
            return None
        kv = ", ".join(sorted(k | v)) or "no input (learned or fixed tokens)"
        return f"its keys and values come from {kv}, its queries from {', '.join(sorted(q)) or 'no input'}"
