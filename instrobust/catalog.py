"""The catalog: every lm-eval task and group of ours, with its metadata, without a download.

Computed from the references (instrobust.mmlu.instructions.planned_ids, instrobust.paper.planned), our
template files and the BIG-bench task table (instrobust.bbl.tasks), so it is the same on every
machine. The generator (instrobust.generate) only serialises it to lm_eval_tasks/; the report,
the analysis, the bank's error messages and the sparse design groups read it here instead of
globbing the generated YAML tree. Names follow the grammar in instrobust.names.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Union

import instrobust.paper as paper
from instrobust.bbl.tasks import TaskSpec, group_members, task_specs
from instrobust.names import MMLU_SCORING_PREFIX, collection_group, mmlu_task_name, observed_all_group, unobserved_id
from instrobust.mmlu.instructions import planned_ids, unobserved_dir

# kept under its old name: the generator and the tests read catalog.PREFIX
PREFIX = MMLU_SCORING_PREFIX


@dataclass(frozen=True)
class MMLUTask:
    """One MMLU task: an instruction over the whole test pool, scored on letters or option texts."""

    name: str
    instruction: str
    collection: str  # flan2022 / alpaca / p3 / unobserved / paper
    scoring: str     # letter / cloze

    @property
    def observed(self) -> bool:
        return self.collection not in ("unobserved", "paper")

    @property
    def design_group(self) -> str:
        """The collection group: the instructions that split the pool in a budgeted run."""
        if self.collection == "paper":  # mmlu_paper, mmlu_paper_specific, mmlu_paper_alpaca
            return self.name.rsplit("_", 1)[0]
        return collection_group(PREFIX[self.scoring], self.collection, self.observed)

    @property
    def metadata(self) -> dict[str, object]:
        """The task's lm-eval metadata (written into its YAML, copied by lm-eval into results)."""
        return {"collection": self.collection, "observed": self.observed, "scoring": self.scoring,
                "sparse_group": self.design_group, "sparse_seed": 0}


Task = Union[MMLUTask, TaskSpec]


def mmlu_unobserved_ids() -> list[str]:
    return [unobserved_id("mmlu", p.stem) for p in sorted(unobserved_dir("mmlu").glob("*.jinja"))]


def mmlu_tasks() -> list[MMLUTask]:
    """Every MMLU task, in a fixed order (no download needed)."""
    out = []
    for scoring in PREFIX:
        for collection, ids in [*planned_ids("mmlu").items(), ("unobserved", mmlu_unobserved_ids())]:
            out += [MMLUTask(mmlu_task_name(iid, scoring), iid, collection, scoring) for iid in ids]
    # the authors' own instructions (instrobust.paper), scored as they scored them: on the letters;
    # their 20 general ones and their Alpaca list (the subject-naming "specific" set has no tasks)
    out += [MMLUTask(p.id, p.id, "paper", "letter") for p in paper.planned("mmlu") if p.set != "specific"]
    return out


def mmlu_groups() -> dict[str, list[str]]:
    """Group name -> task names: one group per collection and scoring, and the pooled
    ``*_observed_all`` (every collection: not what any one model observed, see issue 13)."""
    groups: dict[str, list[str]] = {}
    for t in mmlu_tasks():
        groups.setdefault(t.design_group, []).append(t.name)
        if t.observed:
            groups.setdefault(observed_all_group(PREFIX[t.scoring]), []).append(t.name)
    return groups


# Read-only views for the run-time readers, built once per process.
@functools.lru_cache(maxsize=1)
def tasks() -> dict[str, Task]:
    """Task name -> task, MMLU first, in the generator's order."""
    return {t.name: t for t in [*mmlu_tasks(), *task_specs()]}


@functools.lru_cache(maxsize=1)
def groups() -> dict[str, tuple[str, ...]]:
    """Group name -> member task names (every group is a flat list of tasks)."""
    return {g: tuple(members) for g, members in {**mmlu_groups(), **group_members()}.items()}


def names() -> frozenset[str]:
    """Every task and group name of ours."""
    return frozenset(tasks()) | frozenset(groups())


@functools.lru_cache(maxsize=1)
def design_groups() -> dict[str, tuple[str, ...]]:
    """Design group -> its planned instruction ids, in a fixed order."""
    out: dict[str, dict[str, None]] = {}
    for t in tasks().values():
        out.setdefault(t.design_group, {})[t.instruction] = None
    return {g: tuple(ids) for g, ids in out.items()}


@functools.lru_cache(maxsize=1)
def group_instructions() -> dict[str, tuple[str, ...]]:
    """Every group (pooled ones included) -> the instruction ids of its tasks, in a fixed order."""
    every = tasks()
    return {g: tuple(dict.fromkeys(every[t].instruction for t in members)) for g, members in groups().items()}
