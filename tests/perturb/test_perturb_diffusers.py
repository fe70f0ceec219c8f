"""PAG, SEG and SLG on diffusers models against diffusers' own guiders, hooks and ``skip_layers``.

Oracles, on a tiny ``UNet2DConditionModel`` and a tiny ``SD3Transformer2DModel`` (random
weights, float64): diffusers' ``PerturbedAttentionGuidance`` and ``SkipLayerGuidance`` driven
through their protocol (``set_state``; per batch ``prepare_models`` → forward →
``cleanup_models``; then the guider on the batches), ``SD3Transformer2DModel(skip_layers=)``,
and attention written out by hand. Ours is one stacked forward of the 3B rows (cond, ∅, pert).

Scales: with CFG on, diffusers computes u + s(c − u) + s_p(c − c_pert), ours at w = 1 + s_p;
with CFG off (``guidance_scale=1``) its formula is c_pert + s_p(c − c_pert), ours at w = s_p.
Two defects of diffusers' guiders are pinned here (docs/diffusers.md, "Perturbed references"):
with CFG off they never perturb (the second batch takes the ∅ condition and no hook), and
on SD3 a skipped block hands back its two streams swapped.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from diffusers import DDIMScheduler, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, UNet2DConditionModel
from diffusers.guiders import PerturbedAttentionGuidance, SkipLayerGuidance
from diffusers.hooks import LayerSkipConfig

from tests.diffusion.diffusers_unets import tiny_text_unet
from unified_guidance import Guidance
from unified_guidance.diffusion.interop import wrap_unet
from unified_guidance.flow.interop import wrap_transformer
from unified_guidance.guidance import Reference, guide
from unified_guidance.perturb import Rows, pag, perturbed, seg, slg

K = 499  # the UNet's timestep; our time t = (K + 1)/N
SIGMA = 0.5  # SD3's σ; its timestep σ·N
TOL = dict(rtol=0, atol=1e-12)
UNET_SITES = {  # diffusers' fqn of a block list → our pattern for its block 0's self-attention
    "down_blocks.0.attentions.0.transformer_blocks": "down_blocks.0.attentions.0.transformer_blocks.0.attn1",
    "up_blocks.1.attentions.1.transformer_blocks": "up_blocks.1.attentions.1.transformer_blocks.0.attn1",
}


@pytest.fixture(scope="module")
def unet() -> UNet2DConditionModel:
    return tiny_text_unet().double()


def sd3(text_tokens: int = 5) -> tuple[SD3Transformer2DModel, dict]:
    """Three joint blocks (the last drops its text stream) and one call's inputs (16 image tokens)."""
    torch.manual_seed(0)
    model = SD3Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=4, out_channels=4, num_layers=3, attention_head_dim=8,
        num_attention_heads=2, joint_attention_dim=16, caption_projection_dim=16, pooled_projection_dim=8,
        pos_embed_max_size=8,
    )  # fmt: skip
    g = torch.Generator().manual_seed(0)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64)  # noqa: E731
    x, cond = r(2, 4, 8, 8), {"encoder_hidden_states": r(2, text_tokens, 16), "pooled_projections": r(2, 8)}
    null = {"encoder_hidden_states": r(text_tokens, 16), "pooled_projections": r(8)}
    return model.eval().requires_grad_(False).double(), {"x": x, "cond": cond, "null": null}


def _unet_inputs():
    g = torch.Generator().manual_seed(1)
    emb, x = torch.randn(2, 5, 16, generator=g), torch.randn(2, 1, 8, 8, generator=g)
    return x.double(), emb.double(), torch.zeros(5, 16, dtype=torch.float64)


def _drive(guider, denoiser, call, cond, uncond):
    """diffusers' guider protocol for one step; returns its guided prediction and each batch's prediction."""
    guider.set_state(step=0, num_inference_steps=None, timestep=torch.tensor(K))
    batches = guider.prepare_inputs({"cond": (cond, uncond)})
    for batch in batches:
        guider.prepare_models(denoiser)
        batch.noise_pred = call(batch.cond)
        guider.cleanup_models(denoiser)
    return guider(batches).pred, [b.noise_pred for b in batches]


