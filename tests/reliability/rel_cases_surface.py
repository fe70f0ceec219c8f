"""Bad-input cases for the surface added since the first table (docs/reliability.md, "The new surface").

Perturbation selection, the diffusers adapters, the newer pure rule functions, Rectified-CFG++,
the text options and recipe, the digits data module and the demo's sweep over devices. Each row's
outcome before this table existed is in the docs; ``BEFORE`` below holds it for the rows whose old
call cannot run here (it would start the demo or a multi-process sweep).
"""

# ruff: noqa: E501

from __future__ import annotations

import functools

import pytest
import torch
from diffusers import DDIMScheduler, UNet2DModel
from diffusers.models.attention_processor import Attention
from rel_cases_paradigms import cli
from rel_table import Case

from recipes import smollm2_guidance as recipe
from tests.diffusion.diffusers_unets import tiny_text_unet
from tests.flow.flow_diffusers_models import (
    FLUX_LATENTS,
    POOLED_DIM,
    SD3_LATENTS,
    TEXT_DIM,
    TOKENS,
    flux_scheduler,
    flux_transformer,
    sd3_scheduler,
    sd3_transformer,
)
from tests.perturb.attention_nets import QKV, Holder, TokenNet
from unified_guidance import Guidance
from unified_guidance.data import two_d_mixture
from unified_guidance.demo.text import TextOptions
from unified_guidance.diffusion import EpsModel
from unified_guidance.diffusion.interop import sample_with_scheduler as unet_sample
from unified_guidance.diffusion.interop import wrap_unet
from unified_guidance.flow import VelocityModel
from unified_guidance.flow.interop import sample_with_scheduler, wrap_transformer
from unified_guidance.flow.rectified import rectified_cfgpp
from unified_guidance.guidance import FDG, Reference, guide
from unified_guidance.guidance.frequency import fdg
from unified_guidance.guidance.functional import cosine, mambo_g, perp_neg, tcfg
from unified_guidance.networks import MLPNet
from unified_guidance.perturb import Rows, pag, perturbed, seg, slg
from unified_guidance.schedules import LinearBetaSchedule
from unified_guidance.training.data import DigitsDataModule, MixtureDataModule
from unified_guidance.training.predict import predict_sweep

NAN, INF = float("nan"), float("inf")
C, U, N = (torch.randn(2, 3, generator=torch.Generator().manual_seed(i)) for i in range(3))
IMG = torch.randn(2, 1, 8, 8, generator=torch.Generator().manual_seed(3))
LABELS = torch.tensor([0, 1])


# -- perturbations: a forward of a token network or an attention module under the perturbation
def token_forward(pert, extra: dict | None = None):
    torch.manual_seed(0)
    net = TokenNet(depth=2)
    for name, module in (extra or {}).items():
        setattr(net, name, module)
    model = EpsModel(net, null_cond=3, num_classes=3)
    g = guide(model, Guidance(scale=1.0, also=[Reference(pert, 2.0)]))
    return g(torch.randn(2, 1, 4, 4), torch.tensor(0.5), torch.tensor([0, 1]))


def attention_forward(attn, pert, context_tokens: int | None = 6):
    torch.manual_seed(0)
    holder = Holder(attn)
    x = torch.randn(2, 6, 8)
    context = None if context_tokens is None else torch.randn(2, context_tokens, 8)
    with perturbed(holder, [(pert, Rows.all(2))]):
        return holder(x, context)


# -- diffusers flow transformers (tiny, random weights) and UNets
@functools.cache
def sd3():
    return sd3_transformer()


@functools.cache
def flux():
    return flux_transformer()


def sd3_cond(rows=2, width=TEXT_DIM, pooled=True, **extra):
    g = torch.Generator().manual_seed(rows)
    cond = {"encoder_hidden_states": torch.randn(rows, TOKENS, width, generator=g)}
    if pooled:
        cond["pooled_projections"] = torch.randn(rows, POOLED_DIM, generator=g)
    return {**cond, **extra}


def sd3_null(**changes):
    return {
        "encoder_hidden_states": torch.zeros(TOKENS, TEXT_DIM),
        "pooled_projections": torch.zeros(POOLED_DIM),
        **changes,
    }


def sd3_run(null=None, cond=None, noise=None, scale=1.0, family=None):
    model = wrap_transformer(sd3(), sd3_scheduler(), null_cond=null, family=family)
    noise = torch.randn(SD3_LATENTS) if noise is None else noise
    return sample_with_scheduler(
        model, scale, sd3_scheduler(), None, sd3_cond() if cond is None else cond, steps=1, noise=noise
    )


