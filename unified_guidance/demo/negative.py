""" "A class, not another class" on the digits: NAG at one forward against CFG with a negative-class
reference at two (issue 28).

Model: the diffusion TinyDiT whose label is read by cross-attention (``arch="dit_cross"``,
:class:`~unified_guidance.networks.TinyDiT` with ``cond_mode="cross"``), trained like
``diffusion_dit`` and cached as ``diffusion_dit_cross``. Each class a is asked for with a
look-alike class b as the negative (:data:`NEGATIVES`), the same noise per sample in every setting:

* ``cond``: the conditional model (s = 1), one forward of B rows a step;
* ``nag`` w: NAG in every block's cross-attention against b (the authors' τ = 2.5, α = 0.25; one
  row at α = 1, the normalized read alone), one forward of B rows a step, plus a second attention
  read in each cross-attention (not counted in the rows);
* ``cfg_neg`` s: ĝ = r_b + s(c_a − r_b), CFG with the negative class as its reference, 2B rows a step.

Cost: every setting at N DDIM steps ("equal steps": NAG at half CFG's rows), and NAG again at 2N
steps ("matched cost": CFG's rows). Metrics, from the digits evaluator: adherence P(argmax = a),
the negative rate P(argmax = b) and p_b, the evaluator's mean probability of b; 95 % bootstrap
intervals (resampled within each class; the same draws for every setting, so the differences
against ``cond`` are paired).
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..core.conditions import Conditions
from ..data.digits import NUM_CLASSES
from ..diffusion.sample import sample as diffusion_sample
from ..guidance import Guidance, Reference
from ..perturb import nag
from ..training.stages import track
from .cache import CheckpointCache
from .evaluate import Evaluator, logits_and_features
from .intervals import LEVEL, bootstrap_draws
from .runners.diffusion import DiffusionDiTRunner
from .sweep import class_seed

NEGATIVES: tuple[int, ...] = (6, 7, 3, 8, 9, 6, 5, 1, 3, 4)
"""The negative class b of each asked class a (``NEGATIVES[a]``): a look-alike on 8×8 digits."""

NAG_SCALES: tuple[float, ...] = (2.0, 4.0, 8.0)
CFG_NEG_SCALES: tuple[float, ...] = (1.5, 2.0, 3.0)
METRICS: tuple[str, ...] = ("adherence", "negative_rate", "p_negative")
NAG_MODULES = "blocks.*.cross"
NEGATIVE_COST = 120.0
"""Seconds of the part's quick run as :class:`~.runners.base.Runner.cost` measures them (an estimate)."""


class CrossDiTRunner(DiffusionDiTRunner):
    """The diffusion TinyDiT reading its label by cross-attention (trained as ``diffusion_dit``)."""

    name = "diffusion_dit_cross"
    methods = ("cfg",)

    def config(self, quick: bool) -> dict[str, Any]:
        return super().config(quick) | {"arch": "dit_cross"}


@dataclass(frozen=True)
class NegativeSetting:
    """A method (``cond``, ``nag``, ``cfg_neg``) at a scale and a number of DDIM steps (NAG: its α)."""

    method: str
    scale: float
    steps: int
    alpha: float = 0.25

    def guidance(self) -> Guidance:
        if self.method == "nag":
            pert = nag(NAG_MODULES, alpha=self.alpha, context="context")
            return Guidance(references=[Reference(pert, self.scale)])
        return Guidance(scale=self.scale)  # cond: s = 1 (the reference is never run); cfg_neg: against b


def negative_settings(steps: int) -> list[NegativeSetting]:
    """``cond``, NAG and CFG-against-b at ``steps``; NAG again at ``2·steps`` (CFG's rows)."""
    out = [NegativeSetting("cond", 1.0, steps)]
    out += [NegativeSetting("nag", w, steps) for w in NAG_SCALES] + [NegativeSetting("nag", 4.0, steps, 1.0)]
    out += [NegativeSetting("cfg_neg", s, steps) for s in CFG_NEG_SCALES]
    return out + [NegativeSetting("nag", w, 2 * steps) for w in NAG_SCALES]


def sample_setting(module: Any, setting: NegativeSetting, per_class: int, seed: int) -> tuple[Tensor, Tensor, int]:
    """Samples ``(10·n, 1, 8, 8)`` in [−1, 1], their asked classes ``(10·n,)`` and the forward rows spent."""
    images, labels, rows = [], [], 0
    for a in range(NUM_CLASSES):
        asked = torch.full((per_class,), a)
        spec = Conditions.single(asked, negative=torch.full((per_class,), NEGATIVES[a]))
        gen = torch.Generator().manual_seed(class_seed(seed, a))
        out = diffusion_sample(
            module.model, setting.guidance(), (per_class, *module.sample_shape), spec,
            steps=setting.steps, generator=gen, progress=False,
        )  # fmt: skip
        images.append(out.samples.clamp(-1.0, 1.0))
        labels.append(asked)
        rows += out.stats.forward_rows
    return torch.cat(images), torch.cat(labels), rows


