"""The BIG-bench Lite part of the instruction bank.

Instruction ids:

* ``bbl_<type>_obs_<collection>_<nn>`` - observed, shared by every task of that type
  (type: qa / bc / mc; collection: flan2022 / alpaca / p3), from ``templates/observed/bbl_<type>.yaml``;
* ``bbl_<task>_unobs_<nn>`` - ours, ``templates/unobserved/bbl/<task>/<nn>.jinja``;
* ``bbl_<task>_designer_01`` - the task designer's task_prefix (or description) from task.json;
* ``bbl_<task>_var_<variant>_01`` - Figure-3 variants (closest / incorrect / negated from
  ``templates/observed/bbl_variants.yaml``; nonsensical from ``templates/variants/bbl/<task>/``).

Upstream text is read at run time and the observed instructions are built by the recipes shared
with every benchmark (instrobust.upstream.collections); this module only says how each upstream
placeholder or dataset field is filled from a BBL document (:data:`VIEWS`).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from instrobust.instruction import Instruction, InstructionSet, check_bbl_template
from instrobust.names import designer_id, parse_bbl_id, unobserved_id, variant_id
from instrobust.bbl import BBL_TYPES, TASKS, VARIANT_TASKS, option_counts, task_info
from instrobust.errors import ChecksumError, DataError, SourceUnavailable, UnknownInstructionError
from instrobust.paths import TEMPLATES_DIR
from instrobust.upstream.collections import (ANSWER_CUE, FLAN_OPTIONS, CollectionLoader, Views, apply_edit, fetcher,
                                             flan_jinja, flan_pattern, lettered, niv2_definition)
from instrobust.upstream.references import reference_spec
from instrobust.upstream.sources import SourceResolver


# The BBL input with its lettered options: what fills a single free-text slot (Flan natinst
# {input}, an Alpaca entry's input, the designer prefix's example). The MMLU format.
BBL_INPUT = lettered("input")
_CONTEXT = "{{ split_question(input)[0] }}"
_QUESTION = "{{ split_question(input)[1] }}"

# How each Flan pattern family's placeholders are filled from a BBL document (ours). An
# unmapped placeholder is an error (parsers.flan_placeholders_to_jinja), never a silent gap.
FLAN_VIEWS: dict[str, dict[str, str]] = {
    "natinst_v2": {"input": BBL_INPUT},  # {Definition} comes from the NIV2 task
    "arc": {"question": "{{ input }}", "options_": FLAN_OPTIONS},
    "cosmos_qa": {"context": _CONTEXT, "question": _QUESTION, "options_": FLAN_OPTIONS},
    # the response under judgement is option A: "yes, it is right" <=> the first option
    "multirc": {"paragraph": _CONTEXT, "question": _QUESTION, "response": "{{ choices[0] }}", "options_": FLAN_OPTIONS},
    "trec": {"text": "{{ input }}", "options_": FLAN_OPTIONS},
    "rte": {"premise": "{{ premise }}", "hypothesis": "{{ hypothesis }}", "options_": FLAN_OPTIONS},
}

# promptsource templates use their dataset's fields; these preludes (ours) expose a BBL document
# under those names. Fields that only feed the target part are fixed so the prompt never sees
# the gold.
P3_ADAPTERS: dict[str, str] = {
    "arc": '{% set question = input %}{% set choices = {"text": choices, "label": letters} %}{% set answerKey = letters[0] %}',
    "openbookqa": '{% set question_stem = input %}{% set choices = {"text": choices, "label": letters} %}{% set answerKey = "A" %}',
    "cos_e": "{% set question = input %}{% set answer = choices[0] %}",
    "quail": "{% set context, question = split_question(input) %}{% set answers = choices %}{% set correct_answer_id = 0 %}",
    "dbpedia_14": '{% set content = input %}{% set title = "" %}{% set label = 0 %}',
    "trec": "{% set text = input %}{% set label_coarse = 0 %}{% set label_fine = 0 %}",
    "multirc": "{% set paragraph, question = split_question(input) %}{% set answer = choices[0] %}{% set label = 1 %}",
}

VIEWS = Views(name="BBL", input=BBL_INPUT, flan=FLAN_VIEWS, p3=P3_ADAPTERS,
              # ``_doc_choices`` keeps the BBL options for `label_space: task`
              p3_prelude="{% set _doc_choices = choices %}", empty_context=_CONTEXT)

# Task-specific preludes for variant references, with the sentinel input the template check
# renders and the pieces of it the prompt must show.
VARIANT_ADAPTERS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # epistemic_reasoning inputs read "Premise: <p> Hypothesis: <h>"
    "premise_hypothesis": (
        '{% set _ph = input.split(" Hypothesis: ", 1) %}'
        '{% set premise = _ph[0][9:] if _ph[0].startswith("Premise: ") else _ph[0] %}{% set hypothesis = _ph[1] %}',
        "Premise: PREMISESENTINEL text. Hypothesis: HYPOTHESISSENTINEL text.",
        ("PREMISESENTINEL text.", "HYPOTHESISSENTINEL text."),
    ),
}


def spec_path(task_type: str) -> str:
    return f"bbl_{task_type}"


# ---- observed, per task type ----------------------------------------------------------------

class BBLLoader(CollectionLoader):
    """One task type's observed instructions (bbl_<type>_obs_* ids), shared by its tasks."""

    views = VIEWS

    def __init__(self, task_type: str, resolver: SourceResolver | None = None):
        spec = reference_spec(spec_path(task_type))
        if not spec:
            raise DataError(f"templates/observed/{spec_path(task_type)}.yaml is missing")
        super().__init__("bbl", spec, resolver, task_type)

    @property
    def scope(self) -> str:
        return f"bbl_{self.task_type}"

    @property
    def spec_name(self) -> str:
        return spec_path(self.task_type)

    def check(self, ins: Instruction) -> None:
        check_bbl_template(ins, self.task_type, option_counts=option_counts(self.task_type))


