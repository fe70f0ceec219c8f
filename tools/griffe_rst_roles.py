"""A griffe extension for the docs site: reST roles in docstrings become inline code.

The docstrings cite other objects Sphinx-style (``:class:`~unified_guidance.flow.VelocityModel```);
mkdocstrings reads Markdown, where those would show as raw text. Each role becomes inline
code of its target (``~`` keeps the last component, as in Sphinx); no links, so nothing
can break the strict build.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|obj|exc):`(~?)([^`]+)`")


def _code(match: re.Match) -> str:
    tilde, target = match.groups()
    return f"`{target.rsplit('.', 1)[-1] if tilde else target}`"


class RstRoles(griffe.Extension):
    """Rewrite ``:role:`target``` as ``target`` in every docstring griffe loads."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_code, obj.docstring.value).replace("``", "`")
