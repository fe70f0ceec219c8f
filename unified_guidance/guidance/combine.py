"""The combination step: the guided prediction from c and every reference's prediction.

    ĝ = c + Σ_j (g_j − c),   g_j = rule_j(c, r_j, w_j)   in rule j's native space

A reference that did not run contributes g_j = c (its scale is 1) or g_j = 0 (its rule
outputs zero); with one reference running and none zeroed, ĝ is that rule's output exactly,
post-processed from its own space. The post-processes then run in order. This one function
serves the guided model (:class:`~.engine.GuidedModel`, any prediction space) and
autoregressive decoding (token scores); the caller supplies the conversion between spaces
and the check of each intermediate.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import Tensor

from .post import PostProcess
from .spec import Reference

Convert = Callable[[Tensor, str, str], Tensor]
"""``(pred, src, dst) -> pred`` in space ``dst`` (the identity where ``src == dst``)."""
Trace = Callable[[str, Tensor, Any], None]
"""``(name, value, made_by)``: queue a check of an intermediate (see :mod:`~unified_guidance.core.checks`)."""


@dataclass(frozen=True)
class Combined:
    """The guided prediction (in the caller's space) and each reference's new rule state."""

    guided: Tensor
    states: tuple[Any, ...]


def combine(
    references: Sequence[Reference],
    post: Sequence[PostProcess],
    cond: Tensor,
    preds: Sequence[Tensor | None],
    scales: Sequence[Tensor],
    tau: Tensor,
    states: Sequence[Any],
    *,
    zero: Sequence[bool],
    space: str,
    convert: Convert,
    trace: Trace,
) -> Combined:
    """ĝ from ``cond`` and ``preds[j]`` (``None``: reference j did not run), all in ``space``.

    Args:
        references: the guidance's references (their rules).
        post: post-processes, applied in order to ĝ with the conditional prediction.
        cond: c ``(B, ...)``, in ``space``.
        preds: each reference's prediction in ``space``, ``None`` where it was not run.
        scales: each reference's scale w_j(τ), a scalar or ``(B,)``.
        tau: progress τ of the call (the rules' own schedules read it).
        states: each reference's rule state (APG momentum), ``None`` for none.
        zero: ``zero[j]``: reference j's rule outputs zero at this call (g_j = 0, not run).
        space: the space of ``cond``, ``preds`` and the result.
        convert: conversion between spaces at this call.
        trace: queues a check of each intermediate, named.
    """
    new_states = list(states)
    running = [j for j, p in enumerate(preds) if p is not None]
    zeroed = sum(1 for j, z in enumerate(zero) if z and preds[j] is None)
    total: Tensor | None = None
    c_space, out_space = cond, space
    for j in running:
        rule = references[j].rule
        native = rule.space or space
        c_native, r_native = convert(cond, space, native), convert(preds[j], space, native)  # type: ignore[arg-type]
        if native != space:
            trace(f"conditional prediction in {native}", c_native, f"converted from {space!r}")
            trace(f"{_name(j, len(preds))} in {native}", r_native, f"converted from {space!r}")
        guided, new_states[j] = rule(c_native, r_native, scales[j], tau=tau, state=states[j])
        trace("guided prediction", guided, lambda rule=rule: f"made by {rule!r} from finite branches")
        if len(running) == 1 and not zeroed:  # exactly the rule's output, post-processed from its own space
            total, c_space, out_space = guided, c_native, native
        else:
            guided = convert(guided, native, space)
            total = guided if total is None else total + (guided - cond)
    if total is None:
        total = cond
    if zeroed:  # g_j = 0 for each zeroed reference: ĝ = c + Σ_running (g_j − c) − zeroed·c
        total = total - zeroed * cond
    for p in post:
        target = p.space or out_space
        total, c_space = convert(total, out_space, target), convert(c_space, out_space, target)
        total, out_space = p(total, c_space), target
        trace("post", total, lambda p=p: f"made by {p!r}")
    return Combined(convert(total, out_space, space), tuple(new_states))


def _name(j: int, count: int) -> str:
    return "reference prediction" if count == 1 else f"reference {j} prediction"
