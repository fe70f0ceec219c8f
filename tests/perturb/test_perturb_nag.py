"""Normalized attention guidance (NAG, arXiv 2505.21179): the formulas, and oracles per network family.

Each oracle is a hand-written float64 attention with the paper's formulas written out here
(Z̃ = Z⁺ + φ(Z⁺ − Z⁻), φ = w − 1; r = ‖Z̃‖₁/‖Z⁺‖₁ per token; Ẑ = Z̃·min(r, τ)/r;
Z = α·Ẑ + (1 − α)·Z⁺), against the hooked model, which runs one forward of B rows.
"""

from __future__ import annotations

import math

import pytest
import torch

from tests.networks.test_networks_dit import randomised
from unified_guidance.diffusion import EpsModel
from unified_guidance.networks import TinyDiT
from unified_guidance.perturb import Rows, nag
from unified_guidance.perturb.nag_hooks import NagSpan, normalized
from unified_guidance.perturb.ops import normalized_attention

TOL = dict(rtol=0, atol=1e-10)


def paper_nag(z_pos, z_neg, w, tau, alpha):
    """The paper's three steps on ``(B, L, C)`` attention outputs (heads merged), w per row or a number."""
    w = torch.as_tensor(w, dtype=z_pos.dtype).reshape(-1, 1, 1)
    tilde = z_pos + (w - 1) * (z_pos - z_neg)
    r = tilde.abs().sum(-1, keepdim=True) / z_pos.abs().sum(-1, keepdim=True)
    hat = tilde * torch.minimum(r, torch.full_like(r, tau)) / r
    return alpha * hat + (1 - alpha) * z_pos


def attention(q, k, v, heads):
    """Softmax attention written out: ``(B, L, C)`` queries, ``(B, T, C)`` keys and values."""
    split = lambda a: a.unflatten(-1, (heads, -1)).transpose(1, 2)  # noqa: E731
    q, k, v = split(q), split(k), split(v)
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    return (weights @ v).transpose(1, 2).flatten(-2)


# -- the formulas -----------------------------------------------------------------------------


def test_normalized_attention_is_the_papers_three_steps_and_its_neutral_values_are_exact():
    g = torch.Generator().manual_seed(0)
    z_pos, z_neg = torch.randn(2, 3, 2, 5, 4, generator=g, dtype=torch.float64).unbind(0)  # (B, H, L, d)
    merged = lambda z: z.transpose(1, 2).flatten(-2)  # noqa: E731  (B, H, L, d) → (B, L, H·d)
    w = torch.tensor([1.5, 4.0, 9.0], dtype=torch.float64)
    ours = normalized_attention(z_pos, z_neg, w, tau=2.5, alpha=0.25)
    torch.testing.assert_close(merged(ours), paper_nag(merged(z_pos), merged(z_neg), w, 2.5, 0.25), **TOL)
    assert torch.equal(normalized_attention(z_pos, z_neg, 1.0, tau=2.5, alpha=0.7), z_pos)  # w = 1
    assert torch.equal(normalized_attention(z_pos, z_neg, 6.0, tau=2.5, alpha=0.0), z_pos)  # α = 0
    bounded = normalized_attention(z_pos, z_neg, 50.0, tau=1.5, alpha=1.0)  # α = 1: Ẑ, its norm ≤ τ‖Z⁺‖₁
    ratio = bounded.abs().sum((1, 3)) / z_pos.abs().sum((1, 3))
    assert float(ratio.max()) <= 1.5 + 1e-12 and float(ratio.max()) > 1.5 - 1e-9
    free = normalized_attention(z_pos, z_neg, 3.0, tau=math.inf, alpha=1.0)
    torch.testing.assert_close(free, z_pos + 2.0 * (z_pos - z_neg), **TOL)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [(dict(tau=0.5), "tau: expected τ ≥ 1"), (dict(alpha=1.5), r"alpha: expected α in \[0, 1\]"),
     (dict(context=""), "context: expected")],
)  # fmt: skip
def test_bad_nag_parameters_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        nag("attn2", **kwargs)


# -- TinyDiT with cross-attention --------------------------------------------------------------


def cross_dit(seed: int = 0) -> TinyDiT:
    net = TinyDiT(image_size=8, num_classes=3, width=16, depth=2, heads=2, cond_mode="cross", context_tokens=3)
    return randomised(net, seed).double().eval().requires_grad_(False)


