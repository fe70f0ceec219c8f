"""Perturbations as data: which modules of a network, and what is done to them.

A perturbation names its modules by path patterns matched against the end of each
module's dotted path (``"blocks.2.attn"`` finds ``net.blocks.2.attn`` inside an adapter;
``*`` stands for one path segment, ``"blocks.*.attn"`` for every block's attention) or by a
predicate ``(path, module) -> bool``. Three kinds, after the papers:

===================  =========================================  ============================
kind                 what the selected modules do               paper
===================  =========================================  ============================
``IdentityAttention``  attention map → identity (output = values)   PAG, arXiv 2403.17377
``BlurredQueries``     queries blurred by a Gaussian of σ (∞: mean) SEG, arXiv 2408.00760
``SkipBlocks``         block output → its input                    SLG/STG, arXiv 2411.18664
``NormalizedAttention``  cross-attention read against a negative    NAG, arXiv 2505.21179
                       context too, outputs extrapolated (§ NAG)
===================  =========================================  ============================

The attention kinds act on the ``torch.nn.functional.scaled_dot_product_attention`` calls
made inside their modules (the library's :class:`~unified_guidance.networks.TinyDiT`, diffusers'
attention processors, transformers' ``"sdpa"`` attention).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase

from torch import nn

Selector = str | Sequence[str] | Callable[[str, nn.Module], bool]


@dataclass(frozen=True)
class Perturbation:
    """Base: the modules a perturbation acts on (see the module docstring for patterns)."""

    modules: Selector = field(default=())

    def __post_init__(self) -> None:
        mods = self.modules
        if isinstance(mods, str):
            object.__setattr__(self, "modules", (mods,))
        elif not callable(mods):
            mods = tuple(mods)
            if not mods or not all(isinstance(m, str) and m for m in mods):
                raise ValueError(f"modules: expected module path patterns (non-empty strings), got {mods!r}")
            object.__setattr__(self, "modules", mods)

    @property
    def kind(self) -> str:
        return type(self).__name__

    def select(self, root: nn.Module) -> list[tuple[str, nn.Module]]:
        """The ``(path, module)`` pairs of ``root`` this perturbation acts on; never empty.

        A container that is never called (``ModuleList``, ``ModuleDict``: no ``forward``) is refused
        with the modules inside it; a selected module that the forward does not call is refused when
        the forward ends (:func:`~.hooks.perturbed`).
        """
        chosen = [(name, mod) for name, mod in root.named_modules() if name and self._matches(name, mod)]
        if not chosen:
            raise ValueError(
                f"modules: {self.kind} selects no module of {type(root).__name__} with {self._describe()}; "
                f"candidates: {', '.join(candidates(root, self)) or 'none'}"
            )
        containers = [(name, mod) for name, mod in chosen if not is_called(mod)]
        if containers:
            inside = [n for name, mod in containers for n, m in mod.named_children() if is_called(m)]
            raise ValueError(
                f"modules: {self.kind} selects {', '.join(f'{n!r} ({type(m).__name__})' for n, m in containers)}, "
                "a container that is never called (it has no forward), so nothing would change; select the "
                f"modules inside it; candidates: {', '.join(_shorten([f'{containers[0][0]}.{n}' for n in inside]))}"
            )
        return chosen

    def _matches(self, name: str, module: nn.Module) -> bool:
        if callable(self.modules):
            return bool(self.modules(name, module))
        return any(path_ends_with(name, pattern) for pattern in self.modules)

    def _describe(self) -> str:
        if callable(self.modules):
            return f"the predicate {getattr(self.modules, '__name__', self.modules)!r}"
        return "patterns " + ", ".join(repr(p) for p in self.modules)


@dataclass(frozen=True)
class IdentityAttention(Perturbation):
    """PAG: the self-attention maps of ``modules`` become the identity (Ahn et al., arXiv 2403.17377).

    Select self-attention modules (``attn1`` of diffusers' UNet blocks, ``attn`` of a DiT
    block, ``self_attn`` of a transformers decoder layer); cross-attention is refused.
    """


@dataclass(frozen=True)
class BlurredQueries(Perturbation):
    """SEG: the queries of ``modules`` blurred by a Gaussian of ``sigma`` tokens over the token
    grid (Hong, arXiv 2408.00760); ``sigma=inf`` gives every token the mean query.

    Args:
        sigma: σ in grid cells, > 0 (``math.inf`` allowed).
        grid: the token grid ``(h, w)``; by default the module's ``grid`` attribute, else the
            square ``√L × √L`` where the token count L is a square.
    """

    sigma: float = math.inf
    grid: tuple[int, int] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.sigma, bool) or not isinstance(self.sigma, (int, float)) or not self.sigma > 0:
            raise ValueError(f"sigma: expected σ > 0 (or math.inf), got {self.sigma!r}")
        if self.grid is not None:
            grid = tuple(self.grid)
            if len(grid) != 2 or not all(isinstance(n, int) and n > 0 for n in grid):
                raise ValueError(f"grid: expected two positive integers (h, w), got {self.grid!r}")
            object.__setattr__(self, "grid", grid)


@dataclass(frozen=True)
class SkipBlocks(Perturbation):
    """SLG/STG: each of ``modules`` returns its input (arXiv 2411.18664; SD3.5 uses blocks 7–9).

    A block returning one tensor returns its ``hidden_states`` input (the first positional
    argument); a diffusers block returning ``(encoder_hidden_states, hidden_states)``-type
    tuples returns each input in its place.
    """


@dataclass(frozen=True)
class NormalizedAttention(Perturbation):
    """NAG: each selected cross-attention also reads the negative context; its output becomes
    :func:`~.ops.normalized_attention` of the two reads (Chen et al., arXiv 2505.21179).

    Unlike the other kinds it acts *inside the conditional forward* (no reference rows are run),
    at the scale w of its :class:`~unified_guidance.guidance.Reference` (w = 1: nothing changes).
    Select modules called as ``module(hidden_states, encoder_hidden_states, ...)`` that make one
    ``scaled_dot_product_attention`` call per read: ``attn2`` of diffusers' UNet blocks, Wan's
    ``attn2``, ``blocks.i.cross`` of a :class:`~unified_guidance.networks.TinyDiT` with
    ``cond_mode="cross"``.

    Args:
        tau: τ ≥ 1, the bound on the per-token L1-norm ratio ‖Z̃‖₁/‖Z⁺‖₁ (``math.inf``: no bound).
        alpha: α ∈ [0, 1], the weight of the normalized output against Z⁺ (0: nothing changes).
        context: the path pattern of the module that maps the condition the network is given to
            the context its cross-attentions read (TinyDiT: ``"context"``; Wan:
            ``"condition_embedder.text_embedder"``); ``None``: the condition is the context itself
            (``UNet2DConditionModel``'s ``encoder_hidden_states``). A dict condition gives its
            ``"encoder_hidden_states"``.
    """

    tau: float = 2.5
    alpha: float = 0.25
    context: str | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.tau, bool) or not isinstance(self.tau, (int, float)) or not self.tau >= 1:
            raise ValueError(f"tau: expected τ ≥ 1 (or math.inf), got {self.tau!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha: expected α in [0, 1], got {self.alpha!r}")
        if self.context is not None and (not isinstance(self.context, str) or not self.context):
            raise ValueError(f"context: expected a module path pattern or None, got {self.context!r}")

    def select(self, root: nn.Module) -> list[tuple[str, nn.Module]]:
        """As :meth:`Perturbation.select`; attention that also reads added keys and values (SD3/Flux
        joint attention, Wan's image context) is refused: its context is not the condition's."""
        chosen = super().select(root)
        for path, module in chosen:
            if getattr(module, "add_k_proj", None) is not None:
                raise ValueError(
                    f"modules: {path!r} also reads added keys and values (joint text–image attention, or an "
                    "image context); NAG covers plain cross-attention (docs/nag.md)"
                )
        return chosen


def pag(*modules: str) -> IdentityAttention:
    """Perturbed-attention guidance's perturbation on the self-attention ``modules``."""
    return IdentityAttention(modules)


def seg(*modules: str, sigma: float = math.inf, grid: tuple[int, int] | None = None) -> BlurredQueries:
    """Smoothed-energy guidance's perturbation on the self-attention ``modules``."""
    return BlurredQueries(modules, sigma=sigma, grid=grid)


def slg(*modules: str) -> SkipBlocks:
    """Skip-layer guidance's perturbation: the blocks ``modules`` are skipped."""
    return SkipBlocks(modules)


def nag(*modules: str, tau: float = 2.5, alpha: float = 0.25, context: str | None = None) -> NormalizedAttention:
    """Normalized attention guidance on the cross-attention ``modules`` (defaults: the authors' τ, α)."""
    return NormalizedAttention(modules, tau=tau, alpha=alpha, context=context)


def path_ends_with(path: str, pattern: str) -> bool:
    """Whether the dotted ``path`` ends with ``pattern``, segment by segment (``*``: one segment)."""
    names, wanted = path.split("."), pattern.split(".")
    if len(wanted) > len(names):
        return False
    return all(fnmatchcase(n, w) for n, w in zip(names[-len(wanted) :], wanted, strict=True))


def is_called(module: nn.Module) -> bool:
    """Whether ``module`` can be called: it has a ``forward`` (``ModuleList``/``ModuleDict`` do not)."""
    return type(module).forward is not nn.Module.forward


def candidates(root: nn.Module, perturbation: Perturbation) -> list[str]:
    """A few module paths of ``root`` worth selecting for ``perturbation``: callable attention modules
    for the attention kinds, callable blocks (entries of a ``ModuleList`` or ``Sequential``) for
    :class:`SkipBlocks`."""
    blocks = isinstance(perturbation, SkipBlocks)
    found = []
    for name, module in root.named_modules():
        last = name.rsplit(".", 1)[-1]
        attention = (
            "attn" in last.lower() or "attention" in last.lower() or "attention" in type(module).__name__.lower()
        )
        if name and is_called(module) and (last.isdigit() if blocks else attention):
            found.append(name)
    return _shorten(found)


def _shorten(names: list[str], limit: int = 8) -> list[str]:
    return names[:limit] + (["…"] if len(names) > limit else [])
