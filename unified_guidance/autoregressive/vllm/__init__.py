"""Logit guidance inside vLLM: each guided prompt is a pair of requests kept in lockstep.

Imported only when asked for (``import unified_guidance.autoregressive.vllm``); vLLM is an optional
dependency (``pip install unified-guidance[vllm]``, see docs/vllm.md).

* :class:`~.scheduler.PairScheduler` — vLLM's scheduler keeping each pair in lockstep;
* :class:`~.processor.PairLogitsProcessor` — mixes a pair's two rows with the library's combination
  and makes both emit one token;
* :func:`~.offline.guided_llm`, :func:`~.offline.generate` — the offline ``LLM`` API.
"""

from .offline import generate, generate_pairs, guided_llm
from .pairs import KEY, PairTag, pair_params, pair_tag
from .processor import PairLogitsProcessor, combine
from .scheduler import PairScheduler

__all__ = [
    "KEY",
    "PairLogitsProcessor",
    "PairScheduler",
    "PairTag",
    "combine",
    "generate",
    "generate_pairs",
    "guided_llm",
    "pair_params",
    "pair_tag",
]
