"""How the authors' helpers fill a ``str.format`` template, translated into our Jinja.

A helper such as ``unobserved_template(self, item, input_template)`` takes the item's fields
apart and calls ``input_template.format(...)``. :func:`read_helper` reads that plan from the
helper's AST (only the statement forms listed in docs/paper-collection.md; anything else is
refused naming the helper); :func:`to_jinja` then turns a template into our Jinja source, where
every literal piece of upstream text is a render-time *value* (never template source) and every
``{field}`` is our own expression over the instrobust document:

=====================================  =============================================
their field                            our Jinja (``Q`` = ``question`` / BBL ``input``)
=====================================  =============================================
``question`` (the item's text)          ``Q`` with the method's ``.replace`` edits
``choiceA`` ... (``A, B, .. = options``) ``choices[0]`` ... (exactly that many options)
``options_`` (``"\\n{L}. {text}"`` loop) the same lines from ``letters`` / ``choices``
``x`` from ``a, x = Q.split(sep)``      ``Q.split(sep)[i]`` (``sep`` a value)
``domain`` (MMLU subject)               ``subject``
``labels`` (``"a, b, and c."`` loop)    the same list from ``choices``
=====================================  =============================================
"""
from __future__ import annotations

import ast
import string
from dataclasses import dataclass, field
from pathlib import Path

from instrobust.errors import DataError
from instrobust.paper.configs import Unreadable, find_method, literal_str, statement_kind

LETTER_NAMES = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
# Loops we recognise by what they build (their helpers are pinned by sha256, so the loop
# cannot change under us): name -> our Jinja over the document.
LOOPS = {
    "options_": "{% for l, c in zip(letters, choices) %}\n{{ l }}. {{ c }}{% endfor %}",
    "_options": "{% for l, c in zip(letters, choices) %}\n({{ l }}) {{ c }}{% endfor %}",
    "labels": "{% for c in choices %}{% if loop.last %}and {{ c }}.{% else %}{{ c }}, {% endif %}{% endfor %}",
}


@dataclass
class HelperPlan:
    """What each ``{field}`` of a template means, read from one helper."""

    name: str
    fields: dict[str, tuple] = field(default_factory=dict)  # field -> ("question",) / ("choice", i) / ...
    n_options: int | None = None      # their helper unpacks exactly this many options
    answer_space: str = "options"     # letters when the helper's label_space is the letters
    template: str | None = None       # a method that formats its own literal (no helper)
    label_list: tuple[str, ...] = ()  # a literal label_space (their words for the classes)
    relabel: tuple[str, str, str] | None = None  # answer = WORD if answer == CLASS else OTHER


