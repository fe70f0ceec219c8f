"""CFG + PAG as one stacked forward (cond, ∅, perturbed) against three passes and diffusers' PAG guider.

    python benchmarks/perturb.py [--repeats 15] [--clock cpu] [--threads 1]

Two networks with random weights, one guided call (s = 3, PAG w = 1 + 2) each:

* a ``UNet2DConditionModel`` (channels 64/128, 32×32×4 latents, 16 text tokens of width 64,
  batch 2), PAG on the mid block's self-attention;
* the perturbation tests' attention net (``tests/perturb/attention_nets.TokenNet``, depth 6,
  width 128, batch 16), PAG on block 3's attention.

Candidates, interleaved in one process (median of repeats): the network's forward over the
stacked 3B rows, fwd(3B) (the ideal cost of the call); the same under our hooks on the
perturbed rows; our guided call stacked (one 3B forward) and sequential (three B forwards);
for the UNet, diffusers' ``PerturbedAttentionGuidance`` driven through its protocol (three
B forwards, its hooks on the third) and three plain B forwards. Goal (issue 15): the stacked
call ≤ fwd(3B) + 2 %.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import torch
from common import interleaved_medians, machine
from diffusers import DDIMScheduler, UNet2DConditionModel
from diffusers.guiders import PerturbedAttentionGuidance
from diffusers.hooks import LayerSkipConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.perturb.attention_nets import TokenNet
from unified_guidance import Guidance
from unified_guidance.diffusion import EpsModel
from unified_guidance.diffusion.interop import wrap_unet
from unified_guidance.guidance import Reference, guide
from unified_guidance.perturb import Rows, pag, perturbed

S, S_P, K = 3.0, 2.0, 499
MID = "mid_block.attentions.0.transformer_blocks"


def unet_candidates() -> tuple[dict, str]:
    torch.manual_seed(0)
    unet = UNet2DConditionModel(
        sample_size=32, in_channels=4, out_channels=4, block_out_channels=(64, 128), layers_per_block=1,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        norm_num_groups=16, cross_attention_dim=64, attention_head_dim=8,
    ).eval()  # fmt: skip
    g = torch.Generator().manual_seed(0)
    x, emb, null = torch.randn(2, 4, 32, 32, generator=g), torch.randn(2, 16, 64, generator=g), torch.zeros(16, 64)
    model = wrap_unet(unet, DDIMScheduler(), null_cond=null)
    t, k = torch.tensor((K + 1) / 1000), torch.tensor(K)
    site = pag(f"{MID}.0.attn1")
    refs = [Reference(site, scale=1 + S_P)]
    stacked = guide(model, Guidance(scale=S, also=refs))
    sequential = guide(model, Guidance(scale=S, also=refs, batch_branches=False))
    x3, emb3 = torch.cat([x, x, x]), torch.cat([emb, null.expand(2, 16, 64), emb])
    config = LayerSkipConfig([0], fqn=MID, skip_attention=False, skip_attention_scores=True, skip_ff=False)
    guider = PerturbedAttentionGuidance(
        guidance_scale=S, perturbed_guidance_scale=S_P, perturbed_guidance_config=config,
        perturbed_guidance_start=0.0, perturbed_guidance_stop=1.0,
    )  # fmt: skip

    def diffusers_pag():
        guider.set_state(step=0, num_inference_steps=None, timestep=k)
        batches = guider.prepare_inputs({"encoder_hidden_states": (emb, null.expand(2, 16, 64))})
        for batch in batches:
            guider.prepare_models(unet)
            batch.noise_pred = unet(x, k, encoder_hidden_states=batch.encoder_hidden_states).sample
            guider.cleanup_models(unet)
        return guider(batches).pred

    def hooked_3b():
        with perturbed(model, [(site, Rows(4, 6, 6))]):
            return model(x3, t, emb3)

    torch.testing.assert_close(stacked(x, t, emb), diffusers_pag(), rtol=1e-4, atol=1e-4)
    return {
        "fwd(3B)": lambda: model(x3, t, emb3),
        "fwd(3B) under our PAG hooks (rows 2B:3B)": hooked_3b,
        "ours: CFG + PAG, one 3B forward": lambda: stacked(x, t, emb),
        "ours: CFG + PAG, three B forwards (batch_branches=False)": lambda: sequential(x, t, emb),
        "diffusers PerturbedAttentionGuidance (three B forwards + hooks)": diffusers_pag,
        "three plain B forwards": lambda: [unet(x, k, encoder_hidden_states=e).sample for e in emb3.chunk(3)],
    }, selection_cost(model, site)


def token_candidates() -> tuple[dict, str]:
    torch.manual_seed(0)
    model = EpsModel(TokenNet(depth=6, width=128, heads=4).eval(), null_cond=3, num_classes=3)
    g = torch.Generator().manual_seed(0)
    x, y, t = torch.randn(16, 1, 4, 4, generator=g), torch.arange(16) % 3, torch.tensor(0.5)
    site = pag("blocks.3.attn")
    refs = [Reference(site, scale=1 + S_P)]
    stacked = guide(model, Guidance(scale=S, also=refs))
    sequential = guide(model, Guidance(scale=S, also=refs, batch_branches=False))
    x3, y3 = torch.cat([x, x, x]), torch.cat([y, torch.full_like(y, 3), y])

    def hooked_3b():
        with perturbed(model, [(site, Rows(32, 48, 48))]):
            return model(x3, t, y3)

    return {
        "fwd(3B)": lambda: model(x3, t, y3),
        "fwd(3B) under our PAG hooks (rows 2B:3B)": hooked_3b,
        "ours: CFG + PAG, one 3B forward": lambda: stacked(x, t, y),
        "ours: CFG + PAG, three B forwards (batch_branches=False)": lambda: sequential(x, t, y),
    }, selection_cost(model, site)


def selection_cost(root: torch.nn.Module, pert, repeats: int = 200) -> str:
    """What ``perturbed()`` spends per call finding its modules (a walk over ``root``'s modules)."""
    start = time.process_time()
    for _ in range(repeats):
        pert.select(root)
    per_call = (time.process_time() - start) / repeats
    return f"module selection per call: {per_call * 1e6:.0f} µs over {sum(1 for _ in root.modules())} modules"


def table(title: str, med: dict[str, float], note: str) -> None:
    base = med["fwd(3B)"]
    print(f"## {title}\n\n| candidate | median ms | / fwd(3B) |\n|---|---:|---:|")
    for name, sec in med.items():
        print(f"| {name} | {sec * 1e3:.2f} | {sec / base:.3f} |")
    print(f"\n{note}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"{machine()}; {args.clock} clock; median of {args.repeats}; uptime: {load}\n")
    with torch.no_grad():
        nets = (("UNet2DConditionModel, batch 2", unet_candidates), ("TokenNet, batch 16", token_candidates))
        for title, build in nets:
            fns, note = build()
            table(title, interleaved_medians(fns, repeats=args.repeats, clock=args.clock), note)
    load = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    print(f"uptime after: {load}")


if __name__ == "__main__":
    main()