def measures(evaluator: Evaluator, samples: Tensor, labels: Tensor, draws: Tensor) -> Tensor:
    """``(1 + draws, 3)``: the :data:`METRICS` on the full sample (row 0) and on each bootstrap draw."""
    logits = logits_and_features(evaluator, samples.float())[0]
    negative = torch.tensor(NEGATIVES)[labels]
    per_sample = torch.stack(
        [
            (logits.argmax(1) == labels).double(),
            (logits.argmax(1) == negative).double(),
            logits.softmax(1).gather(1, negative[:, None])[:, 0],
        ],
        dim=1,
    )
    every = torch.cat([torch.arange(labels.shape[0])[None], draws])
    return per_sample[every].mean(1)


def _interval(values: Tensor) -> list[float]:
    """The 95 % interval of a statistic: its full-sample value + the centred bootstrap quantiles."""
    q = torch.tensor([(1 - LEVEL) / 2, (1 + LEVEL) / 2], dtype=torch.float64)
    return (float(values[0]) + torch.quantile(values[1:] - values[1:].mean(), q)).tolist()


def run_negative(
    quick: bool,
    per_class: int,
    seed: int,
    draws: int,
    evaluator: Evaluator,
    cache: CheckpointCache,
    progress: bool = True,
    overrides: Mapping[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], dict[str, Any], str]:
    """Train or load the cross-attention DiT, sample every setting, measure; rows, meta and markdown.
    ``overrides``: entries of the runner's configuration replaced (a tiny run)."""
    runner = CrossDiTRunner()
    config = runner.config(quick) | dict(overrides or {})
    module, cached = cache.load_or_train(
        runner.name, config, lambda: runner.make(config), lambda m: runner.train(m, config, progress=progress)
    )
    sweep = negative_settings(config["sample_steps"])
    boot, base, rows = None, None, []
    for setting in track(sweep, "negative: settings", progress=progress):
        samples, labels, spent = sample_setting(module, setting, per_class, seed)
        boot = bootstrap_draws(labels, draws, seed=seed) if boot is None else boot
        values = measures(evaluator, samples, labels, boot)
        base = values if base is None else base  # the first setting is cond: the paired baseline
        row: dict[str, Any] = {"method": setting.method, "scale": setting.scale, "steps": setting.steps}
        row |= {"alpha": setting.alpha} if setting.method == "nag" else {}
        row |= {m: float(values[0, i]) for i, m in enumerate(METRICS)}
        row["forward_rows_per_sample"] = spent / samples.shape[0]
        row["ci"] = {m: _interval(values[:, i]) for i, m in enumerate(METRICS)}
        row["vs_cond"] = {m: _interval(values[:, i] - base[:, i]) for i, m in enumerate(METRICS)}
        rows.append(row)
    meta = {"config": config, "checkpoint": {"status": cached.status, "sha256": cached.sha256},
            "negatives": list(NEGATIVES), "samples_per_class": per_class, "bootstrap": draws}  # fmt: skip
    return rows, meta, negative_markdown(rows)


def negative_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The section's table: each setting's metrics with 95 % intervals and its difference from ``cond``."""
    buf = io.StringIO()
    buf.write("## A class, not another class (NAG vs CFG against the negative class)\n\n")
    buf.write(
        "| method | scale | α | steps | rows/sample | adherence | Δ vs cond | negative rate | Δ vs cond | p_b |\n"
    )
    buf.write("|---|---|---|---|---|---|---|---|---|---|\n")
    for r in rows:
        alpha = f"{r['alpha']:g}" if "alpha" in r else "—"
        cells = [r["method"], f"{r['scale']:g}", alpha, str(r["steps"]), f"{r['forward_rows_per_sample']:g}"]
        for m in METRICS[:2]:
            cells += [_cell(r[m], r["ci"][m]), _cell(r[m] - rows[0][m], r["vs_cond"][m])]
        cells.append(_cell(r["p_negative"], r["ci"]["p_negative"]))
        buf.write("| " + " | ".join(cells) + " |\n")
    return buf.getvalue()


def _cell(value: float, ci: Sequence[float]) -> str:
    return f"{value:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
