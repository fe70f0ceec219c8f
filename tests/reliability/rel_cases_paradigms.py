"""Bad-input cases for diffusion, flow, token models, diffusers interop and the console script (one row a line)."""

# ruff: noqa: E501

from __future__ import annotations

import functools

import pytest
import torch
from rel_table import Case
from transformers import GPT2Config, GPT2LMHeadModel

from unified_guidance import Guidance
from unified_guidance.autoregressive import CausalLMModel, GuidanceLogitsProcessor, generate
from unified_guidance.core import FunctionModel
from unified_guidance.core.checks import NonFiniteError
from unified_guidance.demo.cli import main
from unified_guidance.diffusion import AlphasCumprodPath, EpsModel, diffusion_loss, time_grid
from unified_guidance.diffusion import sample as diffusion_sample
from unified_guidance.diffusion.time import discrete_to_time
from unified_guidance.flow import VelocityModel, flow_matching_loss, log_likelihood, trajectory
from unified_guidance.flow import sample as flow_sample
from unified_guidance.networks import MLPNet, TinyUNet
from unified_guidance.schedules import Custom, LinearBetaSchedule

NAN = float("nan")
LABELS = torch.tensor([0, 1])
VOCAB, PAD = 40, 0


@functools.cache
def unet_model() -> EpsModel:
    torch.manual_seed(0)
    return EpsModel(TinyUNet(width=8, num_classes=3).eval(), null_cond=3, num_classes=3, sample_shape=(1, 8, 8))


@functools.cache
def flow_model() -> VelocityModel:
    torch.manual_seed(0)
    return VelocityModel(MLPNet(dim=2, num_classes=3, width=16, depth=1), null_cond=3)


@functools.cache
def lm() -> GPT2LMHeadModel:
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=VOCAB, n_positions=16, n_embd=16, n_layer=1, n_head=2, eos_token_id=1, pad_token_id=PAD
    )
    return GPT2LMHeadModel(config).eval()


def ids(batch=1, length=3):
    return torch.randint(3, VOCAB, (batch, length), generator=torch.Generator().manual_seed(batch * 7 + length))


def noise(*shape, bad=None):
    z = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    if bad is not None:
        z.view(-1)[0] = bad
    return z


def dsample(**kwargs):
    args = {"steps": 2, "noise": noise(2, 1, 8, 8)} | kwargs
    return diffusion_sample(
        unet_model(), args.pop("guidance", 2.0), args.pop("shape", None), args.pop("cond", LABELS), **args
    )


def fsample(**kwargs):
    args = {"method": "euler", "steps": 2} | kwargs
    return flow_sample(
        flow_model(), args.pop("guidance", 2.0), args.pop("noise", noise(2, 2)), args.pop("cond", LABELS), **args
    )


def gen(**kwargs):
    args = {"guidance": 2.0, "max_new_tokens": 2, "eos_token_id": [], "pad_token_id": PAD} | kwargs
    return generate(lm(), args.pop("input_ids", ids()), **args)


def proc(*args, **kwargs):
    return GuidanceLogitsProcessor(lm(), 2.0, **kwargs)(*args)


def cli(*argv):
    """The console script's argument errors: argparse exits 2 before any work."""
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", *argv])
    if exit_info.value.code == 2:
        raise ValueError("argparse refused the arguments")  # the message is checked by the test of capsys below


