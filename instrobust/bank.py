"""The instruction bank: every instruction phrasing, observed or not, and the one way to render it.

Eval (the harness tasks), training and analysis all call :func:`render`; there is no second path.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import jinja2

from instrobust.errors import TemplateRenderError, UnknownInstructionError

COLLECTIONS = ("flan2022", "alpaca", "p3", "unobserved")
OBSERVED_COLLECTIONS = ("flan2022", "alpaca", "p3")
TASK_TYPES = ("qa", "mc", "bc")

# Fields every QA document offers to a template (MMLU and the BIG-bench QA tasks).
QA_FIELDS = ("question", "choices", "letters", "subject")


@dataclass(frozen=True)
class Instruction:
    """One instruction phrasing for one benchmark.

    ``template`` is Jinja source rendered over a document (see ``QA_FIELDS``). Observed
    instructions are assembled at run time from upstream text (never stored in this repo);
    ``provenance`` says where that text came from.
    """

    id: str
    benchmark: str
    collection: str
    task_type: str
    template: str
    provenance: Mapping[str, Any] = field(default_factory=dict, compare=False)
    # promptsource templates render "prompt ||| target"; only the prompt part is kept.
    prompt_separator: str | None = None

    @property
    def observed(self) -> bool:
        return self.collection in OBSERVED_COLLECTIONS

    @property
    def number(self) -> int:
        return int(self.id.rsplit("_", 1)[1])


def _jinja_env() -> jinja2.Environment:
    # keep_trailing_newline: upstream templates that end in "\n" must render as they were trained.
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    # promptsource templates call these as globals.
    env.globals.update(zip=zip, enumerate=enumerate, len=len, str=str)
    return env


_ENV = _jinja_env()


@functools.lru_cache(maxsize=4096)
def _compile(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def jinja_literal(text: str) -> str:
    """Jinja source that renders exactly ``text`` (used to embed upstream strings)."""
    if any(tok in text for tok in ("{{", "{%", "{#", "}}", "%}", "#}")):
        return "{% raw %}" + text + "{% endraw %}"
    return text


def render(instruction: Instruction, doc: Mapping[str, Any]) -> str:
    """Render ``instruction`` over ``doc`` into the prompt the model sees.

    Raises :class:`TemplateRenderError` naming the instruction when the template refers to a
    field the document lacks or fails in any other way.
    """
    try:
        text = _compile(instruction.template).render(**doc)
    except jinja2.UndefinedError as exc:
        raise TemplateRenderError(
            f"instruction {instruction.id!r} ({_where(instruction)}) uses an undefined "
            f"variable: {exc.message}. Documents of this benchmark offer: "
            f"{', '.join(sorted(doc))}."
        ) from None
    except jinja2.TemplateError as exc:
        raise TemplateRenderError(
            f"instruction {instruction.id!r} ({_where(instruction)}) failed to render: {exc}"
        ) from None
    if instruction.prompt_separator:
        text = text.split(instruction.prompt_separator)[0].strip()
    return text


def _where(instruction: Instruction) -> str:
    prov = instruction.provenance
    return str(prov.get("file") or prov.get("path") or prov.get("source") or instruction.collection)


_SENTINEL_DOC = {
    "question": "QSENTINEL what is asked here",
    "choices": ["OPTSENTINEL0", "OPTSENTINEL1", "OPTSENTINEL2", "OPTSENTINEL3"],
    "letters": ["A", "B", "C", "D"],
    "subject": "SUBJSENTINEL",
}


def check_qa_template(instruction: Instruction) -> None:
    """Fail loudly if a QA template drops the question or an option (a silently wrong prompt)."""
    text = render(instruction, _SENTINEL_DOC)
    missing = [s for s in [_SENTINEL_DOC["question"], *_SENTINEL_DOC["choices"]] if s not in text]
    if missing:
        raise TemplateRenderError(
            f"instruction {instruction.id!r} ({_where(instruction)}) does not show "
            f"{', '.join(missing)} in its prompt: every QA template must include the question "
            f"and all answer options."
        )


class InstructionBank:
    """All instructions for one benchmark, plus the collections that could not be loaded."""

    def __init__(self, instructions: Iterable[Instruction], skipped: Mapping[str, str] | None = None):
        self._by_id: dict[str, Instruction] = {}
        for ins in instructions:
            if ins.id in self._by_id:
                raise ValueError(f"duplicate instruction id {ins.id!r}")
            self._by_id[ins.id] = ins
        self.skipped: dict[str, str] = dict(skipped or {})

    @classmethod
    def load(cls, benchmark: str = "mmlu", *, resolver=None, observed: bool = True) -> "InstructionBank":
        """Load our unobserved templates and (optionally) the observed ones from upstream."""
        from instrobust.observed import load_observed
        from instrobust.unobserved import load_unobserved

        instructions = list(load_unobserved(benchmark))
        skipped: dict[str, str] = {}
        if observed:
            obs, skipped = load_observed(benchmark, resolver=resolver)
            instructions += obs
        return cls(instructions, skipped)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self):
        return iter(self._by_id.values())

    def __contains__(self, instruction_id: str) -> bool:
        return instruction_id in self._by_id

    def get(self, instruction_id: str) -> Instruction:
        try:
            return self._by_id[instruction_id]
        except KeyError:
            import difflib

            close = difflib.get_close_matches(instruction_id, self._by_id, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            skipped = "".join(
                f" Collection {c!r} is not loaded: {why}." for c, why in self.skipped.items()
                if f"_{c}_" in instruction_id
            )
            raise UnknownInstructionError(
                f"unknown instruction id {instruction_id!r}.{skipped}{hint}"
            ) from None

    def select(self, *, collection: str | None = None, observed: bool | None = None) -> list[Instruction]:
        out = list(self)
        if collection is not None:
            out = [i for i in out if i.collection == collection]
        if observed is not None:
            out = [i for i in out if i.observed == observed]
        return out

    @property
    def ids(self) -> list[str]:
        return list(self._by_id)