@functools.lru_cache(maxsize=8)
def observed_for_type(task_type: str, resolver: SourceResolver | None = None) -> tuple[tuple[Instruction, ...], dict[str, str]]:
    """All observed instructions of one BBL type that can be had, and why the others are skipped."""
    out, skipped = BBLLoader(task_type, resolver).load()
    return tuple(out), skipped


def planned_observed_ids(task_type: str) -> dict[str, list[str]]:
    """Observed instruction ids per collection, from the references alone (no download)."""
    return BBLLoader(task_type).planned()


# ---- per task: unobserved (ours), designer, variants ----------------------------------------

def unobserved_dir(task: str, root: Path | None = None) -> Path:
    """``templates/unobserved/bbl/<task>`` (or ``<root>/<task>``)."""
    return (root or TEMPLATES_DIR / "unobserved" / "bbl") / task


def unobserved_files(task: str, root: Path | None = None) -> list[Path]:
    return sorted(unobserved_dir(task, root).glob("*.jinja"))


def load_unobserved(task: str, root: Path | None = None) -> list[Instruction]:
    """Our templates for one task, each checked (shows the input, all options, never the answer)."""
    info = task_info(task)
    out = []
    for path in unobserved_files(task, root):
        if not path.stem.isdigit():
            raise DataError(f"{path}: unobserved template files are named NN.jinja")
        ins = Instruction(
            id=unobserved_id(f"bbl_{task}", path.stem), benchmark="bbl", collection="unobserved",
            task_type=info.task_type, template=path.read_text(encoding="utf-8").removesuffix("\n"),
            provenance={"file": f"templates/unobserved/bbl/{task}/{path.name}", "bbl_task": task},
        )
        check_bbl_template(ins, info.task_type, task, option_counts=info.options)
        out.append(ins)
    return out