def read_helper(path: Path, cls: str, name: str) -> HelperPlan:
    fn = find_method(path, cls, name)
    where = f"{path}: {cls}.{name} (line {fn.lineno})"
    plan, local = HelperPlan(name), {}
    params = [a.arg for a in fn.args.args]
    if len(params) not in (2, 3):
        raise Unreadable(f"{where}: expected (self, item[, template]) parameters, got {params}")
    item, tpl = params[1], (params[2] if len(params) == 3 else None)

    def item_key(node):
        if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == item \
                and isinstance(node.slice, ast.Constant):
            return node.slice.value
        if isinstance(node, ast.Name) and local.get(node.id, (None,))[0] == "item":
            return local[node.id][1]
        return None

    def statements(body):
        for s in body:
            if isinstance(s, ast.Try):  # `try: A, B = options / except ValueError: print; raise`
                yield from statements(s.body)
            else:
                yield s

    for s in statements(fn.body):
        if isinstance(s, ast.For):
            target = {ast.unparse(t) for n in ast.walk(s) if isinstance(n, ast.AugAssign) for t in [n.target]}
            if len(target) == 1 and target <= set(LOOPS):
                local[target.pop()] = ("loop",)
                continue
            raise Unreadable(f"{where}: a loop at line {s.lineno} builds text we do not recognise")
        if not isinstance(s, ast.Assign) or len(s.targets) != 1:
            if isinstance(s, ast.Return):
                continue
            raise Unreadable(f"{where}: line {s.lineno} is {statement_kind(s)}, which is not read")
        t, v = s.targets[0], s.value
        names = [e.id for e in t.elts] if isinstance(t, ast.Tuple) else [ast.unparse(t)]
        if isinstance(v, ast.Tuple) and len(v.elts) == len(names):  # q, o, a = (item[..], ...)
            for n, e in zip(names, v.elts):
                if item_key(e) is not None:
                    local[n] = ("item", item_key(e))
        elif item_key(v) == "options" and len(names) > 1:              # A, B, C, D = options
            plan.n_options = len(names)
            for i, n in enumerate(names):
                local[n] = ("choice", i)
        elif isinstance(v, ast.Call) and isinstance(v.func, ast.Attribute) and v.func.attr == "split" \
                and item_key(v.func.value) == "question":              # a, b = item["question"].split(sep)
            sep = literal_str(v.args[0], where)
            maxsplit = v.args[1].value if len(v.args) > 1 else next(
                (k.value.value for k in v.keywords if k.arg == "maxsplit"), None)
            for i, n in enumerate(names):
                local[n] = ("split", sep, maxsplit, i, len(names), ())
        elif tpl is None and names == ["input_template"]:               # a method's own literal
            local["input_template"] = ("literal", literal_str(v, where))
        elif len(names) == 1 and isinstance(v, ast.Call) and isinstance(v.func, ast.Attribute) \
                and v.func.attr == "replace" and ast.unparse(v.func.value) == names[0] \
                and local.get(names[0], ("",))[0] in ("split", "item"):    # x = x.replace("old", "new")
            old_new = (literal_str(v.args[0], where), literal_str(v.args[1], where))
            src = local[names[0]]
            local[names[0]] = (*src[:-1], src[-1] + (old_new,)) if src[0] == "split" else \
                ("edited", src, (old_new,))
        elif len(names) == 1 and isinstance(v, ast.Call) and isinstance(v.func, ast.Attribute) \
                and v.func.attr == "join" and len(v.args) == 1 and item_key(v.args[0]) == "options":
            local[names[0]] = ("join", literal_str(v.func.value, where))  # ", ".join(item["options"])
        elif names == ["answer"] and isinstance(v, ast.IfExp) and local.get("answer") == ("item", "answer") \
                and isinstance(v.test, ast.Compare) and ast.unparse(v.test.left) == "answer":
            plan.relabel = (literal_str(v.test.comparators[0], where), literal_str(v.body, where),
                            literal_str(v.orelse, where))
        elif names == ["label_space"] and isinstance(v, ast.List) and tpl is None:
            plan.label_list = tuple(literal_str(e, where) for e in v.elts)
            plan.answer_space = "letters" if list(plan.label_list) == LETTER_NAMES[:len(v.elts)] else "labels"
        elif names == ["label_space"]:
            plan.answer_space = "options" if item_key(v) == "options" else "letters"
        elif names == ["return_dict"] and isinstance(v, ast.Dict) and tpl is None:
            spaces = [ast.unparse(val) for key, val in zip(v.keys, v.values)
                      if isinstance(key, ast.Constant) and key.value == "label_space"]
            if spaces and spaces[0] != "label_space":
                plan.answer_space = "options" if item_key(ast.parse(spaces[0], mode="eval").body) == "options" \
                    else plan.answer_space
        elif names[0] in LOOPS and isinstance(v, ast.Constant) and v.value == "":
            continue
        elif names == ["input_text"] and isinstance(v, ast.Call) and isinstance(v.func, ast.Attribute) \
                and v.func.attr == "format" and _receiver(v.func.value, tpl, local, plan, where):
            for kw in v.keywords:
                if kw.arg is None:  # **item: every field of the item under its own name
                    if ast.unparse(kw.value) != item:
                        raise Unreadable(f"{where}: formats with **{ast.unparse(kw.value)}")
                    for key in ("question", "options", "answer"):
                        plan.fields.setdefault(key, ("item", key))
                    continue
                src = ("item", item_key(kw.value)) if item_key(kw.value) else \
                    local.get(kw.value.id) if isinstance(kw.value, ast.Name) else None
                if src is None:
                    raise Unreadable(f"{where}: field {kw.arg!r} is {ast.unparse(kw.value)!r}, not read")
                plan.fields[kw.arg] = src if src != ("loop",) else ("loop", kw.value.id)
        elif names[0] in ("choice", "output_text", "return_dict", "answer"):
            continue  # the gold answer and the returned dict: never part of the prompt
        else:
            raise Unreadable(f"{where}: line {s.lineno} is {statement_kind(s)}, which is not read")
    if not plan.fields:
        raise Unreadable(f"{where}: no `input_text = {tpl or '<literal>'}.format(...)` found")
    if tpl is None and plan.template is None:
        raise Unreadable(f"{where}: formats no literal template")
    return plan


def _receiver(node: ast.AST, tpl: str | None, local: dict, plan: HelperPlan, where: str) -> bool:
    """Is ``node`` what a helper formats (its template parameter) or, in a method that builds its
    own prompt, a string literal (recorded as ``plan.template``)?"""
    if tpl is not None:
        return ast.unparse(node) == tpl
    if isinstance(node, ast.Name) and local.get(node.id, ("",))[0] == "literal":
        plan.template = local[node.id][1]
        return True
    plan.template = literal_str(node, where)
    return True


