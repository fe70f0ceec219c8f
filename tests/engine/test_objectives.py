"""The training objectives of guided models (cfg, gft, model_guidance, distill) in both continuous paradigms:
each loss equals its formula computed by hand on float64 tensors through real networks, the stop-gradient
branches (∅ at β = 1, MG's difference, the teacher) get no gradient, and β = 1 / w = 0 give back the cfg loss."""

from __future__ import annotations

import math

import pytest
import torch

from unified_guidance.core.shapes import broadcast_like
from unified_guidance.diffusion import EpsModel, diffusion_loss
from unified_guidance.diffusion.loss import q_sample
from unified_guidance.flow import VelocityModel, flow_matching_loss
from unified_guidance.guidance.objectives import Objective, sample_strength
from unified_guidance.networks import MLPNet

NULL = 3
LABELS = torch.tensor([0, 2, NULL, 1, 0])  # row 2 is a dropped (∅) row


def net(guidance_input: bool, seed: int) -> MLPNet:
    torch.manual_seed(seed)
    module = MLPNet(dim=2, num_classes=3, width=16, depth=2, guidance_input=guidance_input).double()
    if guidance_input:  # the strength layer starts at zero; give it weights so that β matters here
        torch.nn.init.normal_(module.embed.strength[-1].weight, std=0.5)
    return module


class Diffusion:
    """The diffusion loss on fixed (t, ε), and the same draw by hand: x_t, the ε target, ε-predictions."""

    def __init__(self) -> None:
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(5, 2, generator=gen, dtype=torch.float64)
        self.t = torch.rand(5, generator=gen, dtype=torch.float64) * 0.9 + 0.05
        self.eps = torch.randn(5, 2, generator=gen, dtype=torch.float64)

    def model(self, network):
        return EpsModel(network, prediction="v", null_cond=NULL, num_classes=3)  # v: the loss converts to ε

    def loss(self, model, objective, beta=None):
        return diffusion_loss(model, self.x, LABELS, t=self.t, eps=self.eps, objective=objective, beta=beta)

    def draw(self, model):
        x_t = q_sample(model.path, self.x, self.t, self.eps)

        def eps_of(m, cond, beta=None):
            c = m.coefficients(self.t)
            out = m(x_t, self.t, cond) if beta is None else m(x_t, self.t, cond, beta=beta)
            a, s = broadcast_like(c.alpha_t, x_t), broadcast_like(c.sigma_t, x_t)
            return s * x_t + a * out  # v = α·ε − σ·x0 on a VP path: ε = σ·x_t + α·v

        return self.eps, eps_of


class Flow:
    """The flow-matching loss with p_uncond = 0 on a seeded generator, and the same draws by hand."""

    def __init__(self) -> None:
        self.x = torch.randn(5, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)

    def model(self, network):
        return VelocityModel(network, null_cond=NULL)

    def loss(self, model, objective, beta=None):
        gen = torch.Generator().manual_seed(7)
        return flow_matching_loss(model, self.x, LABELS, p_uncond=0.0, time_sampler="uniform", generator=gen,
                                  objective=objective, beta=beta)  # fmt: skip

    def draw(self, model):
        gen = torch.Generator().manual_seed(7)
        t = torch.rand(5, generator=gen).double()
        x0 = torch.randn(self.x.shape, generator=gen).double()
        x_t = t[:, None] * self.x + (1 - t[:, None]) * x0

        def velocity(m, cond, beta=None):
            return m(x_t, t, cond) if beta is None else m(x_t, t, cond, beta=beta)

        return self.x - x0, velocity


PARADIGMS = {"diffusion": Diffusion, "flow": Flow}
BETA = torch.tensor([0.3, 0.7, 0.4, 1.0, 0.05], dtype=torch.float64)
NULLS = torch.full((5,), NULL)


def grads(loss, module):
    module.zero_grad()
    loss.backward()
    return [p.grad.clone() if p.grad is not None else torch.zeros_like(p) for p in module.parameters()]


def assert_same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-12)


def differ(a, b):
    return any(not torch.allclose(x, y, rtol=1e-6, atol=1e-9) for x, y in zip(a, b, strict=True))


@pytest.fixture(params=sorted(PARADIGMS))
def case(request):
    return PARADIGMS[request.param]()


def test_gft_loss_is_the_implicit_conditional_with_the_null_branch_stopped(case):
    network = net(True, 0)
    model = case.model(network)
    target, pred = case.draw(model)
    beta = torch.where(LABELS == NULL, 1.0, BETA)  # the ∅ row trains the unconditional model at β = 1
    b = beta[:, None]

    def by_hand(stop: bool):
        uncond = pred(model, NULLS, torch.ones(5, dtype=torch.float64))
        implicit = b * pred(model, LABELS, beta) + (1 - b) * (uncond.detach() if stop else uncond)
        return (implicit - target).pow(2).mean()

    got = case.loss(model, Objective("gft"), beta=BETA)
    torch.testing.assert_close(got, by_hand(True), rtol=1e-12, atol=0)
    g = grads(got, network)
    assert_same(g, grads(by_hand(True), network))
    assert differ(g, grads(by_hand(False), network))  # the stop-gradient is what makes them equal


def test_model_guidance_regresses_onto_the_stopped_guided_target(case):
    network = net(False, 1)
    model = case.model(network)
    target, pred = case.draw(model)
    w = 0.6

    def by_hand(stop: bool):
        cond, uncond = pred(model, LABELS), pred(model, NULLS)
        gap = (cond - uncond).detach() if stop else cond - uncond
        return (cond - (target + w * gap)).pow(2).mean()

    got = case.loss(model, Objective("model_guidance", mg_scale=w))
    torch.testing.assert_close(got, by_hand(True), rtol=1e-12, atol=0)
    g = grads(got, network)
    assert_same(g, grads(by_hand(True), network))
    assert differ(g, grads(by_hand(False), network))


