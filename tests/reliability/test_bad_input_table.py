"""The bad-input table: every public entry point, each wrong call a clear error naming the argument.

Each row asserts the exception type and that the message names the argument (and, mostly,
what was expected and what came). The rows live beside this file, one module per layer.
"""

import pytest
from rel_cases_engine import CASES as ENGINE
from rel_cases_paradigms import CASES as PARADIGMS
from rel_cases_paradigms import CLI_MESSAGES as PARADIGM_MESSAGES
from rel_cases_surface import CASES as SURFACE
from rel_cases_surface import CLI_MESSAGES as SURFACE_MESSAGES

CASES = [*ENGINE, *PARADIGMS, *SURFACE]
CLI_MESSAGES = {**PARADIGM_MESSAGES, **SURFACE_MESSAGES}


def test_the_table_is_large_and_its_ids_unique():
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(CASES) >= 150 and len(SURFACE) >= 30


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_raises_a_clear_error(case, capsys):
    with pytest.raises(case.error, match=case.match):
        case.call()
    if case.id in CLI_MESSAGES:  # argparse printed the message; it names the argument
        assert CLI_MESSAGES[case.id] in capsys.readouterr().err
