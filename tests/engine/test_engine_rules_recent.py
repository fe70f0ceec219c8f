"""The newer rules against diffusers' guiders (exact oracles) and their closed forms."""

import kornia
import pytest
import torch
from diffusers.guiders import FrequencyDecoupledGuidance, MagnitudeAwareGuidance, TangentialClassifierFreeGuidance
from hypothesis import given, settings
from hypothesis import strategies as st

from unified_guidance.guidance.frequency import fdg, laplacian_pyramid, rebuild_pyramid
from unified_guidance.guidance.functional import cfg, mambo_g, multi_cfg, perp_neg, tangential_reference, tcfg

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)
scales = st.floats(-3.0, 20.0, allow_nan=False)


def pair(shape, seed=0, dtype=torch.float64):
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(3, *shape, generator=gen, dtype=dtype) for _ in range(2))


def test_tcfg_equals_diffusers_tangential_guider():
    c, u = pair((4, 8, 8), seed=1, dtype=torch.float32)
    guider = TangentialClassifierFreeGuidance(guidance_scale=5.0)
    # Its is_conditional property is broken (diffusers #14744's neighbourhood); forward alone is the rule.
    expected = guider.forward(c, u).pred
    torch.testing.assert_close(tcfg(c, u, 5.0), expected, rtol=1e-5, atol=1e-5)


@settings(max_examples=25, deadline=None)
@given(shape=shapes, s=scales, k=st.floats(0.1, 3.0))
def test_tcfg_with_u_along_the_top_direction_is_cfg(shape, s, k):
    c, _ = pair(shape, seed=2)
    u = k * c  # rank one: the top singular direction is c's, u′ = u
    torch.testing.assert_close(tangential_reference(c, u), u, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(tcfg(c, u, s), cfg(c, u, s), rtol=1e-8, atol=1e-8)


def test_tcfg_drops_the_reference_component_orthogonal_to_the_shared_direction():
    c = torch.tensor([[3.0, 0.0]], dtype=torch.float64)
    u = torch.tensor([[2.0, 1.0]], dtype=torch.float64)
    ref = tangential_reference(c, u)
    v = torch.linalg.svd(torch.stack([c[0], u[0]]), full_matrices=False).Vh[0]
    torch.testing.assert_close(ref[0], (u[0] @ v) * v)
    torch.testing.assert_close(tcfg(c, u, 1.0), c)


def test_mambo_g_equals_diffusers_on_3d_tensors():
    c, u = pair((6, 5), seed=3, dtype=torch.float32)
    expected = MagnitudeAwareGuidance(guidance_scale=7.0, alpha=2.0).forward(c, u).pred
    torch.testing.assert_close(mambo_g(c, u, 7.0, alpha=2.0), expected, rtol=1e-5, atol=1e-5)


def test_mambo_g_runs_on_images_where_diffusers_crashes():
    c, u = pair((2, 4, 4), seed=4)
    with pytest.raises((RuntimeError, ValueError)):
        MagnitudeAwareGuidance(guidance_scale=7.0, alpha=2.0).forward(c, u)
    out = mambo_g(c, u, 7.0, alpha=2.0)
    ratio = (c - u).flatten(1).norm(dim=1) / u.flatten(1).norm(dim=1)
    s_eff = 1 + 6.0 * torch.exp(-2.0 * ratio)
    torch.testing.assert_close(out, u + s_eff[:, None, None, None] * (c - u))


@settings(max_examples=25, deadline=None)
@given(shape=shapes, s=scales)
def test_mambo_g_with_alpha_zero_is_cfg(shape, s):
    c, u = pair(shape, seed=5)
    torch.testing.assert_close(mambo_g(c, u, s, alpha=0.0), cfg(c, u, s), rtol=1e-10, atol=1e-10)


def test_perp_neg_with_orthogonal_differences_is_composition():
    u = torch.tensor([[1.0, 1.0, 1.0]], dtype=torch.float64)
    pos = u + torch.tensor([[2.0, 0.0, 0.0]], dtype=torch.float64)
    neg = u + torch.tensor([[0.0, 3.0, -1.0]], dtype=torch.float64)
    out = perp_neg(pos, u, [neg], 4.0, 0.5)
    torch.testing.assert_close(out, multi_cfg([pos, neg], u, [4.0, -2.0]))


def test_perp_neg_ignores_the_part_of_a_negative_along_the_positive():
    c, u = pair((5,), seed=6)
    neg = u + 2.5 * (c - u)  # entirely along the positive difference: nothing is removed
    torch.testing.assert_close(perp_neg(c, u, [neg], 3.0, 1.0), cfg(c, u, 3.0))
    with pytest.raises(ValueError, match="weights: expected 1"):
        perp_neg(c, u, [neg], 3.0, [1.0, 2.0])


def test_laplacian_pyramid_rebuilds_exactly_and_matches_kornia():
    # kornia is in the tests extra only: the oracle of our own pyramid, never a dependency of the library.
    x, _ = pair((2, 16, 8), seed=7, dtype=torch.float32)
    ours = laplacian_pyramid(x, 3)
    theirs = kornia.geometry.transform.build_laplacian_pyramid(x, 3)
    for a, b in zip(ours, theirs, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(rebuild_pyramid(ours), x, rtol=1e-5, atol=1e-5)


def test_fdg_equals_diffusers_frequency_decoupled_guider():
    c, u = pair((2, 8, 8), seed=8, dtype=torch.float32)
    guider = FrequencyDecoupledGuidance(guidance_scales=[9.0, 3.0], parallel_weights=[0.5, 1.0])
    expected = guider.forward(c, u).pred
    torch.testing.assert_close(fdg(c, u, (9.0, 3.0), (0.5, 1.0)), expected, rtol=1e-4, atol=1e-4)


@settings(max_examples=15, deadline=None)
@given(s=scales, levels=st.integers(1, 3))
def test_fdg_with_equal_scales_is_cfg(s, levels):
    c, u = pair((2, 8, 8), seed=9)
    torch.testing.assert_close(fdg(c, u, (s,) * levels), cfg(c, u, s), rtol=1e-9, atol=1e-9)


def test_fdg_refuses_non_spatial_inputs_by_name():
    c, u = pair((16,), seed=10)
    with pytest.raises(ValueError, match=r"cond: expected image-shaped predictions \(B, C, H, W\)"):
        fdg(c, u, (5.0, 2.0))
    c, u = pair((1, 6, 6), seed=10)
    with pytest.raises(ValueError, match="divisible by 2"):
        fdg(c, u, (5.0, 2.0, 1.0))