def test_model_guidance_with_a_guide_model_takes_the_gap_from_it(case):
    network, guide_net = net(False, 1), net(False, 5)
    model, guide = case.model(network), case.model(guide_net)
    target, pred = case.draw(model)
    gap = pred(guide, LABELS) - pred(guide, NULLS)
    by_hand = (pred(model, LABELS) - (target + 0.5 * gap.detach())).pow(2).mean()
    got = case.loss(model, Objective("model_guidance", mg_scale=0.5, teacher=guide))
    torch.testing.assert_close(got, by_hand, rtol=1e-12, atol=0)
    grads(got, network)
    assert all(p.grad is None for p in guide_net.parameters())


def test_distill_matches_the_teachers_cfg_output_and_leaves_the_teacher_untouched(case):
    student_net, teacher_net = net(True, 2), net(False, 3)
    student, teacher = case.model(student_net), case.model(teacher_net)
    _, pred = case.draw(student)
    beta = torch.where(LABELS == NULL, 1.0, BETA)
    s = (1 / beta)[:, None]
    guided = s * pred(teacher, LABELS) - (s - 1) * pred(teacher, NULLS)  # the ∅ row: s = 1, teacher(∅)
    by_hand = (pred(student, LABELS, beta) - guided.detach()).pow(2).mean()
    got = case.loss(student, Objective("distill", teacher=teacher), beta=BETA)
    torch.testing.assert_close(got, by_hand, rtol=1e-12, atol=0)
    assert_same(grads(got, student_net), grads(by_hand, student_net))
    assert all(p.grad is None for p in teacher_net.parameters())


def test_beta_one_and_w_zero_give_the_cfg_loss_and_its_gradient(case):
    network = net(True, 4)
    model = case.model(network)
    cfg = case.loss(model, None)
    g = grads(cfg, network)
    for objective, beta in ((Objective("gft"), torch.ones(5)), (Objective("model_guidance", mg_scale=0.0), None)):
        other = case.loss(model, objective, beta=beta)
        torch.testing.assert_close(other, cfg, rtol=1e-12, atol=0)
        assert_same(grads(other, network), g)


def test_distill_at_scale_one_matches_the_teachers_conditional(case):
    student_net, teacher_net = net(True, 2), net(False, 3)
    student, teacher = case.model(student_net), case.model(teacher_net)
    _, pred = case.draw(student)
    by_hand = (pred(student, LABELS, torch.ones(5)) - pred(teacher, LABELS)).pow(2).mean()
    got = case.loss(student, Objective("distill", teacher=teacher), beta=torch.ones(5))
    torch.testing.assert_close(got, by_hand.detach(), rtol=1e-12, atol=0)


def test_strengths_are_drawn_in_the_scale_range():
    gen = torch.Generator().manual_seed(0)
    gft = sample_strength(Objective("gft"), 20_000, generator=gen)
    assert float(gft.min()) > 0 and float(gft.max()) <= 1 and float(gft.mean()) == pytest.approx(0.5, abs=0.01)
    ranged = sample_strength(Objective("gft", scale_range=(2.0, 4.0)), 20_000, generator=gen)
    assert float(ranged.min()) >= 0.25 and float(ranged.max()) <= 0.5
    assert float(ranged.mean()) == pytest.approx(0.375, abs=0.005)  # uniform in β
    teacher = torch.nn.Identity()
    scales = 1 / sample_strength(Objective("distill", teacher=teacher), 20_000, generator=gen)
    assert float(scales.min()) >= 1 and float(scales.max()) <= 5 and float(scales.mean()) == pytest.approx(3, abs=0.03)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "cca"}, "objective: expected one of cfg, gft, model_guidance, distill, got 'cca'"),
        ({"name": "model_guidance", "mg_scale": 1.0}, r"mg_scale: expected MG's w in \[0, 1\)"),
        ({"name": "gft", "scale_range": (0.5, 2.0)}, r"scale_range: expected \(s_min, s_max\) with 1 <= s_min"),
        ({"name": "distill", "teacher": torch.nn.Identity(), "scale_range": (1.0, math.inf)}, "finite for distill"),
        ({"name": "distill"}, "teacher: the distill objective needs a teacher"),
    ],
)
def test_bad_objectives_are_refused_by_name(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Objective(**kwargs)


def test_gft_needs_a_network_with_the_strength_input(case):
    with pytest.raises(ValueError, match="model: the gft objective trains the guidance strength β"):
        case.loss(case.model(net(False, 0)), Objective("gft"))


def test_forward_rows_per_objective(case):
    """cfg: B rows; GFT: B with gradient + the rows with β < 1 (not the ∅ row) without; MG: B + the non-∅
    rows; distillation: B student rows, 2B teacher rows (its conditional and ∅ in one forward)."""
    student, plain, teacher = case.model(net(True, 0)), case.model(net(False, 1)), case.model(net(False, 2))
    beta = BETA.clone()
    runs = {
        "cfg": (plain, Objective(), None, [(plain, 1, 5)]),
        "gft": (student, Objective("gft"), beta, [(student, 2, 5 + 3)]),  # β = 1 on rows 2 (∅) and 3
        "model_guidance": (plain, Objective("model_guidance"), None, [(plain, 2, 5 + 4)]),
        "distill": (student, Objective("distill", teacher=teacher), beta, [(student, 1, 5), (teacher, 1, 10)]),
    }
    for model, objective, b, counts in runs.values():
        for m, _, _ in counts:
            m.reset_stats()
        case.loss(model, objective, beta=b)
        for m, calls, rows in counts:
            assert (m.stats.calls, m.stats.rows) == (calls, rows), objective.name
