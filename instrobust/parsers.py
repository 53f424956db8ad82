"""Read instruction text out of upstream files without executing them.

Flan's ``templates.py`` is Python: we walk its AST and evaluate only literals (strings, lists,
tuples, dicts), names bound to such literals, and ``+`` on them. Anything else is an error.
"""
from __future__ import annotations

import ast
import functools
import json
import re
from pathlib import Path
from typing import Any

import yaml

from instrobust.errors import DataError


# ---- Flan 2022: flan/v2/templates.py -------------------------------------------------------

class _LiteralEvaluator:
    def __init__(self, filename: str):
        self.filename = filename
        self.env: dict[str, Any] = {}

    def eval(self, node: ast.AST) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple)):
            items = [self.eval(e) for e in node.elts]
            return items if isinstance(node, ast.List) else tuple(items)
        if isinstance(node, ast.Dict):
            out = {}
            for k, v in zip(node.keys, node.values):
                if k is None:  # {**other}
                    out.update(self.eval(v))
                else:
                    out[self.eval(k)] = self.eval(v)
            return out
        if isinstance(node, ast.Name):
            if node.id in self.env:
                return self.env[node.id]
            raise DataError(f"{self.filename}:{node.lineno}: name {node.id!r} is not a literal defined earlier")
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return self.eval(node.left) + self.eval(node.right)
        if isinstance(node, ast.Subscript):  # PATTERNS["alias"] = PATTERNS["key"]
            return self.eval(node.value)[self.eval(node.slice)]
        raise DataError(
            f"{self.filename}:{getattr(node, 'lineno', '?')}: unsupported expression "
            f"{type(node).__name__} (only literals are read, nothing is executed)"
        )


def parse_flan_templates_py(path: Path) -> dict[str, list[tuple[str, str]]]:
    """``PATTERNS`` of Flan's templates.py, by static evaluation of module-level literals."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=str(path))
    ev = _LiteralEvaluator(str(path))
    for stmt in tree.body:
        targets = []
        if isinstance(stmt, ast.Assign):
            targets, value = stmt.targets, stmt.value
        elif isinstance(stmt, ast.AnnAssign) and stmt.value is not None:
            targets, value = [stmt.target], stmt.value
        for t in targets:  # upstream adds aliases as PATTERNS["new"] = PATTERNS["old"]
            if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and t.value.id == "PATTERNS" \
                    and "PATTERNS" in ev.env:
                ev.env["PATTERNS"][ev.eval(t.slice)] = ev.eval(value)
        names = [t.id for t in targets if isinstance(t, ast.Name)]
        if not names:
            continue
        try:
            result = ev.eval(value)
        except DataError:
            if "PATTERNS" in names:
                raise
            continue  # non-literal helper assignments are irrelevant
        for n in names:
            ev.env[n] = result
    if "PATTERNS" not in ev.env:
        raise DataError(f"{path}: no module-level PATTERNS dict found")
    return {k: [tuple(p) for p in v] for k, v in ev.env["PATTERNS"].items()}


def parse_flan_patterns_json(path: Path) -> dict[str, list[tuple[str, str]]]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if "PATTERNS" not in data:
        raise DataError(f"{path}: no 'PATTERNS' key (expected an export of flan/v2/templates.py)")
    return {k: [tuple(p) for p in v] for k, v in data["PATTERNS"].items()}


@functools.lru_cache(maxsize=8)
def flan_patterns(path: Path, fmt: str) -> dict[str, list[tuple[str, str]]]:
    if fmt == "upstream":
        return parse_flan_templates_py(path)
    if fmt == "flan_patterns_json":
        return parse_flan_patterns_json(path)
    raise DataError(f"{path}: unknown Flan templates format {fmt!r}")


def flan_placeholders_to_jinja(pattern: str, slots: dict[str, str], prefix: str = "flan") -> tuple[str, dict[str, str]]:
    """Turn a Flan ``str.format`` pattern into (our Jinja source, values).

    ``slots`` maps a placeholder name to our own Jinja source for it (an expression over the
    document, or a reference to a value such as ``{{ niv2_definition }}``). The pattern's literal
    pieces never become template source: each becomes a value ``<prefix>_<k>`` that the source
    only references, so upstream text renders verbatim whatever it holds. An unknown
    placeholder is an error so a pattern never silently loses a slot.
    """
    out, values, pos = [], {}, 0

    def literal(text: str) -> None:
        if text:
            name = f"{prefix}_{len(values)}"
            values[name] = text
            out.append("{{ " + name + " }}")

    for m in re.finditer(r"\{(\w+)\}", pattern):
        literal(pattern[pos:m.start()])
        name = m.group(1)
        if name not in slots:
            raise DataError(f"Flan pattern {pattern[:60]!r} has placeholder {{{name}}} we do not map")
        out.append(slots[name])
        pos = m.end()
    literal(pattern[pos:])
    return "".join(out), values


# ---- Super-NaturalInstructions task definitions ---------------------------------------------

def normalize_definition(value: Any) -> str:
    """NIV2 keeps ``Definition`` as a list of strings (older versions: a string)."""
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if isinstance(value, str):
        return value
    raise DataError(f"unexpected NIV2 Definition of type {type(value).__name__}")


@functools.lru_cache(maxsize=64)
def niv2_definition(path: Path, fmt: str, task_name: str) -> str:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if fmt == "niv2_bundle":  # {task_name: task json}
        if task_name not in data:
            raise DataError(f"{path}: task {task_name!r} is not in this bundle")
        data = data[task_name]
    if "Definition" not in data:
        raise DataError(f"{path}: no 'Definition' field for {task_name}")
    return normalize_definition(data["Definition"])


# ---- P3: promptsource templates.yaml ---------------------------------------------------------

class _PromptsourceLoader(yaml.SafeLoader):
    pass


# templates.yaml tags objects as !Template / !TemplateMetadata; we only need their fields.
_PromptsourceLoader.add_multi_constructor(
    "!", lambda loader, suffix, node: loader.construct_mapping(node, deep=True)
)


@functools.lru_cache(maxsize=64)
def promptsource_templates(path: Path) -> dict[str, dict[str, Any]]:
    data = yaml.load(Path(path).read_text(encoding="utf-8"), Loader=_PromptsourceLoader)
    if not isinstance(data, dict) or "templates" not in data:
        raise DataError(f"{path}: not a promptsource templates.yaml (no 'templates' key)")
    return data["templates"]


# ---- Alpaca: alpaca_data.json ----------------------------------------------------------------

def alpaca_entries(path: Path) -> list[dict[str, str]]:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of {{instruction, input, output}} entries")
    for i, row in enumerate(data):
        if not isinstance(row, dict) or "instruction" not in row:
            raise DataError(f"{path}: entry {i} has no 'instruction' field")
    return data
