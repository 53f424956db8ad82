"""An instruction by its id, wherever it lives: a user's registered templates (`instrobust tasks`),
BIG-bench Lite, the authors' own set, or the MMLU bank.

Below instrobust.harness and instrobust.sparse.loader, which both look instructions up, and below
instrobust.user_tasks, which fills ``registered`` when the harness loads a user's task.
"""
from __future__ import annotations

import functools

from instrobust.bank import Instruction, InstructionBank
from instrobust.names import is_observed_id

# instruction id -> a user's instruction (instrobust.user_tasks registers them as their task loads)
registered: dict[str, Instruction] = {}


@functools.lru_cache(maxsize=8)
def bank_for(benchmark: str, observed: bool) -> InstructionBank:
    return InstructionBank.load(benchmark, observed=observed)


def instruction(instruction_id: str) -> Instruction:
    if instruction_id in registered:
        return registered[instruction_id]
    if instruction_id.startswith("bbl_"):
        return bbl_instruction(instruction_id)
    if "_paper_" in instruction_id:  # the authors' own instructions: read just their file
        from instrobust.paper import get as paper_instruction

        return paper_instruction(instruction_id)
    benchmark = instruction_id.split("_", 1)[0]
    return bank_for(benchmark, is_observed_id(instruction_id)).get(instruction_id)


@functools.lru_cache(maxsize=4096)
def bbl_instruction(instruction_id: str) -> Instruction:
    """A BBL instruction, loading only the part of the bank it needs."""
    from instrobust.bbl.instructions import get

    return get(instruction_id)