def dit_by_hand(net: TinyDiT, x, t, labels, negative, w, tau, alpha, guided=(0, 1)):
    """TinyDiT's cross-mode forward written out, NAG in the blocks ``guided``."""
    f = torch.nn.functional
    emb = net.embed(x, t, torch.full_like(labels, net.num_classes))
    ctx_pos, ctx_neg = (net.context.table(y).view(len(y), -1, 16) for y in (labels, negative))
    h = net.patch(x).flatten(2).transpose(1, 2) + net.position
    for i, block in enumerate(net.blocks):
        shift1, scale1, gate1, shift2, scale2, gate2 = block.ada(emb)[:, None].chunk(6, dim=-1)
        a = block.norm1(h) * (1 + scale1) + shift1
        q, k, v = block.attn.qkv(a).chunk(3, dim=-1)
        h = h + gate1 * block.attn.proj(attention(q, k, v, 2))
        c = block.norm_cross(h)
        reads = [attention(block.cross.q(c), *block.cross.kv(ctx).chunk(2, dim=-1), 2) for ctx in (ctx_pos, ctx_neg)]
        z = paper_nag(*reads, w, tau, alpha) if i in guided else reads[0]
        h = h + block.cross.proj(z)
        m = block.norm2(h) * (1 + scale2) + shift2
        h = h + gate2 * block.mlp(m)
    shift, scale = net.final_ada(emb)[:, None].chunk(2, dim=-1)
    return net.unpatchify(net.out(f.layer_norm(h, (16,), eps=1e-6) * (1 + scale) + shift))


def test_nag_on_tinydit_cross_attention_equals_the_hand_written_forward_in_one_forward_of_b_rows():
    net = cross_dit()
    model = EpsModel(net, null_cond=3, num_classes=3)
    g = torch.Generator().manual_seed(2)
    x, t = torch.randn(3, 1, 8, 8, generator=g, dtype=torch.float64), torch.tensor([0.3, 0.5, 0.8]).double()
    labels, negative = torch.tensor([0, 1, 2]), torch.tensor([1, 2, 3])
    w = torch.tensor([4.0, 2.0, 7.0], dtype=torch.float64)
    pert = nag("blocks.*.cross", tau=2.0, alpha=0.5, context="context")
    with normalized(model, [NagSpan(pert, Rows.all(3), w, negative)]):
        ours = model(x, t, labels)
    torch.testing.assert_close(ours, dit_by_hand(net, x, t, labels, negative, w, 2.0, 0.5), **TOL)
    assert model.stats.rows == 3 and model.stats.calls == 1  # B rows, not 2B
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())  # hooks removed
    plain = dit_by_hand(net, x, t, labels, negative, 1.0, 2.0, 0.5)
    torch.testing.assert_close(model(x, t, labels), plain, **TOL)
    one_block = dit_by_hand(net, x, t, labels, negative, w, 2.0, 0.5, guided=(1,))
    with normalized(model, [NagSpan(nag("blocks.1.cross", tau=2.0, alpha=0.5, context="context"), Rows.all(3), w,
                                    negative)]):  # fmt: skip
        torch.testing.assert_close(model(x, t, labels), one_block, **TOL)


def test_nag_acts_on_its_rows_only_and_the_hooks_go_when_the_forward_raises():
    net = cross_dit(1)
    model = EpsModel(net, null_cond=3, num_classes=3)
    g = torch.Generator().manual_seed(3)
    x, t = torch.randn(4, 1, 8, 8, generator=g, dtype=torch.float64), torch.tensor(0.4, dtype=torch.float64)
    labels, negative = torch.tensor([0, 1, 3, 3]), torch.tensor([2, 0])
    pert = nag("cross", tau=2.5, alpha=0.25, context="context")
    with normalized(model, [NagSpan(pert, Rows(0, 2, 4), 5.0, negative)]):
        ours = model(x, t, labels)
    torch.testing.assert_close(ours[:2], dit_by_hand(net, x[:2], t, labels[:2], negative, 5.0, 2.5, 0.25), **TOL)
    torch.testing.assert_close(ours[2:], model(x[2:], t, labels[2:]), **TOL)
    with pytest.raises(ValueError, match="labels"), normalized(model, [NagSpan(pert, Rows.all(4), 5.0, labels)]):
        model(x, t, torch.tensor([0, 1, 2, 9]))
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in net.modules())


def test_a_context_module_that_is_not_there_and_a_negative_of_another_shape_are_named():
    model = EpsModel(cross_dit(), null_cond=3, num_classes=3)
    x, t, labels = torch.zeros(2, 1, 8, 8, dtype=torch.float64), torch.tensor(0.5), torch.tensor([0, 1])
    lost = nag("blocks.*.cross", context="text_encoder")
    with pytest.raises(ValueError, match="context: 'text_encoder' selects 0 modules of EpsModel"):
        with normalized(model, [NagSpan(lost, Rows.all(2), 3.0, labels)]):
            model(x, t, labels)
    raw = nag("blocks.*.cross")  # no context module: the labels themselves would be the context
    with pytest.raises(ValueError, match=r"cond: the negative context in '.*blocks.0.cross' has shape \(\) per row"):
        with normalized(model, [NagSpan(raw, Rows.all(2), 3.0, labels)]):
            model(x, t, labels)
