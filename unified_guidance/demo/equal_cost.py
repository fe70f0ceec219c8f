"""Guidance-free rows against plain CFG at equal and at half cost (the GA-Eval protocol, arXiv 2602.22570).

A guidance-free model at scale s and n steps costs n forward rows per sample (one forward of B
rows a step). It is compared with two CFG rows at the same s, paired (same noise seeds, same
bootstrap draws):

* **half cost**: CFG at the same n steps, 2n rows: the issue's goal asks the guidance-free
  model's adherence, precision and recall to lie within this row's 95 % intervals (or above them);
* **equal cost**: CFG matched in rows, ``cfg_matched`` (⌈n/2⌉ steps); a token model, which
  cannot halve its tokens, has the conditional model (CFG at s = 1) at its cost instead.

Each comparison gives the paired difference (guidance-free − CFG) with its 95 % interval.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .claims import COMPARED, GFT_GOAL_SCALES, guidance_free_goal, interval_position, row_at
from .intervals import Replicates, resolved

Row = Mapping[str, Any]


def _versus(mine: Row, base: Row | None, reps: Mapping[tuple[str, float], Replicates]) -> dict[str, Any] | None:
    """The paired differences (mine − base) ``[d, lo, hi]`` per metric and where each of mine's point
    estimates lies against base's 95 % interval (:func:`~.claims.interval_position`)."""
    if base is None:
        return None
    a, b = reps[(mine["method"], mine["scale"])], reps[(base["method"], base["scale"])]
    diff = {m: [mine[m] - base[m], *a.difference(b, m)] for m in COMPARED}
    where = interval_position(mine, base)
    baseline = {"method": base["method"], "scale": base["scale"], "rows_per_sample": base["forward_rows_per_sample"]}
    return {"baseline": baseline, "difference": diff, "interval": where}


def guidance_free_comparison(rows: Sequence[Row], reps: Mapping[tuple[str, float], Replicates]) -> dict[str, Any]:
    """Per scale of the ``gft`` rows (one paradigm's): the cost and the comparison with CFG at half and at
    equal cost; ``goal``: :func:`~.claims.guidance_free_goal`."""
    out = []
    for row in sorted((r for r in rows if r["method"] == "gft"), key=lambda r: r["scale"]):
        s = row["scale"]
        equal = row_at(rows, "cfg_matched", s) or row_at(rows, "cfg", 1.0)
        out.append({
            "scale": s, "rows_per_sample": row["forward_rows_per_sample"],
            "half_cost": _versus(row, row_at(rows, "cfg", s), reps), "equal_cost": _versus(row, equal, reps),
        })  # fmt: skip
    return {"settings": out, "goal": guidance_free_goal(rows)}


def _diff(entry: Mapping[str, Any] | None, metric: str) -> str:
    if entry is None:
        return "—"
    d, lo, hi = entry["difference"][metric]
    mark = {True: " ▲", False: " ▼", None: ""}[resolved(lo, hi)]
    return f"{d:+.2f} [{lo:+.2f}, {hi:+.2f}]{mark}"


def section(paradigm: str, result: Mapping[str, Any]) -> list[str]:
    """Markdown: per scale, the guidance-free model minus CFG at half and at equal cost, with intervals."""
    head = ["s", "rows/sample", "vs", "CFG rows/sample", *(f"Δ {m}" for m in COMPARED), "against CFG's 95 %"]
    out = [f"#### {paradigm}: guidance-free (GFT) against CFG", "", "| " + " | ".join(head) + " |",
           "|" + "---|" * len(head)]  # fmt: skip
    for e in result["settings"]:
        for name in ("half_cost", "equal_cost"):
            c = e[name]
            if c is None:
                continue
            base = c["baseline"]
            vs = f"{'half' if name == 'half_cost' else 'equal'} cost: {base['method']} s={base['scale']:g}"
            where = "; ".join(f"{m} {c['interval'][m]}" for m in COMPARED)
            cells = [f"{e['scale']:g}", f"{e['rows_per_sample']:g}", vs, f"{base['rows_per_sample']:g}",
                     *(_diff(c, m) for m in COMPARED), where]  # fmt: skip
            out.append("| " + " | ".join(cells) + " |")
    goal = {True: "yes", False: "no", None: "not measured"}[result["goal"]]
    out += ["", "Δ: guidance-free minus CFG, paired 95 % interval; ▲/▼: resolved above/below 0. Goal (s ∈ "
            f"{{{', '.join(f'{s:g}' for s in GFT_GOAL_SCALES)}}}: adherence, precision and recall within CFG's 95 % "
            f"intervals or above, at half the forward rows): {goal}.", ""]  # fmt: skip
    return out
