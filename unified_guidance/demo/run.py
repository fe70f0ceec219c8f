"""``unified-guidance demo``: train (or load), sweep guidance, measure, draw, report.

Order of work, with what each step writes under ``out``:

1. the evaluator (a CNN on the real digits; cached in ``cache/``);
2. per paradigm: the trained model (``cache/PARADIGM.pt`` + ``.json``), the sweep's
   samples through ``Trainer.predict`` (``work/PARADIGM-SHA/item-*.pt``, reused on a
   rerun with the same model), metrics per setting, sample grids (``figures/``);
3. the trade-off and Bayes-view figures;
4. the text section (:mod:`.text`, when ``text`` is set): a pretrained chat LM under logit
   guidance, its rows (``paradigm: "text"``), ``text_samples.json``, ``figures/text_tradeoff.png``;
5. "a class, not another class" (:mod:`.negative`, when ``negative`` is set): NAG against CFG with a
   negative-class reference on a cross-attention TinyDiT (``meta["negative"]``, its own table);
6. ``report.json`` and ``report.md``, each written whole or not at all.

With ``jobs > 1``, steps 2–5 (each paradigm, the Bayes-view figure, the text and negative sections) run
side by side in worker processes (:mod:`.jobs`); the trade-off figure waits for them all.
"""

from __future__ import annotations

import math
import platform
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch

from ..core.numbers import check_int
from ..data.digits import NUM_CLASSES, load_digits_split
from ..evaluation.classifier import DigitsClassifier, train_digits_classifier
from ..evaluation.metrics import saturation
from ..training.predict import SampleResult, predict_sweep, sweep_strategy
from ..training.resume import resumable
from ..training.stages import track
from ..training.verified import remove_verified
from . import figures
from .cache import CheckpointCache
from .equal_cost import guidance_free_comparison
from .evaluate import Evaluator, Reference, SettingMetrics, measure, reference
from .guidance_free import GFT_METHOD, MATCHED_METHOD, GuidanceFreeRows, finetune, plan_rows
from .intervals import bootstrap_draws, intervals, replicates
from .io import atomic_write_json, atomic_write_text, prepare_output_dir
from .jobs import Job, run_jobs
from .leaderboard import compare, resolved_evidence
from .negative import NEGATIVE_COST, run_negative
from .report import ROW_FIELDS, evidence, markdown
from .runners import PARADIGMS, Runner, get_runner
from .sweep import CFG_SCALES, HIGH_SCALES, Setting, settings, work_items
from .text import TextOptions
from .text_report import text_section

CHECKPOINT_EVERY = 50  # optimiser steps between the resumable checkpoints of a paradigm's training
BAYES_COST, TEXT_COST = 2.0, 240.0  # seconds as Runner.cost measures them


