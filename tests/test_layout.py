"""The package layout: no import cycle among our modules.

Every import statement counts, lazy ones inside functions too, and ``from instrobust import x``
counts as an import of the package itself (instrobust/__init__.py, which imports the bank): a
cycle hidden behind a function-level import is still a cycle in the design.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def import_graph() -> dict[str, set[str]]:
    files = {}
    for package in ("instrobust", "instrobust_train"):
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            files[name.removesuffix(".__init__")] = path
    edges: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            edges[module] |= {t for t in targets if t in files and t != module}
    return edges


def edges_in_cycles(edges: dict[str, set[str]]) -> list[tuple[str, str]]:
    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for w in edges[todo.pop()]:
                if w not in seen:
                    seen.add(w)
                    todo.append(w)
        return seen

    # a package importing its own submodule (instrobust.report -> instrobust.report.build) is how
    # a package exposes its API; only the way back up closes a cycle.
    return sorted({tuple(sorted((a, b))) for a in edges for b in edges[a]
                   if a in reach(b) and not b.startswith(a + ".")})


def test_the_graph_is_read_from_every_import_statement():
    edges = import_graph()
    assert "instrobust.bank" in edges["instrobust"]  # the package's own __init__ import
    assert "instrobust.answers" in edges["instrobust.instruction"]  # a function-level import
    assert "instrobust.errors" in edges["instrobust_train.errors"]  # across the two packages
    assert edges_in_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [("a", "b"), ("a", "c"), ("b", "c")]


def test_no_import_cycle_in_instrobust_or_instrobust_train():
    cycles = edges_in_cycles(import_graph())
    assert cycles == [], "import cycles: " + "; ".join(f"{a} <-> {b}" for a, b in cycles)


def test_the_instruction_leaf_imports_only_the_bottom_of_the_package():
    # Instruction, render and the template checks: every collection builds on them.
    edges = import_graph()
    assert edges["instrobust.rendering"] == {"instrobust.errors"}
    assert edges["instrobust.instruction"] <= {"instrobust.errors", "instrobust.paths", "instrobust.rendering",
                                               "instrobust.names", "instrobust.answers"}
    assert edges["instrobust.names"] == set()  # the id grammar: everyone reads it
    assert edges["instrobust.answers"] <= {"instrobust.errors", "instrobust.paths", "instrobust.rendering"}


def test_every_package_is_shipped_by_pip_install():
    """pyproject lists its packages by hand: a new subpackage missing there imports from a source
    checkout (where the tests run) but not after `pip install .`."""
    import tomllib

    listed = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {".".join(p.parent.relative_to(ROOT).parts)
               for package in ("instrobust", "instrobust_train") for p in (ROOT / package).rglob("__init__.py")}
    assert on_disk - listed == set(), f"add these to [tool.setuptools] packages: {sorted(on_disk - listed)}"
