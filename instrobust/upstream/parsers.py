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


def read_text(path: Path, what: str) -> str:
    """The file's text; DataError naming it when it cannot be read as UTF-8."""
    try:
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); expected {what}") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}); expected {what}") from None


def read_json(path: Path, what: str) -> Any:
    try:
        return json.loads(read_text(path, what))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                        f"expected {what}") from None


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
    try:
        tree = ast.parse(read_text(path, "Flan's templates.py"), filename=str(path))
    except SyntaxError as exc:
        raise DataError(f"{path}:{exc.lineno}: not Python source ({exc.msg}); expected Flan's templates.py") from None
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
    return _checked_patterns(ev.env["PATTERNS"], path)


def _checked_patterns(patterns: Any, path: Path) -> dict[str, list[tuple[str, str]]]:
    """PATTERNS as {family: [(input pattern, target pattern), ...]}, or DataError naming the file."""
    if not isinstance(patterns, dict):
        raise DataError(f"{path}: PATTERNS is a {type(patterns).__name__}, expected a dict of pattern lists")
    for key, value in patterns.items():
        if not isinstance(value, (list, tuple)) or not all(
                isinstance(p, (list, tuple)) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in value):
            raise DataError(f"{path}: PATTERNS[{key!r}] is not a list of (input, target) string pairs")
    return {k: [tuple(p) for p in v] for k, v in patterns.items()}


def parse_flan_patterns_json(path: Path) -> dict[str, list[tuple[str, str]]]:
    data = read_json(path, "an export of Flan's PATTERNS")
    if not isinstance(data, dict) or "PATTERNS" not in data:
        raise DataError(f"{path}: no 'PATTERNS' key (expected an export of flan/v2/templates.py)")
    return _checked_patterns(data["PATTERNS"], path)


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

def normalize_definition(value: Any, where: str = "NIV2 task") -> str:
    """NIV2 keeps ``Definition`` as a list of strings (older versions: a string)."""
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    if isinstance(value, str):
        return value
    raise DataError(f"{where}: 'Definition' is a {type(value).__name__}, expected a list of strings or a string")


@functools.lru_cache(maxsize=64)
def niv2_definition(path: Path, fmt: str, task_name: str) -> str:
    data = read_json(path, "an NIV2 task file" if fmt != "niv2_bundle" else "an NIV2 definitions bundle")
    if fmt == "niv2_bundle":  # {task_name: task json}
        if not isinstance(data, dict) or task_name not in data:
            raise DataError(f"{path}: task {task_name!r} is not in this bundle")
        data = data[task_name]
    if not isinstance(data, dict) or "Definition" not in data:
        raise DataError(f"{path}: no 'Definition' field for {task_name}")
    return normalize_definition(data["Definition"], f"{path} ({task_name})")


# ---- P3: promptsource templates.yaml ---------------------------------------------------------

class _PromptsourceLoader(yaml.SafeLoader):
    pass


# templates.yaml tags objects as !Template / !TemplateMetadata; we only need their fields.
_PromptsourceLoader.add_multi_constructor(
    "!", lambda loader, suffix, node: loader.construct_mapping(node, deep=True)
)


@functools.lru_cache(maxsize=64)
def promptsource_templates(path: Path) -> dict[str, dict[str, Any]]:
    try:
        data = yaml.load(read_text(path, "a promptsource templates.yaml"), Loader=_PromptsourceLoader)
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: not valid YAML ({str(exc).splitlines()[0]}); expected a promptsource templates.yaml") from None
    if not isinstance(data, dict) or not isinstance(data.get("templates"), dict):
        raise DataError(f"{path}: not a promptsource templates.yaml (no 'templates' mapping)")
    for tid, tpl in data["templates"].items():
        if not isinstance(tpl, dict) or not isinstance(tpl.get("jinja"), str):
            raise DataError(f"{path}: template {tid} has no 'jinja' text")
    return data["templates"]


# ---- Alpaca: alpaca_data.json ----------------------------------------------------------------

def alpaca_entries(path: Path) -> list[dict[str, str]]:
    data = read_json(path, "Alpaca's alpaca_data.json")
    if not isinstance(data, list):
        raise DataError(f"{path}: expected a JSON list of {{instruction, input, output}} entries")
    for i, row in enumerate(data):
        if not isinstance(row, dict) or not isinstance(row.get("instruction"), str):
            raise DataError(f"{path}: entry {i} has no 'instruction' text")
        if not isinstance(row.get("input", ""), str):
            raise DataError(f"{path}: entry {i}: 'input' is not text")
    return data