def _slot(src: tuple, q: str, where: str, values: dict[str, str], prefix: str) -> str:
    kind = src[0]
    if kind == "value":  # a value the caller supplies (the Alpaca instruction)
        return "{{ " + src[1] + " }}"
    if kind == "jinja":  # our Jinja for a nested template (the Alpaca input)
        return src[1]
    if kind == "item" and src[1] == "question":
        return "{{ " + q + " }}"
    if kind == "item" and src[1] == "domain":
        return "{{ subject }}"
    if kind == "choice":
        return "{{ choices[" + str(src[1]) + "] }}"
    if kind == "loop":
        return LOOPS[src[1]]
    if kind == "split":
        return "{{ " + _split_expr(src, q, values, prefix) + " }}"
    if kind == "edited" and src[1] == ("item", "question"):
        expr = q
        for old, new in src[2]:
            expr += f".replace({_value(values, prefix, 'old', old)}, {_value(values, prefix, 'new', new)})"
        return "{{ " + expr + " }}"
    if kind == "join":
        return "{{ choices | join(" + _value(values, prefix, "sep", src[1]) + ") }}"
    raise DataError(f"{where}: its field {src!r} would show the item's answer or raw option list; refused")


def _split_expr(src: tuple, q: str, values: dict[str, str], prefix: str) -> str:
    """``Q.split(sep[, maxsplit])[i]`` (after the parent split's, for a part split again) and its edits."""
    _, sep, maxsplit, i, _n, edits, *parent = src
    base = _split_expr(parent[0], q, values, prefix) if parent else q
    name = _value(values, prefix, "sep", sep)
    args = name if maxsplit is None else f"{name}, {int(maxsplit)}"
    expr = f"{base}.split({args})[{i}]"
    for old, new in edits:
        expr += f".replace({_value(values, prefix, 'old', old)}, {_value(values, prefix, 'new', new)})"
    return expr


def _value(values: dict[str, str], prefix: str, kind: str, text: str) -> str:
    """Store ``text`` as the next ``<prefix>_<kind><k>`` value and return its name."""
    name = f"{prefix}_{kind}{len([k for k in values if k.startswith(f'{prefix}_{kind}')])}"
    values[name] = text
    return name


def to_jinja(template: str, plan: HelperPlan, question_var: str, edits=(), where: str = "",
             prefix: str = "paper") -> tuple[str, dict[str, str]]:
    """(our Jinja source, values) for one upstream ``str.format`` template under ``plan``.

    Values are named ``<prefix>_text<k>`` (literal pieces), ``<prefix>_old<k>``/``_new<k>``
    (question edits) and ``<prefix>_sep<k>`` (split separators)."""
    values: dict[str, str] = {}
    q = question_var
    for old, new in edits:  # item["question"] = item["question"].replace(old, new)
        q = f"{q}.replace({_value(values, prefix, 'old', old)}, {_value(values, prefix, 'new', new)})"
    out = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise DataError(f"{where}: not a str.format template ({exc})") from None
    for literal, name, spec, conversion in parsed:
        if literal:
            out.append("{{ " + _value(values, prefix, "text", literal) + " }}")
        if name is None:
            continue
        if spec or conversion or name not in plan.fields:
            raise DataError(f"{where}: template field {{{name}{'!' + conversion if conversion else ''}"
                            f"{':' + spec if spec else ''}}} is not one {plan.name} fills "
                            f"({', '.join(sorted(plan.fields))})")
        out.append(_slot(plan.fields[name], q, where, values, prefix))
    return "".join(out), values


def fields_used(template: str) -> list[str]:
    return [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]


def sentinel_input(template: str, plan: HelperPlan) -> tuple[str | None, tuple[str, ...] | None]:
    """A sentinel BBL input that survives the helper's splits, and the parts the prompt must show
    (None, None: the default sentinel, shown whole)."""
    used = [plan.fields[f] for f in fields_used(template) if f in plan.fields]
    splits = [src for src in plan.fields.values() if src[0] == "split"]
    if not splits:
        return None, None
    root = splits[0] if len(splits[0]) == 6 else splits[0][6]
    _, sep, _maxsplit, _, n, _edits = root[:6]
    pieces = [f"SPLITPART{i}SENTINEL text" for i in range(n)]
    nested = {src[6][3]: src for src in splits if len(src) > 6}  # parts split again, by index
    for i, sub in nested.items():
        pieces[i] = sub[1].join(f"SPLITPART{i}.{j}SENTINEL text" for j in range(sub[4]))
    whole = sep.join(pieces)
    if ("item", "question") in used or any(src[0] == "edited" for src in used):
        return whole, (whole,)
    shown = [f"SPLITPART{src[6][3]}.{src[3]}SENTINEL text" if len(src) > 6 else pieces[src[3]]
             for src in used if src[0] == "split"]
    return whole, tuple(shown)
