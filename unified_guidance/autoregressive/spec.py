"""What a decode loop needs besides the prompts: the mixing, the scale plans, the processors and stopping.

Shared by the greedy/sampling loop (:func:`~.sample.decode`) and beam search (:func:`~.beam.beam_search`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .mixing import Mixing
from .progress import ScalePlan


@dataclass(frozen=True)
class DecodeSpec:
    """Everything a decode loop needs besides the prompts."""

    mixing: Mixing
    plans: tuple[ScalePlan, ...]  # one per reference of the guidance, the first reference's first
    processors: Any  # transformers.LogitsProcessorList
    stopping: Any  # transformers.StoppingCriteriaList
    eos: Tensor
    pad_token_id: int
    do_sample: bool = False
    generator: torch.Generator | None = None
    streamer: Any = None
    drop_finished: bool = True  # ended rows leave the batch; False: the plain loop that keeps them

    @property
    def plan(self) -> ScalePlan:
        return self.plans[0]
