"""Run-time value checks, gathered over one step and verified with one device synchronisation.

A guided evaluation makes several tensors whose values must be checked (the
state ``x``, the time, the branches, the rule's output, each post-process's
output). Checking each with ``bool(tensor.all())`` would stall an accelerator once
per check; :class:`DeferredChecks` queues the conditions as device tensors and
reads them back once (:meth:`DeferredChecks.verify`). Only when one fails are the
details computed, and the first failing condition in the order they were queued is
reported, so a NaN is blamed on where it first appeared, not on what it reached later.

``Guidance(check_finite=False)`` turns the whole queue off (nothing is computed or
synchronised): this module is the one place value checks live.

Under ``torch.compile`` (while Dynamo traces) the checks that read values back are
skipped (:func:`reads_back` is ``False``): a read-back there splits the graph and stalls
the device on every step. Eager calls keep every check and message.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor


def reads_back() -> bool:
    """Whether value checks that read a tensor back to the host run here: always in eager
    mode, never inside a graph ``torch.compile`` is tracing (see the module docstring)."""
    return not torch.compiler.is_compiling()


class NonFiniteError(ValueError):
    """A tensor the library made or was given holds NaN or infinity; the message names which."""


def count_nonfinite(value: Tensor) -> int:
    return int((~torch.isfinite(value.detach())).sum())


Origin = str | Callable[[], str]
"""Where a value came from: a string, or a function making it (only called when a check fails,
so a description such as ``repr(rule)`` costs nothing on the happy path and stays out of a
``torch.compile`` graph, where formatting an arbitrary object would end the trace)."""


def nonfinite_message(name: str, value: Tensor, origin: Origin = "") -> str:
    """``"<name>: expected finite values, got k non-finite entries (of n)[; origin]"``."""
    origin = origin() if callable(origin) else origin
    detail = f"{count_nonfinite(value)} non-finite entries (of {value.numel()})"
    return f"{name}: expected finite values, got {detail}" + (f"; {origin}" if origin else "")


class DeferredChecks:
    """Conditions on tensors, queued without synchronising and verified together.

    Two kinds of entry, verified in the order they were queued:

    * a *check* (:meth:`require`, :meth:`finite`) is reduced on the device at once and read
      back with the others in :meth:`verify`;
    * a *trace* (:meth:`trace`) is only kept: an intermediate (a branch, the rule's output)
      whose non-finite values would reach a later check. It is inspected only when a check
      fails, to name where the values first appeared; on the happy path it costs nothing.

    Args:
        enabled: ``False`` makes every method a no-op (``check_finite=False``); so does
            building the queue inside a graph that ``torch.compile`` traces.
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled and reads_back()
        self._entries: list[tuple[Tensor | None, Tensor | None, type[Exception], Callable[[], str]]] = []

    def require(self, ok: Tensor, message: Callable[[], str], error: type[Exception] = ValueError) -> None:
        """Queue the condition ``ok`` (a boolean tensor, all of which must hold)."""
        if self.enabled:
            self._entries.append((ok.detach().all().reshape(()), None, error, message))

    def finite(self, name: str, value: Tensor, origin: Origin = "") -> None:
        """Queue "every entry of ``value`` is finite"; the error names ``name`` (and ``origin``)."""
        if self.enabled and value.is_floating_point():
            self.require(torch.isfinite(value.detach()), lambda: nonfinite_message(name, value, origin), NonFiniteError)

    def trace(self, name: str, value: Tensor, origin: Origin = "") -> None:
        """Keep ``value`` to blame if a later check fails (see the class docstring)."""
        if self.enabled and value.is_floating_point():
            self._entries.append((None, value.detach(), NonFiniteError, lambda: nonfinite_message(name, value, origin)))

    @contextmanager
    def first(self) -> Iterator[None]:
        """Run a block that uses the values queued so far: if it raises, a failed check or a
        non-finite trace queued before it is reported instead (a NaN time or state is the cause
        of the network's crash, not the crash), at no cost when nothing raises."""
        try:
            yield
        except Exception as err:
            try:
                self.verify(traces=True)
            except Exception as check:
                raise check from err
            raise

    def verify(self, *, traces: bool = False) -> None:
        """Read every queued check back at once; if one failed, raise for the first entry (check
        or trace) that fails in queue order. ``traces=True`` inspects the traces even when every
        check holds. Empties the queue."""
        entries, self._entries = self._entries, []
        flags = [flag for flag, _, _, _ in entries if flag is not None]
        if not flags and not (traces and entries):
            return
        if flags:
            device = flags[0].device
            if bool(torch.stack([f.to(device) for f in flags]).all()) and not traces:
                return
        for flag, value, error, message in entries:
            ok = bool(flag) if flag is not None else bool(torch.isfinite(value).all())  # type: ignore[arg-type]
            if not ok:
                raise error(message())
