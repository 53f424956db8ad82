"""The instruction bank: every instruction phrasing, observed or not, and the one way to render it.

Eval (the harness tasks), training and analysis all call :func:`render`; there is no second path.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from instrobust.errors import TemplateRenderError, UnknownInstructionError

COLLECTIONS = ("flan2022", "alpaca", "p3", "unobserved")
OBSERVED_COLLECTIONS = ("flan2022", "alpaca", "p3")
TASK_TYPES = ("qa", "mc", "bc")

# Fields every MMLU document offers to a template.
QA_FIELDS = ("question", "choices", "letters", "subject")
# Fields every BIG-bench Lite document offers (all three task types; see instrobust.bbl.data).
BBL_FIELDS = ("input", "choices", "letters", "answer", "task")


@dataclass(frozen=True)
class Instruction:
    """One instruction phrasing for one benchmark.

    ``template`` is Jinja source rendered, in a sandbox, over a document (see ``QA_FIELDS``)
    plus ``values``. Observed instructions are assembled at run time from upstream text (never
    stored in this repo); ``provenance`` says where that text came from.
    """

    id: str
    benchmark: str
    collection: str
    task_type: str
    template: str
    provenance: Mapping[str, Any] = field(default_factory=dict, compare=False)
    # promptsource templates render "prompt ||| target"; only the prompt part is kept.
    prompt_separator: str | None = None
    # Upstream/data text (a Flan pattern's literal pieces, an NIV2 definition, an Alpaca
    # instruction, a BIG-bench task_prefix) reaches the template only as these render-time
    # variables, never as template source: `template` is always our own or promptsource Jinja.
    values: Mapping[str, str] = field(default_factory=dict, hash=False)

    @property
    def observed(self) -> bool:
        return self.collection in OBSERVED_COLLECTIONS

    @property
    def number(self) -> int:
        return int(self.id.rsplit("_", 1)[1])

    @property
    def answer_space(self):
        """What this instruction asks the model to answer with (letters / options / labels):
        what the harness scores. See instrobust.answers and docs/answer-spaces.md."""
        from instrobust.answers import answer_space

        return answer_space(self)


_TRAILING_LINE_QUESTION = re.compile(r"\n([^\n]*\?)\s*$")
_TRAILING_SENTENCE_QUESTION = re.compile(r"(?<=[.!?\"'])\s+([^.!?\n]+\?)\s*$")


def split_question(text: str) -> tuple[str, str]:
    """(context, question): the input's closing question and what precedes it.

    Upstream templates written for (passage, question) datasets get a single-text BBL input
    through this split: the question is the last line if that line ends in "?", else the last
    sentence if it ends in "?"; an input with no closing question is all question, no context.
    """
    text = text.strip()
    for pattern in (_TRAILING_LINE_QUESTION, _TRAILING_SENTENCE_QUESTION):
        m = pattern.search(text)
        if m:
            return text[: m.start()].rstrip(), m.group(1).strip()
    return "", text


def _jinja_env() -> jinja2.Environment:
    # Templates are data: a template file (ours, a user's, promptsource's) must not reach
    # Python objects, so every template renders in the immutable sandbox.
    # keep_trailing_newline: upstream templates that end in "\n" must render as they were trained.
    env = ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    # promptsource templates call these as globals; split_question serves BBL adapters.
    env.globals.update(zip=zip, enumerate=enumerate, len=len, str=str, split_question=split_question)
    return env


_ENV = _jinja_env()


@functools.lru_cache(maxsize=4096)
def _compile(source: str) -> jinja2.Template:
    return _ENV.from_string(source)


def render(instruction: Instruction, doc: Mapping[str, Any]) -> str:
    """Render ``instruction`` over ``doc`` (plus ``instruction.values``) into the prompt the model sees.

    Raises :class:`TemplateRenderError` naming the instruction and its file when the template
    refers to a field the document lacks, tries to reach outside the sandbox, or fails otherwise.
    """
    clash = sorted(set(instruction.values) & set(doc))
    if clash:
        raise TemplateRenderError(
            f"instruction {instruction.id!r} ({_where(instruction)}): its upstream values "
            f"{', '.join(clash)} clash with document fields of the same name"
        )
    try:
        text = _compile(instruction.template).render(**doc, **instruction.values)
    except SecurityError as exc:
        raise TemplateRenderError(
            f"instruction {instruction.id!r} ({_where(instruction)}) was refused: it tries an "
            f"operation templates may not do ({exc}). Templates only format the document's fields."
        ) from None
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


def bbl_sentinel_doc(task_type: str, task: str = "SENTINELTASK", input_text: str | None = None,
                     n_choices: int | None = None, answer: int = 0) -> dict:
    n = n_choices or (2 if task_type == "bc" else 4)
    return {
        "input": input_text if input_text is not None else "INPUTSENTINEL text given here",
        "choices": [f"OPTSENTINEL{i}" for i in range(n)],
        "letters": [chr(ord("A") + i) for i in range(n)],
        "answer": answer,
        "task": task,
    }


def check_bbl_template(
    instruction: Instruction, task_type: str, task: str = "SENTINELTASK",
    input_text: str | None = None, input_parts: tuple[str, ...] | None = None,
    option_counts: tuple[int, ...] = (),
) -> None:
    """Fail loudly if a BBL template would give a silently wrong prompt.

    The prompt must show the input (``input_parts``: the pieces a task-specific adapter keeps
    of ``input_text``); for QA and MC, a template that lists any option must list all of them;
    and the prompt must not depend on the gold answer. Checked at each of ``option_counts``
    (default: 2 options for BC, 4 otherwise).
    """
    for n in option_counts or ((2,) if task_type == "bc" else (4,)):
        _check_bbl_once(instruction, task_type, bbl_sentinel_doc(task_type, task, input_text, n), input_parts)


def _check_bbl_once(instruction: Instruction, task_type: str, doc: dict, input_parts) -> None:
    text = render(instruction, doc)
    parts = input_parts or (doc["input"],)
    problems = [f"the input ({p!r})" for p in parts if p not in text]
    if task_type in ("qa", "mc"):
        shown = [c for c in doc["choices"] if c in text]
        if shown and len(shown) < len(doc["choices"]):
            problems.append("options " + ", ".join(c for c in doc["choices"] if c not in text)
                            + f" (it shows {', '.join(shown)})")
    if render(instruction, {**doc, "answer": 1}) != text:
        problems.append("no gold answer: the prompt changes with the document's answer")
    if problems:
        raise TemplateRenderError(
            f"instruction {instruction.id!r} ({_where(instruction)}) is wrong for a BBL {task_type} task "
            f"with {len(doc['choices'])} options: "
            f"its prompt misses {'; '.join(problems)}. Every BBL template must show the input, "
            f"all options if it lists any, and never the answer."
        )


class InstructionBank:
    """All instructions for one benchmark, plus the collections that could not be loaded."""

    def __init__(self, instructions: Iterable[Instruction], skipped: Mapping[str, str] | None = None):
        """``skipped`` maps a collection none of whose instructions could be loaded, or a single
        instruction id (its upstream file or text missing or changed), to why."""
        self._by_id: dict[str, Instruction] = {}
        for ins in instructions:
            if ins.id in self._by_id:
                raise ValueError(f"duplicate instruction id {ins.id!r}")
            self._by_id[ins.id] = ins
        self.skipped: dict[str, str] = dict(skipped or {})

    @classmethod
    def load(cls, benchmark: str = "mmlu", *, resolver=None, observed: bool = True) -> "InstructionBank":
        """Load our unobserved templates and (optionally) the observed ones from upstream."""
        if benchmark == "bbl":
            from instrobust.bbl.instructions import load_bbl_bank

            return load_bbl_bank(resolver=resolver, observed=observed)
        from instrobust.observed import load_observed
        from instrobust.unobserved import load_unobserved

        instructions = list(load_unobserved(benchmark))
        skipped: dict[str, str] = {}
        if observed:
            obs, skipped = load_observed(benchmark, resolver=resolver)
            instructions += obs
            from instrobust.paper import load_paper  # the authors' own set, read from their code

            paper, why = load_paper(benchmark, resolver)
            instructions += paper
            skipped.update(why)
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

            if instruction_id in self.skipped:
                raise UnknownInstructionError(
                    f"instruction {instruction_id!r} could not be loaded: {self.skipped[instruction_id]}"
                ) from None

            for c, why in self.skipped.items():
                if f"_obs_{c}_" in instruction_id or f"_{c}_" in instruction_id:
                    raise UnknownInstructionError(self._not_loaded(instruction_id, c, why)) from None
            close = difflib.get_close_matches(instruction_id, self._by_id, n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            raise UnknownInstructionError(f"unknown instruction id {instruction_id!r}.{hint}") from None

    def _not_loaded(self, instruction_id: str, collection: str, why: str) -> str:
        """Which collection could not be loaded, why, and which groups run without it."""
        loaded = sorted({i.collection for i in self if i.observed})
        prefix = instruction_id.split("_obs_")[0] if "_obs_" in instruction_id else instruction_id.split("_", 1)[0]
        groups = [f"{prefix}_observed_{c}" for c in loaded] + [f"{prefix}_unobserved"]
        try:
            from instrobust.commands import tasks_path

            names = {p.stem for p in tasks_path().rglob(f"{prefix}_*observed*.yaml")}
            groups = [g for g in groups if g in names]
        except OSError:
            pass
        run = f" Groups that run without it: {', '.join(groups)}." if groups else ""
        return (f"instruction {instruction_id!r} is in collection {collection!r}, which could not be "
                f"loaded: {why}.{run}")

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
