"""The MMLU part of the instruction bank.

Instruction ids: ``mmlu_unobs_<nn>`` (ours, templates/unobserved/mmlu/<nn>.jinja) and
``mmlu_obs_<collection>_<nn>`` (observed, built at run time from the pins in
templates/observed/mmlu.yaml by instrobust.upstream.collections). This module only says how an
MMLU document (question, choices, letters, subject) fills the upstream templates.
"""
from __future__ import annotations

from pathlib import Path

from instrobust.errors import DataError
from instrobust.instruction import Instruction, check_qa_template
from instrobust.names import unobserved_id
from instrobust.paths import TEMPLATES_DIR
from instrobust.upstream.collections import CollectionLoader, Views, lettered
from instrobust.upstream.references import reference_spec
from instrobust.upstream.sources import SourceResolver

# How a QA document is shown where an upstream template has a single free-text input slot
# (Flan's natinst {input}, an Alpaca entry's input).
QA_INPUT = lettered("question")

VIEWS = Views(
    name="MMLU",
    input=QA_INPUT,
    flan={"natinst_v2": {"input": QA_INPUT}},  # {Definition} comes from the NIV2 task
    # promptsource templates are written against their own datasets' fields. Placeholders that
    # only feed the target part (answerKey, label, ...) are fixed to the first option.
    p3={
        "arc": '{% set choices = {"text": choices, "label": letters} %}{% set answerKey = letters[0] %}',
        "commonsense_qa": '{% set choices = {"text": choices, "label": letters} %}{% set answerKey = letters[0] %}',
        "cos_e": "{% set answer = choices[0] %}",
        "openbookqa": '{% set question_stem = question %}{% set choices = {"text": choices, "label": letters} %}'
                      "{% set answerKey = letters[0] %}",
        "quail": '{% set context = "" %}{% set answers = choices %}{% set correct_answer_id = 0 %}',
        "cosmos_qa": '{% set context = "" %}{% set answer0 = choices[0] %}{% set answer1 = choices[1] %}'
                     "{% set answer2 = choices[2] %}{% set answer3 = choices[3] %}{% set label = 0 %}",
    },
)


class MMLULoader(CollectionLoader):
    """MMLU's observed instructions (mmlu_obs_* ids), from templates/observed/mmlu.yaml."""

    views = VIEWS

    def check(self, ins: Instruction) -> None:
        if self.task_type == "qa":
            check_qa_template(ins)


def _loader(benchmark: str, resolver: SourceResolver | None = None) -> MMLULoader:
    spec = reference_spec(benchmark)
    return MMLULoader(benchmark, spec, resolver, spec.get("task_type", "qa"))


def load_observed(benchmark: str = "mmlu", resolver: SourceResolver | None = None) -> tuple[list[Instruction], dict[str, str]]:
    """All observed instructions that can be had, and why the others are skipped (a missing file
    or failed checksum skips only the instructions built from it; see references.fold_skipped)."""
    return _loader(benchmark, resolver).load()


def planned_ids(benchmark: str = "mmlu") -> dict[str, list[str]]:
    """Observed instruction ids per collection, from the references alone (no download)."""
    return _loader(benchmark).planned()


def unobserved_dir(benchmark: str = "mmlu") -> Path:
    return TEMPLATES_DIR / "unobserved" / benchmark


def load_unobserved(benchmark: str = "mmlu", task_type: str = "qa") -> list[Instruction]:
    """Our templates, templates/unobserved/<benchmark>/NN.jinja, each checked."""
    out = []
    for path in sorted(unobserved_dir(benchmark).glob("*.jinja")):
        if not path.stem.isdigit():
            raise DataError(f"{path}: unobserved template files are named NN.jinja (a number: the instruction id)")
        # Files end with a newline by convention; the prompt itself ends at the answer cue.
        source = path.read_text(encoding="utf-8").removesuffix("\n")
        ins = Instruction(
            id=unobserved_id(benchmark, path.stem), benchmark=benchmark, collection="unobserved",
            task_type=task_type, template=source,
            provenance={"file": f"templates/unobserved/{benchmark}/{path.name}"},
        )
        if task_type == "qa":
            check_qa_template(ins)
        out.append(ins)
    return out
