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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import torch
from torch import Tensor


class NonFiniteError(ValueError):
    """A tensor the library made or was given holds NaN or infinity; the message names which."""


def count_nonfinite(value: Tensor) -> int:
    return int((~torch.isfinite(value.detach())).sum())


def nonfinite_message(name: str, value: Tensor, origin: str = "") -> str:
    """``"<name>: expected finite values, got k non-finite entries (of n)[; origin]"``."""
    detail = f"{count_nonfinite(value)} non-finite entries (of {value.numel()})"
    return f"{name}: expected finite values, got {detail}" + (f"; {origin}" if origin else "")


class DeferredChecks:
    """Conditions on tensors, queued without synchronising and verified together.

    Args:
        enabled: ``False`` makes every method a no-op (``check_finite=False``).
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._flags: list[Tensor] = []
        self._failures: list[tuple[type[Exception], Callable[[], str]]] = []

    def require(self, ok: Tensor, message: Callable[[], str], error: type[Exception] = ValueError) -> None:
        """Queue the condition ``ok`` (a boolean tensor, all of which must hold)."""
        if self.enabled:
            self._flags.append(ok.detach().all().reshape(()))
            self._failures.append((error, message))

    def finite(self, name: str, value: Tensor, origin: str = "") -> None:
        """Queue "every entry of ``value`` is finite"; the error names ``name`` (and ``origin``)."""
        if self.enabled and value.is_floating_point():
            self.require(torch.isfinite(value.detach()), lambda: nonfinite_message(name, value, origin), NonFiniteError)

    @contextmanager
    def first(self) -> Iterator[None]:
        """Run a block that uses the values queued so far: if it raises, a failed check queued
        before it is reported instead (a NaN time is the cause of the network's crash, not
        the crash), at no cost when nothing raises."""
        try:
            yield
        except Exception as err:
            try:
                self.verify()
            except Exception as check:
                raise check from err
            raise

    def verify(self) -> None:
        """Read every queued condition back at once; raise the first that failed. Empties the queue."""
        flags, failures = self._flags, self._failures
        self._flags, self._failures = [], []
        if not flags:
            return
        device = flags[0].device
        ok = torch.stack([f.to(device) for f in flags])
        if bool(ok.all()):
            return
        error, message = failures[int((~ok).nonzero()[0, 0])]
        raise error(message())
