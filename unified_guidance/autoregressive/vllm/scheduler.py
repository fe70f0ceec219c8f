"""The pair scheduler: vLLM's scheduler with guided pairs kept in lockstep.

A member of a pair *samples* in a step when the step computes its last pending token; the pair's token
can only be mixed when both members sample in the same step, at the same token k. vLLM's scheduler
decides per request (token budget, chunked prefill, KV blocks, preemption), so this subclass wraps
each ``schedule()`` in two passes around it and leaves its algorithm alone:

* **before** — hold back (hide from the running and waiting queues for this step) the member with
  more of its work done: while one member still has r tokens to compute and the other fewer, only the
  one behind runs; a member whose partner has not arrived or has ended is held too (a conditional past
  ``until``, where the scale stays 1, runs alone). Two waiting members are admitted together
  (the conditional is queued first, so FCFS admission takes both or stops before them).
* **after** — where vLLM's choices still split a pair (one member sampling, the other not scheduled,
  preempted or mid-prefill), the lone sampler does not sample: a chunk of two or more tokens is
  trimmed by one (the token is computed next step, with its partner), a single token is withdrawn by
  preempting the request with its in-flight output dropped (vLLM's own same-step preemption, as in
  ``reset_prefix_cache``); it recomputes its KV and rejoins its partner.

So a kept sample always has its partner's row beside it at the same k, through admission, chunked
prefill, preemption (a preempted member is re-prefilled while its partner waits) and finishing (both
stop on the same token; the offline driver aborts a reference whose conditional stopped on a string).
Pairs never read the prefix cache (``skip_reading_prefix_cache``); other requests keep it.
"""

from __future__ import annotations

import time
from typing import Any

from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.request import Request, RequestStatus

from .pairs import COND, REF, pair_tag

_WAITING = (RequestStatus.WAITING, RequestStatus.PREEMPTED)


def _remaining(request: Request) -> int:
    return request.num_tokens - request.num_computed_tokens


class PairScheduler(Scheduler):
    """vLLM's :class:`Scheduler` keeping guided pairs in lockstep (``LLM(scheduler_cls=PairScheduler)``)."""

    running: list[Any]  # vLLM's own attributes (typed here: the main environment has no vLLM)
    waiting: Any

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.scheduler_config.async_scheduling:
            raise ValueError("async_scheduling: expected False for guided pairs (a sample must be withdrawable "
                             "before the next step is scheduled), got True")  # fmt: skip
        if self.vllm_config.speculative_config is not None:
            raise ValueError("speculative_config: expected None for guided pairs, got a speculative decoder")
        self.pairs: dict[str, list[Request | None]] = {}
        self.pair_stats = {"trimmed": 0, "withdrawn": 0, "held": 0}

    def add_request(self, request: Request) -> None:
        super().add_request(request)
        tag = pair_tag(request.sampling_params)
        if tag is not None:
            self.pairs.setdefault(tag.pair, [None, None])[tag.role] = request

    def _free(self, cond: Request) -> bool:
        """A conditional past ``until``: the scale stays 1, it decodes alone."""
        tag = pair_tag(cond.sampling_params)
        assert tag is not None  # only paired requests are kept in self.pairs
        return cond.num_output_tokens >= tag.until

    def _live_pairs(self) -> list[tuple[Request, Request]]:
        """Pairs with both members present and unfinished; forgets pairs whose members all ended."""
        live = []
        for key, (c, u) in list(self.pairs.items()):
            if c is None or u is None:
                continue
            if c.is_finished() and u.is_finished():
                del self.pairs[key]
            elif not c.is_finished() and not u.is_finished():
                live.append((c, u))
        return live

    def _held(self) -> list[Request]:
        held = []
        for c, u in self.pairs.values():
            alone = [m for m in (c, u) if m is not None and not m.is_finished()]
            if len(alone) == 1:
                if not (alone[0] is c and self._free(c)):
                    held.append(alone[0])
                continue
            if (
                len(alone) < 2
                or c is None
                or u is None
                or self._free(c)
                or (c.status in _WAITING and u.status in _WAITING)
            ):
                continue
            rc, ru = _remaining(c), _remaining(u)
            if rc != ru:
                held.append(c if rc < ru else u)
        return held

    def schedule(self, *args: Any, **kwargs: Any):
        held = self._held()
        ids = {m.request_id for m in held}
        order = {r.request_id: i for i, r in enumerate(self.running)}
        hidden_running = [r for r in self.running if r.request_id in ids]
        hidden_waiting = [r for r in held if r.status in _WAITING]
        self.running = [r for r in self.running if r.request_id not in ids]
        self.waiting.remove_requests(hidden_waiting)
        try:
            out = super().schedule(*args, **kwargs)
        finally:
            first_new = len(order)
            rank = {r.request_id: order.get(r.request_id, first_new + i) for i, r in enumerate(self.running)}
            rank.update({r.request_id: order[r.request_id] for r in hidden_running})
            self.running = sorted(self.running + hidden_running, key=lambda r: rank[r.request_id])
            self.waiting.prepend_requests(hidden_waiting)
        self.pair_stats["held"] += len(held)
        self._repair(out)
        if out.total_num_scheduled_tokens == 0 and self.waiting and hidden_running:
            # Every runnable member waits for a partner that cannot be admitted: free the last one's blocks.
            victim = max(hidden_running, key=lambda r: rank.get(r.request_id, 0))
            self.running.remove(victim)
            self._preempt_request(victim, time.monotonic())
        return out

    def _samples(self, out: Any, request: Request) -> bool:
        return request.request_id in out.num_scheduled_tokens and not request.is_prefill_chunk

    def _repair(self, out: Any) -> None:
        """No member samples without its partner: trim its chunk by one token, or withdraw its one token."""
        for c, u in self._live_pairs():
            if self._free(c) or self._samples(out, c) == self._samples(out, u):
                continue
            lone = c if self._samples(out, c) else u
            rid = lone.request_id
            if out.num_scheduled_tokens[rid] >= 2:
                out.num_scheduled_tokens[rid] -= 1
                out.total_num_scheduled_tokens -= 1
                lone.num_computed_tokens -= 1
                lone.num_in_flight_tokens -= 1
                lone.is_prefill_chunk = True
                self._inflight_prefills.add(lone)
                self.pair_stats["trimmed"] += 1
            else:
                self.running.remove(lone)
                self._preempt_request(lone, time.monotonic(), drop_stale_output=True)
                self.prev_step_scheduled_req_ids.discard(rid)
                self.pair_stats["withdrawn"] += 1


__all__ = ["COND", "REF", "PairScheduler"]
