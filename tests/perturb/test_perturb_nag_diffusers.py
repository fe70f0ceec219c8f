"""NAG on diffusers models built locally (tiny configs, random weights, float64, nothing downloaded).

Oracle: the selected cross-attention modules given a hand-written attention processor that
reads both contexts and applies the paper's formulas (:func:`tests.perturb.test_perturb_nag.paper_nag`);
the rest of the network is diffusers' own. Ours is the unmodified model under :func:`normalized`,
one forward of B rows.
"""

from __future__ import annotations

import pytest
import torch
from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler, WanTransformer3DModel

from tests.diffusion.diffusers_unets import tiny_text_unet
from tests.perturb.test_perturb_nag import TOL, attention, paper_nag
from unified_guidance.diffusion.interop import wrap_unet
from unified_guidance.flow.interop import wrap_transformer
from unified_guidance.guidance import Guidance, Reference, guide
from unified_guidance.perturb import Rows, nag
from unified_guidance.perturb.nag_hooks import NagSpan, normalized

K = 499


class HandNag:
    """A diffusers attention processor: softmax attention by hand against ``positive`` and the
    processor's ``negative`` context, combined by the paper's NAG."""

    def __init__(self, negative, w, tau, alpha, qk_norm: bool = False) -> None:
        self.negative, self.w, self.tau, self.alpha, self.qk_norm = negative, w, tau, alpha, qk_norm

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        assert attention_mask is None and hidden_states.ndim == 3
        q = attn.to_q(hidden_states)
        q = attn.norm_q(q) if self.qk_norm else q
        reads = []
        for ctx in (encoder_hidden_states, self.negative):
            k, v = attn.to_k(ctx), attn.to_v(ctx)
            reads.append(attention(q, attn.norm_k(k) if self.qk_norm else k, v, attn.heads))
        return attn.to_out[1](attn.to_out[0](paper_nag(*reads, self.w, self.tau, self.alpha)))


def swapped(modules, processor):
    """Give ``modules`` the processor; returns a function that puts their own back."""
    saved = [m.processor for m in modules]
    for m in modules:
        m.set_processor(processor)
    return lambda: [m.set_processor(p) for m, p in zip(modules, saved, strict=True)]


def test_nag_on_unet_cross_attention_equals_the_hand_written_processor():
    unet = tiny_text_unet().double()
    g = torch.Generator().manual_seed(4)
    x, emb, neg = (torch.randn(*s, generator=g, dtype=torch.float64) for s in ((2, 1, 8, 8), (2, 5, 16), (2, 5, 16)))
    w = torch.tensor([3.0, 6.0], dtype=torch.float64)
    attn2 = [m for name, m in unet.named_modules() if name.endswith("attn2")]
    assert len(attn2) == 4  # the down, mid and up blocks' cross-attentions
    restore = swapped(attn2, HandNag(neg, w, 2.5, 0.25))
    try:
        oracle = unet(x, torch.tensor(K), encoder_hidden_states=emb).sample
    finally:
        restore()
    model = wrap_unet(unet, DDIMScheduler(), null_cond=torch.zeros(5, 16, dtype=torch.float64))
    t = torch.tensor((K + 1) / 1000, dtype=torch.float64)
    with normalized(model, [NagSpan(nag("attn2"), Rows.all(2), w, neg)]):
        ours = model(x, t, emb)
    torch.testing.assert_close(ours, oracle, **TOL)
    assert model.stats.rows == 2 and model.stats.calls == 1
    assert not (ours - model(x, t, emb)).abs().max() < 1e-6  # it does act


def tiny_wan() -> WanTransformer3DModel:
    torch.manual_seed(0)
    model = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=4,
        text_dim=12, freq_dim=16, ffn_dim=32, num_layers=2, rope_max_seq_len=32,
    )  # fmt: skip
    return model.double().eval().requires_grad_(False)


def test_nag_on_wan_cross_attention_reads_the_negative_through_the_text_embedder():
    wan = tiny_wan()
    g = torch.Generator().manual_seed(5)
    x = torch.randn(2, 4, 1, 4, 4, generator=g, dtype=torch.float64)
    text, neg = (torch.randn(2, 6, 12, generator=g, dtype=torch.float64) for _ in range(2))
    sigma = torch.tensor([0.7, 0.7], dtype=torch.float64)
    attn2 = [b.attn2 for b in wan.blocks]
    negative_context = wan.condition_embedder.text_embedder(neg)
    restore = swapped(attn2, HandNag(negative_context, 4.0, 2.5, 0.5, qk_norm=True))
    try:
        oracle = wan(hidden_states=x, timestep=(sigma * 1000).float(), encoder_hidden_states=text).sample
    finally:
        restore()
    model = wrap_transformer(wan, FlowMatchEulerDiscreteScheduler(), null_cond=None)
    pert = nag("blocks.*.attn2", alpha=0.5, context="condition_embedder.text_embedder")
    with normalized(model, [NagSpan(pert, Rows.all(2), 4.0, {"encoder_hidden_states": neg})]):
        ours = model(x, sigma, {"encoder_hidden_states": text})
    torch.testing.assert_close(ours, oracle, **TOL)
    assert model.stats.rows == 2


def test_nag_on_sd3_joint_attention_is_refused_by_name_and_installs_nothing():
    from tests.perturb.test_perturb_diffusers import sd3

    transformer, case = sd3()
    model = wrap_transformer(transformer, FlowMatchEulerDiscreteScheduler(), null_cond=case["null"])
    with pytest.raises(ValueError, match=r"transformer_blocks.0.attn' also reads added keys and values"):
        guide(model, Guidance(references=[Reference(nag("transformer_blocks.0.attn"), 3.0)]))
    negative = {k: v.flip(0) for k, v in case["cond"].items()}
    span = NagSpan(nag("transformer_blocks.*.attn"), Rows.all(2), 3.0, negative)
    with pytest.raises(ValueError, match="joint text–image attention"), normalized(model, [span]):
        model(case["x"], torch.tensor([0.5, 0.5], dtype=torch.float64), case["cond"])
    assert not any(m._forward_hooks or m._forward_pre_hooks for m in transformer.modules())