def designer_instruction(task: str, text: str | None = None) -> Instruction:
    """The task designer's instruction: its task_prefix (else description), then the input."""
    info = task_info(task)
    if text is None:
        from instrobust.bbl.data import bbl_pool

        text = bbl_pool(task).designer  # cached: the harness loads the same pool
    if not text:
        raise SourceUnavailable(f"BBL task {task!r}: its source has no task_prefix or description")
    ins = Instruction(
        id=designer_id(task), benchmark="bbl", collection="designer", task_type=info.task_type,
        # the task.json prefix is data (task.json is not pinned in data-dir mode): a value only
        template="{{ designer_prefix }}\n\n" + BBL_INPUT + ANSWER_CUE, values={"designer_prefix": text},
        provenance={"source": f"BIG-bench {task} task.json (task_prefix, else description)", "bbl_task": task},
    )
    check_bbl_template(ins, info.task_type, task, option_counts=info.options)
    return ins


def nonsensical_path(task: str) -> Path:
    return TEMPLATES_DIR / "variants" / "bbl" / task / "nonsensical.jinja"


def variant_spec() -> dict[str, Any]:
    return reference_spec("bbl_variants")


def variant_instruction(task: str, variant: str, resolver: SourceResolver | None = None) -> Instruction:
    info = task_info(task)
    iid = variant_id(task, variant)
    if variant == "nonsensical":
        path = nonsensical_path(task)
        if not path.is_file():
            raise UnknownInstructionError(f"unknown instruction id {iid!r}: {path} does not exist")
        ins = Instruction(id=iid, benchmark="bbl", collection="nonsensical", task_type=info.task_type,
                          template=path.read_text(encoding="utf-8").removesuffix("\n"),
                          provenance={"file": f"templates/variants/bbl/{task}/nonsensical.jinja", "bbl_task": task})
        check_bbl_template(ins, info.task_type, task, option_counts=info.options)
        return ins
    spec = variant_spec().get(task, {})
    if variant not in spec:
        raise UnknownInstructionError(f"unknown instruction id {iid!r}: templates/observed/bbl_variants.yaml has no {task}.{variant}")
    ref, edit = spec[variant], None
    if "of" in ref:  # negated: the referenced variant plus one edit
        edit, ref = ref["edit"], spec[ref["of"]]
    fetch = fetcher(resolver or SourceResolver(), f"templates/observed/bbl_variants.yaml ({task}.{variant})")
    where = f"bbl_variants.yaml {task}.{variant}"
    flan = ref.get("flan") or {"key": "natinst_v2", **ref["natinst"]}
    pattern, read = flan_pattern(fetch, flan.get("source", "flan_v2_templates"), flan["key"], flan["index"], flan.get("sha256"))
    prov: dict[str, Any] = {**read, "bbl_task": task, "variant": variant}
    slots, definition_value = dict(FLAN_VIEWS[flan["key"]]), {}
    if "definition" in ref:
        definition, dprov = niv2_definition(ref["definition"], fetch)
        prov.update(dprov)
        if edit and edit.get("target") == "definition":
            definition = apply_edit(definition, edit, f"{where}: NIV2 {ref['definition']['task']} Definition")
        slots["Definition"] = "{{ niv2_definition }}"
        definition_value = {"niv2_definition": definition}
    if edit and edit.get("target") == "pattern":
        pattern = apply_edit(pattern, edit, f"{where}: Flan {flan['key']}[{flan['index']}]")
    if edit:
        prov["edit"] = {"target": edit.get("target"), "new": edit["new"]}
    prelude, sentinel, parts = VARIANT_ADAPTERS.get(ref.get("adapter"), ("", None, None))
    if ref.get("adapter") and ref["adapter"] not in VARIANT_ADAPTERS:
        raise DataError(f"{where}: unknown adapter {ref['adapter']!r}")
    collection = "negated" if edit else "flan2022"
    template, values = flan_jinja(pattern, slots, VIEWS.empty_context)
    ins = Instruction(id=iid, benchmark="bbl", collection=collection, task_type=info.task_type,
                      template=prelude + template, values={**values, **definition_value}, provenance=prov)
    check_bbl_template(ins, info.task_type, task, input_text=sentinel, input_parts=parts, option_counts=info.options)
    return ins


