"""Guided vs unguided sampling of a tiny SD3-type transformer: our loops beside diffusers' pipeline.

    python benchmarks/flow_diffusers.py [--steps 10] [--repeats 9] [--clock cpu]

A randomly initialised ``SD3Transformer2DModel`` (2 layers, width 64, 32×32 latents →
256 image tokens, 16 text tokens, batch 2) with ``FlowMatchEulerDiscreteScheduler(shift=3)``.
Candidates, interleaved in one process (median of repeats), each as time per step over
one transformer forward of the stacked 2B batch, fwd(2B):

* ``StableDiffusion3Pipeline`` (prompt embeddings passed, ``output_type="latent"``) at
  ``guidance_scale`` 1 (unguided: B rows) and 5 (2B rows);
* ``ug.flow.sample_with_scheduler`` (the scheduler's loop) at s = 1 and s = 5;
* ``ug.flow.sample`` with torchdiffeq's Euler on the scheduler's σ grid at s = 5.

The ideal guided step costs fwd(2B) (ratio 1.00) and the unguided one fwd(B).
"""

from __future__ import annotations

import argparse
import subprocess

import torch
from common import interleaved_medians, machine
from diffusers import FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline

import unified_guidance as ug
from unified_guidance.flow.interop import scheduler_sigmas, sigma_grid

BATCH, TOKENS, WIDTH, SIZE = 2, 16, 64, 32


def build() -> tuple[SD3Transformer2DModel, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    transformer = SD3Transformer2DModel(
        sample_size=SIZE, patch_size=2, in_channels=4, out_channels=4, num_layers=2, attention_head_dim=16,
        num_attention_heads=4, joint_attention_dim=WIDTH, caption_projection_dim=WIDTH, pooled_projection_dim=32,
        pos_embed_max_size=SIZE,
    )  # fmt: skip
    g = torch.Generator().manual_seed(0)
    tensors = {
        "prompt_embeds": torch.randn(BATCH, TOKENS, WIDTH, generator=g),
        "pooled_prompt_embeds": torch.randn(BATCH, 32, generator=g),
        "negative_prompt_embeds": torch.randn(1, TOKENS, WIDTH, generator=g).expand(BATCH, -1, -1),
        "negative_pooled_prompt_embeds": torch.randn(1, 32, generator=g).expand(BATCH, -1),
        "latents": torch.randn(BATCH, 4, SIZE, SIZE, generator=g),
    }
    return transformer.eval().requires_grad_(False), tensors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="cpu: process time (robust to load)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    transformer, p = build()
    scheduler = lambda: FlowMatchEulerDiscreteScheduler(shift=3.0)  # noqa: E731
    pipe = StableDiffusion3Pipeline(
        transformer=transformer, scheduler=scheduler(), vae=None, text_encoder=None, tokenizer=None,
        text_encoder_2=None, tokenizer_2=None, text_encoder_3=None, tokenizer_3=None,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    null = {
        "encoder_hidden_states": p["negative_prompt_embeds"][0],
        "pooled_projections": p["negative_pooled_prompt_embeds"][0],
    }
    model = ug.flow.wrap_transformer(transformer, scheduler(), null_cond=null)
    cond = {"encoder_hidden_states": p["prompt_embeds"], "pooled_projections": p["pooled_prompt_embeds"]}
    x, n = p["latents"], args.steps
    sigmas = scheduler_sigmas(model, scheduler(), n, x.shape)
    embeds = {k: v for k, v in p.items() if k != "latents"}
    px = SIZE * 8

    def fwd(rows: int):
        k = torch.full((rows,), 500.0)
        both = {key: torch.cat([v, v])[:rows] for key, v in cond.items()}
        return lambda: transformer(hidden_states=torch.cat([x, x])[:rows], timestep=k, return_dict=False, **both)

    def pipeline(scale: float):
        return lambda: pipe(**embeds, latents=x, height=px, width=px, num_inference_steps=n, guidance_scale=scale,
                            output_type="latent")  # fmt: skip

    def loop(scale: float):
        return lambda: ug.flow.sample_with_scheduler(model, scale, scheduler(), None, cond, steps=n, noise=x)

    def euler(scale: float):
        span = (float(sigmas[0]), float(sigmas[-1]))
        return lambda: ug.flow.sample(model, scale, x, cond, method="euler", t_span=span, options=sigma_grid(sigmas))

    candidates = {
        "fwd(B)": fwd(BATCH), "fwd(2B)": fwd(2 * BATCH),
        "diffusers pipeline, guidance_scale=1 (unguided)": pipeline(1.0),
        "ug.flow.sample_with_scheduler, s=1 (unguided)": loop(1.0),
        "diffusers pipeline, guidance_scale=5": pipeline(5.0),
        "ug.flow.sample_with_scheduler, s=5": loop(5.0),
        "ug.flow.sample (torchdiffeq euler, σ grid), s=5": euler(5.0),
    }  # fmt: skip
    with torch.no_grad():
        reference = pipeline(5.0)().images
        agreement = float((loop(5.0)() - reference).abs().max())
        times = interleaved_medians(candidates, repeats=args.repeats, warmup=2, clock=args.clock)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{machine()}; {args.clock} clock; median of {args.repeats}; {n} steps; batch {BATCH}; uptime: {load}\n")
    print("| candidate | median ms | per step / fwd(2B) |")
    print("|---|---:|---:|")
    base = times["fwd(2B)"]
    for name, t in times.items():
        per_step = t if name.startswith("fwd") else t / n
        print(f"| {name} | {1000 * t:.1f} | {per_step / base:.2f} |")
    print(f"\nmax |ours − pipeline| at s = 5 (float32): {agreement:.2e}")


if __name__ == "__main__":
    main()
