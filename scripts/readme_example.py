"""Run the README's "In a few lines" example as written: ``python scripts/readme_example.py README.md``.

``make test-wheel`` runs it from outside the source tree against the installed wheel.
"""

from __future__ import annotations

import re
import sys


def example(readme: str, heading: str = "## In a few lines") -> str:
    """The first ```python block after ``heading``."""
    text = open(readme, encoding="utf-8").read()
    start = text.find(heading)
    if start < 0:
        raise SystemExit(f"{readme}: no section {heading!r}")
    match = re.search(r"```python\n(.*?)```", text[start:], re.S)
    if match is None:
        raise SystemExit(f"{readme}: no python block under {heading!r}")
    return match.group(1)


if __name__ == "__main__":
    code = example(sys.argv[1] if len(sys.argv) > 1 else "README.md")
    exec(compile(code, "README.md: In a few lines", "exec"), {"__name__": "__main__"})