def _unet_case(unet):
    x, emb, null = _unet_inputs()
    call = lambda e: unet(x, torch.tensor(K), encoder_hidden_states=e).sample  # noqa: E731
    model = wrap_unet(unet, DDIMScheduler(), null_cond=null)
    return model, call, (x, torch.tensor((K + 1) / 1000, dtype=torch.float64), emb), null.expand(2, 5, 16)


def _pag_guider(scale, fqn, perturbed_scale=2.0):
    config = LayerSkipConfig([0], fqn=fqn, skip_attention=False, skip_attention_scores=True, skip_ff=False)
    return PerturbedAttentionGuidance(
        guidance_scale=scale, perturbed_guidance_scale=perturbed_scale, perturbed_guidance_config=config,
        perturbed_guidance_start=0.0, perturbed_guidance_stop=1.0,
    )  # fmt: skip


@pytest.mark.parametrize("fqn", list(UNET_SITES))
def test_pag_on_unet_self_attention_equals_diffusers_guider_in_one_forward(unet, fqn):
    model, call, (x, t, emb), uncond = _unet_case(unet)
    s, s_p = 3.0, 2.0
    theirs, (c, _, c_pert) = _drive(_pag_guider(s, fqn, s_p), unet, call, emb, uncond)
    ours = guide(model, Guidance(scale=s, also=[Reference(pag(UNET_SITES[fqn]), scale=1 + s_p)])).evaluate(x, t, emb)
    assert (model.stats.calls, model.stats.rows) == (1, 3 * x.shape[0])
    torch.testing.assert_close(ours.guided, theirs, **TOL)
    torch.testing.assert_close(ours.references[1], c_pert, **TOL)
    assert (c_pert - c).abs().max() > 1e-3  # the perturbation acts


def test_pag_without_cfg_is_its_formula_and_diffusers_guider_then_never_perturbs(unet):
    fqn = "down_blocks.0.attentions.0.transformer_blocks"
    model, call, (x, t, emb), uncond = _unet_case(unet)
    s_p = 2.0
    _, (c, u, c_pert) = _drive(_pag_guider(3.0, fqn, s_p), unet, call, emb, uncond)
    off = _pag_guider(1.0, fqn, s_p)
    ours = guide(model, Guidance(scale=1.0, also=[Reference(pag(UNET_SITES[fqn]), scale=s_p)]))(x, t, emb)
    assert model.stats.rows == 2 * x.shape[0]
    torch.testing.assert_close(ours, off.forward(c, None, c_pert).pred, **TOL)  # c_pert + s_p(c − c_pert)
    # diffusers' protocol with CFG off: the "skip" batch takes the ∅ condition and runs unhooked
    theirs, preds = _drive(off, unet, call, emb, uncond)
    torch.testing.assert_close(preds[1], u, **TOL)
    torch.testing.assert_close(theirs, u + s_p * (c - u), **TOL)
    assert (theirs - ours).abs().max() > 1e-2


