"""Read the authors' InstructionEval config files with ``ast``: never imported, never executed.

Their instructions live in methods of a ``Preprocessor`` subclass. We read exactly one method
shape as data (anything else is refused with a message naming the method)::

    def unobservedN(self, item):
        item["question"] = item["question"].replace("<old>", "<new>")   # zero or more
        input_template = "<a str.format template>"                       # literals only
        return self.<helper>(item, input_template)

optionally followed, after ``return_dict = self.<helper>(item, input_template)``, by
``return_dict["output_text"] = item["answer"]`` / ``return_dict["label_space"] = item["options"]``
and ``return return_dict`` (scored on the option texts instead of the helper's labels).
A template built with an f-string, ``.format`` or ``+`` on the item's fields is refused.
"""
from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path

from instrobust.errors import DataError


class Unreadable(DataError):
    """A method whose prompt is not literal data; the message names the method and why."""


@dataclass(frozen=True)
class MethodPrompt:
    template: str                       # the str.format template, as written
    helper: str                         # the method that formats it (self.<helper>)
    edits: tuple[tuple[str, str], ...]  # item["question"].replace(old, new), in order
    options_override: bool              # label_space replaced by item["options"]
    line: int = 0
    # item["answer"] = WORD if item["answer"] == CLASS else OTHER; item["options"] = [WORD, OTHER]
    relabel: tuple[str, str, str] | None = None
    label_list: tuple[str, ...] = ()
    fields: dict | None = None  # a rebuilt item's fields (instrobust.paper.rebuild), replacing **item


@functools.lru_cache(maxsize=64)
def _parse(path: str) -> tuple[ast.Module, str]:
    text = Path(path).read_text(encoding="utf-8")
    return ast.parse(text, filename=path), text


def find_class(path: Path, name: str) -> ast.ClassDef:
    tree, _ = _parse(str(path))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == name:
            return node
    raise DataError(f"{path}: no class {name!r}")


def find_method(path: Path, cls: str, name: str) -> ast.FunctionDef:
    for node in find_class(path, cls).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            return node
    raise DataError(f"{path}: class {cls} has no method {name!r}")


def source_of(path: Path, cls: str, name: str) -> str:
    """The method's exact source text (pinned by sha256 so a changed helper is noticed)."""
    _, text = _parse(str(path))
    return ast.get_source_segment(text, find_method(path, cls, name))


def template_str(node: ast.AST, where: str) -> str:
    """A ``str.format`` template from a literal, or from an f-string whose replacement fields are
    plain names (``f"Q: {question}"`` reads as ``"Q: {question}"``; literal braces are doubled).
    An f-string with any other expression, conversion or format spec is refused."""
    if not isinstance(node, ast.JoinedStr):
        return literal_str(node, where)
    out = []
    for part in node.values:
        if isinstance(part, ast.Constant):
            out.append(part.value.replace("{", "{{").replace("}", "}}"))
        elif isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name) \
                and part.conversion == -1 and part.format_spec is None:
            out.append("{" + part.value.id + "}")
        else:
            raise Unreadable(f"{where} builds its text with an f-string field that is not a plain name")
    return "".join(out)