# fmt: off
CASES = [
    # -- diffusion: models, samplers, losses, time
    Case("EpsModel prediction", lambda: EpsModel(torch.nn.Identity(), prediction="score"), ValueError, r"prediction: expected one of eps, x0, v, got 'score'"),
    Case("EpsModel net", lambda: EpsModel(3), TypeError, r"net: expected a callable nn.Module, got int"),
    Case("sample method", lambda: dsample(method="heun"), ValueError, r"method: unknown sampler 'heun'; valid ones: ddim, ddpm"),
    Case("sample eta 2", lambda: dsample(eta=2.0), ValueError, r"eta: expected a value in \[0, 1\], got 2.0"),
    Case("sample ddpm eta", lambda: dsample(method="ddpm", eta=0.5), ValueError, r"eta: DDPM's ancestral sampler has a fixed variance"),
    Case("sample steps 0", lambda: dsample(steps=0), ValueError, r"steps: expected an integer ≥ 1, got 0"),
    Case("sample steps float", lambda: dsample(steps=2.5), TypeError, r"steps: expected an integer, got float 2.5"),
    Case("sample steps bool", lambda: dsample(steps=True), TypeError, r"steps: expected an integer, got bool True"),
    Case("sample t_max 1.5", lambda: dsample(t_max=1.5), ValueError, r"t_max: expected a time in \(0, 1\], got 1.5"),
    Case("sample t_max 0", lambda: dsample(t_max=0.0), ValueError, r"t_max: expected a time in \(0, 1\]"),
    Case("sample shape none", lambda: dsample(noise=None), ValueError, r"shape: expected \(B, \.\.\.\) with positive sizes, got None"),
    Case("sample shape zero", lambda: dsample(noise=None, shape=(0, 1, 8, 8)), ValueError, r"shape: expected \(B, \.\.\.\) with positive sizes"),
    Case("sample shape sample", lambda: dsample(noise=noise(2, 1, 4, 4)), ValueError, r"x: expected samples of shape \(1, 8, 8\), got \(1, 4, 4\)"),
    Case("sample noise nan", lambda: dsample(noise=noise(2, 1, 8, 8, bad=NAN)), ValueError, r"noise: expected finite values, got 1 non-finite"),
    Case("sample noise inf", lambda: dsample(noise=noise(2, 1, 8, 8, bad=float("inf"))), ValueError, r"noise: expected finite values"),
    Case("sample noise int", lambda: dsample(noise=torch.zeros(2, 1, 8, 8, dtype=torch.long)), ValueError, r"noise: expected a floating-point \(B, \.\.\.\) tensor, got a torch.int64"),
    Case("sample noise list", lambda: dsample(noise=[[0.0]]), ValueError, r"noise: expected a floating-point \(B, \.\.\.\) tensor, got list"),
    Case("sample noise half", lambda: dsample(noise=noise(2, 1, 8, 8).half()), TypeError, r"x: expected torch.float32 on cpu \(the network's parameters\), got torch.float16"),
    Case("sample noise double", lambda: dsample(noise=noise(2, 1, 8, 8).double()), TypeError, r"x: expected torch.float32 .* got torch.float64"),
    Case("sample cond batch", lambda: dsample(cond=torch.tensor([0, 1, 2])), ValueError, r"cond: expected batch size 2 \(that of the samples\), got 3"),
    Case("sample cond range", lambda: dsample(cond=torch.tensor([0, 9])), ValueError, r"cond: expected labels in \[0, 3\] \(3 = null token\), got values in \[0, 9\]"),
    Case("sample cond float", lambda: dsample(cond=torch.tensor([0.0, 1.0])), TypeError, r"cond: expected integer class labels, got torch.float32 tensor"),
    Case("sample cond negative label", lambda: dsample(cond=torch.tensor([-1, 1])), ValueError, r"cond: expected labels in \[0, 3\]"),
    Case("sample model type", lambda: diffusion_sample(torch.nn.Linear(2, 2), 2.0, (2, 2), LABELS), TypeError, r"model: expected a ConditionalModel with a diffusion path, got Linear"),
    Case("sample flow model", lambda: diffusion_sample(flow_model(), 2.0, (2, 2), LABELS, steps=2), ValueError, r"model: expected a diffusion model.*got space 'velocity'; sample a flow model"),
    Case("sample guidance str", lambda: dsample(guidance="strong"), TypeError, r"guidance: expected a number, a Schedule or a Guidance, got str"),
    Case("sample guidance nan", lambda: dsample(guidance=NAN), ValueError, r"scale: expected a finite number, got nan"),
    Case("sample APG negative", lambda: dsample(guidance=Guidance(rule="apg", scale=-2.0)), ValueError, r"scale: APG expects scales ≥ 0"),
    Case("sample custom nan scale", lambda: dsample(guidance=Custom(lambda tau: tau * NAN)), NonFiniteError, r"scale: expected finite values.*Custom schedule"),
    Case("sample table of ones", lambda: diffusion_sample(EpsModel(FunctionModel(lambda x, t, c: x, space="eps"), path=AlphasCumprodPath(torch.ones(10)), null_cond=3), 2.0, (2, 2), LABELS, steps=2), ValueError, r"model: its path has α_t = 1, σ_t = 0 at t = 1"),
    Case("time_grid steps", lambda: time_grid(LinearBetaSchedule(), 0), ValueError, r"steps: expected an integer ≥ 1, got 0"),
    Case("discrete_to_time N", lambda: discrete_to_time(3, 0), ValueError, r"num_train_timesteps: expected an integer ≥ 1, got 0"),
    Case("AlphasCumprodPath empty", lambda: AlphasCumprodPath(torch.zeros(0)), ValueError, r"alphas_cumprod: expected a non-empty table of values in \(0, 1\]"),
    Case("AlphasCumprodPath zero", lambda: AlphasCumprodPath(torch.tensor([0.5, 0.0])), ValueError, r"alphas_cumprod: expected a non-empty table"),
    Case("diffusion_loss weighting", lambda: diffusion_loss(unet_model(), noise(2, 1, 8, 8), LABELS, weighting="snr"), ValueError, r"weighting: expected one of"),
    Case("diffusion_loss t shape", lambda: diffusion_loss(unet_model(), noise(2, 1, 8, 8), LABELS, t=torch.rand(3)), ValueError, r"t: expected shape \(2,\), got \(3,\)"),
    Case("diffusion_loss eps shape", lambda: diffusion_loss(unet_model(), noise(2, 1, 8, 8), LABELS, eps=noise(2, 1, 4, 4)), ValueError, r"eps: expected the shape of x0"),
    # -- flow
    Case("flow method", lambda: fsample(method="leapfrog"), ValueError, r"method: unknown torchdiffeq solver 'leapfrog'; valid methods"),
    Case("flow steps adaptive", lambda: fsample(method="dopri5", steps=4), ValueError, r"steps: method 'dopri5' is adaptive; give rtol/atol"),
    Case("flow steps 0", lambda: fsample(steps=0), ValueError, r"steps: expected an integer ≥ 1, got 0"),
    Case("flow step_size", lambda: fsample(steps=None, step_size=-0.1), ValueError, r"step_size: expected a positive number, got -0.1"),
    Case("flow times one", lambda: trajectory(flow_model(), 2.0, noise(2, 2), LABELS, times=[0.0], method="euler", steps=2), ValueError, r"times: expected at least two times"),
    Case("flow times range", lambda: trajectory(flow_model(), 2.0, noise(2, 2), LABELS, times=[0.0, 1.5], method="euler", steps=2), ValueError, r"times: expected values in \[0, 1\]"),
    Case("flow times order", lambda: trajectory(flow_model(), 2.0, noise(2, 2), LABELS, times=[0.0, 0.6, 0.3], method="euler", steps=2), ValueError, r"times: expected strictly increasing or decreasing"),
    Case("flow noise nan", lambda: fsample(noise=noise(2, 2, bad=NAN)), ValueError, r"noise: expected finite values, got 1 non-finite"),
    Case("flow noise int", lambda: fsample(noise=torch.zeros(2, 2, dtype=torch.long)), ValueError, r"noise: expected a floating-point \(B, \.\.\.\) tensor"),
    Case("flow noise dtype", lambda: fsample(noise=noise(2, 2).double()), TypeError, r"x: expected torch.float32 on cpu \(the network's parameters\), got torch.float64"),
    Case("flow cond batch", lambda: fsample(cond=torch.tensor([0, 1, 2])), ValueError, r"cond: expected batch size 2"),
    Case("flow guided twice", lambda: flow_sample(__import__("unified_guidance").guide(flow_model(), 2.0), 2.0, noise(2, 2), LABELS), ValueError, r"guidance: model is already a GuidedModel; pass guidance=None"),
    Case("flow t outside", lambda: flow_model()(noise(2, 2), 1.5, LABELS), ValueError, r"t: expected values in \[0, 1\]"),
    Case("flow loss model", lambda: flow_matching_loss(unet_model(), noise(2, 1, 8, 8), LABELS), ValueError, r"model: expected a velocity model \(space 'velocity'\), got space 'eps'"),
    Case("likelihood divergence", lambda: log_likelihood(flow_model(), 2.0, noise(2, 2), LABELS, divergence="trace"), ValueError, r"divergence"),
    # -- token models
    Case("generate ids float", lambda: gen(input_ids=ids().float()), ValueError, r"input_ids: expected integer token ids of shape \(batch, length\)"),
    Case("generate ids 1d", lambda: gen(input_ids=ids()[0]), ValueError, r"input_ids: expected integer token ids of shape \(batch, length\), got shape \(3,\)"),
    Case("generate empty batch", lambda: gen(input_ids=torch.zeros(0, 3, dtype=torch.long)), ValueError, r"input_ids: expected at least one row and one token, got shape \(0, 3\)"),
    Case("generate empty prompt", lambda: gen(input_ids=torch.zeros(2, 0, dtype=torch.long)), ValueError, r"input_ids: expected at least one row and one token"),
    Case("generate ids vocab", lambda: gen(input_ids=torch.tensor([[3, 99]])), ValueError, r"input_ids: expected token ids in \[0, 39\] \(the model's vocabulary\), got \[3, 99\]"),
    Case("generate ids negative", lambda: gen(input_ids=torch.tensor([[-2, 5]])), ValueError, r"input_ids: expected token ids in \[0, 39\]"),
    Case("generate negative vocab", lambda: gen(negative_input_ids=torch.tensor([[40]])), ValueError, r"negative_input_ids: expected token ids in \[0, 39\]"),
    Case("generate negative batch", lambda: gen(input_ids=ids(2), negative_input_ids=ids(3, 2)), ValueError, r"negative_input_ids: expected batch size 1 \(shared\) or 2"),
    Case("generate negative mask", lambda: gen(negative_attention_mask=torch.ones(1, 2, dtype=torch.long)), ValueError, r"negative_attention_mask: given without negative_input_ids"),
    Case("generate mask shape", lambda: gen(attention_mask=torch.ones(1, 2, dtype=torch.long)), ValueError, r"attention_mask: expected the shape of input_ids \(1, 3\), got \(1, 2\)"),
    Case("generate right padding", lambda: gen(attention_mask=torch.tensor([[1, 1, 0]])), ValueError, r"attention_mask: expected left padding"),
    Case("generate positions", lambda: gen(max_new_tokens=20), ValueError, r"max_new_tokens: input_ids has up to 3 tokens, so at most 13 new ones fit the model's 16 positions; got 20"),
    Case("generate positions negative", lambda: gen(negative_input_ids=ids(1, 10), max_new_tokens=8), ValueError, r"max_new_tokens: negative_input_ids has up to 10 tokens, so at most 6"),
    Case("generate max_new_tokens 0", lambda: gen(max_new_tokens=0), ValueError, r"max_new_tokens: expected an integer ≥ 1, got 0"),
    Case("generate max_new_tokens float", lambda: gen(max_new_tokens=2.0), TypeError, r"max_new_tokens: expected an integer, got float 2.0"),
    Case("generate num_beams 0", lambda: gen(num_beams=0), ValueError, r"num_beams: expected an integer ≥ 1, got 0"),
    Case("generate return sequences", lambda: gen(num_return_sequences=0), ValueError, r"num_return_sequences: expected an integer ≥ 1"),
    Case("generate beams sample", lambda: gen(num_beams=2, do_sample=True), ValueError, r"do_sample: beam sampling"),
    Case("generate greedy sequences", lambda: gen(num_return_sequences=2), ValueError, r"num_return_sequences: greedy decoding returns one sequence"),
    Case("generate warpers greedy", lambda: gen(top_k=5), ValueError, r"do_sample: temperature/top_k/top_p/min_p act on sampling"),
    Case("generate pad vocab", lambda: gen(pad_token_id=40), ValueError, r"pad_token_id: expected an id in \[0, 39\] \(the model's vocabulary\), got 40"),
    Case("generate eos vocab", lambda: gen(eos_token_id=[1, 77]), ValueError, r"eos_token_id: expected ids in \[0, 39\] \(the model's vocabulary\), got \[77\]"),
    Case("generate length_penalty", lambda: gen(num_beams=2, length_penalty=NAN), ValueError, r"length_penalty: expected a finite number, got nan"),
    Case("generate guidance str", lambda: gen(guidance="strong"), TypeError, r"guidance: expected a number, a Schedule or a Guidance, got str"),
    Case("generate guidance nan", lambda: gen(guidance=NAN), ValueError, r"scale: expected a finite number, got nan"),
    Case("generate space", lambda: gen(space="probs"), ValueError, r"space: expected one of logits, logprobs, got 'probs'"),
    Case("generate plausibility", lambda: gen(plausibility=0.0), ValueError, r"plausibility: expected α in \(0, 1\], got 0.0"),
    Case("generate x0 rule", lambda: gen(guidance=Guidance(rule="apg", scale=2.0)), ValueError, r"guidance: the rule APG runs in space 'x0', which token models do not have"),
    Case("generate step schedule", lambda: gen(guidance=Custom(lambda tau: tau + 2, breakpoints_=(5.0,))), ValueError, r"guidance: expected schedule breakpoints in progress \[0, 1\], got 5.0"),
    Case("generate lying schedule", lambda: gen(guidance=Custom(lambda tau: tau + 2, unit_intervals_=((0.0, 1.0),))), ValueError, r"guidance: the Custom schedule declares s = 1 on \[0, 1\]"),
    Case("generate model", lambda: generate(torch.nn.Linear(2, 2), ids(), guidance=2.0), ValueError, r"model: expected a transformers causal LM"),
    Case("CausalLMModel model", lambda: CausalLMModel(torch.nn.Linear(3, 3)), ValueError, r"model: expected a transformers causal LM"),
    Case("processor schedule", lambda: GuidanceLogitsProcessor(lm(), Custom(lambda tau: tau + 2)), ValueError, r"max_new_tokens: a schedule over progress needs the number of new tokens"),
    Case("processor empty", lambda: proc(torch.zeros(0, 3, dtype=torch.long), torch.zeros(0, VOCAB)), ValueError, r"input_ids: expected at least one row and one token"),
    Case("processor ids vocab", lambda: proc(torch.tensor([[3, 50]]), torch.zeros(1, VOCAB)), ValueError, r"input_ids: expected token ids in \[0, 39\]"),
    Case("processor negative vocab", lambda: proc(ids(), torch.zeros(1, VOCAB), negative_input_ids=torch.tensor([[45]])), ValueError, r"negative_input_ids: expected token ids in \[0, 39\]"),
    Case("processor scores width", lambda: proc(ids(), torch.zeros(1, 7)), ValueError, r"scores: expected floats of shape \(1, 40\) \(rows of input_ids, the model's logits\), got shape \(1, 7\)"),
    Case("processor scores rows", lambda: proc(ids(), torch.zeros(2, VOCAB)), ValueError, r"scores: expected floats of shape \(1, 40\)"),
    Case("processor negative batch", lambda: proc(ids(4), torch.zeros(4, VOCAB), negative_input_ids=ids(3, 2)), ValueError, r"negative_input_ids: expected batch size 1 or a divisor of 4"),
    Case("processor guidance", lambda: GuidanceLogitsProcessor(lm(), [2.0]), TypeError, r"guidance: expected a number, a Schedule or a Guidance, got list"),
    # -- the console script (argparse-style, before any work)
    Case("cli threads 0", lambda: cli("--threads", "0"), ValueError, r"argparse refused"),
    Case("cli threads x", lambda: cli("--threads", "x"), ValueError, r"argparse refused"),
    Case("cli samples -1", lambda: cli("--samples-per-class", "-1"), ValueError, r"argparse refused"),
    Case("cli accelerator", lambda: cli("--accelerator", "gpux"), ValueError, r"argparse refused"),
    Case("cli strategy", lambda: cli("--strategy", "nope"), ValueError, r"argparse refused"),
    Case("cli devices", lambda: cli("--devices", "0"), ValueError, r"argparse refused"),
    Case("cli cache file", lambda: cli("--cache", "/etc/hostname"), ValueError, r"argparse refused"),
    Case("cli paradigms", lambda: cli("--paradigms", "gan"), ValueError, r"argparse refused"),
    Case("cli seed", lambda: cli("--seed", "one"), ValueError, r"argparse refused"),
]
# fmt: on

CLI_MESSAGES = {
    "cli threads 0": "argument --threads: expected a positive integer, got '0'",
    "cli threads x": "argument --threads: expected a positive integer, got 'x'",
    "cli samples -1": "argument --samples-per-class: expected a positive integer, got '-1'",
    "cli accelerator": "argument --accelerator: expected one of auto, cpu, cuda, gpu, mps, tpu, got 'gpux'",
    "cli strategy": "argument --strategy: expected one of auto, ddp, ddp_spawn",
    "cli devices": "argument --devices: expected a positive integer or 'auto', got '0'",
    "cli cache file": "argument --cache: '/etc/hostname' exists and is not a directory",
    "cli paradigms": "argument --paradigms: expected a comma-separated list of",
    "cli seed": "argument --seed: invalid int value: 'one'",
}
