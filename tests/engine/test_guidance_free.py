"""A guidance-free model under the engine: the CFG reference on ∅ folds into one forward of B rows
with β = 1/s(τ) handed to the network; every case the fold cannot express runs the reference at
β = 1 as for any model (issue 26, GFT: Chen et al., arXiv 2501.15420)."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from unified_guidance import diffusion, flow
from unified_guidance.core import Conditions
from unified_guidance.guidance import APG, DynamicThreshold, Guidance, Reference, Rescale, guide
from unified_guidance.guidance.functional import cfg, dynamic_threshold
from unified_guidance.networks import MLPNet, TinyDiT, TinyUNet
from unified_guidance.perturb import Rows, pag, perturbed
from unified_guidance.schedules import Decay, Interval

CLASSES = 3
STRENGTH = "embed.strength.2."  # the zero-initialised last layer of the β embedding


def _net(kind: str, guidance_input: bool = True) -> nn.Module:
    if kind == "mlp":
        return MLPNet(dim=2, num_classes=CLASSES, width=16, guidance_input=guidance_input)
    if kind == "unet":
        return TinyUNet(image_size=4, num_classes=CLASSES, width=8, guidance_input=guidance_input)
    return TinyDiT(image_size=4, num_classes=CLASSES, width=16, depth=2, guidance_input=guidance_input)


def _wake(net: nn.Module, seed: int = 0, *, keep: str | None = None) -> nn.Module:
    """``net`` in float64 with its zero-initialised parameters (output heads, adaLN, the β embedding's
    last layer unless ``keep`` prefixes it) set to seeded noise, so that no branch is trivially zero."""
    g = torch.Generator().manual_seed(seed)
    net = net.double()
    with torch.no_grad():
        for name, p in net.named_parameters():
            if not p.any() and not (keep is not None and name.startswith(keep)):
                p.copy_(0.3 * torch.randn(p.shape, generator=g, dtype=p.dtype))
    return net


def _model(net: nn.Module, paradigm: str = "eps"):
    if paradigm == "velocity":
        return flow.VelocityModel(net, null_cond=CLASSES)
    return diffusion.EpsModel(net, null_cond=CLASSES, num_classes=CLASSES)


def _inputs(kind: str, batch: int = 4, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    shape = (batch, 2) if kind == "mlp" else (batch, 1, 4, 4)
    return torch.randn(shape, generator=g, dtype=torch.float64), torch.arange(batch) % CLASSES


class _Betas:
    """A forward pre-hook on a network recording the β of each call (``None``: not given)."""

    def __init__(self, net: nn.Module) -> None:
        self.calls: list[torch.Tensor | None] = []
        self.rows: list[int] = []
        self.handle = net.register_forward_pre_hook(self)

    def __call__(self, module: nn.Module, args: tuple) -> None:
        self.rows.append(args[0].shape[0])
        self.calls.append(args[3] if len(args) > 3 else None)


class _FixedBeta(nn.Module):
    """The network at one fixed β, as a network without the input (the oracle of a guided sampler)."""

    def __init__(self, net: nn.Module, beta: float) -> None:
        super().__init__()
        self.net, self.beta = net, beta

    def forward(self, x, t, labels):
        return self.net(x, t, labels, torch.full((x.shape[0],), self.beta, dtype=x.dtype))


@pytest.mark.parametrize("paradigm", ["eps", "velocity"])
@pytest.mark.parametrize("kind", ["mlp", "unet", "dit"])
@pytest.mark.parametrize("s", [1.5, 3.0, 7.0])
def test_the_guided_call_at_scale_s_is_the_model_at_beta_one_over_s_in_one_forward(float64, kind, paradigm, s):
    model = _model(_wake(_net(kind)), paradigm)
    x, y = _inputs(kind)
    guided = guide(model, s)
    out = guided(x, torch.tensor(0.4), y)
    rows = model.stats.rows
    assert torch.equal(out, model(x, torch.tensor(0.4), y, beta=1.0 / s))
    assert rows == x.shape[0] and model.stats.calls == 2  # the guided call, then the direct one
    assert guided.stats.skipped_reference == 0  # folded, not skipped
    assert not torch.equal(out, model(x, torch.tensor(0.4), y))  # β is not ignored: the guidance is in it


@pytest.mark.parametrize("kind", ["mlp", "dit"])
def test_beta_one_is_the_conditional_model_and_a_zero_initialised_input_changes_nothing(float64, kind):
    x, y = _inputs(kind)
    t = torch.tensor(0.3)
    awake = _model(_wake(_net(kind)))
    assert torch.equal(awake(x, t, y, beta=1.0), awake(x, t, y))  # β = None means 1
    plain = _wake(_net(kind, guidance_input=False), seed=5)
    torch.manual_seed(9)  # other initial weights: the checkpoint must overwrite all but the β embedding
    fine = _net(kind).double()
    missing, unexpected = fine.load_state_dict(plain.state_dict(), strict=False)
    assert unexpected == [] and missing and all(k.startswith("embed.strength.") for k in missing)
    cfg_model, gft_model = _model(plain), _model(fine)
    assert not cfg_model.guidance_input and gft_model.guidance_input
    c = cfg_model(x, t, y)
    for beta in (1.0, 0.5, 0.125):
        assert torch.equal(gft_model(x, t, y, beta=beta), c)
    assert torch.equal(guide(gft_model, 4.0)(x, t, y), c)  # guided, but the input is still zero: c itself
    fresh = _wake(_net(kind), seed=5, keep=STRENGTH)  # with the input, as initialised: β is still ignored
    without = _net(kind, guidance_input=False).double()
    missing, unexpected = without.load_state_dict(fresh.state_dict(), strict=False)
    assert missing == [] and unexpected and all(k.startswith("embed.strength.") for k in unexpected)
    assert torch.equal(_model(fresh)(x, t, y), _model(without)(x, t, y))


def test_a_diffusion_sampler_runs_one_forward_of_b_rows_per_guided_step(float64):
    net = _wake(_net("unet"))
    model = _model(net)
    x, y = _inputs("unet")
    betas = _Betas(net)
    out, stats = diffusion.sample(model, 3.0, None, y, steps=6, noise=x)
    assert (stats.nfe, stats.forward_calls, stats.forward_rows) == (6, 6, 6 * x.shape[0])
    assert stats.skipped_reference == 0 and betas.rows == [x.shape[0]] * 6
    assert all(torch.equal(b, torch.full((4,), 1 / 3.0)) for b in betas.calls)
    oracle, _ = diffusion.sample(_model(_FixedBeta(net, 1 / 3.0)), 1.0, None, y, steps=6, noise=x)
    assert torch.equal(out, oracle)


@pytest.mark.parametrize("method, options", [("euler", {"steps": 5}), ("dopri5", {"rtol": 1e-4, "atol": 1e-4})])
def test_a_flow_solver_runs_one_forward_of_b_rows_per_evaluation(float64, method, options):
    net = _wake(_net("mlp"))
    model = _model(net, "velocity")
    x, y = _inputs("mlp")
    out, stats = flow.sample(model, 2.5, x, y, method=method, **options)
    assert stats.forward_calls == stats.nfe and stats.forward_rows == stats.nfe * x.shape[0]
    assert stats.skipped_reference == 0 and (method != "euler" or stats.nfe == 5)
    oracle, same = flow.sample(_model(_FixedBeta(net, 1 / 2.5), "velocity"), 1.0, x, y, method=method, **options)
    assert torch.equal(out, oracle) and same.nfe == stats.nfe


@pytest.mark.parametrize(
    "schedule", [Interval(4.0, lo=0.3, hi=0.7), Decay(5.0, half_life=0.2)], ids=["interval", "decay"]
)
def test_each_step_of_a_scale_schedule_hands_the_network_beta_of_its_own_progress(float64, schedule):
    net = _wake(_net("mlp"))
    model = _model(net)
    x, y = _inputs("mlp")
    betas = _Betas(net)
    times: list[torch.Tensor] = []
    model.register_forward_pre_hook(lambda m, args: times.append(args[1]))
    _, stats = diffusion.sample(model, Guidance(scale=schedule), None, y, steps=8, noise=x)
    assert stats.forward_rows == 8 * x.shape[0] and betas.rows == [x.shape[0]] * 8
    unit = 0
    for t, beta in zip(times, betas.calls, strict=True):
        s = schedule.value(model.progress(t))
        if bool(s == 1):  # the conditional model: no β, and the (skipped) reference is counted
            assert beta is None
            unit += 1
        else:
            assert torch.equal(beta, (1.0 / s).expand(x.shape[0]))
    assert stats.skipped_reference == unit and (unit > 0) == isinstance(schedule, Interval)


def test_a_per_sample_time_gives_each_row_its_own_beta(float64):
    net = _wake(_net("mlp"))
    model = _model(net, "velocity")
    x, y = _inputs("mlp")
    t = torch.tensor([0.0, 0.2, 0.5, 0.9])
    schedule = Decay(6.0, half_life=0.3)
    out = guide(model, Guidance(scale=schedule))(x, t, y)
    assert torch.equal(out, model(x, t, y, beta=1.0 / schedule.value(model.progress(t))))
    assert model.stats.rows == 2 * x.shape[0]


def _plain_twin(net: nn.Module):
    """The same network seen as a model without the input: the engine guides it as it always did."""

    class Plain(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = net

        def forward(self, x, t, labels):
            return self.inner(x, t, labels)

    return _model(Plain())


@pytest.mark.parametrize(
    "guidance, cond",
    [
        (Guidance(rule=APG(eta=0.0, norm_threshold=2.0, momentum=-0.5), scale=3.0), "one"),
        (Guidance(scale=3.0, post=(Rescale(phi=0.7),)), "one"),
        (Guidance(scale=3.0), "negative"),
        (Guidance(scale=3.0), "compose"),
        (Guidance(scale=3.0, reference=pag("blocks.1.attn")), "one"),
    ],
    ids=["apg", "rescale", "negative", "compose", "pag-alone"],
)
def test_what_the_fold_cannot_express_runs_the_reference_at_beta_one(float64, guidance, cond):
    net = _wake(_net("dit"))
    model = _model(net)
    x, y = _inputs("dit")
    c = {
        "one": y,
        "negative": Conditions.single(y, negative=(y + 1) % CLASSES),
        "compose": Conditions.compose([(y, 1.0), ((y + 2) % CLASSES, 0.5)]),
    }[cond]
    betas = _Betas(net)
    out = guide(model, guidance)(x, torch.tensor(0.6), c)
    assert betas.calls == [None]  # one stacked forward, every row at β = 1
    twin = _plain_twin(net)
    expected = guide(twin, guidance)(x, torch.tensor(0.6), c)
    assert torch.equal(out, expected)
    assert model.stats.rows == twin.stats.rows == (3 if cond == "compose" else 2) * x.shape[0]


def test_a_post_process_that_does_not_read_c_keeps_the_fold(float64):
    model = _model(_wake(_net("unet")))
    x, y = _inputs("unet")
    t = torch.tensor(0.5)
    out = guide(model, Guidance(scale=3.0, post=(DynamicThreshold(percentile=0.9),)))(x, t, y)
    coeffs = model.coefficients(t)
    eps = model(x, t, y, beta=1 / 3.0)
    x0 = dynamic_threshold((x - coeffs.sigma_t * eps) / coeffs.alpha_t, percentile=0.9)
    torch.testing.assert_close(out, (x - coeffs.alpha_t * x0) / coeffs.sigma_t, rtol=0, atol=1e-12)
    assert model.stats.rows == 2 * x.shape[0]  # B for the guided call, B for the oracle


def test_pag_beside_the_folded_cfg_hands_the_perturbed_rows_the_same_beta(float64):
    net = _wake(_net("dit"))
    model = _model(net)
    x, y = _inputs("dit")
    t = torch.tensor(0.5)
    betas = _Betas(net)
    out = guide(model, Guidance(scale=4.0, also=[Reference(pag("blocks.1.attn"), 2.0)]))(x, t, y)
    assert betas.rows == [2 * x.shape[0]] and torch.equal(betas.calls[0], torch.full((8,), 0.25))
    c = model(x, t, y, beta=0.25)
    with perturbed(model, [(pag("blocks.1.attn"), Rows.all(x.shape[0]))]):
        c_pert = model(x, t, y, beta=0.25)
    torch.testing.assert_close(out, cfg(c, c_pert, 2.0), rtol=0, atol=1e-12)  # c + (c − c_pert)


def test_the_unconditional_call_is_not_guided_and_runs_b_rows(float64):
    model = _model(_wake(_net("mlp")))
    x, _ = _inputs("mlp")
    out = guide(model, 3.0)(x, torch.tensor(0.5), None)
    assert torch.equal(out, model(x, torch.tensor(0.5), None)) and model.stats.rows == 2 * x.shape[0]


@pytest.mark.parametrize("s", [0.5, 0.0])
def test_a_scale_below_one_is_refused_naming_scale(float64, s):
    model = _model(_wake(_net("mlp")))
    x, y = _inputs("mlp")
    with pytest.raises(ValueError, match=r"scale: a guidance-free model takes its guidance as β = 1/s, so its CFG "
                                         rf"scale must be ≥ 1, got {s:g}"):  # fmt: skip
        guide(model, s)(x, torch.tensor(0.5), y)


def test_beta_is_refused_by_name_where_it_cannot_go(float64):
    x, y = _inputs("mlp")
    t = torch.tensor(0.5)
    plain = _model(_wake(_net("mlp", guidance_input=False)))
    with pytest.raises(ValueError, match="beta: EpsModel takes no guidance strength"):
        plain(x, t, y, beta=0.5)
    with pytest.raises(ValueError, match="beta: this network was built without guidance_input"):
        plain.net(x, t, y, torch.full((4,), 0.5))
    gft = _model(_wake(_net("mlp")))
    for bad in (0.0, 1.5, -0.25):
        with pytest.raises(ValueError, match="beta: expected"):
            gft(x, t, y, beta=bad)
    with pytest.raises(ValueError, match=r"beta: expected a scalar or shape \(4,\), got shape \(3,\)"):
        gft(x, t, y, beta=torch.full((3,), 0.5))
    with pytest.raises(TypeError, match="beta: expected a number or a tensor, got str"):
        gft(x, t, y, beta="0.5")
