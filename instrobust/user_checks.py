"""The checks ``instrobust tasks`` holds a user's templates to: those our own templates pass.

Errors (one line naming the file, exit 2): a field the benchmark's documents do not offer, a
prompt that drops the question/input or an option or shows the answer, an answer space that is
missing, malformed, or does not fit the task (``letters`` without lettered options, label words
the prompt never names, labels leaving an option text of the task without a word), a template refused by the sandbox or
failing on a real document. Warnings: a word 12-gram shared with an observed instruction.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import jinja2
from jinja2 import meta

from instrobust import bank
from instrobust.bank import Instruction, bbl_sentinel_doc, check_bbl_template, check_qa_template, render
from instrobust.errors import InstrobustError, TemplateRenderError

# fields a document offers: the QA ones of MMLU (no subject: no observed prompt shows it) and
# of wrapped lm-eval tasks, the BBL ones
FIELDS = {"qa": {"question", "choices", "letters"}, "bbl": {"input", "choices", "letters"}}
QA_SENTINEL = {"question": "QSENTINEL what is asked here", "choices": [f"OPTSENTINEL{i}" for i in range(4)],
               "letters": list("ABCD")}


def sandbox() -> jinja2.Environment:
    """The one template sandbox (instrobust.rendering): user templates and field mappings run in it."""
    return bank.JINJA_ENV


def _where(ins: Instruction) -> str:
    return str(ins.provenance["file"])


def check_fields(ins: Instruction, kind: str) -> None:
    try:
        env = sandbox()
        used = meta.find_undeclared_variables(env.parse(ins.template)) - set(env.globals)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateRenderError(f"{_where(ins)}: not a valid Jinja template (line {exc.lineno}: {exc.message})") from None
    allowed = FIELDS["bbl" if kind == "bbl" else "qa"]
    extra = sorted(used - allowed)
    if extra:
        raise TemplateRenderError(f"{_where(ins)}: uses field {extra[0]!r}; documents of this benchmark offer "
                                  f"{', '.join(sorted(allowed))}")


def check_space(ins: Instruction, kind: str) -> None:
    """The answer space is declared and the prompt asks for it."""
    from instrobust.answers import shows_letters

    space = ins.answer_space  # a missing or malformed answers.yaml entry fails here, naming the file
    doc = bbl_sentinel_doc(ins.task_type) if kind == "bbl" else QA_SENTINEL
    prompt = render(ins, doc)
    if space.kind == "letters" and not shows_letters(prompt, doc):
        raise TemplateRenderError(f"{_where(ins)}: its answer space is letters but the prompt does not show "
                                  f"each option after its letter (A. x, (A) x, A: x ...)")
    missing = [w for _, w in space.by_class if w.lower() not in prompt.lower()]
    if missing:
        raise TemplateRenderError(f"{_where(ins)}: its labels ask for {', '.join(map(repr, missing))} but the "
                                  f"prompt never names {'it' if len(missing) == 1 else 'them'}")


def check_documents(ins: Instruction, task: str, docs: Sequence[Mapping[str, Any]]) -> None:
    """Renders on the task's real documents and its answer space fits their options."""
    from instrobust.answers import check_fits

    check_fits(ins, ins.answer_space, task, docs)
    for doc in docs[:2]:
        render(ins, doc)


def check_template(ins: Instruction, kind: str, task: str, docs: Sequence[Mapping[str, Any]]) -> None:
    check_fields(ins, kind)
    if kind == "bbl":
        check_bbl_template(ins, ins.task_type, option_counts=tuple(sorted({len(d["choices"]) for d in docs[:50]})))
    else:
        check_qa_template(ins)
    check_space(ins, kind)
    check_documents(ins, task, docs)


def originality_warnings(instructions: Sequence[Instruction], kind: str) -> list[str]:
    """One warning per (template, observed instruction) sharing a word 12-gram, and one per
    observed collection that could not be loaded (so it was not compared)."""
    from instrobust.bank import InstructionBank
    from instrobust.originality import N, observed_index, overlaps

    banks = {"mmlu": ["mmlu"], "bbl": ["bbl"]}.get(kind, ["mmlu", "bbl"])
    observed, warnings = [], []
    for name in banks:
        try:
            bank = InstructionBank.load(name, observed=True)
        except InstrobustError as exc:
            warnings.append(f"warning: observed {name} instructions not compared: {exc}")
            continue
        observed += bank.select(observed=True)
        warnings += [f"warning: observed {name} collection {c!r} not compared: {why}" for c, why in bank.skipped.items()
                     if c in ("flan2022", "alpaca", "p3")]
    index = observed_index(observed)
    for ins in instructions:
        for other, grams in overlaps(ins.template, index).items():
            warnings.append(f"warning: {_where(ins)} shares {len(grams)} word {N}-gram(s) with observed instruction "
                            f"{other}: {grams[0]!r}")
    return warnings
