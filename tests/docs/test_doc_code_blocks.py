"""Every ```python block in README.md and docs/ runs as written, so a doc cannot drift from the API.

Each block is self-contained: it runs in a fresh namespace, in a temporary working
directory (examples that train write their runs there), with the repository root
importable (``recipes``) — except a block fenced ```` ```python title="continued …" ````, which
goes on from the previous python block of its page (that block's code runs first).
Blocks that are not Python to run use another fence (```bash, ```text, ```yaml).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```\s*$", re.M | re.S)


def python_blocks() -> list:
    files = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    params = []
    for path in files:
        text = path.read_text()
        previous = ""
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 2  # the block's first code line
            rel = path.relative_to(ROOT)
            code = previous + match.group(2) if "continued" in match.group(1) else match.group(2)
            params.append(pytest.param(code, id=f"{rel}:{line}"))
            previous = code
    return params


BLOCKS = python_blocks()


def test_the_docs_have_python_blocks():
    # Guards the collector itself: a changed fence syntax would otherwise run nothing.
    files = {p.id.split(":")[0] for p in BLOCKS}
    assert {"README.md", "docs/training.md", "docs/diffusion.md", "docs/flow.md"} <= files


@pytest.mark.parametrize("code", BLOCKS)
def test_block_runs_as_written(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the repository root stays importable (pytest's pythonpath)
    namespace = {"__name__": "__doc_block__"}
    exec(compile(code, "<doc block>", "exec"), namespace)  # the docs are the project's own code
