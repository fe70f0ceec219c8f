"""No import cycle anywhere in ``unified_guidance``, through package ``__init__`` modules included.

    python scripts/check_cycles.py        # make lint runs it after lint-imports; exit 1 on a cycle

import-linter's ``acyclic_siblings`` contract (pyproject.toml) finds cycles between the children
of each package. A cycle through a package's own ``__init__`` (``guidance.spec`` importing
``unified_guidance``, whose ``__init__`` imports ``guidance``) is not one between siblings, so it
passes that contract; this check follows every direct import of the module graph (grimp) and
asks whether a chain leads back. The imports that contract ignores are ignored here too, so the
list of tolerated imports lives in one place.
"""

from __future__ import annotations

import sys
from pathlib import Path

import grimp

if sys.version_info >= (3, 11):
    import tomllib
else:  # Python 3.10: tomli, which mypy (the dev extra) brings there
    import tomli as tomllib

PACKAGE = "unified_guidance"
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def ignored_imports(pyproject: Path = PYPROJECT) -> list[tuple[str, str]]:
    """The ``ignore_imports`` of the ``acyclic_siblings`` contract, as ``(importer, imported)`` pairs."""
    contracts = tomllib.loads(pyproject.read_text())["tool"]["importlinter"]["contracts"]
    pairs = []
    for contract in contracts:
        if contract["type"] == "acyclic_siblings":
            for line in contract.get("ignore_imports", []):
                importer, _, imported = (part.strip() for part in line.partition("->"))
                if "*" in line or not imported:
                    raise SystemExit(f"{pyproject}: expected 'importer -> imported' without wildcards, got {line!r}")
                pairs.append((importer, imported))
    return pairs


def find_cycles(graph: grimp.ImportGraph) -> list[tuple[str, ...]]:
    """One chain per cycle (``a -> b -> ... -> a``), each cycle's member set reported once."""
    cycles: dict[frozenset[str], tuple[str, ...]] = {}
    for importer in sorted(graph.modules):
        for imported in sorted(graph.find_modules_directly_imported_by(importer)):
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.setdefault(frozenset(back), (importer, *back))
    return list(cycles.values())


def main() -> int:
    graph = grimp.build_graph(PACKAGE, cache_dir=None)
    for importer, imported in ignored_imports():
        graph.remove_import(importer=importer, imported=imported)
    cycles = find_cycles(graph)
    for chain in cycles:
        print("import cycle: " + " -> ".join(chain), file=sys.stderr)
    return 1 if cycles else 0


if __name__ == "__main__":
    sys.exit(main())