@dataclass(frozen=True)
class DemoOptions:
    """What to run.

    Args:
        out: output directory (report, figures, cache, per-item samples).
        quick: fewer training steps and samples.
        paradigms: runner names (:data:`~unified_guidance.demo.runners.RUNNERS`).
        cache_dir: checkpoint cache (default ``out/cache``).
        samples_per_class: samples per class and setting (default 20 quick, 50 full).
        seed: base seed of the sampling noise (shared by all settings of a class).
        k: neighbourhood size of precision/recall.
        accelerator, devices, strategy: passed to ``Trainer.predict`` for the sweep.
        progress: live progress bars where stderr is a terminal; ``False``, or stderr not a terminal (a
            log, CI): a plain line per stage instead — when it starts, every 20 s at most, when it ends
            (steps or items done / total, elapsed, ETA). The stage lines are never turned off.
        scales, high_scales: plain-CFG scales, and the scales of the mitigations.
        methods: restrict the mitigations to these (``None``: every one that applies to a paradigm).
        figures: draw PNG figures.
        bayes_scales, bayes_samples, bayes_steps: the Bayes-view figure's scales, samples and DDIM steps.
        text: the text section (:class:`~unified_guidance.demo.text_options.TextOptions`); ``None`` leaves it
            out (the CLI runs it unless ``--no-text``).
        negative: the "a class, not another class" section (NAG vs CFG against a negative class;
            the CLI runs it unless ``--no-negative``).
        bootstrap: bootstrap draws for the 95 % intervals (default 100 quick, 200 full).
        jobs: worker processes for the paradigms, the Bayes-view figure and the text section (1: all
            in this process, one after another; more: each part in its own process, this many at
            once, torch's threads shared out among them; their stages are shown here as in one process,
            and a line says when a part starts and when it is done).
    """

    out: Path = Path("demo_out")
    quick: bool = False
    paradigms: tuple[str, ...] = PARADIGMS
    cache_dir: Path | None = None
    samples_per_class: int | None = None
    seed: int = 0
    k: int = 5
    accelerator: str = "cpu"
    devices: int | str = 1
    strategy: str = "auto"
    progress: bool = True
    scales: tuple[float, ...] = CFG_SCALES
    high_scales: tuple[float, ...] = HIGH_SCALES
    methods: tuple[str, ...] | None = None
    figures: bool = True
    bayes_scales: tuple[float, ...] = (1.0, 3.0, 8.0, 15.0)
    bayes_samples: int = 300
    bayes_steps: int = 40
    text: TextOptions | None = None
    negative: bool = False
    bootstrap: int | None = None
    jobs: int = 1

    def __post_init__(self) -> None:
        sweep_strategy(self.accelerator, self.devices, self.strategy)  # refused before any training

    @property
    def per_class(self) -> int:
        return self.samples_per_class or (20 if self.quick else 50)

    @property
    def draws(self) -> int:
        return self.bootstrap or (100 if self.quick else 200)


def load_evaluator(cache: CheckpointCache, *, seed: int = 0, progress: bool = True) -> DigitsClassifier:
    """The digits evaluator: from the cache, or trained and cached; its held-out accuracy recomputed."""
    config = {"seed": seed, "epochs": 30, "val_fraction": 0.2}

    def train(model: DigitsClassifier) -> None:
        if progress:
            print("training the digits evaluator (once; cached afterwards) …", file=sys.stderr, flush=True)
        model.load_state_dict(train_digits_classifier(seed=seed).state_dict())

    model, _ = cache.load_or_train("evaluator", config, DigitsClassifier, train)
    model.eval().requires_grad_(False)
    split = load_digits_split(config["val_fraction"], seed=0)
    with torch.no_grad():
        model.held_out_accuracy = float((model(split.val_images).argmax(1) == split.val_labels).float().mean())
    return model


