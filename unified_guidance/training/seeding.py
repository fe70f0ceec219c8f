"""The randomness of a training step, drawn from (seed, rank, global step) alone.

Every random draw of a step (condition dropout, diffusion times and noise, flow
times and noise) comes from a generator seeded by the step's number, never from
torch's global generator. A checkpoint carries the step, so a run resumed from
it draws exactly what an uninterrupted run would; DDP ranks draw differently.
"""

from __future__ import annotations

import torch


def step_generator(seed: int, rank: int, step: int, salt: int = 0) -> torch.Generator:
    """A CPU generator seeded by ``(seed, rank, salt, step)``; ``salt`` separates uses (0 training, 1 validation)."""
    return torch.Generator().manual_seed(((seed * 1009 + rank) * 7 + salt) * 10_000_000 + step)
