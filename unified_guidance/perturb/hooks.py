"""Installing perturbations for one forward, on some rows of its batch only.

:func:`perturbed` installs hooks on the selected modules for the duration of a ``with``
block and always removes them (exceptions included). Each perturbation acts on a
:class:`Rows` span of the forward's batch, so the conditional, ∅ and perturbed branches of a
guided prediction run as one stacked forward (one KV cache for a language model):

* attention kinds enter a ``TorchFunctionMode`` while a selected module runs and change the
  ``scaled_dot_product_attention`` calls made there, on the span's rows; the other rows run
  the call unchanged;
* :class:`~.spec.SkipBlocks` replaces the span's rows of a block's output by its input.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.overrides import TorchFunctionMode

from ..compat import diffusers as dcompat
from ..compat import transformers as hf
from .ops import blur_queries, identity_attention, square_grid
from .provenance import Provenance, bound_inputs, record_verdict, verdict
from .spec import BlurredQueries, IdentityAttention, NormalizedAttention, Perturbation, SkipBlocks, candidates

_SDPA_ARGS = ("query", "key", "value", "attn_mask")
Selections = dict[Perturbation, list[tuple[str, nn.Module]]]


@dataclass(frozen=True)
class Rows:
    """Rows ``[start, stop)`` of a forward over ``batch`` rows."""

    start: int
    stop: int
    batch: int

    def __post_init__(self) -> None:
        if not 0 <= self.start < self.stop <= self.batch:
            raise ValueError(f"rows: expected 0 ≤ start < stop ≤ batch, got {self.start}, {self.stop}, {self.batch}")

    @classmethod
    def all(cls, batch: int) -> Rows:
        return cls(0, batch, batch)

    def take(self, t: Tensor) -> Tensor:
        return t[self.start : self.stop]


@contextlib.contextmanager
def perturbed(
    root: nn.Module, entries: Sequence[tuple[Perturbation, Rows]], cache: Selections | None = None
) -> Iterator[None]:
    """Apply each ``(perturbation, rows)`` to the modules of ``root`` it selects, for the block's forwards.

    Spans must not overlap. Several perturbations may select the same module (each acts on its rows).
    ``cache``: a dict kept by the caller across forwards of the same ``root`` (a guided model, a
    decoder), so the module tree is searched once per perturbation rather than on every forward.
    """
    spans = sorted((r.start, r.stop) for _, r in entries)
    if any(a[1] > b[0] for a, b in itertools.pairwise(spans)):
        raise ValueError(f"rows: the perturbed spans overlap: {spans}")
    attention: dict[str, tuple[nn.Module, list[tuple[Perturbation, Rows]]]] = {}
    skips: dict[str, tuple[nn.Module, list[Rows]]] = {}
    for pert, rows in entries:
        for path, module in selection(pert, root, cache):
            if isinstance(pert, SkipBlocks):
                skips.setdefault(path, (module, []))[1].append(rows)
            elif isinstance(pert, (IdentityAttention, BlurredQueries)):
                attention.setdefault(path, (module, []))[1].append((pert, rows))
            elif isinstance(pert, NormalizedAttention):
                raise ValueError(
                    "perturbation: NAG acts inside the conditional forward of a guided diffusion or flow model "
                    "(guide(), normalized()), not on reference rows; causal LMs are not covered (docs/nag.md)"
                )
            else:
                raise TypeError(f"perturbation: expected a known kind, got {type(pert).__name__}")
    handles: list[Any] = []
    modes: list[_AttentionMode] = []
    ran: set[str] = set()
    with removed_after(handles, modes):
        for path, (module, acts) in attention.items():
            mode = _AttentionMode(path, module, acts, modes)
            handles.append(module.register_forward_pre_hook(mode.enter, with_kwargs=True))
            handles.append(module.register_forward_hook(mode.leave, always_call=True))
        for path, (module, spans_) in skips.items():
            handles.append(module.register_forward_hook(_SkipHook(path, spans_), with_kwargs=True))
        for path, (module, _) in {**attention, **skips}.items():
            handles.append(module.register_forward_pre_hook(lambda *_, path=path: ran.add(path)))
        yield
        _check_ran(root, entries, {**attention, **skips}, ran)


def selection(pert: Perturbation, root: nn.Module, cache: Selections | None) -> list[tuple[str, nn.Module]]:
    """The modules of ``root`` that ``pert`` selects, looked up in (and kept in) ``cache``."""
    chosen = cache.get(pert) if cache is not None else None
    if chosen is None:
        chosen = pert.select(root)
        if cache is not None:
            cache[pert] = chosen
    return chosen


@contextlib.contextmanager
def removed_after(handles: list[Any], modes: list[Any]) -> Iterator[None]:
    """Run the block; then, whatever happened, remove every hook in ``handles`` and leave every
    ``TorchFunctionMode`` still in ``modes`` (entered by a forward that died between its hooks)."""
    try:
        yield
    finally:
        for handle in handles:
            handle.remove()
        while modes:
            modes.pop().__exit__(None, None, None)


def _check_ran(root: nn.Module, entries: Sequence[tuple[Perturbation, Rows]], selected: dict, ran: set[str]) -> None:
    """A selected module that did not run in the forward was perturbed by nothing: refuse it."""
    idle = [path for path in selected if path not in ran]
    if idle:
        pert = entries[0][0]
        raise ValueError(
            f"modules: {pert.kind} selects {', '.join(repr(p) for p in idle)}, which did not run in the "
            f"forward of {type(root).__name__}, so the perturbation changed nothing there; select modules the "
            f"network calls; candidates: {', '.join(c for c in candidates(root, pert) if c not in idle) or 'none'}"
        )


class _AttentionMode(TorchFunctionMode):
    """Changes ``scaled_dot_product_attention`` on some rows while its module runs."""

    def __init__(self, path: str, module: nn.Module, acts: list[tuple[Perturbation, Rows]], stack: list) -> None:
        super().__init__()
        self.path, self.acts, self.stack = path, sorted(acts, key=lambda a: a[1].start), stack
        self.module, self.grid = module, getattr(module, "grid", None)
        self.calls = 0
        self.provenance: Provenance | None = None

    def enter(self, module: nn.Module, args: Any, kwargs: Any) -> None:
        self.calls = 0
        judged, _ = verdict(module)
        self.provenance = None if judged else Provenance(bound_inputs(module, args, kwargs))
        self.__enter__()
        self.stack.append(self)

    def leave(self, module: nn.Module, args: Any, output: Any) -> None:
        self.provenance = None
        if self.stack and self.stack[-1] is self:
            self.stack.pop()
            self.__exit__(None, None, None)
        if output is not None and self.calls == 0:
            raise ValueError(
                f"modules: {self.path!r} ran without calling torch.nn.functional.scaled_dot_product_attention, "
                f"so {self.acts[0][0].kind} cannot act on it (a transformers model: load it with "
                "attn_implementation='sdpa'; torch.nn.MultiheadAttention computes attention inside one fused "
                "function: write the module with scaled_dot_product_attention)"
            )

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = dict(kwargs or {})
        if func is not F.scaled_dot_product_attention:
            return self._follow(func, args, kwargs)
        self.calls += 1
        named = dict(zip(_SDPA_ARGS, args, strict=False))
        named.update(kwargs)
        self._check_self_attention(named)
        batch = named["query"].shape[0]
        pieces, at = [], 0
        for pert, rows in self.acts:
            if rows.batch != batch and rows != Rows.all(rows.batch):
                raise ValueError(
                    f"rows: the attention in {self.path!r} sees a batch of {batch}, the forward has {rows.batch} "
                    f"rows, so {pert.kind} cannot tell its rows apart; run the branches one after another "
                    "(Guidance(batch_branches=False))"
                )
            span = Rows(0, batch, batch) if rows.batch != batch else rows
            if span.start > at:
                pieces.append(func(**_rows(named, at, span.start, batch)))
            pieces.append(self._perturbed(func, pert, _rows(named, span.start, span.stop, batch)))
            at = span.stop
        if at < batch:
            pieces.append(func(**_rows(named, at, batch, batch)))
        return pieces[0] if len(pieces) == 1 else torch.cat(pieces)

    def _follow(self, func, args: tuple, kwargs: dict) -> Any:
        """``func(*args, **kwargs)``, labelled by provenance while the module is being judged."""
        if self.provenance is None:
            return func(*args, **kwargs)
        out = func(*args, **kwargs)
        if func is Tensor.__iter__:  # unpacking q, k, v = t: keep the pieces to label them
            out = list(out)
            self.provenance.follow(func, args, kwargs, out)
            return iter(out)
        self.provenance.follow(func, args, kwargs, out)
        return out

    def _check_self_attention(self, named: dict[str, Any]) -> None:
        if self.provenance is not None:
            record_verdict(self.module, self.provenance.judge(named["query"], named["key"], named["value"]))
            self.provenance = None
        reason = verdict(self.module)[1]
        if reason is not None:
            raise ValueError(
                f"modules: {self.path!r} is cross-attention; {self.acts[0][0].kind} acts on self-attention ({reason})"
            )

    def _perturbed(self, func, pert: Perturbation, named: dict[str, Any]) -> Tensor:
        packed = hf.packed_query_heads(self.module, named["query"])
        if isinstance(pert, IdentityAttention):
            return identity_attention(named["query"], named["value"], packed)
        assert isinstance(pert, BlurredQueries)
        if packed > 1:
            raise ValueError(f"modules: {self.path!r} is a language model's attention; {pert.kind} needs a token grid")
        tokens = named["query"].shape[-2]
        grid = pert.grid or self.grid or square_grid(tokens)
        if grid is None:
            raise ValueError(
                f"grid: {tokens} tokens in {self.path!r} are not a square grid and the module has no 'grid'; "
                "pass BlurredQueries(grid=(h, w))"
            )
        return func(**{**named, "query": blur_queries(named["query"], tuple(grid), pert.sigma)})


def _rows(named: dict[str, Any], start: int, stop: int, batch: int) -> dict[str, Any]:
    """The SDPA arguments of rows ``[start, stop)``; a mask broadcast over the batch is kept whole."""
    if start == 0 and stop == batch:
        return named
    out = dict(named)
    for key in ("query", "key", "value"):
        out[key] = named[key][start:stop]
    mask = named.get("attn_mask")
    if isinstance(mask, Tensor) and mask.ndim >= 3 and mask.shape[0] == batch and batch > 1:
        out["attn_mask"] = mask[start:stop]
    return out


class _SkipHook:
    """Forward hook: the spans' rows of the output are the block's inputs."""

    def __init__(self, path: str, spans: list[Rows]) -> None:
        self.path, self.spans = path, spans

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> Any:
        inputs = bound_inputs(module, args, kwargs)
        if isinstance(output, Tensor):
            return self._replace(output, _hidden(inputs, args, self.path))
        if isinstance(output, tuple):
            names = dcompat.block_output_names(module) or hf.layer_output_names(module, output)
            if names is None or len(names) != len(output):
                raise ValueError(
                    f"modules: {self.path!r} ({type(module).__name__}) returns a tuple of {len(output)} and which "
                    "input each element stands for is not known; select blocks that return their hidden states"
                )
            pairs = zip(output, names, strict=True)
            # an element the block does not produce (None: SD3's last block drops its text stream) stays None
            return tuple(
                out if name is None or out is None else self._replace(out, inputs[name]) for out, name in pairs
            )
        raise ValueError(f"modules: {self.path!r} returns {type(output).__name__}; SkipBlocks needs tensor outputs")

    def _replace(self, output: Tensor, given: Tensor) -> Tensor:
        if given.shape != output.shape:
            raise ValueError(
                f"modules: {self.path!r} maps an input of shape {tuple(given.shape)} to {tuple(output.shape)}, "
                "so skipping it (output = input) is not defined"
            )
        out = output
        for span in self.spans:
            if span.batch != output.shape[0]:
                raise ValueError(
                    f"rows: {self.path!r} sees a batch of {output.shape[0]}, the forward has {span.batch} rows"
                )
            if span == Rows.all(span.batch):
                out = given
            else:
                out = torch.cat([out[: span.start], given[span.start : span.stop], out[span.stop :]])
        return out


def _hidden(inputs: dict[str, Any], args: tuple, path: str) -> Tensor:
    given = inputs.get("hidden_states", args[0] if args else None)
    if not isinstance(given, Tensor):
        raise ValueError(f"modules: {path!r} got no hidden-states tensor as its first argument to skip to")
    return given
