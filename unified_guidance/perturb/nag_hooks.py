"""Installing normalized attention guidance (NAG) for one forward, on some rows of its batch.

NAG acts inside the forward it guides: each selected cross-attention module runs once over its
rows *and* a copy of the span's rows whose context is the negative one (the module's
``hidden_states`` and ``encoder_hidden_states`` extended along the batch before it runs), so the
same queries read both contexts in one ``scaled_dot_product_attention`` call. The span's rows of
that call's output become :func:`~.ops.normalized_attention` of the two reads, and the module's
output is cut back to its own rows: the rest of the network runs on the forward's rows only.

The negative context a layer reads is the negative condition taken through the module named by
the perturbation's ``context`` (the network's own path from its condition input to the context its
cross-attentions read), or the negative condition itself.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ..core.conditions import Cond
from .hooks import Rows, Selections, removed_after, selection
from .ops import normalized_attention
from .spec import NormalizedAttention, path_ends_with


@dataclass(frozen=True)
class NagSpan:
    """NAG on ``rows`` of one forward: at ``scale`` w (a number or ``(k,)``, k the span's rows),
    against ``negative``, the negative condition of those rows as the network is given it."""

    perturbation: NormalizedAttention
    rows: Rows
    scale: Tensor | float
    negative: Cond


@contextlib.contextmanager
def normalized(root: nn.Module, spans: Sequence[NagSpan], cache: Selections | None = None) -> Iterator[None]:
    """Apply each :class:`NagSpan` to the cross-attention modules of ``root`` it selects, for the
    block's forwards; the hooks are always removed. ``cache`` as in :func:`~.hooks.perturbed`."""
    sites: dict[str, tuple[nn.Module, list[tuple[NagSpan, Tensor]]]] = {}
    for span in spans:
        chosen = selection(span.perturbation, root, cache)
        context = negative_context(root, span.perturbation, span.negative)
        if context.shape[0] != span.rows.stop - span.rows.start:
            raise ValueError(
                f"cond: the negative condition has {context.shape[0]} rows, NAG acts on "
                f"{span.rows.stop - span.rows.start}"
            )
        for path, module in chosen:
            sites.setdefault(path, (module, []))[1].append((span, context))
    handles: list[Any] = []
    modes: list[_NagSite] = []
    with removed_after(handles, modes):
        for path, (module, acts) in sites.items():
            site = _NagSite(path, module, acts, modes)
            handles.append(module.register_forward_pre_hook(site.enter, with_kwargs=True))
            handles.append(module.register_forward_hook(site.leave, always_call=True))
        yield


def negative_context(root: nn.Module, pert: NormalizedAttention, negative: Cond) -> Tensor:
    """The context the selected cross-attentions read for the condition ``negative``."""
    given = negative.get("encoder_hidden_states") if isinstance(negative, Mapping) else negative
    if not isinstance(given, Tensor):
        keys = f" with keys {sorted(negative)}" if isinstance(negative, Mapping) else ""
        raise ValueError(
            "cond: NAG needs the negative condition as a tensor or a dict with 'encoder_hidden_states', "
            f"got {type(negative).__name__}{keys}"
        )
    if pert.context is None:
        return given
    found = [module for name, module in root.named_modules() if name and path_ends_with(name, pert.context)]
    if len(found) != 1:
        raise ValueError(
            f"context: {pert.context!r} selects {len(found)} modules of {type(root).__name__}, expected one "
            "(the module that maps the condition to the context the cross-attentions read)"
        )
    return found[0](given)


class _NagSite(TorchFunctionMode):
    """One selected module: its rows extended by the spans' negative reads, its SDPA output guided."""

    def __init__(self, path: str, module: nn.Module, acts: list[tuple[NagSpan, Tensor]], stack: list) -> None:
        super().__init__()
        self.path, self.acts, self.stack = path, sorted(acts, key=lambda a: a[0].rows.start), stack
        self.signature = inspect.signature(module.forward)
        self.batch, self.calls = 0, 0

    def enter(self, module: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        bound = self.signature.bind(*args, **kwargs)
        named = bound.arguments
        hidden, context = named.get("hidden_states"), named.get("encoder_hidden_states")
        if not isinstance(hidden, Tensor) or not isinstance(context, Tensor):
            raise ValueError(
                f"modules: {self.path!r} ran without hidden_states and encoder_hidden_states tensors; "
                "NAG acts on cross-attention called as module(hidden_states, encoder_hidden_states)"
            )
        if named.get("attention_mask") is not None:
            raise ValueError(f"modules: {self.path!r} got an attention mask; NAG supports unmasked contexts only")
        self.batch, self.calls = hidden.shape[0], 0
        extra_h, extra_c = [hidden], [context]
        for span, negative in self.acts:
            if span.rows.batch != self.batch:
                raise ValueError(f"rows: {self.path!r} sees a batch of {self.batch}, the forward has {span.rows.batch}")
            if negative.shape[1:] != context.shape[1:]:
                raise ValueError(
                    f"cond: the negative context in {self.path!r} has shape {tuple(negative.shape[1:])} per row, "
                    f"the positive {tuple(context.shape[1:])}; give the negative condition the positive's shape"
                )
            extra_h.append(span.rows.take(hidden))
            extra_c.append(negative.to(context.dtype))
        named["hidden_states"], named["encoder_hidden_states"] = torch.cat(extra_h), torch.cat(extra_c)
        self.__enter__()
        self.stack.append(self)
        return bound.args, bound.kwargs

    def leave(self, module: nn.Module, args: Any, output: Any) -> Any:
        if self.stack and self.stack[-1] is self:
            self.stack.pop()
            self.__exit__(None, None, None)
        if output is None:
            return None
        if self.calls == 0:
            raise ValueError(
                f"modules: {self.path!r} ran without calling torch.nn.functional.scaled_dot_product_attention, "
                "so NAG cannot act on it"
            )
        if isinstance(output, tuple):
            return tuple(o[: self.batch] if isinstance(o, Tensor) else o for o in output)
        return output[: self.batch]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func is not F.scaled_dot_product_attention:
            return out
        self.calls += 1
        extra = sum(span.rows.stop - span.rows.start for span, _ in self.acts)
        if out.shape[0] != self.batch + extra:
            raise ValueError(
                f"modules: the attention in {self.path!r} sees a batch of {out.shape[0]}, expected "
                f"{self.batch + extra} (its rows and the negative reads); NAG needs the batch axis first"
            )
        pieces, at, neg = [], 0, self.batch
        for span, _ in self.acts:
            start, stop = span.rows.start, span.rows.stop
            pert = span.perturbation
            z_neg = out[neg : neg + stop - start]
            pieces += [out[at:start], normalized_attention(out[start:stop], z_neg, span.scale, pert.tau, pert.alpha)]
            at, neg = stop, neg + stop - start
        pieces.append(out[at:])  # the negative reads' rows follow; the module's output drops them
        return torch.cat(pieces)
