"""The comparative benchmark: Pareto fronts, a leaderboard, and claims only where intervals resolve them.

Per paradigm, every (method, scale) row is a point in two planes, adherence–recall
and precision–recall (higher is better on both axes). A method *wins* only if one of
its settings is off plain CFG's front — for every CFG setting, better on at least
one axis with the paired 95 % interval of the difference above 0 — at no more
forward rows per sample than CFG at the same scale. Where the intervals straddle 0
the verdict reads "not resolved at this sample size". The quality goal checked at
s ≥ 8: adherence ≥ 0.99 with precision and recall at or above CFG at s = 3.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .claims import ADHERENCE_OK, evidence, row_at
from .intervals import Replicates, resolved

PLANES: tuple[tuple[str, str], ...] = (("adherence", "recall"), ("precision", "recall"))
GOAL_SCALE, GOAL_ADHERENCE, GOAL_BASE = 8.0, 0.99, 3.0
UNRESOLVED = "not resolved at this sample size"
Row = Mapping[str, Any]


def key(row: Row) -> tuple[str, float]:
    return row["method"], float(row["scale"])


def front(rows: Sequence[Row], x: str, y: str) -> list[Row]:
    """The rows no other row dominates on (x, y) by point estimate (≥ on both, > on one)."""

    def dominated(r: Row) -> bool:
        return any(o[x] >= r[x] and o[y] >= r[y] and (o[x] > r[x] or o[y] > r[y]) for o in rows)

    return [r for r in rows if not dominated(r)]


def versus_cfg_front(row: Row, cfg_rows: Sequence[Row], reps: Mapping, x: str, y: str) -> bool | None:
    """``True``: resolved off (beyond) CFG's front; ``False``: resolved dominated by a CFG setting; else ``None``."""
    mine, beyond = reps[key(row)], True
    for other in cfg_rows:
        theirs = reps[key(other)]
        dx, dy = resolved(*mine.difference(theirs, x)), resolved(*mine.difference(theirs, y))
        if dx is False and dy is False:
            return False
        beyond = beyond and (dx is True or dy is True)
    return True if beyond else None


def goal(row: Row, base: Row | None, reps: Mapping) -> bool | None:
    """The issue's goal for one row at s ≥ 8 (``None`` also where it does not apply)."""
    if base is None or row["scale"] < GOAL_SCALE:
        return None
    mine, theirs = reps[key(row)], reps[key(base)]
    lo, hi = mine.interval("adherence")
    adherence = resolved(lo, hi, GOAL_ADHERENCE)
    dp = mine.difference(theirs, "precision")
    dr = mine.difference(theirs, "recall")
    # "at or above": a difference interval reaching from 0 upwards holds; one entirely below 0 fails.
    if adherence is False or dp[1] < 0 or dr[1] < 0:
        return False
    if adherence is True and dp[0] >= 0 and dr[0] >= 0:
        return True
    return None


def compare(rows: Sequence[Row], reps: Mapping[tuple[str, float], Replicates]) -> dict[str, Any]:
    """Fronts, per-method verdicts, the leaderboard and the goal for one paradigm's rows."""
    cfg_rows = [r for r in rows if r["method"] == "cfg"]
    cost = {r["scale"]: r["forward_rows_per_sample"] for r in cfg_rows}
    base = next((r for r in cfg_rows if r["scale"] == GOAL_BASE), None)
    fronts = {f"{x}-{y}": [list(key(r)) for r in front(rows, x, y)] for x, y in PLANES}
    verdicts: dict[str, Any] = {}
    for r in rows:
        if r["method"] == "cfg":
            continue
        planes = {f"{x}-{y}": versus_cfg_front(r, cfg_rows, reps, x, y) for x, y in PLANES}
        affordable = r["forward_rows_per_sample"] <= cost.get(r["scale"], max(cost.values(), default=0.0))
        win = affordable and any(v is True for v in planes.values())
        entry = verdicts.setdefault(r["method"], {"wins": False, "settings": []})
        entry["wins"] = entry["wins"] or win
        # "no" only where every setting is resolved below CFG's front in both planes (or costs more)
        entry["lost"] = entry.get("lost", True) and (not affordable or all(v is False for v in planes.values()))
        entry["settings"].append({"scale": r["scale"], "planes": planes, "affordable": affordable, "win": win})
    board = sorted(
        (r for r in rows if r["scale"] >= 1.0),
        key=lambda r: (r["adherence"] >= 0.95, min(r["precision"], r["recall"])),
        reverse=True,
    )
    leaderboard = [
        {"method": r["method"], "scale": r["scale"], "goal": goal(r, base, reps),
         "on_front": [f"{x}-{y}" for x, y in PLANES if list(key(r)) in fronts[f"{x}-{y}"]]}
        for r in board
    ]  # fmt: skip
    goal_rows = [g for g in leaderboard if g["scale"] >= GOAL_SCALE]
    met = [g for g in goal_rows if g["goal"] is True]
    verdict = True if met else (False if goal_rows and all(g["goal"] is False for g in goal_rows) else None)
    return {"fronts": fronts, "methods": verdicts, "leaderboard": leaderboard, "goal": verdict}


def _ci(row: Row, metric: str, digits: int = 2) -> str:
    lo, hi = row["ci"][metric]
    return f"{row[metric]:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def _mark(value: bool | None) -> str:
    return {True: "yes", False: "no", None: UNRESOLVED}[value]