def test_pag_on_sd3_joint_attention_is_values_for_both_streams():
    """The joint map (image + text tokens) becomes the identity: each stream's attention output is
    its own value projection. (diffusers' PAG guider cannot hook SD3: JointAttnProcessor2_0 is
    not in its processor registry; its SD3 PAG pipeline keeps image-to-text attention instead.)"""
    transformer, inp = sd3()
    x, cond, null = inp["x"], inp["cond"], inp["null"]
    attn = transformer.transformer_blocks[0].attn

    def values(module, args, kwargs, out):
        h, e = kwargs["hidden_states"], kwargs["encoder_hidden_states"]
        return attn.to_out[0](attn.to_v(h)), attn.to_add_out(attn.add_v_proj(e))

    model = wrap_transformer(transformer, FlowMatchEulerDiscreteScheduler(shift=3.0), null_cond=null)
    sigma = torch.tensor(SIGMA, dtype=torch.float64)
    c, u = model(x, sigma, cond), model(x, sigma, None)
    handle = attn.register_forward_hook(values, with_kwargs=True)
    c_pert = model(x, sigma, cond)
    handle.remove()
    g = guide(model, Guidance(scale=3.0, also=[Reference(pag("transformer_blocks.0.attn"), scale=3.0)]))
    out = g.evaluate(x, sigma, cond)
    torch.testing.assert_close(out.references[1], c_pert, **TOL)
    torch.testing.assert_close(out.guided, u + 3.0 * (c - u) + 2.0 * (c - c_pert), **TOL)
    assert (c_pert - c).abs().max() > 1e-3


def test_slg_on_a_unet_transformer_block_equals_diffusers_guider(unet):
    fqn = "up_blocks.1.attentions.0.transformer_blocks"
    model, call, (x, t, emb), uncond = _unet_case(unet)
    guider = SkipLayerGuidance(
        guidance_scale=4.0, skip_layer_guidance_scale=1.5, skip_layer_config=LayerSkipConfig([0], fqn=fqn),
        skip_layer_guidance_start=0.0, skip_layer_guidance_stop=1.0,
    )  # fmt: skip
    theirs, _ = _drive(guider, unet, call, emb, uncond)
    ours = guide(model, Guidance(scale=4.0, also=[Reference(slg(f"{fqn}.0"), scale=2.5)]))(x, t, emb)
    torch.testing.assert_close(ours, theirs, **TOL)


@pytest.mark.parametrize("layer", [0, 1, 2])
def test_slg_on_sd3_equals_its_own_skip_layers(layer):
    """Block 2 is SD3's last (``context_pre_only``): it returns ``(None, hidden_states)``."""
    transformer, inp = sd3()
    x, cond, null = inp["x"], inp["cond"], inp["null"]
    timestep = torch.tensor(SIGMA, dtype=torch.float32).expand(2) * 1000
    run = lambda c, **kw: transformer(hidden_states=x, timestep=timestep, return_dict=False, **c, **kw)[0]  # noqa: E731
    c, c_skip = run(cond), run(cond, skip_layers=[layer])
    u = run({k: v.expand(2, *v.shape) for k, v in null.items()})
    model = wrap_transformer(transformer, FlowMatchEulerDiscreteScheduler(shift=3.0), null_cond=null)
    g = guide(model, Guidance(scale=4.0, also=[Reference(slg(f"transformer_blocks.{layer}"), scale=3.0)]))
    out = g.evaluate(x, torch.tensor(SIGMA, dtype=torch.float64), cond)
    torch.testing.assert_close(out.references[1], c_skip, **TOL)
    torch.testing.assert_close(out.guided, u + 4.0 * (c - u) + 2.0 * (c - c_skip), **TOL)


@pytest.mark.parametrize("tokens", [16, 5])
def test_diffusers_slg_on_sd3_swaps_the_streams_of_the_skipped_block(tokens):
    """diffusers' block-skip hook returns (hidden, encoder_hidden); SD3's blocks return (encoder_hidden,
    hidden). As many text as image tokens (16): a silently different model; else the forward fails."""
    transformer, inp = sd3(text_tokens=tokens)
    x, cond = inp["x"], inp["cond"]
    timestep = torch.tensor(SIGMA, dtype=torch.float32).expand(2) * 1000
    run = lambda **kw: transformer(hidden_states=x, timestep=timestep, return_dict=False, **cond, **kw)[0]  # noqa: E731
    guider = SkipLayerGuidance(guidance_scale=3.0, skip_layer_config=LayerSkipConfig([1], fqn="transformer_blocks"))
    guider.set_state(step=0, num_inference_steps=None, timestep=timestep)
    for _ in range(2):  # cond and uncond batches: no hooks
        guider.prepare_models(transformer)
        guider.cleanup_models(transformer)
    guider.prepare_models(transformer)  # the third batch: the hooked one
    try:
        if tokens != 16:
            with pytest.raises(RuntimeError, match="is invalid for input of size"):
                run()
            return
        theirs = run()
    finally:
        guider.cleanup_models(transformer)
    swap = lambda m, args, kwargs, out: (kwargs["hidden_states"], kwargs["encoder_hidden_states"])  # noqa: E731
    handle = transformer.transformer_blocks[1].register_forward_hook(swap, with_kwargs=True)
    swapped = run()
    handle.remove()
    torch.testing.assert_close(theirs, swapped, **TOL)
    assert (theirs - run(skip_layers=[1])).abs().max() > 1e-2