def flux_run(null=None, cond=None, noise=None, scale=1.0):
    shared = {"txt_ids": torch.zeros(TOKENS, 3), "img_ids": torch.zeros(16, 3)}
    model = wrap_transformer(flux(), flux_scheduler(), null_cond=null, inputs=shared)
    cond = sd3_cond(guidance=torch.full((2,), 3.5)) if cond is None else cond
    noise = torch.randn(FLUX_LATENTS) if noise is None else noise
    return sample_with_scheduler(model, scale, flux_scheduler(), None, cond, steps=1, noise=noise)


@functools.cache
def text_unet():
    return tiny_text_unet()


def class_unet(num_class_embeds=4):
    torch.manual_seed(0)
    return UNet2DModel(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16), layers_per_block=1,
        down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
        norm_num_groups=8, num_class_embeds=num_class_embeds,
    ).eval()  # fmt: skip


def unet_run(unet, cond, null=None, scale=1.0, num_classes=None):
    model = wrap_unet(unet, DDIMScheduler(), null_cond=null, num_classes=num_classes)
    return unet_sample(model, scale, DDIMScheduler(), (2, 1, 8, 8), cond, steps=1)


# -- flow models for Rectified-CFG++
@functools.cache
def velocity():
    torch.manual_seed(0)
    return VelocityModel(MLPNet(dim=2, num_classes=3, width=16, depth=1), null_cond=3)


def rectified(noise=None, **kwargs):
    noise = torch.randn(2, 2) if noise is None else noise
    return rectified_cfgpp(velocity(), 2.0, noise, LABELS, **{"steps": 2, **kwargs})


def nan_noise():
    z = torch.randn(2, 2)
    z[0, 0] = NAN
    return z


