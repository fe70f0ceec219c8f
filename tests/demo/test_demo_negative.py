"""The demo's "a class, not another class" part on a tiny cross-attention DiT: its settings, the
forward rows each spends (NAG: B a step; CFG against the negative: 2B), and paired intervals."""

import pytest

from tests.demo.demo_support import NearestMean
from unified_guidance.demo.cache import CheckpointCache
from unified_guidance.demo.negative import NEGATIVES, negative_settings, run_negative

TINY = {"width": 8, "max_steps": 3, "batch_size": 16, "sample_steps": 2}


def test_negative_part_rows_costs_and_intervals(tmp_path):
    rows, meta, md = run_negative(True, 2, 0, 20, NearestMean(), CheckpointCache(tmp_path), False, TINY)
    assert [(r["method"], r["scale"], r["steps"]) for r in rows] == [
        (s.method, s.scale, s.steps) for s in negative_settings(2)
    ]
    per_step = {"cond": 1, "nag": 1, "cfg_neg": 2}  # rows a sample spends per DDIM step
    for r in rows:
        assert r["forward_rows_per_sample"] == per_step[r["method"]] * r["steps"]
        for m in ("adherence", "negative_rate", "p_negative"):
            lo, hi = r["ci"][m]
            assert lo <= r[m] + 1e-12 and r[m] <= hi + 1e-12
    assert rows[0]["method"] == "cond" and rows[0]["vs_cond"]["adherence"] == pytest.approx([0.0, 0.0])
    assert meta["negatives"] == list(NEGATIVES) and all(a != b for a, b in enumerate(NEGATIVES))
    assert md.count("\n| nag |") == 7 and "| cfg_neg | 1.5 | — | 2 | 4 |" in md and "| nag | 4 | 1 | 2 | 2 |" in md
