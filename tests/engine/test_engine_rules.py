"""Identities of the pure rules on float64, including hypothesis property tests."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unified_guidance.guidance.functional import (
    APGState,
    apg,
    cfg,
    cfg_zero_star,
    dynamic_threshold,
    multi_cfg,
    norm_cap,
    optimized_scale,
    rescale,
    static_clip,
)

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)
scales = st.floats(-3.0, 20.0, allow_nan=False)


def pair(shape, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(2, *shape, generator=gen, dtype=torch.float64) for _ in range(2))


@settings(max_examples=40, deadline=None)
@given(shape=shapes, s=scales)
def test_cfg_endpoints_and_linearity(shape, s):
    c, u = pair(shape)
    assert torch.equal(cfg(c, u, 1.0), c)
    assert torch.equal(cfg(c, u, 0.0), u)
    torch.testing.assert_close(cfg(c, u, s), u + s * (c - u), rtol=1e-12, atol=1e-12)
    # Linear in s: the midpoint of two scales is the mean of their outputs.
    torch.testing.assert_close(cfg(c, u, (s + 2.0) / 2), (cfg(c, u, s) + cfg(c, u, 2.0)) / 2, rtol=1e-10, atol=1e-10)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, s=scales)
def test_per_sample_scales_match_scalar_scales(shape, s):
    c, u = pair(shape)
    out = cfg(c, u, torch.tensor([s, 2.0], dtype=torch.float64))
    torch.testing.assert_close(out[0], cfg(c[:1], u[:1], s)[0])
    torch.testing.assert_close(out[1], cfg(c[1:], u[1:], 2.0)[0])


def test_a_scale_tensor_of_the_wrong_size_is_refused():
    c, u = pair((3,))
    with pytest.raises(ValueError, match="one value per sample"):
        cfg(c, u, torch.tensor([1.0, 2.0, 3.0]))


@settings(max_examples=25, deadline=None)
@given(shape=shapes, s=scales)
def test_rescale_with_phi_zero_is_cfg_and_phi_one_matches_cond_std(shape, s):
    c, u = pair(shape, seed=1)
    g = cfg(c, u, s)
    torch.testing.assert_close(rescale(g, c, 0.0), g)
    if c[0].numel() > 1:
        dims = tuple(range(1, c.ndim))
        torch.testing.assert_close(rescale(g, c, 1.0).std(dim=dims), c.std(dim=dims), rtol=1e-9, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, s=scales)
def test_apg_with_eta_one_and_no_clip_or_momentum_is_cfg(shape, s):
    c, u = pair(shape, seed=2)
    out, _ = apg(c, u, s, eta=1.0)
    torch.testing.assert_close(out, cfg(c, u, s), rtol=1e-10, atol=1e-10)


def test_apg_drops_the_parallel_part_and_keeps_state():
    c, u = pair((16,), seed=3)
    out, state = apg(c, u, 5.0, eta=0.0)
    update = (out - c) / 4.0
    # The update is orthogonal to c, sample by sample.
    torch.testing.assert_close((update * c).sum(1), torch.zeros(2, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(state.running, c - u)
    # Momentum adds β·(previous running difference) before the projection.
    out2, state2 = apg(c, u, 5.0, eta=1.0, momentum=-0.5, state=APGState(c - u))
    torch.testing.assert_close(state2.running, 0.5 * (c - u))
    torch.testing.assert_close(out2, c + 4.0 * 0.5 * (c - u))
    # The norm threshold caps ‖d‖ per sample.
    out3, _ = apg(c, u, 2.0, eta=1.0, norm_threshold=0.1)
    torch.testing.assert_close(torch.linalg.vector_norm(out3 - c, dim=1), torch.full((2,), 0.1, dtype=torch.float64))


@settings(max_examples=25, deadline=None)
@given(shape=shapes, s=scales)
def test_cfg_zero_star_identities(shape, s):
    c, u = pair(shape, seed=4)
    torch.testing.assert_close(cfg_zero_star(c, c, s), c)
    alpha = optimized_scale(c, u)
    torch.testing.assert_close(cfg_zero_star(c, u, s), alpha * u + s * (c - alpha * u))
    # α* minimises ‖c − αu‖: the residual is orthogonal to u.
    dims = tuple(range(1, c.ndim))
    torch.testing.assert_close(((c - alpha * u) * u).sum(dims), torch.zeros(2, dtype=torch.float64), atol=1e-10, rtol=0)


def test_dynamic_threshold_and_static_clip():
    x0 = torch.tensor([[0.5, -0.2, 0.9, 0.1], [3.0, -2.0, 1.0, 0.5]], dtype=torch.float64)
    # Row 0 is inside [−1, 1]: q clamps to 1 and nothing changes.
    out = dynamic_threshold(x0, percentile=1.0)
    torch.testing.assert_close(out[0], x0[0])
    # Row 1: q = max|x0| = 3 → clamp to ±3 then divide by 3.
    torch.testing.assert_close(out[1], x0[1] / 3.0)
    torch.testing.assert_close(dynamic_threshold(x0, 1.0, max_value=2.0)[1], x0[1].clamp(-2, 2) / 2.0)
    assert torch.equal(static_clip(x0), x0.clamp(-1, 1))
    assert float(dynamic_threshold(torch.randn(4, 100, dtype=torch.float64) * 5, 0.9).abs().max()) <= 1.0


def test_norm_cap():
    c = torch.tensor([[3.0, 4.0]], dtype=torch.float64)
    g = torch.tensor([[30.0, 40.0]], dtype=torch.float64)
    torch.testing.assert_close(norm_cap(g, c, 2.0), torch.tensor([[6.0, 8.0]], dtype=torch.float64))
    assert torch.equal(norm_cap(c * 0.5, c, 1.0), c * 0.5)  # below the cap: unchanged


def test_multi_cfg_with_one_condition_is_cfg():
    c, u = pair((5,), seed=5)
    torch.testing.assert_close(multi_cfg([c], u, [3.0]), cfg(c, u, 3.0))
    c2 = c.flip(0)
    torch.testing.assert_close(multi_cfg([c, c2], u, [2.0, -1.0]), u + 2.0 * (c - u) - (c2 - u))
    with pytest.raises(ValueError, match="scales: expected 2"):
        multi_cfg([c, c2], u, [1.0])


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 300), p=st.floats(0.0, 1.0))
def test_dynamic_threshold_quantile_equals_torch_quantile(n, p):
    x0 = 3.0 * torch.randn(3, n, generator=torch.Generator().manual_seed(n), dtype=torch.float64)
    q = torch.quantile(x0.abs(), p, dim=1, keepdim=True).clamp(min=1.0)
    torch.testing.assert_close(dynamic_threshold(x0, p), x0.clamp(-q, q) / q, rtol=1e-12, atol=1e-12)
