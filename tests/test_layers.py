"""The layering is enforced: the import-linter contracts in pyproject.toml hold, and no import cycle exists.

``make lint`` runs the same checks; running them here makes a layering break fail the suite too.
"""

import importlib.util
from pathlib import Path

import grimp
from importlinter.cli import lint_imports

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("check_cycles", ROOT / "scripts" / "check_cycles.py")
assert _spec is not None and _spec.loader is not None
check_cycles = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_cycles)


def test_import_contracts_are_kept(capsys):
    code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True)
    assert code == 0, capsys.readouterr().out


def test_no_import_cycle_in_the_package():
    assert check_cycles.main() == 0


def test_cycle_check_sees_a_cycle_through_a_package_init():
    # p/__init__ imports p.a, p.a imports p.b, p.b imports p: no two siblings import each other,
    # so import-linter's acyclic_siblings contract passes it; the cycle check must not.
    graph = grimp.ImportGraph()
    for module in ("p", "p.a", "p.b", "p.c"):
        graph.add_module(module)
    graph.add_import(importer="p", imported="p.a")
    graph.add_import(importer="p.a", imported="p.b")
    graph.add_import(importer="p.b", imported="p")
    graph.add_import(importer="p.c", imported="p.b")
    assert [set(chain) for chain in check_cycles.find_cycles(graph)] == [{"p", "p.a", "p.b"}]
    graph.remove_import(importer="p.b", imported="p")
    assert check_cycles.find_cycles(graph) == []


def test_ignored_imports_are_read_from_the_acyclic_contract(tmp_path):
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        "[[tool.importlinter.contracts]]\n"
        'type = "layers"\n'
        'ignore_imports = ["p.x -> p.y"]\n'
        "[[tool.importlinter.contracts]]\n"
        'type = "acyclic_siblings"\n'
        'ignore_imports = ["p.a -> p.b", " p.c->p.d "]\n'
    )
    assert check_cycles.ignored_imports(pyproject) == [("p.a", "p.b"), ("p.c", "p.d")]