def planned_variant_ids(task: str) -> dict[str, list[str]]:
    """Variant -> instruction ids for one Figure-3 task (no download; designer and newly
    collected are the task's designer and unobserved instructions)."""
    spec = variant_spec().get(task, {})
    out = {v: [variant_id(task, v)] for v in ("closest", "incorrect", "negated") if v in spec}
    out["designer"] = [designer_id(task)]
    out["newly_collected"] = [unobserved_id(f"bbl_{task}", p.stem) for p in unobserved_files(task)]
    if nonsensical_path(task).is_file():
        out["nonsensical"] = [variant_id(task, "nonsensical")]
    return out


# ---- lookup ----------------------------------------------------------------------------------

def get(instruction_id: str, resolver: SourceResolver | None = None) -> Instruction:
    """One BBL instruction by id, loading only what it needs."""
    if "_paper_" in instruction_id:  # the authors' own (instrobust.paper), e.g. bbl_winowhy_paper_03
        from instrobust.paper import get as paper_instruction

        return paper_instruction(instruction_id, resolver)
    m = parse_bbl_id(instruction_id)
    if not m:
        raise UnknownInstructionError(
            f"unknown instruction id {instruction_id!r}: BBL ids look like bbl_qa_obs_flan2022_01, "
            f"bbl_<task>_unobs_01, bbl_<task>_designer_01 or bbl_<task>_var_closest_01"
        )
    scope, kind = m["scope"], m["kind"]
    if kind.startswith("obs_"):
        if scope not in BBL_TYPES:
            raise UnknownInstructionError(f"unknown instruction id {instruction_id!r}: observed BBL ids are per "
                                          f"task type ({', '.join(BBL_TYPES)}), e.g. bbl_qa_obs_flan2022_01")
        instructions, skipped = observed_for_type(scope, resolver)
        bank = InstructionSet(instructions, skipped)
        return bank.get(instruction_id)
    task_info(scope)  # a clear error for an unknown task
    if kind == "unobs":
        bank = InstructionSet(load_unobserved(scope))
        return bank.get(instruction_id)
    if m["n"] != "01":
        raise UnknownInstructionError(f"unknown instruction id {instruction_id!r}: designer and variant "
                                      f"instructions are one per task, numbered _01")
    if kind == "designer":
        return designer_instruction(scope)
    return variant_instruction(scope, kind.removeprefix("var_"), resolver)


def load_bbl_bank(resolver: SourceResolver | None = None, observed: bool = True) -> InstructionSet:
    """Every BBL instruction that can be had; unavailable collections are listed in ``skipped``."""
    out: list[Instruction] = []
    skipped: dict[str, str] = {}
    if observed:
        for task_type in BBL_TYPES:
            instructions, why = observed_for_type(task_type, resolver)
            out += instructions
            skipped.update(why)
    for task in TASKS:
        out += load_unobserved(task)
        try:
            out.append(designer_instruction(task))
        except (SourceUnavailable, DataError) as exc:  # no task.json / hub copy here
            skipped["designer"] = str(exc)
    for task in VARIANT_TASKS:
        variants = ["nonsensical"] if nonsensical_path(task).is_file() else []
        for variant in (["closest", "incorrect", "negated"] if observed else []) + variants:
            try:
                out.append(variant_instruction(task, variant, resolver))
            except (SourceUnavailable, ChecksumError) as exc:
                skipped[variant_id(task, variant)] = str(exc)
    if observed:  # "observed" here means: read upstream files; the paper's are one of them
        from instrobust.paper import load_paper

        paper, why = load_paper("bbl", resolver)
        out += paper
        skipped.update(why)
    return InstructionSet(out, skipped)
