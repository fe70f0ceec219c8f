"""Non-finite values are named where they first appear; half precision stays finite; state is tied to its batch."""

import pytest
import torch

import unified_guidance as ug
from tests.engine.conftest import x_batch
from unified_guidance.core.checks import DeferredChecks, NonFiniteError
from unified_guidance.data import two_d_mixture
from unified_guidance.guidance import APG, CFG, Guidance, ModelReference, NormCap, PostProcess
from unified_guidance.guidance.functional import apg, cfg_zero_star, norm_cap
from unified_guidance.schedules import Custom, LinearBetaSchedule

LABELS = torch.tensor([0, 1, 2, 0])


class Explode(PostProcess):
    space = None

    def __call__(self, guided, cond):
        return guided / 0.0

    def __repr__(self):
        return "Explode()"


def test_an_overflowing_scale_is_blamed_on_the_rule_not_the_branches():
    model = ug.core.FunctionModel(lambda x, t, c: x + c[:, None], space="eps", path=LinearBetaSchedule(), null_cond=3)
    x = torch.zeros(4, 2)  # float32: s·(c − u) = 3e38·(−3) overflows
    with pytest.raises(NonFiniteError, match=r"guided prediction: expected finite values.*made by CFG\(\) from finite"):
        ug.guide(model, 3e38)(x, 0.5, LABELS)


def test_a_post_process_that_makes_inf_is_named(mixture):
    with pytest.raises(NonFiniteError, match=r"post: expected finite values, got 8 non-finite.*made by Explode\(\)"):
        ug.guide(mixture, Guidance(scale=2.0, post=(Explode(),)))(x_batch(), 0.5, LABELS)
    with pytest.raises(NonFiniteError, match=r"post: .*Explode"):  # also where the reference is skipped (s = 1)
        ug.guide(mixture, Guidance(scale=1.0, post=(Explode(),)))(x_batch(), 0.5, LABELS)


def test_nan_in_x_is_named_x_not_a_prediction(mixture):
    x = x_batch()
    x[1, 0] = float("nan")
    with pytest.raises(NonFiniteError, match=r"^x: expected finite values, got 1 non-finite entries \(of 8\)"):
        ug.guide(mixture, 3.0)(x, 0.5, LABELS)


def test_a_custom_schedule_that_returns_nan_is_named(mixture):
    bad = Custom(lambda tau: tau * float("nan"))
    with pytest.raises(NonFiniteError, match=r"scale: expected finite values.*from the Custom schedule"):
        ug.guide(mixture, bad)(x_batch(), 0.5, LABELS)


def test_check_finite_false_returns_what_the_rule_made(mixture):
    out = ug.guide(mixture, Guidance(scale=2.0, post=(Explode(),), check_finite=False))(x_batch(), 0.5, LABELS)
    assert not bool(torch.isfinite(out).any())


def test_a_failed_call_leaves_the_rule_state_untouched(mixture):
    g = ug.guide(mixture, Guidance(rule=APG(momentum=-0.5), scale=2.0, post=(Explode(),)))
    with pytest.raises(NonFiniteError):
        g(x_batch(), 0.5, LABELS)
    assert g.states == [None]


def test_t_of_the_wrong_shape_names_the_batch_of_x(mixture):
    with pytest.raises(ValueError, match=r"t: expected a scalar or shape \(4,\) \(the batch of x\), got shape \(8,\)"):
        ug.guide(mixture, 2.0)(x_batch(), torch.full((8,), 0.5), LABELS)


def test_t_outside_the_path_is_stated_in_t(mixture):
    message = r"t: expected times on the model's path, from 1 \(noise\) to 0 \(data\), got values in \[-0.5, 0.5\]"
    with pytest.raises(ValueError, match=message):
        ug.guide(mixture, 2.0)(x_batch(), torch.tensor([0.5, -0.5, 0.5, 0.5]), LABELS)


def test_post_given_as_a_string_is_refused(mixture):
    message = r"post: expected a sequence of post-processes, got 'rescale'; write post=\('rescale',\)"
    with pytest.raises(TypeError, match=message):
        Guidance(scale=2.0, post="rescale")


def test_reference_model_in_another_space_is_refused(mixture):
    x0_model = two_d_mixture(path=LinearBetaSchedule(), space="x0")
    with pytest.raises(ValueError, match=r"reference: the reference model predicts 'x0' but the model predicts 'eps'"):
        ug.guide(mixture, Guidance(scale=2.0, reference=ModelReference(x0_model)))


def test_apg_momentum_from_another_batch_is_refused(mixture):
    g = ug.guide(mixture, Guidance(rule=APG(momentum=-0.5), scale=2.0))
    g(x_batch(4), 0.5, LABELS)
    message = r"state: expected APG momentum for predictions of shape \(1, 2\), got \(4, 2\)"
    with pytest.raises(ValueError, match=message):
        g(x_batch(1), 0.4, LABELS[:1])
    g.reset()
    g(x_batch(1), 0.4, LABELS[:1])


def test_norm_cap_of_a_zero_prediction_is_zero_not_nan():
    zero = torch.zeros(2, 3)
    assert torch.equal(norm_cap(zero, zero, 1.0), zero)
    assert torch.equal(norm_cap(zero, torch.ones(2, 3), 1.0), zero)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_projections_match_float32(dtype):
    # ‖c‖² = 300²·1024 ≈ 9e7 overflows float16 (max 65504); the 1e-12 epsilons underflow to 0.
    gen = torch.Generator().manual_seed(0)
    c = (300 + torch.randn(2, 1024, generator=gen)).to(dtype)
    u = (290 + torch.randn(2, 1024, generator=gen)).to(dtype)
    for fn in (lambda c, u: apg(c, u, 3.0, eta=0.5, norm_threshold=50.0)[0], lambda c, u: cfg_zero_star(c, u, 3.0)):
        half, full = fn(c, u), fn(c.float(), u.float())
        assert half.dtype == dtype and bool(torch.isfinite(half).all())
        torch.testing.assert_close(half.float(), full, rtol=2e-2, atol=2.0)
    zero = torch.zeros(2, 8, dtype=dtype)
    assert bool(torch.isfinite(cfg_zero_star(zero, zero, 2.0)).all())
    assert bool(torch.isfinite(apg(zero, zero, 2.0)[0]).all())


def test_deferred_checks_report_the_first_failure_in_order():
    checks = DeferredChecks()
    checks.finite("a", torch.ones(3))
    checks.finite("b", torch.tensor([1.0, float("inf")]))
    checks.finite("c", torch.tensor([float("nan")]))
    with pytest.raises(NonFiniteError, match=r"^b: expected finite values, got 1 non-finite entries"):
        checks.verify()
    checks.verify()  # the queue was emptied
    off = DeferredChecks(enabled=False)
    off.finite("a", torch.tensor([float("nan")]))
    off.verify()


def test_one_read_back_per_guided_call_and_one_full_size_reduction(mixture, monkeypatch):
    seen = []
    original = DeferredChecks.verify

    def verify(self, **kwargs):
        seen.append([flag is not None for flag, *_ in self._entries])
        return original(self, **kwargs)

    monkeypatch.setattr(DeferredChecks, "verify", verify)
    ug.guide(mixture, Guidance(rule=CFG(), scale=2.0, post=(NormCap(2.0),)))(x_batch(), 0.5, LABELS)
    assert len(seen) == 1  # one read-back for the whole call
    kinds = seen[0]
    # traced (kept to blame, never reduced on success): x, both branches, the rule's and the post's output;
    # checked: t in range, the scale, the output.
    assert kinds.count(False) == 5 and kinds.count(True) == 3
