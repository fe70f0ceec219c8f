"""What a decode loop needs besides the prompts: the mixing, the plan, the processors and stopping.

Shared by the greedy/sampling loop (:func:`~.sample.decode`) and beam search (:func:`~.beam.beam_search`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..guidance.plan import Plan
from .mixing import Mixing
from .progress import FoldPlan


@dataclass(frozen=True)
class DecodeSpec:
    """Everything a decode loop needs besides the prompts."""

    mixing: Mixing
    plan: Plan  # every reference's scale at each new token (progress τ_k = k/(N − 1)): decode_plan
    processors: Any  # transformers.LogitsProcessorList
    stopping: Any  # transformers.StoppingCriteriaList
    eos: Tensor
    pad_token_id: int
    do_sample: bool = False
    generator: torch.Generator | None = None
    streamer: Any = None
    drop_finished: bool = True  # ended rows leave the batch; False: the plain loop that keeps them
    fold: FoldPlan | None = None  # a guidance-free model's folds and β per token (None: not guidance-free)
