"""Methods that take the item apart and hand the helper a rebuilt item (play_dialog's shape)::

    play, lines = item.pop("question").split("<sep>")          # or item["question"].split(...)
    _, line1, _, line2, _ = lines.split("<sep2>")               # a part split again
    answer = item["answer"]                                      # or WORD if item["answer"] == CLASS else OTHER
    options = ["<word>", "<word>"]
    item = {"play": play, "line1": line1, "line2": line2, "answer": answer, "options": options}
    input_template = "<literal>"
    item["answer"] = WORD if item["answer"] == CLASS else OTHER  # optional, after the template
    item["options"] = ["<word>", "<word>"]
    return self.<helper>(item, input_template)                   # a helper that formats **item

Read as a :class:`~instrobust.paper.configs.MethodPrompt` whose ``fields`` replace the helper's
``**item`` fields; anything else is refused naming the method.
"""
from __future__ import annotations

import ast
from pathlib import Path

from instrobust.paper.configs import (MethodPrompt, Unreadable, helper_call, is_item_field, find_method,
                                      literal_str, statement_kind)


def _split_call(node: ast.AST) -> tuple[ast.AST, str] | None:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "split" \
            and len(node.args) == 1 and not node.keywords:
        return node.func.value, node.args[0]
    return None


def _relabel_of(value: ast.AST, where: str) -> tuple[str, str, str] | None:
    """``WORD if item["answer"] == CLASS else OTHER`` -> (CLASS, WORD, OTHER)."""
    if isinstance(value, ast.IfExp) and isinstance(value.test, ast.Compare) and is_item_field(value.test.left, "answer"):
        return (literal_str(value.test.comparators[0], where), literal_str(value.body, where),
                literal_str(value.orelse, where))
    return None


def rebuilt_prompt(path: Path, cls: str, name: str) -> MethodPrompt:
    fn = find_method(path, cls, name)
    where = f"{path}: {cls}.{name} (line {fn.lineno})"
    local: dict[str, tuple] = {}
    fields, template, relabel, labels, helper = None, None, None, (), None
    for stmt in fn.body:
        if isinstance(stmt, ast.Return) and helper_call(stmt.value) and template is not None and fields:
            helper = helper_call(stmt.value)
            continue
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1):
            raise Unreadable(f"{where}: line {stmt.lineno} is {statement_kind(stmt)}, which is not read")
        target, value = stmt.targets[0], stmt.value
        names = [e.id if isinstance(e, ast.Name) else None for e in target.elts] if isinstance(target, ast.Tuple) \
            else [target.id] if isinstance(target, ast.Name) else []
        split = _split_call(value)
        if split and (ast.unparse(split[0]) in ("item.pop('question')", "item['question']")):
            sep = literal_str(split[1], where)
            for i, n in enumerate(names):
                local[n] = ("split", sep, None, i, len(names), ())
        elif split and isinstance(split[0], ast.Name) and local.get(split[0].id, ("",))[0] == "split":
            sep = literal_str(split[1], where)  # a part split again
            for i, n in enumerate(names):
                local[n] = ("split", sep, None, i, len(names), (), local[split[0].id])
        elif names == ["answer"] and _relabel_of(value, where):
            relabel = _relabel_of(value, where)
        elif names == ["options"] and isinstance(value, ast.List):
            labels = tuple(literal_str(e, where) for e in value.elts)
        elif names in (["answer"], ["answer", "options"]) and ast.unparse(value) in (
                "item['answer']", "(item['answer'], item['options'])"):
            continue  # the item's own answer: kept as it is
        elif names == ["item"] and isinstance(value, ast.Dict):
            fields = {}
            for key, val in zip(value.keys, value.values):
                k = literal_str(key, where)
                if k in ("answer", "options"):
                    continue  # the answer side (relabel/labels above), never shown
                if not (isinstance(val, ast.Name) and val.id in local):
                    raise Unreadable(f"{where}: rebuilt item field {k!r} is not a part of the item's text")
                fields[k] = local[val.id]
        elif names == ["input_template"] and template is None:
            template = literal_str(value, where)
        elif template is not None and is_item_field(target, "answer") and _relabel_of(value, where):
            relabel = _relabel_of(value, where)  # the rebuilt item's answer is still the task's class
        elif template is not None and is_item_field(target, "options") and isinstance(value, ast.List):
            labels = tuple(literal_str(e, where) for e in value.elts)
        else:
            raise Unreadable(f"{where}: line {stmt.lineno} is {statement_kind(stmt)}, which is not read")
    if helper is None or not fields:
        raise Unreadable(f"{where}: no rebuilt item handed to a self.<helper>(item, input_template)")
    return MethodPrompt(template, helper, (), False, fn.lineno, relabel, labels if relabel else (), fields)
