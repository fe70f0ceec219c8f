"""The report: rows of measured numbers, a failure mode for each, and the Markdown tables."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from . import equal_cost, leaderboard
from .claims import CLAIMS, beats_cfg, evidence

ROW_FIELDS: tuple[str, ...] = (
    "paradigm",
    "method",
    "scale",
    "adherence",
    "precision",
    "recall",
    "fd",
    "saturation",
    "mean_abs",
    "forward_rows",
    "forward_rows_per_sample",
    "samples",
    "seconds",
    "ci",
)
"""Every digits row of ``report.json`` has exactly these keys (``ci``: metric → 95 % bootstrap interval
[lo, hi]; text rows: ``demo.text.TEXT_ROW_FIELDS``)."""


def failure_mode(row: Mapping[str, Any], real: Mapping[str, float]) -> str:
    """What goes wrong in a setting, read off its numbers ("—" when nothing does).

    * off-class: adherence < 0.8;
    * implausible shapes: precision < 0.5;
    * low diversity: recall < 0.3;
    * saturated: more pixels at ±1 than real digits have (+0.1);
    * past the range: mean |x| > 1 before clipping.
    """
    modes = []
    if row["adherence"] < 0.8:
        modes.append(f"off-class ({row['adherence']:.0%} recognised)")
    if row["precision"] < 0.5:
        modes.append(f"implausible shapes (precision {row['precision']:.2f})")
    if row["recall"] < 0.3:
        modes.append(f"low diversity (recall {row['recall']:.2f})")
    if row["saturation"] > real["saturation"] + 0.1:
        modes.append(f"saturated ({row['saturation']:.0%} of pixels at ±1, real digits {real['saturation']:.0%})")
    if row["mean_abs"] > 1.0:
        modes.append(f"pushed past the data range (mean |x| {row['mean_abs']:.2f} before clipping)")
    return "; ".join(modes) or "—"


def evidence_section(report: Mapping[str, Any]) -> list[str]:
    """A table of :data:`CLAIMS` by paradigm.

    Where the run has bootstrap intervals (``meta.runs.PARADIGM.comparison.evidence``)
    a claim holds (✓) or fails (✗) only if the paired intervals resolve it, and reads
    "not resolved at this sample size" otherwise; without them, the point estimates
    decide (:func:`evidence`). – : not measured.
    """
    meta = report["meta"]
    paradigms = meta["paradigms"]
    marks = {True: "✓", False: "✗", None: "–"}
    columns = []
    for p in paradigms:
        resolved = meta.get("runs", {}).get(p, {}).get("comparison", {}).get("evidence")
        points = evidence(report["rows"], p)
        if resolved is None:
            columns.append({c: marks[v] for c, v in points.items()})
        else:  # measured but undecided by the intervals: say so
            columns.append({c: marks[v] if v is not None or points[c] is None else leaderboard.UNRESOLVED
                            for c, v in resolved.items()})  # fmt: skip
    lines = [[text, *(col[claim] for col in columns)] for claim, text in CLAIMS.items()]
    return ["## Evidence", "", *_table(["claim", *paradigms], lines), ""]


def leaderboard_section(report: Mapping[str, Any]) -> list[str]:
    """The comparative benchmark: per paradigm the leaderboard with intervals and the Pareto verdicts."""
    meta = report["meta"]
    out = [
        "## Leaderboard",
        "",
        f"Point estimates with 95 % bootstrap intervals ({meta.get('bootstrap', '?')} draws over samples, paired "
        "across settings). Rows with adherence ≥ 0.95 first, then by min(precision, recall). *fronts*: the planes "
        "(adherence–recall, precision–recall) where the row is on the Pareto front of all rows. A method is off "
        "CFG's front only where the paired interval of its difference to every CFG setting resolves it.",
        "",
    ]
    for paradigm in meta["paradigms"]:
        result = meta["runs"].get(paradigm, {}).get("comparison")
        if result is not None:
            out += leaderboard.section(paradigm, [r for r in report["rows"] if r["paradigm"] == paradigm], result)
        free = meta["runs"].get(paradigm, {}).get("guidance_free", {}).get("comparison")
        if free is not None:
            out += equal_cost.section(paradigm, free)
    return out


def _num(value: float, digits: int = 2) -> str:
    return f"{value:.{digits}f}"


def _cells(r: Mapping[str, Any]) -> list[str]:
    return [
        _num(r["adherence"]),
        _num(r["precision"]),
        _num(r["recall"]),
        _num(r["fd"], 1),
        f"{r['saturation']:.0%}",
        f"{r['forward_rows_per_sample']:g}",
    ]


def _table(header: Sequence[str], lines: Sequence[Sequence[str]]) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return out + ["| " + " | ".join(cells) + " |" for cells in lines]


def paradigm_section(paradigm: str, rows: Sequence[Mapping[str, Any]], meta: Mapping[str, Any]) -> list[str]:
    """Markdown for one paradigm: the scale table with sample grids, then the mitigations."""
    mine = [r for r in rows if r["paradigm"] == paradigm]
    figures = meta.get("figures", {}).get("grids", {}).get(paradigm, {})
    metric_cols = ["adherence", "precision", "recall", "FD", "at ±1", "rows/sample"]
    lines = []
    for r in (r for r in mine if r["method"] == "cfg"):
        grid = figures.get(f"{r['scale']:g}")
        cell = f"![s={r['scale']:g}]({grid})" if grid else "—"
        lines.append([f"{r['scale']:g}", cell, *_cells(r), failure_mode(r, meta["real"])])
    out = [f"## {paradigm}", "", "Plain CFG, u + s(c − u):", ""]
    out += _table(["s", "samples", *metric_cols, "failure mode"], lines)
    mitigations = [r for r in mine if r["method"] != "cfg"]
    if mitigations:
        real = meta["real"]
        lines = [
            [r["method"], f"{r['scale']:g}", *_cells(r), "yes" if beats_cfg(r, rows) else "no", failure_mode(r, real)]
            for r in sorted(mitigations, key=lambda r: (r["scale"], r["method"]))
        ]
        out += ["", "Mitigations at high scale (beats CFG: higher precision and recall, adherence ≥ 0.95):", ""]
        out += _table(["method", "s", *metric_cols, "beats CFG", "failure mode"], lines)
    return [*out, ""]


def markdown(report: Mapping[str, Any]) -> str:
    """``report.md``: what was run, one section per paradigm, the figures."""
    meta, rows = report["meta"], report["rows"]
    ev = meta["evaluator"]
    out = [
        "# Guidance demo report",
        "",
        f"Real digits (scikit-learn, 8×8). Evaluator: held-out accuracy {ev['held_out_accuracy']:.3f}. "
        f"{meta['samples_per_class']} samples per class and setting; precision/recall with k = {meta['k']} per class "
        f"against {meta['real']['count']} real training digits; FD in the evaluator's {ev['feature_dim']}-d features. "
        f"Real digits have {meta['real']['saturation']:.0%} of pixels at ±1. "
        f"{'Quick' if meta['quick'] else 'Full'} run, {meta['seconds']:.0f} s.",
        "",
    ]
    out += evidence_section(report)
    out += leaderboard_section(report)
    for paradigm in meta["paradigms"]:
        out += paradigm_section(paradigm, rows, meta)
    figs = meta.get("figures", {})
    if "tradeoff" in figs:
        out += ["## Trade-off", "", f"![adherence and precision against recall]({figs['tradeoff']})", ""]
    if "bayes_view" in figs:
        out += [
            "## Bayes view",
            "",
            "Guided samples of the exact 2-D mixture over the contours of p(x)·p(y|x)^s:",
            "",
            f"![Bayes view]({figs['bayes_view']})",
            "",
        ]
    return "\n".join(out)
