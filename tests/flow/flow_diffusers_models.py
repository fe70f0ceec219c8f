"""Tiny diffusers flow transformers and pipelines with random weights (no download, no text encoders)."""

from __future__ import annotations

import torch
from diffusers import (
    FlowMatchEulerDiscreteScheduler,
    FluxPipeline,
    FluxTransformer2DModel,
    SD3Transformer2DModel,
    StableDiffusion3Pipeline,
    WanPipeline,
    WanTransformer3DModel,
)

BATCH, TOKENS, TEXT_DIM, POOLED_DIM = 2, 5, 16, 8
SD3_LATENTS = (BATCH, 4, 8, 8)  # 8×8 latents, patch 2 → 16 image tokens
FLUX_LATENTS = (BATCH, 16, 16)  # packed: (8/2)·(8/2) = 16 tokens of 4·4 channels
PIXELS = 64  # the pipelines' height and width for these latents (VAE factor 8 when there is no VAE)
NO_TEXT = {"text_encoder": None, "tokenizer": None, "text_encoder_2": None, "tokenizer_2": None}


def sd3_transformer(dtype: torch.dtype = torch.float32) -> SD3Transformer2DModel:
    torch.manual_seed(0)
    model = SD3Transformer2DModel(
        sample_size=8, patch_size=2, in_channels=4, out_channels=4, num_layers=1, attention_head_dim=8,
        num_attention_heads=2, joint_attention_dim=TEXT_DIM, caption_projection_dim=16,
        pooled_projection_dim=POOLED_DIM, pos_embed_max_size=8,
    )  # fmt: skip
    return model.eval().requires_grad_(False).to(dtype)


def flux_transformer(dtype: torch.dtype = torch.float32) -> FluxTransformer2DModel:
    torch.manual_seed(1)
    model = FluxTransformer2DModel(
        patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=8, num_attention_heads=2,
        joint_attention_dim=TEXT_DIM, pooled_projection_dim=POOLED_DIM, guidance_embeds=True, axes_dims_rope=(2, 2, 4),
    )  # fmt: skip
    return model.eval().requires_grad_(False).to(dtype)


def wan_transformer(dtype: torch.dtype = torch.float32) -> WanTransformer3DModel:
    torch.manual_seed(2)
    model = WanTransformer3DModel(
        patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=4, out_channels=4,
        text_dim=TEXT_DIM, freq_dim=256, ffn_dim=32, num_layers=1, cross_attn_norm=True,
        qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
    )  # fmt: skip
    return model.eval().requires_grad_(False).to(dtype)


def wan_pipeline(transformer, scheduler) -> WanPipeline:
    pipe = WanPipeline(transformer=transformer, scheduler=scheduler, vae=None, text_encoder=None, tokenizer=None)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def sd3_scheduler() -> FlowMatchEulerDiscreteScheduler:
    return FlowMatchEulerDiscreteScheduler(shift=3.0)  # SD3's shifted schedule


def flux_scheduler() -> FlowMatchEulerDiscreteScheduler:
    # Flux's resolution-dependent shift: μ from the image sequence length
    return FlowMatchEulerDiscreteScheduler(shift=3.0, use_dynamic_shifting=True, max_shift=1.15)


def sd3_pipeline(transformer, scheduler) -> StableDiffusion3Pipeline:
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=scheduler, vae=None, text_encoder_3=None, tokenizer_3=None, **NO_TEXT
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def flux_pipeline(transformer, scheduler) -> FluxPipeline:
    pipe = FluxPipeline(transformer=transformer, scheduler=scheduler, vae=None, **NO_TEXT)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def prompts(dtype: torch.dtype, seed: int = 0) -> dict[str, torch.Tensor]:
    """Prompt and negative-prompt embeddings and starting latents, as the pipelines take them."""
    g = torch.Generator().manual_seed(seed)
    r = lambda *shape: torch.randn(*shape, generator=g, dtype=torch.float64).to(dtype)  # noqa: E731
    return {
        "prompt_embeds": r(BATCH, TOKENS, TEXT_DIM),
        "pooled_prompt_embeds": r(BATCH, POOLED_DIM),
        "negative_prompt_embeds": r(BATCH, TOKENS, TEXT_DIM),
        "negative_pooled_prompt_embeds": r(BATCH, POOLED_DIM),
        "sd3_latents": r(*SD3_LATENTS),
        "flux_latents": r(*FLUX_LATENTS),
    }
