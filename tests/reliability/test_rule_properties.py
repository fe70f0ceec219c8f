"""Properties of the pure rule functions over shapes, dtypes and scales: finite in, finite out (or a clear error)."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unified_guidance.guidance.functional import (
    apg,
    cfg,
    cfg_zero_star,
    dynamic_threshold,
    norm_cap,
    rescale,
    static_clip,
)

DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
# |c|, |u| ≤ 100 and s ≤ 20: the guided value u + s(c − u) stays below 4,100, inside float16's range.
RULES = {
    "cfg": lambda c, u, s: cfg(c, u, s),
    "apg": lambda c, u, s: apg(c, u, s, eta=0.3, norm_threshold=5.0)[0],
    "cfg_zero_star": lambda c, u, s: cfg_zero_star(c, u, s),
    "rescale": lambda c, u, s: rescale(cfg(c, u, s), c, 0.7),
    "norm_cap": lambda c, u, s: norm_cap(cfg(c, u, s), c, 1.5),
    "dynamic_threshold": lambda c, u, s: dynamic_threshold(cfg(c, u, s), 0.9),
    "static_clip": lambda c, u, s: static_clip(cfg(c, u, s), 1.0),
}


@st.composite
def branches(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shape = (draw(st.integers(1, 3)), *draw(st.lists(st.integers(1, 6), min_size=1, max_size=3)))
    n = 1
    for d in shape:
        n *= d
    values = st.floats(-100, 100, allow_nan=False, width=16)
    # Zeros are drawn often: zero branches are where 0/0 hides (norm cap, projections, α*).
    pick = st.one_of(st.just(0.0), values)
    c = torch.tensor(draw(st.lists(pick, min_size=n, max_size=n)), dtype=dtype).reshape(shape)
    u = torch.tensor(draw(st.lists(pick, min_size=n, max_size=n)), dtype=dtype).reshape(shape)
    return c, u


@pytest.mark.parametrize("name", list(RULES))
@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(pair=branches(), scale=st.floats(0, 20, allow_nan=False))
def test_finite_branches_give_a_finite_result_of_their_shape_and_dtype(name, pair, scale):
    c, u = pair
    out = RULES[name](c, u, scale)
    assert out.shape == c.shape and out.dtype == c.dtype
    assert bool(torch.isfinite(out).all()), f"{name} made non-finite values from finite branches"


@pytest.mark.parametrize("name", list(RULES))
@settings(max_examples=10, deadline=None, derandomize=True, database=None)
@given(pair=branches(), bad=st.sampled_from([float("nan"), float("inf"), -float("inf")]))
def test_a_non_finite_scale_is_refused_by_name(name, pair, bad):
    c, u = pair
    with pytest.raises(ValueError, match="scale: expected a finite number"):
        RULES[name](c, u, bad)


@pytest.mark.parametrize("name", list(RULES))
@settings(max_examples=10, deadline=None, derandomize=True, database=None)
@given(pair=branches(), other=st.sampled_from(DTYPES), extra=st.integers(1, 3))
def test_branches_that_disagree_in_shape_or_dtype_are_refused(name, pair, other, extra):
    c, u = pair
    wrong_shape = torch.zeros(*u.shape[:-1], u.shape[-1] + extra, dtype=u.dtype)
    with pytest.raises(ValueError, match="expected the shape of"):
        RULES[name](c, wrong_shape, 2.0)
    if other != c.dtype:
        with pytest.raises(ValueError, match="expected the dtype of"):
            RULES[name](c, u.to(other), 2.0)


@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(pair=branches(), scale=st.floats(0, 20, allow_nan=False))
def test_scale_one_is_the_conditional_prediction_and_zero_the_reference(pair, scale):
    c, u = pair
    assert torch.equal(cfg(c, u, 1.0), c)
    assert torch.equal(cfg(c, u, 0.0), u)
    torch.testing.assert_close(apg(c, u, 1.0)[0], c)  # s = 1: no guidance term at all
