"""The demo's claims about guidance, checked on one paradigm's measured rows by point estimates.

:data:`CLAIMS` names them; :func:`evidence` decides each from the rows' numbers (the
leaderboard, :mod:`.leaderboard`, decides them again with paired bootstrap intervals).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

CLAIMS: dict[str, str] = {
    "adherence_s3": "adherence at s = 3 ≥ 0.95 and well above s = 1 (miss rate at most half)",
    "recall_falls": "recall falls as s grows",
    "precision_peaks": "precision peaks at a moderate s and falls at high s",
    "mitigation_wins": "at s ≥ 8 a mitigation beats CFG on precision and recall (adherence ≥ 0.95)",
    "interval_cheaper": "interval rows cost fewer forward rows",
    "gft_half_cost": "a guidance-free model at s = 2 and 3 not below CFG's 95 % intervals at half the forward rows",
}
"""The claims, by key, as the evidence table words them."""

ADHERENCE_OK = 0.95
"""Adherence a mitigation must keep to count as a win (the issue's bar)."""

GFT_GOAL_SCALES: tuple[float, ...] = (2.0, 3.0)
"""Where a guidance-free model is held to plain CFG's intervals at half the forward rows (issue 26)."""
COMPARED: tuple[str, ...] = ("adherence", "precision", "recall")


def beats_cfg(row: Mapping[str, Any], rows: Sequence[Mapping[str, Any]]) -> bool:
    """Whether a mitigation row beats plain CFG at its paradigm and scale on precision and
    recall together while keeping adherence ≥ :data:`ADHERENCE_OK`."""
    plain = [
        r for r in rows if r["paradigm"] == row["paradigm"] and r["method"] == "cfg" and r["scale"] == row["scale"]
    ]
    if not plain or row["method"] == "cfg":
        return False
    p = plain[0]
    return row["precision"] > p["precision"] and row["recall"] > p["recall"] and row["adherence"] >= ADHERENCE_OK


def row_at(rows: Sequence[Mapping[str, Any]], method: str, scale: float) -> Mapping[str, Any] | None:
    """The row of ``method`` at ``scale`` (``None`` if the sweep has none)."""
    return next((r for r in rows if r["method"] == method and r["scale"] == scale), None)


def interval_position(row: Mapping[str, Any], base: Mapping[str, Any]) -> dict[str, str] | None:
    """Where each of ``row``'s :data:`COMPARED` metrics lies against ``base``'s 95 % interval: ``"below"``,
    ``"within"`` or ``"above"`` (``None``: ``base`` has no intervals)."""
    ci = base.get("ci")
    if ci is None:
        return None
    return {m: "below" if row[m] < ci[m][0] else "above" if row[m] > ci[m][1] else "within" for m in COMPARED}


def guidance_free_goal(rows: Sequence[Mapping[str, Any]]) -> bool | None:
    """At each of :data:`GFT_GOAL_SCALES` with a ``gft`` and a ``cfg`` row (one paradigm's rows): the
    guidance-free row's metrics within CFG's 95 % intervals or above them (none below) at no more than
    half its forward rows per sample; ``None`` where no such pair (with intervals) was measured."""
    checks = []
    for s in GFT_GOAL_SCALES:
        free, plain = row_at(rows, "gft", s), row_at(rows, "cfg", s)
        where = None if free is None or plain is None else interval_position(free, plain)
        if where is not None and free is not None and plain is not None:
            half = 2 * free["forward_rows_per_sample"] <= plain["forward_rows_per_sample"]
            checks.append(half and "below" not in where.values())
    return all(checks) if checks else None


def evidence(rows: Sequence[Mapping[str, Any]], paradigm: str) -> dict[str, bool | None]:
    """The issue's claims, checked on one paradigm's rows (``None``: the sweep lacks the rows to decide).

    * ``adherence_s3``: adherence at s = 3 ≥ 0.95 and "well above" s = 1: at most half its miss rate;
    * ``recall_falls``: recall at the largest scale below recall at s = 1, and never rising by more
      than 0.05 from one scale ≥ 1 to the next;
    * ``precision_peaks``: precision is highest at a moderate scale (1 < s < 8) and lower at the largest;
    * ``mitigation_wins``: at every scale ≥ 8 with mitigations, one beats CFG (:func:`beats_cfg`);
    * ``interval_cheaper``: every interval row costs fewer forward rows than CFG at its scale;
    * ``gft_half_cost``: :func:`guidance_free_goal` (decided by CFG's intervals already).
    """
    mine = [r for r in rows if r["paradigm"] == paradigm]
    plain = sorted((r for r in mine if r["method"] == "cfg" and r["scale"] >= 1), key=lambda r: r["scale"])
    one, three = row_at(mine, "cfg", 1.0), row_at(mine, "cfg", 3.0)
    out: dict[str, bool | None] = {"adherence_s3": None, "recall_falls": None, "precision_peaks": None}
    if one and three:
        halved = 1.0 - three["adherence"] <= (1.0 - one["adherence"]) / 2
        out["adherence_s3"] = three["adherence"] >= ADHERENCE_OK and halved
    if len(plain) >= 3 and one:
        steps_ok = all(b["recall"] <= a["recall"] + 0.05 for a, b in itertools.pairwise(plain))
        out["recall_falls"] = plain[-1]["recall"] < one["recall"] and steps_ok
        best = max(plain, key=lambda r: r["precision"])
        out["precision_peaks"] = 1 < best["scale"] < 8 and plain[-1]["precision"] < best["precision"]
    high = sorted({r["scale"] for r in mine if r["method"] != "cfg" and r["scale"] >= 8})
    wins = [any(beats_cfg(r, rows) for r in mine if r["scale"] == s) for s in high]
    out["mitigation_wins"] = all(wins) if wins else None
    intervals = [r for r in mine if "interval" in r["method"]]
    cheaper = [
        r["forward_rows"] < plain_row["forward_rows"]
        for r in intervals
        if (plain_row := row_at(mine, "cfg", r["scale"])) is not None
    ]
    out["interval_cheaper"] = all(cheaper) if cheaper else None
    out["gft_half_cost"] = guidance_free_goal(mine)
    return out
