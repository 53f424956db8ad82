"""The lm-eval tasks and groups for BIG-bench Lite (written by ``python -m instrobust.generate``).

One task per (BBL task, instruction), zero-shot and one-shot:

* ``bbl_<task>_obs_<collection>_<nn>`` - observed instruction ``bbl_<type>_obs_<collection>_<nn>``
  (collection flan2022 / alpaca / p3) on one of the 14 tasks;
* ``bbl_<task>_unobs_<nn>``, ``bbl_<task>_designer_01``, ``bbl_<task>_var_<variant>_01``;
* each with a ``_1shot`` twin (``num_fewshot: 1``; the demonstration is the first held-out
  example of the same task, rendered with the same instruction).

Groups (flat task lists; the group score is the unweighted mean over (task, instruction) pairs):
``bbl_<task>_observed`` / ``_unobserved``; ``bbl_<type>_observed`` (+ ``_<collection>``),
``bbl_<type>_unobserved``, ``bbl_<type>_designer``; ``bbl_observed`` (+ ``_<collection>``),
``bbl_unobserved``, ``bbl_designer`` over the 14 tasks; ``bbl_variant_<variant>`` over the seven
Figure-3 tasks. Every group has a ``_1shot`` twin.
"""
from __future__ import annotations

from dataclasses import dataclass

from instrobust.bbl import BBL14, BBL_TYPES, TASKS, VARIANT_TASKS, VARIANTS
from instrobust.bbl.instructions import OBSERVED_COLLECTIONS, planned_observed_ids, planned_variant_ids, unobserved_files

SHOTS = {0: "", 1: "_1shot"}


@dataclass(frozen=True)
class TaskSpec:
    name: str          # zero-shot task name
    instruction: str   # instruction id
    bbl_task: str
    collection: str    # flan2022 / alpaca / p3 / unobserved / designer / negated / nonsensical
    observed: bool
    variant: str | None = None

    @property
    def task_type(self) -> str:
        return TASKS[self.bbl_task].task_type


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
                    out.append(TaskSpec(f"bbl_{task}_obs_{collection}_{n}", iid, task, collection, True))
        for path in unobserved_files(task):
            iid = f"bbl_{task}_unobs_{int(path.stem):02d}"
            out.append(TaskSpec(iid, iid, task, "unobserved", False))
        out.append(TaskSpec(f"bbl_{task}_designer_01", f"bbl_{task}_designer_01", task, "designer", False))
        if task in VARIANT_TASKS:
            planned = planned_variant_ids(task)
            for variant in ("closest", "incorrect", "negated", "nonsensical"):
                for iid in planned.get(variant, []):
                    collection = {"closest": "flan2022", "incorrect": "flan2022"}.get(variant, variant)
                    out.append(TaskSpec(iid, iid, task, collection, variant in ("closest", "incorrect"), variant))
    return out


def group_members() -> dict[str, list[str]]:
    """Zero-shot group name -> zero-shot task names."""
    specs = task_specs()
    groups: dict[str, list[str]] = {}

    def add(group: str, name: str) -> None:
        groups.setdefault(group, []).append(name)

    core = [s for s in specs if s.variant is None]
    for s in core:
        if s.observed:
            add(f"bbl_{s.bbl_task}_observed", s.name)
        elif s.collection == "unobserved":
            add(f"bbl_{s.bbl_task}_unobserved", s.name)
    for task_type in BBL_TYPES:
        for s in core:
            if s.task_type != task_type or s.bbl_task not in BBL14:
                continue
            if s.observed:
                add(f"bbl_{task_type}_observed", s.name)
                add(f"bbl_{task_type}_observed_{s.collection}", s.name)
            elif s.collection == "unobserved":
                add(f"bbl_{task_type}_unobserved", s.name)
            elif s.collection == "designer":
                add(f"bbl_{task_type}_designer", s.name)
    for s in core:
        if s.bbl_task not in BBL14:
            continue
        if s.observed:
            add("bbl_observed", s.name)
        elif s.collection in ("unobserved", "designer"):
            add(f"bbl_{s.collection}", s.name)
    for collection in OBSERVED_COLLECTIONS:
        for s in core:
            if s.observed and s.collection == collection and s.bbl_task in BBL14:
                add(f"bbl_observed_{collection}", s.name)
    for variant in VARIANTS:
        for s in specs:
            if s.bbl_task not in VARIANT_TASKS:
                continue
            if (s.variant == variant or (variant == "designer" and s.collection == "designer")
                    or (variant == "newly_collected" and s.collection == "unobserved")):
                add(f"bbl_variant_{variant}", s.name)
    return groups


def _yaml_list(items: list[str]) -> str:
    return "".join(f"  - {i}\n" for i in items)


def base_yaml(header: str, shots: int) -> str:
    if shots:
        return header + (
            "# BIG-bench Lite, one-shot: the demonstration is the first held-out example of the task,\n"
            "# rendered with the same instruction.\n"
            "include: _bbl_yaml\n"
            f"num_fewshot: {shots}\n"
        )
    return header + (
        "# BIG-bench Lite: one instruction per task over one BBL task's test pool; rank\n"
        "# classification over the option texts (instrobust.bbl.data documents the pool).\n"
        "dataset_path: hails/bigbench\n"
        "custom_dataset: !function utils.load_bbl\n"
        "test_split: test\n"
        "fewshot_split: heldout\n"
        "fewshot_config:\n  sampler: first_n\n"
        "output_type: multiple_choice\n"
        "doc_to_text: !function utils.doc_to_text\n"
        "doc_to_choice: choices\n"
        "doc_to_target: answer\n"
        "metric_list:\n  - metric: acc\n    aggregation: mean\n    higher_is_better: true\n"
    )


def bbl_files(header: str) -> dict[str, str]:
    """Relative path (under lm_eval_tasks/) -> YAML text."""
    files = {"bbl/_bbl_yaml": base_yaml(header, 0), "bbl/_bbl_1shot_yaml": base_yaml(header, 1)}
    for s in task_specs():
        for shots, suffix in SHOTS.items():
            base = "_bbl_1shot_yaml" if shots else "_bbl_yaml"
            variant = f"  variant: {s.variant}\n" if s.variant else ""
            files[f"bbl/{s.bbl_task}/{s.name}{suffix}.yaml"] = header + (
                f"task: {s.name}{suffix}\n"
                f"include: ../{base}\n"
                f"dataset_kwargs:\n  instruction: {s.instruction}\n"
                # metadata is also passed to custom_dataset as kwargs: no key may repeat dataset_kwargs.
                f"metadata:\n  version: 1.0\n  collection: {s.collection}\n"
                f"  observed: {str(s.observed).lower()}\n  scoring: cloze\n"
                f"  task_type: {s.task_type}\n  bbl_task: {s.bbl_task}\n{variant}"
            )
    for group, tasks in group_members().items():
        for shots, suffix in SHOTS.items():
            files[f"bbl/groups/{group}{suffix}.yaml"] = header + (
                f"group: {group}{suffix}\n"
                f"task:\n{_yaml_list([t + suffix for t in tasks])}"
                "aggregate_metric_list:\n  - metric: acc\n    aggregation: mean\n    weight_by_size: false\n"
                "metadata:\n  version: 1.0\n"
            )
    return files
