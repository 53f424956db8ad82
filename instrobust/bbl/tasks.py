"""The lm-eval tasks and groups for BIG-bench Lite (``python -m instrobust.generate`` writes them).

One task per (BBL task, instruction), zero-shot (one-shot: ``--num_fewshot 1``; the demonstration
is the first held-out example of the same task, rendered with the same instruction):

* ``bbl_<task>_obs_<collection>_<nn>`` - observed instruction ``bbl_<type>_obs_<collection>_<nn>``
  (collection flan2022 / alpaca / p3) on one of the 14 tasks;
* ``bbl_<task>_unobs_<nn>``, ``bbl_<task>_designer_01``, ``bbl_<task>_var_<variant>_01``.

Groups (flat task lists; the group score is the unweighted mean over (task, instruction) pairs):
``bbl_<task>_observed_<collection>`` / ``_unobserved``; ``bbl_<type>_observed_<collection>``,
``bbl_<type>_unobserved``, ``bbl_<type>_designer``; ``bbl_observed_<collection>``,
``bbl_unobserved``, ``bbl_designer`` over the 14 tasks; ``bbl_variant_<variant>`` over the seven
Figure-3 tasks; and the pooled ``bbl_observed_all``, ``bbl_<type>_observed_all``,
``bbl_<task>_observed_all`` (every collection at once: no model observed all of them).

A task's sparse design group (``sparse_group``) is the smallest of these it belongs to, per BBL
task: ``bbl_<task>_observed_<collection>``, ``bbl_<task>_unobserved``, ``bbl_<task>_designer``,
``bbl_<task>_variant_<variant>``.
"""
from __future__ import annotations

from dataclasses import dataclass

import instrobust.paper as paper
from instrobust.bbl import BBL14, BBL_TYPES, TASKS, VARIANT_TASKS, VARIANTS
from instrobust.bbl.instructions import planned_observed_ids, planned_variant_ids, unobserved_files
from instrobust.names import (OBSERVED_COLLECTIONS, collection_group, designer_id, observed_all_group, observed_id,
                              unobserved_id, variant_group)


@dataclass(frozen=True)
class TaskSpec:
    name: str          # zero-shot task name
    instruction: str   # instruction id
    bbl_task: str
    collection: str    # flan2022 / alpaca / p3 / unobserved / designer / negated / nonsensical / paper
    observed: bool
    variant: str | None = None
    paper_set: str | None = None  # collection paper: unobserved (their 10 per task) / newly / nonsensical

    @property
    def task_type(self) -> str:
        return TASKS[self.bbl_task].task_type

    @property
    def design_group(self) -> str:
        """The instructions that split this BBL task's pool in a budgeted run (one collection)."""
        if self.variant is not None:
            return variant_group(f"bbl_{self.bbl_task}", self.variant)
        if self.collection == "paper":  # bbl_<task>_paper, bbl_<task>_paper_newly, ..._nonsensical
            return self.name.rsplit("_", 1)[0]
        return collection_group(f"bbl_{self.bbl_task}", self.collection, self.observed)

    @property
    def metadata(self) -> dict[str, object]:
        """The task's lm-eval metadata (written into its YAML, copied by lm-eval into results)."""
        return {"collection": self.collection, "observed": self.observed, "scoring": "cloze",
                "task_type": self.task_type, "bbl_task": self.bbl_task,
                **({"variant": self.variant} if self.variant else {}),
                **({"paper_set": self.paper_set} if self.paper_set else {}),
                "sparse_group": self.design_group, "sparse_seed": 0}


def task_specs() -> list[TaskSpec]:
    """Every zero-shot BBL task, in a fixed order (no download needed)."""
    out: list[TaskSpec] = []
    observed = {t: planned_observed_ids(t) for t in BBL_TYPES}
    for task in TASKS:
        info = TASKS[task]
        if info.in_bbl14:
            for collection, ids in observed[info.task_type].items():
                for iid in ids:
                    n = iid.rsplit("_", 1)[1]
                    out.append(TaskSpec(observed_id(f"bbl_{task}", collection, n), iid, task, collection, True))
        for path in unobserved_files(task):
            iid = unobserved_id(f"bbl_{task}", path.stem)
            out.append(TaskSpec(iid, iid, task, "unobserved", False))
        out.append(TaskSpec(designer_id(task), designer_id(task), task, "designer", False))
        if task in VARIANT_TASKS:
            planned = planned_variant_ids(task)
            for variant in ("closest", "incorrect", "negated", "nonsensical"):
                for iid in planned.get(variant, []):
                    collection = {"closest": "flan2022", "incorrect": "flan2022"}.get(variant, variant)
                    out.append(TaskSpec(iid, iid, task, collection, variant in ("closest", "incorrect"), variant))
    # the authors' own instructions (instrobust.paper), after ours: their 10 per task and their
    # Figure-3 sets (their per-task Alpaca instructions are in the bank, without task files)
    out += [TaskSpec(p.id, p.id, p.bbl_task, "paper", False, paper_set=p.set)
            for p in paper.planned("bbl") if p.set != "alpaca"]
    return out


def group_members() -> dict[str, list[str]]:
    """Group name -> task names (see the module docstring for the groups)."""
    specs = task_specs()
    groups: dict[str, list[str]] = {}

    def add(group: str, name: str) -> None:
        groups.setdefault(group, []).append(name)

    core = [s for s in specs if s.variant is None]
    for s in core:  # per BBL task (all 19 have unobserved instructions, the 14 have observed ones)
        if s.observed or s.collection in ("unobserved", "paper"):
            add(s.design_group, s.name)
    for s in core:
        if s.observed:
            add(observed_all_group(f"bbl_{s.bbl_task}"), s.name)
    in14 = [s for s in core if s.bbl_task in BBL14]
    for task_type in BBL_TYPES:
        for s in (s for s in in14 if s.task_type == task_type):
            if s.observed:
                add(collection_group(f"bbl_{task_type}", s.collection, True), s.name)
            elif s.collection in ("unobserved", "designer"):
                add(collection_group(f"bbl_{task_type}", s.collection, False), s.name)
            elif s.paper_set == "unobserved":  # the authors' 10 per task
                add(f"bbl_{task_type}_paper", s.name)
        for s in (s for s in in14 if s.task_type == task_type and s.observed):
            add(observed_all_group(f"bbl_{task_type}"), s.name)
    for collection in OBSERVED_COLLECTIONS:
        for s in in14:
            if s.observed and s.collection == collection:
                add(collection_group("bbl", collection, True), s.name)
    for s in in14:
        if s.collection in ("unobserved", "designer"):
            add(collection_group("bbl", s.collection, False), s.name)
        elif s.paper_set == "unobserved":
            add("bbl_paper", s.name)
    for s in in14:
        if s.observed:
            add(observed_all_group("bbl"), s.name)
    for variant in VARIANTS:
        for s in specs:
            if s.bbl_task not in VARIANT_TASKS:
                continue
            if (s.variant == variant or (variant == "designer" and s.collection == "designer")
                    or (variant == "newly_collected" and s.collection == "unobserved")):
                add(variant_group("bbl", variant), s.name)
    return groups
