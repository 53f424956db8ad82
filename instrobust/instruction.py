"""The instruction leaf: an instruction, the template checks, and the container of a benchmark's
instructions. Imports only errors, paths, names, rendering (the one way to render, instrobust.rendering)
and answers (what an instruction asks the model to answer with), so every collection (observed,
unobserved, paper, bbl) builds on it and instrobust.bank, which loads the collections by
benchmark, sits above them all.

Benchmark prompts have one path, :func:`render`: the harness tasks, the analysis and `instrobust
render` call it. instrobust_train does not render benchmark prompts (it trains on Alpaca-style
examples, instrobust_train.data.format_prompt); the models it trains are evaluated through render.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from instrobust.errors import TemplateRenderError, UnknownInstructionError
from instrobust.names import COLLECTIONS, OBSERVED_COLLECTIONS  # noqa: F401  (re-exported by instrobust.bank)
from instrobust.names import collection_group
from instrobust.rendering import bbl_sentinel_doc, render, where

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
            f"instruction {instruction.id!r} ({where(instruction)}) does not show "
            f"{', '.join(missing)} in its prompt: every QA template must include the question "
            f"and all answer options."
        )


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
            f"instruction {instruction.id!r} ({where(instruction)}) is wrong for a BBL {task_type} task "
            f"with {len(doc['choices'])} options: "
            f"its prompt misses {'; '.join(problems)}. Every BBL template must show the input, "
            f"all options if it lists any, and never the answer."
        )


class InstructionSet:
    """All instructions for one benchmark, plus the collections that could not be loaded.

    The collections build this; :class:`instrobust.bank.InstructionBank` adds ``load``, which
    picks the collections by benchmark."""

    def __init__(self, instructions: Iterable[Instruction], skipped: Mapping[str, str] | None = None):
        """``skipped`` maps a collection none of whose instructions could be loaded, or a single
        instruction id (its upstream file or text missing or changed), to why."""
        self._by_id: dict[str, Instruction] = {}
        for ins in instructions:
            if ins.id in self._by_id:
                raise ValueError(f"duplicate instruction id {ins.id!r}")
            self._by_id[ins.id] = ins
        self.skipped: dict[str, str] = dict(skipped or {})

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
        groups = [collection_group(prefix, c, True) for c in loaded] + [collection_group(prefix, "unobserved", False)]
        known = self._known_groups()
        if known is not None:
            groups = [g for g in groups if g in known]
        run = f" Groups that run without it: {', '.join(groups)}." if groups else ""
        return (f"instruction {instruction_id!r} is in collection {collection!r}, which could not be "
                f"loaded: {why}.{run}")

    def _known_groups(self) -> frozenset[str] | None:
        """Our lm-eval task and group names, so that error messages name only groups that exist;
        None here (the leaf knows no tasks): InstructionBank reads them from instrobust.catalog."""
        return None

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
