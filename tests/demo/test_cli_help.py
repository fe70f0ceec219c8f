"""The console script's help reads as plain text, names the valid paradigms, and tells its version."""

import re
from pathlib import Path

import pytest

import unified_guidance
from unified_guidance.demo.cli import build_parser
from unified_guidance.demo.runners import RUNNERS

DEMO_DOC = Path(__file__).resolve().parents[2] / "docs" / "demo.md"


def _help(*argv: str) -> str:
    parser = build_parser()
    if not argv:
        return parser.format_help()
    return parser._subparsers._group_actions[0].choices[argv[0]].format_help()


def test_help_has_no_restructured_text_and_lists_the_paradigms():
    top, demo = _help(), _help("demo")
    for text in (top, demo):
        assert "``" not in text and ":class:" not in text and ":func:" not in text
    flat = " ".join(demo.split())
    assert "of: " + ", ".join(RUNNERS) in flat


def test_quick_duration_in_the_help_is_the_documented_one():
    documented = re.search(r'DEMO_ARGS="--quick"\s+# (\d+) min', DEMO_DOC.read_text()).group(1)
    assert f"{documented} min on 2 idle CPU cores" in " ".join(_help("demo").split())


def test_version(capsys):
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"unified-guidance {unified_guidance.__version__}"


@pytest.mark.parametrize(
    ("argv", "negative"),
    [((), True), (("--quick",), False), (("--quick", "--negative"), True), (("--no-negative",), False)],
)
def test_the_negative_section_runs_in_a_full_run_and_not_in_a_quick_one_unless_asked(argv, negative):
    from unified_guidance.demo.cli import options_from

    opts = options_from(build_parser().parse_args(["demo", "--no-text", *argv]))
    assert opts.negative is negative and opts.quick is ("--quick" in argv)
