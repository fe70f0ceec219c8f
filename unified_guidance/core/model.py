"""The one interface: a model that can be run with and without its condition.

Every paradigm's model is called ``model(x, t, cond)`` and returns a prediction
in its declared :attr:`~ConditionalModel.space`; ``cond=None`` means the null
condition ∅. The guided wrapper keeps that signature, so samplers never know
guidance is there.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .conditions import Cond, NullSpec, batch_size_of, expand_null
from .path import Path, PathCoefficients
from .shapes import as_time, check_strength
from .spaces import check_space


@dataclass(frozen=True)
class ForwardStats:
    """How often a model ran: ``calls`` forwards over ``rows`` samples in all."""

    calls: int = 0
    rows: int = 0

    def __sub__(self, other: ForwardStats) -> ForwardStats:
        return ForwardStats(self.calls - other.calls, self.rows - other.rows)


class ConditionalModel(nn.Module):
    """A network ``(x, t, cond) -> prediction`` with a null condition ∅.

    Subclasses implement :meth:`predict`, which never sees ``cond=None``. Each
    forward is counted (:attr:`stats`), so tests and benchmarks can see the
    forwards that guidance saves.

    A *guidance-free* model (:attr:`guidance_input` true: GFT, guidance distillation) also
    takes the guidance strength β = 1/s: ``model(x, t, cond, beta=β)`` is the guided prediction
    at scale s in one forward, and β = 1 (the default) the conditional model. Its subclass
    implements ``predict(x, t, cond, beta=None)``.

    Args:
        space: the prediction space of the output (see :mod:`~unified_guidance.core.spaces`).
        path: the path whose time ``t`` the model takes; needed to convert between
            continuous spaces and to map ``t`` to progress τ. ``None`` for token models.
        null_cond: ∅ for one sample: a label index, a tensor, or ``batch_size -> cond``.
            ``None`` if the model has no null condition (then only a negative
            condition or a reference model can serve as the reference branch).
    """

    _calls: Tensor  # buffers, registered in __init__
    _rows: Tensor

    def __init__(self, *, space: str, path: Path | None = None, null_cond: NullSpec | None = None) -> None:
        super().__init__()
        self.space = check_space("space", space)
        self.path = path
        self.null_spec = null_cond
        # 0-d tensors, not ints: torch.compile would specialise on an int attribute and recompile every call
        self.register_buffer("_calls", torch.zeros((), dtype=torch.long), persistent=False)
        self.register_buffer("_rows", torch.zeros((), dtype=torch.long), persistent=False)

    @abstractmethod
    def predict(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        """The network's prediction for ``x`` ``(B, ...)`` at time ``t`` (scalar or ``(B,)``)."""

    def forward(
        self, x: Tensor, t: Tensor | float, cond: Cond | None = None, *, beta: Tensor | float | None = None
    ) -> Tensor:
        t = as_time(t, x)
        if cond is None:
            cond = self.null_condition(x.shape[0], device=x.device)
        elif batch_size_of(cond) != x.shape[0]:
            raise ValueError(f"cond: expected batch size {x.shape[0]} (that of x), got {batch_size_of(cond)}")
        if beta is not None and not self.guidance_input:
            raise ValueError(
                f"beta: {type(self).__name__} takes no guidance strength (its network was built without "
                "guidance_input); guide it with a reference branch instead"
            )
        strength = None if beta is None else self.check_beta(beta, x)
        self._calls += 1
        self._rows += x.shape[0]
        if strength is None:
            return self.predict(x, t, cond)
        return self.predict(x, t, cond, beta=strength)  # type: ignore[call-arg]

    def check_beta(self, beta: Tensor | float, x: Tensor) -> Tensor:
        """β of a call, validated: ``(B,)`` in (0, 1] (:func:`~.shapes.check_strength`). A model that
        takes more (a token model's β per decode step) overrides this."""
        return check_strength(beta, x)

    @property
    def guidance_input(self) -> bool:
        """Whether the model takes the guidance strength β = 1/s (a guidance-free model)."""
        return False

    def null_condition(self, batch_size: int, *, device: torch.device | None = None) -> Cond:
        """∅ expanded to ``batch_size`` rows."""
        if self.null_spec is None:
            raise ValueError(
                f"null_cond: {type(self).__name__} was built without a null condition; pass null_cond=... "
                "or guide against a negative condition or a reference model"
            )
        return expand_null(self.null_spec, batch_size, device=device)

    @property
    def has_null(self) -> bool:
        return self.null_spec is not None

    def coefficients(self, t: Tensor) -> PathCoefficients:
        return self._require_path().coefficients(t)

    def progress(self, t: Tensor) -> Tensor:
        """Progress τ ∈ [0, 1] of time ``t`` (0 = start of generation, 1 = end)."""
        return self._require_path().progress(t)

    @property
    def stats(self) -> ForwardStats:
        """Forwards since construction or the last :meth:`reset_stats`: ``calls`` and ``rows`` in all.

        The counters only grow while the model runs; to measure one run, subtract two readings
        (``after - before``, as the samplers' :class:`~unified_guidance.guidance.SampleStats` do) or
        reset them first.
        """
        return ForwardStats(int(self._calls), int(self._rows))

    def reset_stats(self) -> None:
        """Set the forward counters (:attr:`stats`) back to zero; the weights and state are untouched."""
        self._calls.zero_()
        self._rows.zero_()

    def _require_path(self) -> Path:
        if self.path is None:
            raise ValueError(f"path: {type(self).__name__} has no path, so its time has no progress or coefficients")
        return self.path


class FunctionModel(ConditionalModel):
    """Wrap any callable ``fn(x, t, cond)`` (an ``nn.Module`` too) as a :class:`ConditionalModel`."""

    def __init__(self, fn, *, space: str, path: Path | None = None, null_cond: NullSpec | None = None) -> None:
        super().__init__(space=space, path=path, null_cond=null_cond)
        self.fn = fn

    def predict(self, x: Tensor, t: Tensor, cond: Cond) -> Tensor:
        return self.fn(x, t, cond)
