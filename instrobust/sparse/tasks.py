"""lm-eval task YAMLs of the budgeted (sparse) variants, written under ``lm_eval_tasks/sparse/``.

Every instruction task ``<task>`` of a supported group gets twins ``<task>_b1``, ``_b2``, ``_b4``
and ``_b8``: the same task (it ``include``s the regular base YAML), whose loader keeps only this
instruction's share of the items (:mod:`instrobust.sparse.design`), so that a sparse group costs
B single-instruction runs. The share depends on the design group (all instructions that split the
pool between them), the budget and a seed, all in ``metadata`` so they land in results_*.json and
can be overridden at run time (``lm_eval --metadata '{"sparse_seed": 3, "sparse_n_items": 500}'``).

Design groups: ``mmlu_observed`` (Flan 2022, Alpaca and P3 instructions), ``mmlu_unobserved``, and
for each of the 14 BIG-bench Lite tasks ``bbl_<task>_observed`` / ``bbl_<task>_unobserved``.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from instrobust.sparse.design import BUDGETS

SPARSE_DIR = "sparse"
_BBL_GROUP = re.compile(r"^bbl_(?P<task>.+)_(?P<side>observed|unobserved)$")


@dataclass(frozen=True)
class SparseSpec:
    """One regular (full) instruction task that gets sparse twins."""

    task: str  # regular zero-shot task name, e.g. mmlu_cloze_obs_p3_03
    instruction: str
    design_group: str  # the instructions that share the pool: mmlu_observed, bbl_strategyqa_unobserved, ...
    collection: str
    observed: bool
    scoring: str
    base_include: str  # the regular base YAML, relative to lm_eval_tasks/
    bbl_task: str | None = None
    task_type: str | None = None


def _mmlu_specs() -> list[SparseSpec]:
    from instrobust.generate import VARIANTS
    from instrobust.observed import planned_ids

    specs = []
    for scoring, v in VARIANTS.items():
        for collection, ids in [*planned_ids("mmlu").items(), ("unobserved", _mmlu_unobserved_ids())]:
            group = "mmlu_unobserved" if collection == "unobserved" else "mmlu_observed"
            for iid in ids:
                specs.append(SparseSpec(iid.replace("mmlu", v["prefix"], 1), iid, group, collection,
                                        collection != "unobserved", scoring, f"mmlu/_mmlu_{scoring}_yaml"))
    return specs


def _mmlu_unobserved_ids() -> list[str]:
    from instrobust.unobserved import unobserved_dir

    return [f"mmlu_unobs_{int(p.stem):02d}" for p in sorted(unobserved_dir("mmlu").glob("*.jinja"))]


def _bbl_specs() -> list[SparseSpec]:
    from instrobust.bbl import BBL14
    from instrobust.bbl.tasks import task_specs

    out = []
    for s in task_specs():
        if s.variant is not None or s.bbl_task not in BBL14 or not (s.observed or s.collection == "unobserved"):
            continue
        side = "observed" if s.observed else "unobserved"
        out.append(SparseSpec(s.name, s.instruction, f"bbl_{s.bbl_task}_{side}", s.collection, s.observed,
                              "cloze", "bbl/_bbl_yaml", s.bbl_task, s.task_type))
    return out


def sparse_specs() -> list[SparseSpec]:
    return _mmlu_specs() + _bbl_specs()


def design_members(group: str) -> list[str]:
    """Planned instruction ids of a design group, in a fixed order (no download needed).

    At run time the loader keeps those that can be had (e.g. Alpaca may be skipped) and splits the
    pool among them, so the tasks that can actually run always cost B runs in total.
    """
    from instrobust.errors import UnknownInstructionError

    if group == "mmlu_observed":
        from instrobust.observed import planned_ids

        return [i for ids in planned_ids("mmlu").values() for i in ids]
    if group == "mmlu_unobserved":
        return _mmlu_unobserved_ids()
    m = _BBL_GROUP.match(group)
    if m:
        ids = list(dict.fromkeys(s.instruction for s in _bbl_specs() if s.design_group == group))
        if ids:
            return ids
    raise UnknownInstructionError(
        f"unknown sparse design group {group!r} (known: mmlu_observed, mmlu_unobserved, "
        "bbl_<task>_observed, bbl_<task>_unobserved for the 14 BIG-bench Lite tasks)")


def sparse_task_name(task: str, budget: int) -> str:
    return f"{task}_b{budget}"


def _task_yaml(header: str, spec: SparseSpec, budget: int) -> str:
    depth = "../" * (2 if spec.bbl_task is None else 3)  # sparse/mmlu/x.yaml, sparse/bbl/<task>/x.yaml
    bbl = f"  task_type: {spec.task_type}\n  bbl_task: {spec.bbl_task}\n" if spec.bbl_task else ""
    return header + (
        f"task: {sparse_task_name(spec.task, budget)}\n"
        f"include: {depth}{spec.base_include}\n"
        f"dataset_kwargs:\n  instruction: {spec.instruction}\n"
        # metadata is also passed to custom_dataset as kwargs: no key may repeat dataset_kwargs.
        # The sparse_* keys make the loader keep this instruction's share of the items.
        f"metadata:\n  version: 1.0\n  collection: {spec.collection}\n"
        f"  observed: {str(spec.observed).lower()}\n  scoring: {spec.scoring}\n{bbl}"
        f"  sparse_group: {spec.design_group}\n  sparse_budget: {budget}\n  sparse_seed: 0\n"
    )


def _group_yaml(header: str, group: str, tasks: list[str], budget: int, design_groups: list[str]) -> str:
    return header + (
        f"# Budgeted variant of {group}: each task evaluates its instruction's share of the items, so each\n"
        f"# design group ({', '.join(design_groups[:3])}{', ...' if len(design_groups) > 3 else ''}) costs "
        f"{budget} single-instruction run(s).\n"
        f"# The group acc is the naive mean over instructions; `instrobust estimate` gives the real estimate.\n"
        f"group: {group}_b{budget}\n"
        "task:\n" + "".join(f"  - {t}\n" for t in tasks) +
        "aggregate_metric_list:\n  - metric: acc\n    aggregation: mean\n    weight_by_size: false\n"
        "metadata:\n  version: 1.0\n"
    )


def _groups(specs: list[SparseSpec]) -> dict[str, list[SparseSpec]]:
    """Group name (without the _b<B> suffix) -> member specs, mirroring the regular groups."""
    from instrobust.generate import VARIANTS

    groups: dict[str, list[SparseSpec]] = {}

    def add(name: str, s: SparseSpec) -> None:
        groups.setdefault(name, []).append(s)

    prefix = {scoring: v["prefix"] for scoring, v in VARIANTS.items()}
    for s in specs:
        side = "observed" if s.observed else "unobserved"
        if s.bbl_task is None:
            p = prefix[s.scoring]
            add(f"{p}_{side}", s)
            if s.observed:
                add(f"{p}_observed_{s.collection}", s)
        else:
            add(f"bbl_{s.bbl_task}_{side}", s)
            add(f"bbl_{s.task_type}_{side}", s)
            add(f"bbl_{side}", s)
            if s.observed:
                add(f"bbl_{s.task_type}_observed_{s.collection}", s)
                add(f"bbl_observed_{s.collection}", s)
    return groups


def sparse_files(header: str = "# Generated by `python -m instrobust.generate`; do not edit by hand.\n") -> dict[str, str]:
    """Relative path under lm_eval_tasks/ -> YAML text, for every sparse task and group."""
    specs = sparse_specs()
    files: dict[str, str] = {}
    for s in specs:
        folder = f"{SPARSE_DIR}/mmlu" if s.bbl_task is None else f"{SPARSE_DIR}/bbl/{s.bbl_task}"
        for b in BUDGETS:
            files[f"{folder}/{sparse_task_name(s.task, b)}.yaml"] = _task_yaml(header, s, b)
    for group, members in _groups(specs).items():
        folder = f"{SPARSE_DIR}/{'bbl' if group.startswith('bbl_') else 'mmlu'}/groups"
        design_groups = list(dict.fromkeys(s.design_group for s in members))
        for b in BUDGETS:
            files[f"{folder}/{group}_b{b}.yaml"] = _group_yaml(
                header, group, [sparse_task_name(s.task, b) for s in members], b, design_groups)
    return files