def test_pag_on_cross_attention_is_refused(unet):
    model, _, (x, t, emb), _ = _unet_case(unet)
    cross = pag("down_blocks.0.attentions.0.transformer_blocks.0.attn2")
    g = guide(model, Guidance(scale=2.0, also=[Reference(cross, 2.0)]))
    with pytest.raises(ValueError, match=r"modules: '.*attn2' is cross-attention; IdentityAttention acts on self"):
        g(x, t, emb)


def test_seg_at_infinite_sigma_on_unet_is_mean_query_attention_by_hand(unet):
    """The 8×8 latent gives 64 tokens in ``down_blocks.0``: a square grid, σ = ∞ the mean query."""
    path = "down_blocks.0.attentions.0.transformer_blocks.0.attn1"
    model, _, (x, t, emb), _ = _unet_case(unet)
    attn = unet.get_submodule(path)

    def mean_query(module, args, kwargs, out):
        h = kwargs.get("hidden_states", args[0] if args else None)
        split = lambda z: z.unflatten(-1, (attn.heads, -1)).transpose(1, 2)  # noqa: E731
        q, k, v = split(attn.to_q(h)), split(attn.to_k(h)), split(attn.to_v(h))
        q = q.mean(dim=2, keepdim=True).expand_as(q)
        weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
        return attn.to_out[0]((weights @ v).transpose(1, 2).flatten(-2))

    with perturbed(model, [(seg(path), Rows.all(2))]):
        ours = model(x, t, emb)
    handle = attn.register_forward_hook(mean_query, with_kwargs=True)
    by_hand = model(x, t, emb)
    handle.remove()
    assert attn.to_out[1].p == 0 and not attn.residual_connection and attn.rescale_output_factor == 1
    torch.testing.assert_close(ours, by_hand, **TOL)
    assert (ours - model(x, t, emb)).abs().max() > 1e-4


UNET_PERTURBATIONS = [
    pag("attn1"),
    seg("down_blocks.0.attentions.0.transformer_blocks.0.attn1", sigma=1.5),
    seg("attn1"),
    slg("up_blocks.1.attentions.*.transformer_blocks.0"),
]


@pytest.mark.parametrize("pert", UNET_PERTURBATIONS, ids=lambda p: f"{p.kind}-{p.modules[0]}")
def test_one_stacked_unet_forward_equals_sequential_passes(unet, pert):
    _, _, (x, t, emb), _ = _unet_case(unet)
    outs, rows = [], []
    for stacked in (True, False):
        model = wrap_unet(unet, DDIMScheduler(), null_cond=torch.zeros(5, 16, dtype=torch.float64))
        g = guide(model, Guidance(scale=3.0, also=[Reference(pert, scale=2.5)], batch_branches=stacked))
        outs.append(g.evaluate(x, t, emb))
        rows.append((model.stats.calls, model.stats.rows))
    assert rows == [(1, 6), (3, 6)]
    for a, b in zip((outs[0].guided, outs[0].references[1]), (outs[1].guided, outs[1].references[1]), strict=True):
        torch.testing.assert_close(a, b, **TOL)
    assert F.mse_loss(outs[0].references[1], outs[0].cond) > 0