def argparse_refused(call):
    """A command line refused the argparse way: exit status 2 before any work (its message is checked on stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        call()
    if exit_info.value.code == 2:
        raise ValueError("argparse refused the arguments")


def recipe_args(*argv):
    return argparse_refused(lambda: recipe.main(["--model", "absent.gguf", *argv]))


# fmt: off
CASES = [
    # -- perturbation selection
    Case("slg module list", lambda: token_forward(slg("blocks")), ValueError, r"modules: SkipBlocks selects 'net\.blocks' \(ModuleList\), a container that is never called .*candidates: net\.blocks\.0, net\.blocks\.1"),
    Case("pag module list", lambda: token_forward(pag("blocks")), ValueError, r"modules: IdentityAttention selects 'net\.blocks' \(ModuleList\), a container that is never called"),
    Case("pag idle module", lambda: token_forward(pag("spare_attn"), {"spare_attn": QKV(16)}), ValueError, r"modules: IdentityAttention selects 'net\.spare_attn', which did not run in the forward of EpsModel, .*candidates: net\.blocks\.0\.attn, net\.blocks\.1\.attn$"),
    Case("slg idle block", lambda: token_forward(slg("spare"), {"spare": torch.nn.Linear(16, 16)}), ValueError, r"modules: SkipBlocks selects 'net\.spare', which did not run in the forward"),
    Case("pag plain cross-attention", lambda: attention_forward(QKV(), pag("attn")), ValueError, r"modules: 'attn' is cross-attention; IdentityAttention acts on self-attention \(its keys and values come from context, its queries from x\)"),
    Case("pag longer context", lambda: attention_forward(QKV(), pag("attn"), context_tokens=12), ValueError, r"'attn' is cross-attention; IdentityAttention .*come from context"),
    Case("seg plain cross-attention", lambda: attention_forward(QKV(), seg("attn")), ValueError, r"'attn' is cross-attention; BlurredQueries acts on self-attention"),
    Case("pag diffusers called with context", lambda: attention_forward(Attention(query_dim=8, heads=2, dim_head=4), pag("attn")), ValueError, r"'attn' is cross-attention; IdentityAttention .*encoder_hidden_states"),
    Case("pag multihead cross", lambda: attention_forward(torch.nn.MultiheadAttention(8, 2, batch_first=True), pag("attn")), ValueError, r"modules: 'attn' ran without calling torch\.nn\.functional\.scaled_dot_product_attention.*MultiheadAttention"),
    # -- the diffusers flow adapter, against the transformer's config
    Case("sd3 family flux", lambda: wrap_transformer(sd3(), flux_scheduler(), null_cond=None, family="flux"), ValueError, r"family: SD3Transformer2DModel is a 'sd3' transformer, got family='flux'"),
    Case("sd3 null unknown key", lambda: sd3_run(null=sd3_null(prompt=torch.zeros(3))), ValueError, r"null_cond: SD3Transformer2DModel\.forward takes no condition input prompt"),
    Case("sd3 null batch dim", lambda: sd3_run(null=sd3_null(encoder_hidden_states=torch.zeros(1, TOKENS, TEXT_DIM))), ValueError, r"null_cond: expected one sample's 'encoder_hidden_states' without a batch dimension \(2 dims\), got shape \(1, 5, 16\)"),
    Case("sd3 null width", lambda: sd3_run(null=sd3_null(encoder_hidden_states=torch.zeros(TOKENS, 12))), ValueError, r"null_cond: expected 'encoder_hidden_states' of width 16 \(the config's joint_attention_dim\), got shape \(5, 12\)"),
    Case("sd3 null pooled width", lambda: sd3_run(null=sd3_null(pooled_projections=torch.zeros(5))), ValueError, r"null_cond: expected 'pooled_projections' of width 8 \(the config's pooled_projection_dim\)"),
    Case("sd3 null missing key", lambda: sd3_run(null={"encoder_hidden_states": torch.zeros(TOKENS, TEXT_DIM)}, scale=2.0), ValueError, r"cond: every branch's condition .* must carry the same inputs"),
    Case("sd3 cond width", lambda: sd3_run(cond=sd3_cond(width=12)), ValueError, r"cond: expected 'encoder_hidden_states' of width 16 \(the config's joint_attention_dim\), got shape \(2, 5, 12\)"),
    Case("sd3 cond missing pooled", lambda: sd3_run(cond=sd3_cond(pooled=False)), ValueError, r"cond: SD3Transformer2DModel needs pooled_projections \(its pipelines always pass them\)"),
    Case("sd3 cond rows", lambda: sd3_run(cond=sd3_cond(rows=3)), ValueError, r"cond: expected batch size 2 \(that of x\), got 3"),
    Case("sd3 cond tensor", lambda: sd3_run(cond=torch.zeros(2, TOKENS, TEXT_DIM)), TypeError, r"cond: expected a dict of SD3Transformer2DModel's keyword inputs, got Tensor"),
    Case("sd3 noise channels", lambda: sd3_run(noise=torch.randn(2, 3, 8, 8)), ValueError, r"noise: expected 4 latent channels \(in_channels of SD3Transformer2DModel\) at dim 1, got shape \(2, 3, 8, 8\)"),
    Case("sd3 noise patch", lambda: sd3_run(noise=torch.randn(2, 4, 7, 8)), ValueError, r"noise: expected H and W divisible by the patch size 2, got shape \(2, 4, 7, 8\)"),
    Case("sd3 noise rank", lambda: sd3_run(noise=torch.randn(2, 4, 64)), ValueError, r"noise: expected floating latents \(B, C, H, W\) for SD3Transformer2DModel, got shape \(2, 4, 64\)"),
    Case("sd3 noise nan", lambda: sd3_run(noise=torch.full(SD3_LATENTS, NAN)), ValueError, r"noise: expected finite values"),
    Case("flux noise unpacked", lambda: flux_run(noise=torch.randn(2, 16, 4, 4)), ValueError, r"noise: expected floating latents packed \(B, S, C\) for FluxTransformer2DModel, got shape \(2, 16, 4, 4\)"),
    Case("flux cond no guidance", lambda: flux_run(cond=sd3_cond()), ValueError, r"cond: FluxTransformer2DModel needs guidance \(its pipelines always pass them\)"),
    Case("flux null without guidance", lambda: flux_run(null=sd3_null(), scale=2.0), ValueError, r"cond: every branch's condition .* must carry the same inputs, got \['encoder_hidden_states', 'guidance', 'pooled_projections'\]"),
    # -- the diffusers UNet adapter
    Case("unet null batch dim", lambda: wrap_unet(text_unet(), DDIMScheduler(), null_cond=torch.zeros(1, 4, 16)), ValueError, r"null_cond: expected one sample's \(L, D\) embedding, no batch dimension for UNet2DConditionModel, got torch\.float32 tensor of shape \(1, 4, 16\)"),
    Case("unet null width", lambda: wrap_unet(text_unet(), DDIMScheduler(), null_cond=torch.zeros(4, 12)), ValueError, r"null_cond: expected \(L, 16\) \(D = cross_attention_dim of UNet2DConditionModel\), got \(4, 12\)"),
    Case("unet cond width", lambda: unet_run(text_unet(), torch.zeros(2, 4, 12)), ValueError, r"cond: expected \(2, L, 16\) \(D = cross_attention_dim of UNet2DConditionModel\), got \(2, 4, 12\)"),
    Case("unet null label range", lambda: wrap_unet(class_unet(), DDIMScheduler(), null_cond=7), ValueError, r"null_cond: expected a label in \[0, 4\) \(num_class_embeds of UNet2DModel\), got 7"),
    Case("unet labels range", lambda: unet_run(class_unet(), torch.tensor([0, 9])), ValueError, r"cond: expected labels in \[0, 3\]"),
    Case("unet no class embedding", lambda: wrap_unet(class_unet(None), DDIMScheduler(), null_cond=0), ValueError, r"unet: UNet2DModel has no class embedding .*would ignore every class label"),
    Case("unet num_classes", lambda: wrap_unet(class_unet(), DDIMScheduler(), null_cond=3, num_classes=8), ValueError, r"num_classes: expected fewer than the UNet's num_class_embeds = 4"),
    # -- the newer pure rule functions validate as their typed rules do
    Case("mambo_g nan scale", lambda: mambo_g(C, U, NAN), ValueError, r"scale: expected a finite number, got nan"),
    Case("mambo_g alpha", lambda: mambo_g(C, U, 2.0, alpha=-1.0), ValueError, r"alpha: expected a value in \[0.0, inf\], got -1.0"),
    Case("mambo_g alpha nan", lambda: mambo_g(C, U, 2.0, alpha=NAN), ValueError, r"alpha: expected a finite number, got nan"),
    Case("mambo_g shapes", lambda: mambo_g(C, U[:1], 2.0), ValueError, r"uncond: expected the shape of cond"),
    Case("mambo_g string scale", lambda: mambo_g(C, U, "2"), TypeError, r"scale: expected a number or a tensor, got str"),
    Case("tcfg nan scale", lambda: tcfg(C, U, NAN), ValueError, r"scale: expected a finite number, got nan"),
    Case("tcfg dtypes", lambda: tcfg(C, U.double(), 2.0), ValueError, r"uncond: expected the dtype of cond \(torch\.float32\), got torch\.float64"),
    Case("perp_neg nan scale", lambda: perp_neg(C, U, [N], NAN), ValueError, r"scale: expected a finite number, got nan"),
    Case("perp_neg nan weight", lambda: perp_neg(C, U, [N], 2.0, weights=NAN), ValueError, r"weights: expected a finite number, got nan"),
    Case("perp_neg string weights", lambda: perp_neg(C, U, [N], 2.0, weights="1"), TypeError, r"weights: expected a list or tuple of numbers, got str '1'"),
    Case("perp_neg tensor negatives", lambda: perp_neg(C, U, N, 2.0), TypeError, r"negatives: expected a list or tuple of predictions, got Tensor"),
    Case("perp_neg negative shape", lambda: perp_neg(C, U, [N[:1]], 2.0), ValueError, r"negatives\[0\]: expected the shape of uncond \(\(2, 3\)\), got \(1, 3\)"),
    Case("fdg nan band scale", lambda: fdg(IMG, IMG, (2.0, NAN)), ValueError, r"scales\[1\]: expected a finite number, got nan"),
    Case("fdg string scales", lambda: fdg(IMG, IMG, "12"), TypeError, r"scales: expected a non-empty list or tuple of scales, got str '12'"),
    Case("fdg nan weight", lambda: fdg(IMG, IMG, (2.0, 1.0), parallel_weights=NAN), ValueError, r"parallel_weights: expected a finite number, got nan"),
    Case("fdg string weights", lambda: fdg(IMG, IMG, (2.0, 1.0), parallel_weights="11"), TypeError, r"parallel_weights: expected a list or tuple of numbers, got str '11'"),
    Case("FDG string ratios", lambda: FDG(ratios="12"), TypeError, r"ratios: expected a list or tuple of numbers, got str '12'"),
    Case("cosine shapes", lambda: cosine(C, U[:1]), ValueError, r"b: expected the shape of a"),
    # -- Rectified-CFG++
    Case("rectified gamma nan", lambda: rectified(gamma=NAN), ValueError, r"gamma: expected a finite number, got nan"),
    Case("rectified gamma string", lambda: rectified(gamma="1"), TypeError, r"gamma: expected a number, got str '1'"),
    Case("rectified noise nan", lambda: rectified(noise=nan_noise()), ValueError, r"noise: expected finite values, got 1 non-finite entries"),
    Case("rectified noise ints", lambda: rectified(noise=torch.zeros(2, 2, dtype=torch.long)), ValueError, r"noise: expected a floating-point \(B, \.\.\.\) tensor, got a torch\.int64 tensor"),
    Case("rectified t_span", lambda: rectified(t_span=(0.0, 1.5)), ValueError, r"t_span: expected values in \[0, 1\]"),
    Case("rectified t_span string", lambda: rectified(t_span="01"), TypeError, r"t_span: expected a sequence of times, got str '01'"),
    Case("rectified model", lambda: rectified_cfgpp(torch.nn.Identity(), 2.0, torch.randn(2, 2), LABELS, steps=2), TypeError, r"model: expected a ConditionalModel \(velocity\), got Identity"),
    # -- the text options and recipe: checked before any model loads
    Case("text samples 0", lambda: TextOptions(samples=0), ValueError, r"samples: expected at least 2 per question \(diversity compares them\), got 0"),
    Case("text questions 0", lambda: TextOptions(questions=0), ValueError, r"questions: expected 1 … \d+ \(the question set's size\), got 0"),
    Case("text max_new_tokens 0", lambda: TextOptions(max_new_tokens=0), ValueError, r"max_new_tokens: expected a positive number of tokens, got 0"),
    Case("text temperature nan", lambda: TextOptions(temperature=NAN), ValueError, r"temperature: expected a finite number, got nan"),
    Case("text top_p", lambda: TextOptions(top_p=1.5), ValueError, r"top_p: expected a value in \(0, 1\], got 1.5"),
    Case("text scale inf", lambda: TextOptions(scales=(1.0, INF)), ValueError, r"scales\[1\]: expected a finite number, got inf"),
    Case("text methods", lambda: TextOptions(methods=("beam",)), ValueError, r"methods: unknown beam; valid: cfg"),
    Case("recipe scale inf", lambda: recipe_args("--scales", "1", "inf"), ValueError, r"argparse refused"),
    Case("recipe empty prompt", lambda: recipe_args("--prompt", " "), ValueError, r"argparse refused"),
    # -- data modules
    Case("digits batch 0", lambda: DigitsDataModule(batch_size=0), ValueError, r"batch_size: expected an integer ≥ 1, got 0"),
    Case("digits batch too large", lambda: DigitsDataModule(batch_size=5000), ValueError, r"batch_size: expected at most 1438 \(the training digits; the last incomplete batch is dropped\), got 5000"),
    Case("digits val_fraction string", lambda: DigitsDataModule(val_fraction="0.2"), TypeError, r"val_fraction: expected a number, got str '0.2'"),
    Case("mixture batch 0", lambda: MixtureDataModule(two_d_mixture(path=LinearBetaSchedule(), space="eps"), num_samples=64, batch_size=0), ValueError, r"batch_size: expected an integer ≥ 1, got 0"),
    # -- the demo's sweep over several devices
    Case("sweep ddp 2 devices", lambda: predict_sweep(torch.nn.Identity(), [], "unused", devices=2, strategy="ddp"), ValueError, r"strategy: 'ddp' on 2 devices starts the calling script again in each device's process, .* pass 'ddp_spawn' \(or 'ddp_fork' on cpu\)"),
    Case("cli ddp 2 devices", lambda: cli("--devices", "2", "--strategy", "ddp"), ValueError, r"argparse refused"),
    Case("cli text model absent", lambda: cli("--text-model", "no/such/model.gguf"), ValueError, r"argparse refused"),
]
# fmt: on

CLI_MESSAGES = {
    "recipe scale inf": "--scales: expected finite guidance scales, got 1 inf",
    "recipe empty prompt": "--prompt: expected a non-empty prompt, got an empty one",
    "cli ddp 2 devices": "argument --strategy: 'ddp' on 2 devices starts the calling script again",
    "cli text model absent": "argument --text-model: expected a local directory or .gguf file, got 'no/such/model.gguf'",
}

BEFORE_UNSAFE = {"sweep ddp 2 devices", "cli ddp 2 devices", "cli text model absent"}
"""Rows whose old call would start a multi-process sweep or the demo itself: their old outcome is
documented from the code (a second copy of the script racing on the items; the demo training for
minutes before the text section found no model)."""
