"""Tiny diffusers UNets built in the tests (random weights, nothing downloaded)."""

import torch
from diffusers import UNet2DConditionModel


def tiny_text_unet(seed: int = 1) -> UNet2DConditionModel:
    """A text-conditioned UNet2DConditionModel on 8×8×1 latents: a cross-attention down block
    (self-attention ``attn1``, cross-attention ``attn2``), a plain one, and their mirror."""
    torch.manual_seed(seed)
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=1, out_channels=1, block_out_channels=(16, 32), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        norm_num_groups=8, cross_attention_dim=16, attention_head_dim=4,
    )  # fmt: skip
    return unet.eval().requires_grad_(False)
