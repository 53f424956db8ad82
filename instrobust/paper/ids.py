"""Instruction ids of the paper collection and where each set lives in InstructionEval.

Ids (NN is the authors' own number, so ``mmlu_paper_03`` is their ``MMLU/Unobserved/3``):

* ``mmlu_paper_NN``           their 20 general MMLU instructions (configs/MMLU/general.py)
* ``mmlu_paper_specific_NN``  their subject-naming MMLU instructions (configs/MMLU/specific.py)
* ``mmlu_paper_alpaca_NN``    the list they used for Alpaca models (``Alpaca/Unobserved/NN``)
* ``bbl_<task>_paper_NN``     their 10 per BIG-bench Lite task (configs/BBH/...)
* ``bbl_<task>_paper_alpaca_NN``  their list for Alpaca models of that task (``Alpaca/Unobserved/NN``)
* ``bbl_<task>_paper_newly_NN``  Figure 3, "newly collected" (configs/Adv/<task>.py)
* ``bbl_<task>_paper_nonsensical_NN``  Figure 3, "nonsensical" (their ``random_instruction_NN``)
"""
from __future__ import annotations

import re

MMLU_SETS = {  # set -> (config file, number of unobservedN methods)
    "general": ("configs/MMLU/general.py", 20),
    "specific": ("configs/MMLU/specific.py", 10),
}
_BBH = "configs/BBH/"
BBL_FILES = {  # our BBL task -> their config
    "bbq_lite_json": _BBH + "multiple_choice/bbq_lite.py",
    "code_line_description": _BBH + "multiple_choice/code_line_description.py",
    "conceptual_combinations": _BBH + "multiple_choice/conceptual_combinations.py",
    "hindu_knowledge": _BBH + "multiple_choice/hindu_knowledge.py",
    "known_unknowns": _BBH + "multiple_choice/known_unknowns.py",
    "logic_grid_puzzle": _BBH + "multiple_choice/logic_grid_puzzle.py",
    "logical_deduction": _BBH + "multiple_choice/logical_deduction.py",
    "novel_concepts": _BBH + "multiple_choice/novel_concepts.py",
    "play_dialog_same_or_different": _BBH + "binary_classification/play_dialog_same_or_different.py",
    "strange_stories": _BBH + "binary_classification/strange_stories.py",
    "strategyqa": _BBH + "binary_classification/strategy_qa.py",
    "winowhy": _BBH + "binary_classification/winowhy.py",
    "language_identification": _BBH + "classification/language_identification.py",
    "vitaminc_fact_verification": _BBH + "classification/vitaminc_fact_verification.py",
}
ADV_FILES = {task: f"configs/Adv/{task}.py" for task in (
    "conceptual_combinations", "crash_blossom", "empirical_judgments", "epistemic_reasoning",
    "intent_recognition", "language_identification", "logical_sequence")}

# set name in paper.yaml -> the id infix after "paper" ("" for the main sets)
INFIX = {"general": "", "specific": "specific_", "alpaca": "alpaca_", "unobserved": "", "newly": "newly_",
         "nonsensical": "nonsensical_"}

_MMLU = re.compile(r"^mmlu_paper_(?:(?P<set>specific|alpaca)_)?(?P<n>\d+)$")
_BBL = re.compile(r"^bbl_(?P<task>[a-z0-9_]+?)_paper_(?:(?P<set>alpaca|newly|nonsensical)_)?(?P<n>\d+)$")


def make_id(benchmark: str, set_name: str, n: int, task: str | None = None) -> str:
    scope = f"bbl_{task}" if benchmark == "bbl" else benchmark
    return f"{scope}_paper_{INFIX[set_name]}{n:02d}"


def parse_id(instruction_id: str) -> tuple[str, str, int, str | None] | None:
    """(benchmark, set, number, task) of a paper id, or None when it is not one."""
    m = _MMLU.match(instruction_id)
    if m:
        return "mmlu", m["set"] or "general", int(m["n"]), None
    m = _BBL.match(instruction_id)
    if m:
        return "bbl", m["set"] or "unobserved", int(m["n"]), m["task"]
    return None


def is_paper_id(instruction_id: str) -> bool:
    return parse_id(instruction_id) is not None
