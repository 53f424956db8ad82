"""The instruction-id grammar: one place that builds instruction ids and says which are observed.

    <scope>_obs_<collection>_<nn>    an observed instruction (scope: mmlu, or bbl_<task type>)
    <scope>_unobs_<nn>               one of ours (scope: mmlu, or bbl_<task>)
    bbl_<task>_designer_01           the BIG-bench task designer's own prompt
    bbl_<task>_var_<variant>_01      a Figure-3 instruction variant (closest, incorrect, negated, nonsensical)

A leaf (imports nothing of ours): the bank, the collections, the catalog (instrobust.catalog,
every task and group), the generator and the report all read it. Task names are these ids (BBL
task names put the BIG-bench task in the scope, MMLU ones the scoring); group and design-group
names are built below; the report's name fallback (instrobust.report.tasks) parses with these.
"""
from __future__ import annotations

import re

# The upstream collections an instruction-tuned model may have been trained on.
OBSERVED_COLLECTIONS = ("flan2022", "alpaca", "p3")
COLLECTIONS = (*OBSERVED_COLLECTIONS, "unobserved")


def observed_id(scope: str, collection: str, n: int | str) -> str:
    """``mmlu_obs_flan2022_03``: the n-th instruction of an observed collection (n: 3 or "03")."""
    return f"{scope}_obs_{collection}_{int(n):02d}"


def unobserved_id(scope: str, n: int | str) -> str:
    """``mmlu_unobs_07``: our n-th instruction (n: 7, "07" or a template file's stem)."""
    return f"{scope}_unobs_{int(n):02d}"


def is_observed_id(instruction_id: str) -> bool:
    return "_obs_" in instruction_id


def designer_id(task: str) -> str:
    return f"bbl_{task}_designer_01"


def variant_id(task: str, variant: str) -> str:
    return f"bbl_{task}_var_{variant}_01"


# --- task and group names -------------------------------------------------------------------
# A task name is its instruction id, with the MMLU scoring in the prefix (mmlu_cloze_unobs_07);
# BBL task names put the BIG-bench task in the scope (bbl_strategyqa_obs_p3_02).

# MMLU scorings -> task-name prefix: rank classification over the instruction's answer space
# (letters, option texts or label words), or over the option texts.
MMLU_SCORING_PREFIX = {"letter": "mmlu", "cloze": "mmlu_cloze"}


def mmlu_task_name(instruction_id: str, scoring: str) -> str:
    """``mmlu_obs_p3_03`` scored on option texts -> ``mmlu_cloze_obs_p3_03``."""
    return instruction_id.replace("mmlu", MMLU_SCORING_PREFIX[scoring], 1)


def collection_group(scope: str, collection: str, observed: bool) -> str:
    """The group of one collection: ``mmlu_observed_p3``, ``mmlu_cloze_unobserved``,
    ``bbl_strategyqa_designer`` (also the sparse design group of its tasks)."""
    return f"{scope}_observed_{collection}" if observed else f"{scope}_{collection}"


def observed_all_group(scope: str) -> str:
    """The pooled group of every observed collection (no one model observed all of them)."""
    return f"{scope}_observed_all"


def variant_group(scope: str, variant: str) -> str:
    """``bbl_variant_negated`` (over the Figure-3 tasks), ``bbl_<task>_variant_negated`` (one task)."""
    return f"{scope}_variant_{variant}"


_SHOT_SUFFIX = re.compile(r"_(\d+)shot$")
_BUDGET_SUFFIX = re.compile(r"_b(\d+)$")


def split_shots(task: str) -> tuple[str, int | None]:
    """``mmlu_unobs_07_1shot`` -> (``mmlu_unobs_07``, 1): the k of an (old-style) _<k>shot name."""
    m = _SHOT_SUFFIX.search(task)
    return (task[: m.start()], int(m.group(1))) if m else (task, None)


def budget_in_name(task: str) -> int | None:
    """The B of an old-style budgeted task name ``<task>_b<B>[_<k>shot]`` (budgets are metadata now)."""
    m = _BUDGET_SUFFIX.search(split_shots(task)[0])
    return int(m.group(1)) if m else None


# Parsing. BBL ids: the scope is a task type (qa, bc, mc) or a BIG-bench task.
_BBL_ID = re.compile(r"^bbl_(?P<scope>[a-z0-9_]+?)_(?P<kind>obs_(?:flan2022|alpaca|p3)|unobs|designer|var_[a-z]+)_(?P<n>\d+)$")
_MMLU_TASK = re.compile(r"^mmlu(?P<cloze>_cloze)?_(?:unobs|obs_(?P<collection>[a-z0-9]+))_\d+$")


def parse_bbl_id(instruction_id: str) -> dict[str, str] | None:
    """``bbl_qa_obs_p3_02`` -> {scope: qa, kind: obs_p3, n: 02}; None if it is no BBL id of ours."""
    m = _BBL_ID.match(instruction_id)
    return m.groupdict() if m else None


def parse_mmlu_task(task: str) -> dict[str, str | None] | None:
    """``mmlu_cloze_obs_p3_03`` -> {cloze: _cloze, collection: p3} (collection None: unobserved);
    None if it is no MMLU task name of ours (zero-shot, without a _<k>shot suffix)."""
    m = _MMLU_TASK.match(task)
    return m.groupdict() if m else None
