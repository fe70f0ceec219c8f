"""Pareto fronts and CFG-front verdicts on hand-made rows with known bootstrap replicates."""

import torch

from unified_guidance.demo.intervals import Replicates
from unified_guidance.demo.leaderboard import compare, front, versus_cfg_front


def row(method, scale, adherence, precision, recall, cost=20.0):
    return {"method": method, "scale": scale, "adherence": adherence, "precision": precision, "recall": recall,
            "fd": 1.0, "forward_rows_per_sample": cost, "seconds": 1.0, "samples": 10}  # fmt: skip


def reps(r, spread):
    """Replicates around a row's metrics: the same draw offsets for every row, so differences are exact."""
    offsets = torch.linspace(-spread, spread, 41, dtype=torch.float64)[:, None]
    point = torch.tensor([r["adherence"], r["precision"], r["recall"]], dtype=torch.float64)
    noise = torch.linspace(-1, 1, 41, dtype=torch.float64)[:, None] * torch.ones(3)
    return Replicates(point, point + offsets * noise * (1 if r["method"] == "cfg" else -1))


def test_front_keeps_the_non_dominated_points():
    rows = [row("cfg", 1, 0.9, 0.9, 0.8), row("cfg", 3, 0.99, 0.95, 0.6), row("x", 8, 0.9, 0.9, 0.7)]
    assert [(r["method"], r["scale"]) for r in front(rows, "adherence", "recall")] == [("cfg", 1), ("cfg", 3)]


def test_a_method_wins_only_where_the_paired_interval_resolves_it():
    cfg_rows = [row("cfg", 1, 0.90, 0.90, 0.80), row("cfg", 8, 0.99, 0.80, 0.40)]
    better = row("m", 8, 0.995, 0.95, 0.70)  # beyond both CFG points
    tight = {(r["method"], float(r["scale"])): reps(r, 0.001) for r in [*cfg_rows, better]}
    assert versus_cfg_front(better, cfg_rows, tight, "adherence", "recall") is True
    wide = {(r["method"], float(r["scale"])): reps(r, 0.5) for r in [*cfg_rows, better]}
    assert versus_cfg_front(better, cfg_rows, wide, "adherence", "recall") is None  # not resolved
    worse = row("w", 8, 0.5, 0.5, 0.3)
    tight[("w", 8.0)] = reps(worse, 0.001)
    assert versus_cfg_front(worse, cfg_rows, tight, "adherence", "recall") is False
    result = compare([*cfg_rows, better, worse], tight)
    assert result["methods"]["m"]["wins"] and not result["methods"]["w"]["wins"] and result["methods"]["w"]["lost"]
    costly = compare([*cfg_rows, row("m", 8, 0.995, 0.95, 0.70, cost=40.0)], tight)
    assert not costly["methods"]["m"]["wins"]  # off the front, but at twice CFG's rows


def test_evidence_claims_hold_only_where_intervals_resolve_them():
    from unified_guidance.demo.leaderboard import resolved_evidence

    rows = [row("cfg", 1.0, 0.90, 0.90, 0.80), row("cfg", 3.0, 0.99, 0.97, 0.60), row("cfg", 15.0, 0.99, 0.70, 0.30)]
    for r in rows:
        r["paradigm"] = "p"
    tight = resolved_evidence(rows, {(r["method"], r["scale"]): reps(r, 0.001) for r in rows})
    assert tight["adherence_s3"] and tight["recall_falls"] and tight["precision_peaks"]
    assert tight["mitigation_wins"] is None and tight["interval_cheaper"] is None  # no such rows
    # Replicates that move against each other: the paired differences spread and straddle 0.
    flipped = {(r["method"], r["scale"]): reps(r, -2.0 if r["scale"] == 15.0 else 2.0) for r in rows}
    wide = resolved_evidence(rows, flipped)
    assert wide["recall_falls"] is None and wide["precision_peaks"] is None
