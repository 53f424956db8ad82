"""The Alpaca instructions of the binary-classification tasks: ``alpaca_unobservedN`` methods.

Each method takes the item apart (the statement forms of :mod:`instrobust.paper.formats` and
:mod:`instrobust.paper.rebuild`: item fields, splits, an answer relabel, a literal label list),
sets ``instruction`` (and ``inputs``) to a literal, a ``"...".format(name=local)`` call or an
f-string of plain names, and returns ``self.alpaca_template_with_input(instruction=...,
inputs=..., ...)`` or ``self.alpaca_template_without_input(instruction=..., ...)``. The prompt is
that wrapper's literal with the two pieces filled in. Anything else is refused naming the method.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

from instrobust.paper.configs import Unreadable, is_item_field, find_method, literal_str, statement_kind, template_str
from instrobust.paper.formats import HelperPlan

WRAPPERS = ("alpaca_template_with_input", "alpaca_template_without_input")


@dataclass(frozen=True)
class AlpacaMethod:
    instruction: str         # str.format templates over plan.fields
    inputs: str | None       # None: the wrapper without an input
    wrapper: str             # alpaca_template_with_input / alpaca_template_without_input
    plan: HelperPlan


def _item_name(node: ast.AST) -> str | None:
    if isinstance(node, ast.Subscript) and ast.unparse(node.value) == "item" and isinstance(node.slice, ast.Constant):
        return node.slice.value
    return None


def read_alpaca_method(path: Path, cls: str, name: str) -> AlpacaMethod:
    fn = find_method(path, cls, name)
    where = f"{path}: {cls}.{name} (line {fn.lineno})"
    plan, local, pieces = HelperPlan(name), {}, {}
    relabelled_options = False  # item["options"] = [...] before use: "the item's options" are their words
    for stmt in fn.body:
        if isinstance(stmt, ast.Return):
            call = stmt.value
            if not (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr in WRAPPERS):
                raise Unreadable(f"{where}: returns something other than their Alpaca wrapper")
            args = {k.arg: k.value for k in call.keywords}
            instruction = _piece(args.get("instruction"), pieces, where)
            inputs = _piece(args["inputs"], pieces, where) if call.func.attr == WRAPPERS[0] else None
            space = args.get("label_space")
            item_options = space is not None and (_item_name(space) == "options"
                                                  or local.get(ast.unparse(space)) == ("item", "options"))
            if item_options and not relabelled_options:
                plan.answer_space = "options"
            elif plan.label_list:
                plan.answer_space = "labels"
            plan.fields = {k: v for k, v in local.items() if v[0] in ("item", "split") and v != ("item", "answer")}
            return AlpacaMethod(instruction, inputs, call.func.attr, plan)
        if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1):
            raise Unreadable(f"{where}: line {stmt.lineno} is {statement_kind(stmt)}, which is not read")
        target, value = stmt.targets[0], stmt.value
        names = [e.id for e in target.elts] if isinstance(target, ast.Tuple) else \
            [target.id] if isinstance(target, ast.Name) else []
        split = _split_of(value)
        if isinstance(value, ast.Tuple) and len(names) == len(value.elts) and all(_item_name(e) for e in value.elts):
            local.update({n: ("item", _item_name(e)) for n, e in zip(names, value.elts)})
        elif len(names) == 1 and _item_name(value):
            local[names[0]] = ("item", _item_name(value))
        elif split and ast.unparse(split[0]) in ("item.pop('question')", "item['question']") \
                or split and local.get(ast.unparse(split[0])) == ("item", "question"):
            sep = literal_str(split[1], where)
            maxsplit = next((k.value.value for k in value.keywords if k.arg == "maxsplit"), None)
            local.update({n: ("split", sep, maxsplit, i, len(names), ()) for i, n in enumerate(names)})
        elif split and local.get(ast.unparse(split[0]), ("",))[0] == "split":
            parent, sep = local[ast.unparse(split[0])], literal_str(split[1], where)
            local.update({n: ("split", sep, None, i, len(names), (), parent) for i, n in enumerate(names)})
        elif (names == ["answer"] or is_item_field(target, "answer")) and isinstance(value, ast.IfExp):
            test = value.test
            if not (isinstance(test, ast.Compare) and (ast.unparse(test.left) in ("answer", "item['answer']"))):
                raise Unreadable(f"{where}: line {stmt.lineno} relabels the answer in a way not read")
            plan.relabel = (literal_str(test.comparators[0], where), literal_str(value.body, where),
                            literal_str(value.orelse, where))
        elif (names in (["options"], ["label_space"]) or is_item_field(target, "options")) and isinstance(value, ast.List):
            plan.label_list = tuple(literal_str(e, where) for e in value.elts)
            relabelled_options = relabelled_options or is_item_field(target, "options")
        elif names in (["instruction"], ["inputs"], ["input_text"]):
            pieces[names[0]] = _text(value, local, where)
        else:
            raise Unreadable(f"{where}: line {stmt.lineno} is {statement_kind(stmt)}, which is not read")
    raise Unreadable(f"{where}: no return of their Alpaca wrapper")


def _split_of(node: ast.AST) -> tuple[ast.AST, ast.AST] | None:
    """``x.split(sep)`` or ``x.split(sep, maxsplit=n)`` -> (x, sep)."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "split" \
            and len(node.args) == 1 and all(k.arg == "maxsplit" for k in node.keywords):
        return node.func.value, node.args[0]
    return None


def _text(value: ast.AST, local: dict, where: str) -> str:
    """A literal, an f-string of plain names, or ``"...".format(name=local, ...)``: as a template."""
    if isinstance(value, ast.Call) and isinstance(value.func, ast.Attribute) and value.func.attr == "format":
        template = literal_str(value.func.value, where)
        for kw in value.keywords:  # .format(question=question): the field names the local it is given
            if not (isinstance(kw.value, ast.Name) and kw.value.id == kw.arg):
                raise Unreadable(f"{where}: .format field {kw.arg!r} is not the local of that name")
        return template
    return template_str(value, where)


def _piece(node: ast.AST | None, pieces: dict, where: str) -> str:
    if node is None:
        raise Unreadable(f"{where}: calls the wrapper without an instruction")
    if isinstance(node, ast.Name) and node.id in pieces:
        return pieces[node.id]
    if isinstance(node, ast.Name):  # an item field handed over as it is: a template of that one field
        return "{" + node.id + "}"
    raise Unreadable(f"{where}: hands the wrapper {ast.unparse(node)[:40]!r}, which is not read")
