"""Logit guidance inside vLLM: each guided prompt is a pair of requests kept in lockstep.

Imported only when asked for (``import unified_guidance.autoregressive.vllm``); vLLM is an optional
dependency (``pip install unified-guidance[vllm]``, see docs/vllm.md).

* :class:`~.scheduler.PairScheduler` — vLLM's scheduler keeping each pair in lockstep;
* :class:`~.processor.PairLogitsProcessor` — mixes a pair's two rows with the library's combination
  and makes both emit one token;
* :func:`~.offline.guided_llm`, :func:`~.offline.generate` — the offline ``LLM`` API.
"""

from .offline import generate, guided_llm
from .processor import PairLogitsProcessor
from .scheduler import PairScheduler

__all__ = [
    "PairLogitsProcessor",
    "PairScheduler",
    "generate",
    "guided_llm",
]
