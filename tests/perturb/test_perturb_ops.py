"""The perturbations against hand-written forwards: PAG's identity map, SEG's blur and its
σ = ∞ limit, SLG's skipped block; selection errors; hooks always removed."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from tests.perturb.attention_nets import TokenNet
from unified_guidance.perturb import Rows, pag, perturbed, seg, slg
from unified_guidance.perturb.ops import blur_queries, gaussian_matrix, identity_attention
from unified_guidance.perturb.spec import BlurredQueries


def _net(depth: int = 2) -> TokenNet:
    torch.manual_seed(0)
    return TokenNet(depth=depth).double()


def _inputs(batch: int = 3):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 1, 4, 4, generator=g, dtype=torch.float64)
    return x, torch.tensor(500.0, dtype=torch.float64), torch.arange(batch) % 4


def _by_hand(net: TokenNet, x, t, labels, attend) -> torch.Tensor:
    """The network's forward with block 1's attention ``attend(q, k, v)`` written out."""
    h = net.inp(x.flatten(1)[..., None]) + net.pos
    h = h + (net.label(labels) + net.time(t.expand(x.shape[0])[:, None] / 1000))[:, None]
    for i, block in enumerate(net.blocks):
        a = block.attn
        q, k, v = a.qkv(h).unflatten(-1, (3, a.heads, -1)).permute(2, 0, 3, 1, 4)
        o = attend(q, k, v) if i == 1 else F.scaled_dot_product_attention(q, k, v)
        h = h + a.out(o.transpose(1, 2).flatten(-2))
        h = h + block.mlp(h)
    return net.head(h).squeeze(-1).unflatten(1, (1, 4, 4))


def test_pag_is_the_forward_with_values_for_attention():
    net, (x, t, y) = _net(), _inputs()
    with perturbed(net, [(pag("blocks.1.attn"), Rows.all(3))]):
        out = net(x, t, y)
    torch.testing.assert_close(out, _by_hand(net, x, t, y, lambda q, k, v: v), rtol=0, atol=1e-13)
    assert not torch.allclose(out, net(x, t, y))


def test_seg_at_infinite_sigma_attends_with_the_mean_query():
    net, (x, t, y) = _net(), _inputs()
    with perturbed(net, [(seg("blocks.1.attn"), Rows.all(3))]):
        out = net(x, t, y)

    def mean_query(q, k, v):
        q_bar = q.mean(dim=2, keepdim=True).expand_as(q)
        weights = torch.softmax(q_bar @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
        return weights @ v

    torch.testing.assert_close(out, _by_hand(net, x, t, y, mean_query), rtol=0, atol=1e-12)


def test_gaussian_blur_is_the_separable_2d_gaussian_and_its_limits():
    q = torch.randn(2, 3, 12, 5, dtype=torch.float64)
    sigma = 1.3
    ii, jj = torch.meshgrid(torch.arange(3.0), torch.arange(4.0), indexing="ij")
    pos = torch.stack([ii.flatten(), jj.flatten()], 1).double()
    d2 = ((pos[:, None] - pos[None]) ** 2).sum(-1)
    dense = torch.exp(-d2 / (2 * sigma**2))  # the 2-D Gaussian over the 3×4 grid, renormalised per token
    dense = dense / dense.sum(1, keepdim=True)
    a = torch.kron(*(gaussian_matrix(n, sigma, dtype=torch.float64, device=q.device) for n in (3, 4)))
    torch.testing.assert_close(a, dense, rtol=0, atol=1e-15)
    torch.testing.assert_close(blur_queries(q, (3, 4), sigma), a @ q, rtol=0, atol=1e-13)
    torch.testing.assert_close(blur_queries(q, (3, 4), 1e-3), q, rtol=0, atol=1e-13)
    torch.testing.assert_close(blur_queries(q, (3, 4), math.inf), q.mean(2, keepdim=True).expand_as(q))
    const = torch.ones(1, 1, 12, 2, dtype=torch.float64) * 7
    torch.testing.assert_close(blur_queries(const, (3, 4), 2.0), const, rtol=0, atol=1e-13)


def test_slg_is_the_forward_without_the_block():
    net, (x, t, y) = _net(3), _inputs()
    with perturbed(net, [(slg("blocks.1"), Rows.all(3))]):
        out = net(x, t, y)
    skipped = _net(3)
    del skipped.blocks[1]
    torch.testing.assert_close(out, skipped(x, t, y), rtol=0, atol=0)


@pytest.mark.parametrize("pert", [pag("blocks.*.attn"), seg("attn", sigma=0.7), slg("blocks.0", "blocks.1")])
def test_rows_outside_the_span_are_untouched_and_the_span_equals_its_own_forward(pert):
    net, (x, t, y) = _net(), _inputs(5)
    with perturbed(net, [(pert, Rows(2, 4, 5))]):
        out = net(x, t, y)
    with perturbed(net, [(pert, Rows.all(2))]):
        alone = net(x[2:4], t, y[2:4])
    plain = net(x, t, y)
    torch.testing.assert_close(out[:2], plain[:2], rtol=0, atol=0)
    torch.testing.assert_close(out[4:], plain[4:], rtol=0, atol=0)
    torch.testing.assert_close(out[2:4], alone, rtol=0, atol=1e-13)


def test_two_perturbations_on_one_module_each_act_on_their_rows():
    net, (x, t, y) = _net(), _inputs(4)
    with perturbed(net, [(pag("blocks.1.attn"), Rows(0, 2, 4)), (seg("blocks.1.attn"), Rows(2, 4, 4))]):
        out = net(x, t, y)
    with perturbed(net, [(pag("blocks.1.attn"), Rows.all(2))]):
        a = net(x[:2], t, y[:2])
    with perturbed(net, [(seg("blocks.1.attn"), Rows.all(2))]):
        b = net(x[2:], t, y[2:])
    torch.testing.assert_close(out, torch.cat([a, b]), rtol=0, atol=1e-13)


def test_an_empty_selection_is_refused_naming_the_candidates():
    with pytest.raises(ValueError, match=r"IdentityAttention selects no module .*'blocks\.9\.attn'.*blocks\.0"):
        pag("blocks.9.attn").select(_net())
    with pytest.raises(ValueError, match="modules: expected module path patterns"):
        pag()


def test_hooks_and_modes_are_gone_after_an_exception_inside_the_forward():
    net, (x, t, y) = _net(), _inputs()
    boom = RuntimeError("inside the forward")

    def explode(module, args, output):
        raise boom

    handle = net.blocks[1].mlp.register_forward_hook(explode)
    for pert in (pag("blocks.1.attn"), slg("blocks.0")):
        with pytest.raises(RuntimeError, match="inside the forward"), perturbed(net, [(pert, Rows(1, 3, 3))]):
            net(x, t, y)
        for module in net.modules():
            assert not module._forward_pre_hooks
            assert not [h for h in module._forward_hooks.values() if h is not explode]
        assert torch._C._len_torch_function_stack() == 0
    handle.remove()
    torch.testing.assert_close(net(x, t, y), _by_hand(net, x, t, y, F.scaled_dot_product_attention))


def test_identity_attention_under_a_cache_and_grouped_heads():
    q = torch.randn(2, 4, 3, 5)
    v = torch.randn(2, 2, 7, 5)
    out = identity_attention(q, v)
    torch.testing.assert_close(out, v[:, :, 4:].repeat_interleave(2, dim=1))
    with pytest.raises(ValueError, match="at least as many keys as queries"):
        identity_attention(torch.randn(1, 1, 8, 2), torch.randn(1, 1, 3, 2))


def test_blurred_queries_check_their_arguments():
    with pytest.raises(ValueError, match="sigma: expected σ > 0"):
        BlurredQueries("attn", sigma=0.0)
    with pytest.raises(ValueError, match=r"grid: expected two positive integers"):
        BlurredQueries("attn", grid=(4,))
    with pytest.raises(ValueError, match=r"grid: expected h·w = 12"):
        blur_queries(torch.randn(1, 1, 12, 2), (4, 4), 1.0)