def _short(value: bool | None) -> str:
    return {True: "yes", False: "no", None: "?"}[value]


def section(paradigm: str, rows: Sequence[Row], result: Mapping[str, Any], top: int = 8) -> list[str]:
    """Markdown: the leaderboard's top rows with intervals, then which methods are off CFG's front."""
    by_key = {key(r): r for r in rows}
    head = ["#", "method", "s", "adherence", "precision", "recall", "FD", "rows/sample", "s/sample", "fronts", "goal"]
    out = [f"### {paradigm}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, entry in enumerate(result["leaderboard"][:top], 1):
        r = by_key[(entry["method"], float(entry["scale"]))]
        fronts = ", ".join(entry["on_front"]) or "—"
        goal_cell = _mark(entry["goal"]) if r["scale"] >= GOAL_SCALE else "—"
        cells = [str(i), r["method"], f"{r['scale']:g}", _ci(r, "adherence"), _ci(r, "precision"), _ci(r, "recall"),
                 f"{r['fd']:.1f}", f"{r['forward_rows_per_sample']:g}", f"{r['seconds'] / r['samples']:.3f}",
                 fronts, goal_cell]  # fmt: skip
        out.append("| " + " | ".join(cells) + " |")
    out += ["", "| method | off CFG's front (a setting at ≤ CFG's cost) | per s: adherence–recall / precision–recall |",
            "|---|---|---|"]  # fmt: skip
    for method, v in result["methods"].items():
        detail = "; ".join(
            f"s={st['scale']:g}: "
            + " / ".join(_short(p) for p in st["planes"].values())
            + ("" if st["affordable"] else " (costs more than CFG)")
            for st in v["settings"]
        )
        verdict = "yes" if v["wins"] else ("no" if v["lost"] else UNRESOLVED)
        out.append(f"| {method} | {verdict} | {detail} |")
    out += ["", f"yes: off CFG's front, resolved; no: resolved below it; ?: {UNRESOLVED}.", "",
            f"Goal (s ≥ {GOAL_SCALE:g}: adherence ≥ {GOAL_ADHERENCE}, precision and recall ≥ CFG at s = "
            f"{GOAL_BASE:g}): {_mark(result['goal'])}.", ""]  # fmt: skip
    return out


def _both(*verdicts: bool | None) -> bool | None:
    """All resolved true → True; any resolved false → False; else None."""
    if any(v is False for v in verdicts):
        return False
    return True if all(v is True for v in verdicts) else None


def resolved_evidence(rows: Sequence[Row], reps: Mapping[tuple[str, float], Replicates]) -> dict[str, bool | None]:
    """The evidence table's claims (:data:`~.claims.CLAIMS`) decided by intervals, for one paradigm's rows.

    ``True``/``False`` only where the paired intervals resolve the claim, ``None``
    otherwise ("not resolved at this sample size", or not measured):

    * ``adherence_s3``: adherence at s = 3 above 0.95 and above s = 1's;
    * ``recall_falls``: recall at the largest s below s = 1's;
    * ``precision_peaks``: the most precise moderate scale (1 < s < 8) above the largest s;
    * ``mitigation_wins``: at every high scale some method above CFG on precision and recall, adherence ≥ 0.95;
    * ``interval_cheaper``: fewer forward rows than CFG (counted, no interval needed);
    * ``gft_half_cost``: a guidance-free row not below CFG's intervals at half its rows
      (:func:`~.claims.guidance_free_goal`).
    """
    r = {key(row): reps[key(row)] for row in rows}
    out: dict[str, bool | None] = dict.fromkeys(("adherence_s3", "recall_falls", "precision_peaks"))
    plain = sorted((row for row in rows if row["method"] == "cfg" and row["scale"] >= 1), key=lambda x: x["scale"])
    one, three = row_at(rows, "cfg", 1.0), row_at(rows, "cfg", 3.0)
    if one and three:
        m3, m1 = r[key(three)], r[key(one)]
        out["adherence_s3"] = _both(
            resolved(*m3.interval("adherence"), ADHERENCE_OK), resolved(*m3.difference(m1, "adherence"))
        )
    if len(plain) >= 3 and one:
        out["recall_falls"] = resolved(*r[key(one)].difference(r[key(plain[-1])], "recall"))
        moderate = [row for row in plain if 1 < row["scale"] < 8]
        if moderate:
            best = max(moderate, key=lambda x: x["precision"])
            out["precision_peaks"] = resolved(*r[key(best)].difference(r[key(plain[-1])], "precision"))
    high = sorted({row["scale"] for row in rows if row["method"] != "cfg" and row["scale"] >= 8})
    wins = []
    for s in high:
        base = row_at(rows, "cfg", s)
        if base is None:
            continue
        per = [
            _both(
                resolved(*r[key(row)].interval("adherence"), ADHERENCE_OK),
                resolved(*r[key(row)].difference(r[key(base)], "precision")),
                resolved(*r[key(row)].difference(r[key(base)], "recall")),
            )
            for row in rows
            if row["scale"] == s and row["method"] != "cfg"
        ]
        wins.append(True if True in per else (False if per and all(v is False for v in per) else None))
    out["mitigation_wins"] = _both(*wins) if wins else None
    paradigm = rows[0]["paradigm"] if rows else ""
    points = evidence(rows, paradigm)
    out["interval_cheaper"], out["gft_half_cost"] = points["interval_cheaper"], points["gft_half_cost"]
    return out