def literal_str(node: ast.AST, where: str) -> str:
    """A string literal (implicit concatenation and ``"a" + "b"`` of literals included)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        try:
            return literal_str(node.left, where) + literal_str(node.right, where)
        except Unreadable:
            raise Unreadable(f"{where} builds its text with a + concatenation of the item's fields, "
                             f"not a string literal") from None
    raise Unreadable(f"{where} builds its text with {_describe(node)}, not a string literal")


def statement_kind(stmt: ast.stmt) -> str:
    """What a statement does, in our words (messages and pins never quote their code)."""
    if isinstance(stmt, (ast.Assign, ast.AugAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        names = ", ".join(ast.unparse(t) for t in targets)
        return f"an assignment to `{names}` from {_describe(stmt.value)}"
    return f"a {type(stmt).__name__} statement"


def _describe(node: ast.AST) -> str:
    if isinstance(node, ast.JoinedStr):
        return "an f-string"
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        return f"a .{node.func.attr}(...) call"
    if isinstance(node, ast.BinOp):
        return "an expression on the item's fields"
    if isinstance(node, ast.IfExp):
        return "a conditional expression"
    if isinstance(node, ast.Constant):
        return "a literal"
    return f"a {type(node).__name__} expression"


def is_item_field(node: ast.AST, field: str) -> bool:
    return (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "item"
            and isinstance(node.slice, ast.Constant) and node.slice.value == field)


def _question_edit(stmt: ast.stmt, where: str) -> tuple[str, str] | None:
    """``item["question"] = item["question"].replace("old", "new")`` -> (old, new)."""
    if not (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and is_item_field(stmt.targets[0], "question")):
        return None
    call = stmt.value
    if (isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "replace"
            and is_item_field(call.func.value, "question") and len(call.args) == 2 and not call.keywords):
        return literal_str(call.args[0], where), literal_str(call.args[1], where)
    return None


def helper_call(node: ast.AST) -> str | None:
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and isinstance(node.func.value, ast.Name) and node.func.value.id == "self"
            and [ast.unparse(a) for a in node.args] == ["item", "input_template"] and not node.keywords):
        return node.func.attr
    return None


def _override(stmt: ast.stmt) -> str | None:
    """``return_dict["output_text"|"label_space"] = item["answer"|"options"]`` -> the key."""
    if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1:
        t = stmt.targets[0]
        if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and t.value.id == "return_dict" \
                and isinstance(t.slice, ast.Constant):
            if (t.slice.value, ast.unparse(stmt.value)) in (("output_text", "item['answer']"),
                                                            ("label_space", "item['options']")):
                return t.slice.value
    return None


def method_prompt(path: Path, cls: str, name: str) -> MethodPrompt:
    fn = find_method(path, cls, name)
    where = f"{path}: {cls}.{name} (line {fn.lineno})"
    body = [s for s in fn.body if not (isinstance(s, ast.Expr) and isinstance(s.value, ast.Constant))]
    edits, template, helper, overrides, relabel, labels = [], None, None, set(), None, ()
    for i, stmt in enumerate(body):
        edit = _question_edit(stmt, where) if template is None else None
        if edit:
            edits.append(edit)
        elif template is None and _relabel(stmt, where):
            relabel = _relabel(stmt, where)
        elif template is None and isinstance(stmt, ast.Assign) and is_item_field(stmt.targets[0], "options") \
                and isinstance(stmt.value, ast.List):
            labels = tuple(literal_str(e, where) for e in stmt.value.elts)
        elif isinstance(stmt, ast.Assign) and [ast.unparse(t) for t in stmt.targets] == ["input_template"] \
                and template is None:
            template = literal_str(stmt.value, where)
        elif template is not None and helper is None and isinstance(stmt, ast.Return) and helper_call(stmt.value):
            helper = helper_call(stmt.value)
        elif template is not None and helper is None and isinstance(stmt, ast.Assign) \
                and [ast.unparse(t) for t in stmt.targets] == ["return_dict"] and helper_call(stmt.value):
            helper = helper_call(stmt.value)
        elif helper is not None and _override(stmt):
            overrides.add(_override(stmt))
        elif helper is not None and overrides and isinstance(stmt, ast.Return) and ast.unparse(stmt.value) == "return_dict" \
                and i == len(body) - 1:
            pass
        else:
            raise Unreadable(f"{where}: line {stmt.lineno} is {statement_kind(stmt)}, not one of the "
                             f"forms instrobust reads as data (see docs/paper-collection.md)")
    if template is None or helper is None:
        raise Unreadable(f"{where}: no `input_template = \"...\"` passed to a self.<helper>(item, input_template)")
    if overrides and overrides != {"output_text", "label_space"}:
        raise Unreadable(f"{where}: overrides only {', '.join(sorted(overrides))} of the helper's answer")
    if bool(relabel) != bool(labels):
        raise Unreadable(f"{where}: relabels the answer without its new options (or the reverse)")
    return MethodPrompt(template, helper, tuple(edits), bool(overrides), fn.lineno, relabel, labels)


def _relabel(stmt: ast.stmt, where: str) -> tuple[str, str, str] | None:
    """``item["answer"] = "Yes" if item["answer"] == "correct" else "No"`` -> (correct, Yes, No)."""
    if isinstance(stmt, ast.Assign) and is_item_field(stmt.targets[0], "answer") and isinstance(stmt.value, ast.IfExp):
        test = stmt.value.test
        if isinstance(test, ast.Compare) and is_item_field(test.left, "answer") and isinstance(test.ops[0], ast.Eq):
            return (literal_str(test.comparators[0], where), literal_str(stmt.value.body, where),
                    literal_str(stmt.value.orelse, where))
    return None


def class_str_list(path: Path, cls: str, attr: str) -> list[str]:
    """A class-level list of string literals (``_UNOBSERVED_ALPACA_INSTRUCTIONS``)."""
    for node in find_class(path, cls).body:
        if isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == [attr]:
            if not isinstance(node.value, (ast.List, ast.Tuple)):
                raise Unreadable(f"{path}: {cls}.{attr} is not a list literal")
            return [literal_str(e, f"{path}: {cls}.{attr}[{i}]") for i, e in enumerate(node.value.elts)]
    raise DataError(f"{path}: class {cls} has no attribute {attr!r}")


def format_receiver(path: Path, cls: str, name: str, target: str) -> str:
    """The literal that ``<target> = "<literal>".format(...)`` formats inside ``cls.name``."""
    fn = find_method(path, cls, name)
    for stmt in ast.walk(fn):
        if isinstance(stmt, ast.Assign) and [ast.unparse(t) for t in stmt.targets] == [target]:
            call = stmt.value
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr == "format":
                return literal_str(call.func.value, f"{path}: {cls}.{name}")
    raise Unreadable(f"{path}: {cls}.{name} has no `{target} = \"...\".format(...)`")


@dataclass(frozen=True)
class ConcatPrompt:
    """A Figure-3 ``random_instruction_N``: ``self.<LIST>[k] + "<sep>" + question``."""

    list_name: str
    index: int
    parts: tuple[tuple[str, str], ...]  # ("list", ""), ("text", literal), ("question", "")
    answer_space: str                    # "options" (label_space = options) or "letters"
    options_loop: bool                   # a loop appends "\n<L>. <option>" lines
    line: int


def concat_prompt(path: Path, cls: str, name: str) -> ConcatPrompt:
    fn = find_method(path, cls, name)
    where = f"{path}: {cls}.{name} (line {fn.lineno})"
    question_vars, parts, list_ref, space, loop = set(), [], None, None, False

    def flatten(node):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
            return flatten(node.left) + flatten(node.right)
        return [node]

    for stmt in fn.body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Tuple) and isinstance(stmt.value, ast.Tuple):
            question_vars |= {t.id for t, v in zip(stmt.targets[0].elts, stmt.value.elts)
                              if isinstance(t, ast.Name) and is_item_field(v, "question")}
        elif isinstance(stmt, ast.Assign) and ast.unparse(stmt.targets[0]) == "input_text" and not parts:
            for node in flatten(stmt.value):
                if isinstance(node, ast.Subscript) and ast.unparse(node.value).startswith("self.") \
                        and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int):
                    list_ref = (ast.unparse(node.value).removeprefix("self."), node.slice.value)
                    parts.append(("list", ""))
                elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                    parts.append(("text", node.value))
                elif isinstance(node, ast.Name) and node.id in question_vars:
                    parts.append(("question", ""))
                else:
                    raise Unreadable(f"{where}: its text joins {_describe(node)}, which is not read")
        elif isinstance(stmt, ast.For) and parts:
            # for letter, text in zip([...letters], [A, B, ...]): input_text += "\n" + letter + ". " + text
            body = stmt.body[0] if len(stmt.body) == 1 else None
            if not (isinstance(body, ast.AugAssign) and ast.unparse(body.target) == "input_text"
                    and [ast.unparse(n) for n in flatten(body.value)] == ["'\\n'", "letter", "'. '", "text"]):
                raise Unreadable(f"{where}: a loop at line {stmt.lineno} builds text we do not recognise")
            loop = True
        elif isinstance(stmt, ast.Assign) and ast.unparse(stmt.targets[0]) == "label_space":
            space = "options" if ast.unparse(stmt.value) in ("options", "item['options']") else "letters"
    if list_ref is None or space is None:
        raise Unreadable(f"{where}: not `input_text = self.<LIST>[k] + ...` with a label_space")
    return ConcatPrompt(list_ref[0], list_ref[1], tuple(parts), space, loop, fn.lineno)


def registered_list_entries(path: Path, cls: str, list_name: str) -> dict[str, int]:
    """Their instruction id -> list index, from ``add_unobserved_instructions``' lines
    ``self.instr2preprocessor["Alpaca/Unobserved/K"] = lambda item: self.<f>(item, self.<list>[I])``."""
    out = {}
    for stmt in find_method(path, cls, "add_unobserved_instructions").body:
        if not (isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Subscript)
                and isinstance(stmt.targets[0].slice, ast.Constant) and isinstance(stmt.value, ast.Lambda)):
            continue
        for node in ast.walk(stmt.value.body):
            if isinstance(node, ast.Subscript) and ast.unparse(node.value) == f"self.{list_name}" \
                    and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, int):
                out[stmt.targets[0].slice.value] = node.slice.value
    return out


def registered_methods(path: Path, cls: str, prefix: str) -> dict[str, str]:
    """Their instruction id -> method, from ``self.instr2preprocessor["<id>"] = self.<method>``
    lines of ``add_unobserved_instructions`` whose id starts with ``prefix``."""
    out = {}
    for stmt in find_method(path, cls, "add_unobserved_instructions").body:
        if isinstance(stmt, ast.Assign) and isinstance(stmt.targets[0], ast.Subscript) \
                and isinstance(stmt.targets[0].slice, ast.Constant) and isinstance(stmt.value, ast.Attribute) \
                and ast.unparse(stmt.value.value) == "self" and str(stmt.targets[0].slice.value).startswith(prefix):
            out[stmt.targets[0].slice.value] = stmt.value.attr
    return out
