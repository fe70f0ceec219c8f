"""The typed rules and their pure functions refuse the same parameters with the same error.

Both call one validator (``guidance.validation``: ``check_parameter``, ``check_weights``), so a
parameter cannot be refused by ``MamboG`` and pass through ``mambo_g``, and a string is never read
as a tuple of numbers.
"""

import math

import pytest
import torch

from unified_guidance.guidance import APG, FDG, MamboG, NormCap, Rescale, StaticClip
from unified_guidance.guidance.frequency import fdg
from unified_guidance.guidance.functional import apg, mambo_g, norm_cap, rescale, static_clip
from unified_guidance.guidance.validation import RULE_PARAMETERS

C, U = torch.randn(2, 3), torch.randn(2, 3)
IMG = torch.randn(2, 1, 8, 8)
BAD = [-1.0, math.nan, math.inf, "1", None, True]

PAIRS = {
    "alpha": (lambda v: MamboG(alpha=v), lambda v: mambo_g(C, U, 2.0, alpha=v)),
    "eta": (lambda v: APG(eta=v), lambda v: apg(C, U, 2.0, eta=v)),
    "momentum": (lambda v: APG(momentum=v), lambda v: apg(C, U, 2.0, momentum=v)),
    "norm_threshold": (lambda v: APG(norm_threshold=v), lambda v: apg(C, U, 2.0, norm_threshold=v)),
    "phi": (lambda v: Rescale(phi=v), lambda v: rescale(C, U, v)),
    "k": (lambda v: NormCap(k=v), lambda v: norm_cap(C, U, v)),
    "bound": (lambda v: StaticClip(bound=v), lambda v: static_clip(C, v)),
    "parallel_weights": (
        lambda v: FDG(ratios=(1.0, 0.5), parallel_weights=v),
        lambda v: fdg(IMG, IMG, (2.0, 1.5), parallel_weights=v),
    ),
}


def _error(call, value):
    try:
        call(value)
    except (TypeError, ValueError) as err:
        return type(err), str(err)
    return None


@pytest.mark.parametrize("name", PAIRS)
@pytest.mark.parametrize("value", [*BAD, "11", (1.0,), (1.0, math.nan)], ids=repr)
def test_a_typed_rule_and_its_function_refuse_alike(name, value):
    typed, pure = (_error(call, value) for call in PAIRS[name])
    assert typed == pure
    if typed is not None:
        assert typed[1].startswith(name)  # the message names the parameter


def test_every_range_has_a_pair_and_bad_numbers_are_refused():
    assert set(RULE_PARAMETERS) - {"zero_init"} <= set(PAIRS)
    for name in RULE_PARAMETERS.keys() & PAIRS.keys():
        for value in (math.nan, math.inf, "1"):
            assert _error(PAIRS[name][0], value) is not None, (name, value)