def json_safe(value: Any) -> Any:
    """``value`` with NaN and ±inf floats replaced by ``None`` (JSON has no NaN; a report is never lost to one)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def _row(paradigm: str, setting: Setting, results: Sequence[SampleResult], metrics: SettingMetrics) -> dict[str, Any]:
    samples = sum(r.samples.shape[0] for r in results)
    rows = sum(r.forward_rows for r in results)
    row = {"paradigm": paradigm, "method": setting.method, "scale": setting.scale, **asdict(metrics)}
    row |= {
        "forward_rows": rows,
        "forward_rows_per_sample": rows / samples,
        "samples": samples,
        "seconds": sum(r.seconds for r in results),
    }
    return {k: row[k] for k in ROW_FIELDS if k in row}  # the intervals are added by the caller


def run_paradigm(
    runner: Runner, opts: DemoOptions, evaluator: Evaluator, ref: Reference, out: Path, cache: CheckpointCache
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, str]]:
    """Train or load one paradigm, sample its sweep, measure every setting; rows and meta.

    Where the runner has a guidance-free model, it is fine-tuned from the trained one (cached too) and its
    rows, with their equal-cost CFG rows, join the sweep (:mod:`.guidance_free`)."""
    config = runner.config(opts.quick)
    start = time.perf_counter()
    resume = cache.resume_path(runner.name, config)
    with resumable(resume, every_n_steps=CHECKPOINT_EVERY):  # Ctrl-C keeps the last of these checkpoints
        module, cached = cache.load_or_train(
            runner.name, config, lambda: runner.make(config), lambda m: runner.train(m, config, progress=opts.progress)
        )
    remove_verified(resume)  # trained and cached: the resume point (and its digest) is spent
    train_seconds = time.perf_counter() - start
    methods = [m for m in runner.methods if opts.methods is None or m in opts.methods]
    wanted = opts.methods is None or GFT_METHOD in opts.methods
    free = plan_rows(runner, config, quick=opts.quick, scales=opts.scales) if wanted else GuidanceFreeRows()
    sweep = settings(methods, opts.scales, opts.high_scales, runner.method_scales) + list(free.matched)
    results = _sample(module, runner, sweep, opts, out / "work" / f"{runner.name}-{cached.sha256[:12]}", free)
    free_meta = None
    if free.gft:
        free_module, free_meta = finetune(runner, module, cached, config, cache, progress=opts.progress)
        work = out / "work" / f"{runner.name}_gft-{free_meta['checkpoint']['sha256'][:12]}"
        results += _sample(free_module, runner, list(free.gft), opts, work, free)
        sweep += list(free.gft)
        methods += [m for m in (MATCHED_METHOD, GFT_METHOD) if any(s.method == m for s in sweep)]
    rows, grids, reps = _measure(runner.name, sweep, results, opts, evaluator, ref, out)
    meta = {
        "config": config,
        "checkpoint": {"status": cached.status, "reason": cached.reason, "sha256": cached.sha256},
        "train_seconds": train_seconds,
        "methods": methods,
        "mitigation_params": asdict(runner.params),
        "comparison": compare(rows, reps) | {"evidence": resolved_evidence(rows, reps)},
    }
    if free_meta is not None:
        meta["guidance_free"] = free_meta | {"comparison": guidance_free_comparison(rows, reps)}
    return rows, meta, grids


def _sample(
    module: Any, runner: Runner, sweep: list[Setting], opts: DemoOptions, work: Path, free: GuidanceFreeRows
) -> list[SampleResult]:
    """The samples of every (setting, class) of ``sweep`` drawn with ``module``, saved under ``work``."""
    items = work_items(
        runner.name, sweep, num_classes=NUM_CLASSES, samples_per_class=opts.per_class, seed=opts.seed,
        params=runner.params, options=free.options,
    )  # fmt: skip
    label = runner.name if sweep[0].method != GFT_METHOD else f"{runner.name} ({GFT_METHOD})"
    return predict_sweep(
        module, items, work, accelerator=opts.accelerator, devices=opts.devices, strategy=opts.strategy,
        progress=opts.progress, label=label,
    )  # fmt: skip


def _measure(name: str, sweep: list[Setting], results: list[SampleResult], opts: DemoOptions, evaluator: Evaluator,
             ref: Reference, out: Path) -> tuple[list[dict[str, Any]], dict[str, str], dict]:  # fmt: skip
    """Rows with 95 % intervals, sample grids (plain CFG) and the bootstrap replicates of every setting."""
    rows, grids, reps = [], {}, {}
    draws = None
    for i, setting in enumerate(track(sweep, f"{name}: metrics", progress=opts.progress)):
        part = results[i * NUM_CLASSES : (i + 1) * NUM_CLASSES]
        samples = torch.cat([r.samples for r in part])
        labels = torch.cat([torch.full((r.samples.shape[0],), c) for c, r in enumerate(part)])
        row = _row(name, setting, part, measure(samples, labels, evaluator, ref, opts.k))
        # One set of draws for every setting: same seeds per class, so the replicates are paired.
        draws = bootstrap_draws(labels, opts.draws, seed=opts.seed) if draws is None else draws
        reps[(setting.method, setting.scale)] = replicates(samples, labels, evaluator, ref, draws, opts.k)
        rows.append(row | {"ci": intervals(reps[(setting.method, setting.scale)])})
        if opts.figures and setting.method in ("cfg", GFT_METHOD):
            prefix = name if setting.method == "cfg" else f"{name}_{GFT_METHOD}"
            path = f"figures/{prefix}_s{setting.scale:g}.png"
            title = f"{name}, {'CFG' if setting.method == 'cfg' else 'guidance-free'} s = {setting.scale:g}"
            figures.sample_grid(samples, labels, out / path, title=title)
            grids[f"{setting.scale:g}" if setting.method == "cfg" else f"{GFT_METHOD} {setting.scale:g}"] = path
    return rows, grids, reps


def run_demo(opts: DemoOptions, *, evaluator: Evaluator | None = None) -> dict[str, Any]:
    """Run the demo and write ``report.json``, ``report.md`` and figures under ``opts.out``; return the report."""
    check_int("jobs", opts.jobs, lo=1)  # before any work
    start = time.perf_counter()
    out = prepare_output_dir(opts.out)
    cache = CheckpointCache(opts.cache_dir or out / "cache")
    runners = [get_runner(name) for name in opts.paradigms]  # unknown names fail before any work
    if opts.figures:
        (out / "figures").mkdir(exist_ok=True)
    evaluator = evaluator if evaluator is not None else load_evaluator(cache, progress=opts.progress)
    split = load_digits_split(0.2, seed=0)
    ref = reference(evaluator, split.train_images, split.train_labels)
    real_sat = saturation(split.train_images)
    rows: list[dict[str, Any]] = []
    meta: dict[str, Any] = {
        "quick": opts.quick,
        "paradigms": [r.name for r in runners],
        "samples_per_class": opts.per_class,
        "seed": opts.seed,
        "k": opts.k,
        "scales": list(opts.scales),
        "high_scales": list(opts.high_scales),
        "bootstrap": opts.draws,
        "evaluator": {
            "held_out_accuracy": float(evaluator.held_out_accuracy),
            "feature_dim": int(ref.features.shape[1]),
        },
        "real": {"count": len(split.train_labels), "saturation": real_sat.at_bounds, "mean_abs": real_sat.mean_abs},
        "predict": {"accelerator": opts.accelerator, "devices": opts.devices, "strategy": opts.strategy},
        "runs": {},
        "figures": {"grids": {}},
        "versions": {"torch": torch.__version__, "python": platform.python_version()},
    }
    threads = max(1, torch.get_num_threads() // opts.jobs)
    parts = replace(opts, progress=True)  # the parts always report their stages; run_jobs shows them
    jobs = [Job(r.name, run_paradigm, (r, parts, evaluator, ref, out, cache), r.cost) for r in runners]
    if opts.figures:
        bayes = partial(figures.bayes_view, scales=opts.bayes_scales, n=opts.bayes_samples, steps=opts.bayes_steps)
        jobs.append(Job("bayes_view", bayes, (out / "figures/bayes_view.png",), BAYES_COST))
    if opts.negative:
        negative = (opts.quick, opts.per_class, opts.seed, opts.draws, evaluator, cache)
        jobs.append(Job("negative", run_negative, negative, NEGATIVE_COST))
    if opts.text is not None:
        text = partial(text_section, quick=opts.quick, progress=True, figures=opts.figures)
        jobs.append(Job("text", text, (opts.text, out), TEXT_COST))
    results, seconds = run_jobs(jobs, workers=opts.jobs, threads=threads, bars=opts.progress)
    meta["jobs"] = {"workers": opts.jobs, "threads": threads if opts.jobs > 1 else torch.get_num_threads()}
    meta["jobs"]["seconds"] = seconds
    for runner, (paradigm_rows, paradigm_meta, grids) in zip(runners, results[: len(runners)], strict=True):
        rows += paradigm_rows
        meta["runs"][runner.name] = paradigm_meta
        meta["figures"]["grids"][runner.name] = grids
    if opts.figures:
        trade = figures.tradeoff(rows, meta["paradigms"], out / "figures/tradeoff.png")
        meta["figures"]["tradeoff"] = str(trade.relative_to(out))
        meta["figures"]["bayes_view"] = str(results[len(runners)].relative_to(out))
    text_rows, text_md, negative_md = [], "", ""
    if opts.text is not None:
        text_rows, meta["text"], text_md = results[-1]
    if opts.negative:
        rows_neg, meta["negative"], negative_md = results[len(runners) + int(opts.figures)]
        meta["negative"]["rows"] = rows_neg
    meta["evidence"] = {name: evidence(rows, name) for name in meta["paradigms"]}
    meta["seconds"] = time.perf_counter() - start
    report = {"rows": rows + text_rows, "meta": meta}
    extra = "".join("\n" + md for md in (text_md, negative_md) if md)
    atomic_write_text(out / "report.md", markdown(report) + extra)
    safe = json_safe(report)
    atomic_write_json(out / "report.json", safe)
    return safe
