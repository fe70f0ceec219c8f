"""The demo's guidance-free rows: a paradigm's trained CFG model fine-tuned into a GFT model.

GFT (Chen et al., arXiv 2501.15420) recommends the cheap path, taken here: the network given
the β = 1/s input (zero-initialised, so the CFG checkpoint loads into it unchanged) is
fine-tuned from the paradigm's cached CFG model for :data:`FINETUNE_FRACTION` of its optimiser
steps with the GFT objective, from the parent's sampling (EMA) weights. The fine-tuned model is cached like its parent
(:class:`~.cache.CheckpointCache`), keyed by its hyper-parameters and the parent's checksum,
so a retrained parent retrains it.

Its rows (method ``"gft"``) use the parent's noise seeds, so they pair with the CFG rows.
They are judged as the GA-Eval protocol asks (arXiv 2602.22570): against plain CFG at the same
scale and step count (GFT at half the forward rows per sample) and against CFG matched in
forward rows (``"cfg_matched"``: CFG at ⌈n/2⌉ steps, never fewer rows than GFT's n). A token
model cannot halve its tokens: its equal-cost CFG is the conditional model (CFG at s = 1).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from torch import nn
from torch.optim.swa_utils import AveragedModel

from ..training.objectives import load_weights
from ..training.resume import resumable
from .cache import CacheResult, CheckpointCache
from .runners.base import Runner
from .sweep import Setting

GFT_METHOD, MATCHED_METHOD = "gft", "cfg_matched"
QUICK_SCALES: tuple[float, ...] = (2.0, 3.0)
"""The guidance-free rows of a quick run: the issue's goal scales (a full run: every CFG scale ≥ 1)."""
FINETUNE_FRACTION = 0.1
"""Fine-tuning steps as a fraction of the parent's optimiser steps."""
CHECKPOINT_EVERY = 50


@dataclass(frozen=True)
class GuidanceFreeRows:
    """What a paradigm adds: the ``gft`` settings (sampled with the fine-tuned model), the
    ``cfg_matched`` settings (sampled with the parent) and their sampler keywords by method."""

    gft: tuple[Setting, ...] = ()
    matched: tuple[Setting, ...] = ()
    options: Mapping[str, tuple[tuple[str, Any], ...]] | None = None


def plan_rows(runner: Runner, config: Mapping[str, Any], *, quick: bool, scales: Sequence[float]) -> GuidanceFreeRows:
    """The rows of ``runner`` under its ``config`` (none where the runner has no guidance-free model).

    A guidance-free model takes s ≥ 1 (β = 1/s ∈ (0, 1]); the matched CFG rows run at ⌈n/2⌉ of the
    parent's ``sample_steps`` n (a token model has no steps to halve: none).
    """
    if not runner.guidance_free:
        return GuidanceFreeRows()
    chosen = QUICK_SCALES if quick else tuple(float(s) for s in scales if s >= 1.0)
    gft = tuple(Setting(GFT_METHOD, s) for s in chosen)
    steps = config.get("sample_steps")
    if steps is None:
        return GuidanceFreeRows(gft)
    matched = tuple(Setting(MATCHED_METHOD, s) for s in chosen)
    return GuidanceFreeRows(gft, matched, {MATCHED_METHOD: (("steps", math.ceil(steps / 2)),)})


def gft_config(parent_config: Mapping[str, Any], parent_sha256: str) -> dict[str, Any]:
    """The fine-tuned model's configuration (its cache key): the parent's, the GFT objective,
    :data:`FINETUNE_FRACTION` of its steps, a seed of its own and the parent's checksum."""
    steps = max(1, round(FINETUNE_FRACTION * parent_config["max_steps"]))
    return dict(parent_config) | {
        "objective": "gft", "max_steps": steps, "seed": parent_config["seed"] + 1,
        "parent_steps": parent_config["max_steps"], "parent_sha256": parent_sha256,
    }  # fmt: skip


def init_from(module: nn.Module, parent: nn.Module) -> None:
    """Start ``module`` from the parent's sampling weights (its EMA where it keeps one): the networks of its
    trained and of its sampling model both load them (only the β embedding, zero at the start, may be
    missing), so it starts as the model that sampled the parent's rows; its fresh weight average warms up
    again from there."""
    model: Any = module.model  # the module's conditional model (a ConditionalModel)
    source = _network(cast(Any, parent).model)
    for target in {id(n): n for n in (_network(getattr(module, "trained_model", model)),
                                       _network(model))}.values():  # fmt: skip
        load_weights(target, source, name="parent")


def _network(model: nn.Module) -> nn.Module:
    """A model adapter's network (``.net``, unwrapped from its weight average), or a token model itself."""
    net = getattr(model, "net", model)
    return net.module if isinstance(net, AveragedModel) else net


def finetune(
    runner: Runner,
    parent: nn.Module,
    parent_cached: CacheResult,
    parent_config: Mapping[str, Any],
    cache: CheckpointCache,
    *,
    progress: bool = True,
) -> tuple[nn.Module, dict[str, Any]]:
    """The paradigm's guidance-free model: from the cache, or fine-tuned from ``parent`` and cached;
    and its meta (configuration, checkpoint, seconds)."""
    config = gft_config(parent_config, parent_cached.sha256)
    key = f"{runner.name}_gft"

    def train(module: nn.Module) -> None:
        init_from(module, parent)
        runner.train(module, config, progress=progress)

    start = time.perf_counter()
    resume = cache.resume_path(key, config)
    with resumable(resume, every_n_steps=CHECKPOINT_EVERY):
        module, cached = cache.load_or_train(key, config, lambda: runner.make(config), train)
    resume.unlink(missing_ok=True)
    meta = {
        "config": config,
        "checkpoint": {"status": cached.status, "reason": cached.reason, "sha256": cached.sha256},
        "train_seconds": time.perf_counter() - start,
    }
    return module, meta
