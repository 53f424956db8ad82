"""Read the ``--log_samples`` output of a sparse run: per task, which items it saw and how it did.

A sparse task is one whose config metadata (copied by lm-eval into results_*.json) holds
``sparse_budget``; its samples carry ``doc.item``, the item's index in the full pool.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from instrobust.errors import InstrobustError
from instrobust.report.load import (NewestRun, RunsRead, assign_labels, find_results_files, model_from_results,
                                    read_results_json, sample_rows, samples_file)
from instrobust.report.tasks import TaskInfo, classify
from instrobust.sparse.loader import ITEM_COLUMN


class EstimateInputError(InstrobustError):
    """Results we cannot honestly estimate from (no samples, not sparse, an instruction with no items)."""


@dataclass
class SparseTask:
    """One sparse lm-eval task (one instruction on its share of one benchmark's items)."""

    model: str
    task: str
    instruction: str
    info: TaskInfo
    n_shot: int
    design: dict  # sparse_group, sparse_budget, sparse_seed, sparse_n_items, sparse_pool_seed, sparse_members
    items: dict[int, float]  # pool index -> score (0/1)
    source: str


@dataclass
class SparseRun(RunsRead):
    """The estimator's view: one entry per sparse (model, task), with its items' scores."""

    tasks: list[SparseTask] = field(default_factory=list)


def _read_samples(path: Path, task: str, metric: str = "acc") -> dict[int, float]:
    items: dict[int, float] = {}
    for lineno, row in sample_rows(path, EstimateInputError):
        if row.get("filter", "none") != "none":
            continue
        doc = row.get("doc") or {}
        if ITEM_COLUMN not in doc:
            raise EstimateInputError(
                f"{path}:{lineno}: the logged document has no '{ITEM_COLUMN}' field, so {task} was not run "
                "with a sparse budget (--metadata '{\"sparse_budget\": B}') by this version of instrobust")
        value = row.get(metric)
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, (int, float)) or value not in (0, 1):
            raise EstimateInputError(f"{path}:{lineno}: '{metric}' is {value!r}; the estimator needs 0/1 scores")
        item = int(doc[ITEM_COLUMN])
        if item in items:
            raise EstimateInputError(f"{path}:{lineno}: item {item} appears twice for {task}")
        items[item] = float(value)
    return items


def load_sparse(paths: list[str | Path]) -> SparseRun:
    """Sparse tasks of every results_*.json under ``paths``; newest run wins when a task repeats."""
    if not paths:
        raise EstimateInputError("give at least one lm-eval output directory of a sparse run")
    run = SparseRun(models={})
    newest = NewestRun()
    full_tasks: list[str] = []
    for raw in paths:
        files = find_results_files(Path(raw))
        for path in files:
            data = read_results_json(path, EstimateInputError)
            model = model_from_results(data, path)
            configs = data.get("configs") or {}
            groups = set(data.get("groups") or {}) | {g for g, s in (data.get("group_subtasks") or {}).items() if s}
            date = data.get("date") if isinstance(data.get("date"), (int, float)) else path.stat().st_mtime
            for task in data["results"]:
                if task in groups:
                    continue
                config = configs.get(task) or {}
                info = classify(task, config)
                if info is None:
                    continue
                meta = config.get("metadata") or {}
                if meta.get("sparse_budget") is None:
                    full_tasks.append(task)
                    continue
                samples = samples_file(path, task)
                if samples is None or not samples.is_file():
                    raise EstimateInputError(
                        f"{path}: no per-sample output for {task} (expected {samples.name if samples else 'samples_*'} "
                        "next to it): rerun lm_eval with --log_samples; the estimator needs which items each "
                        "instruction saw and whether it got them right")
                items = _read_samples(samples, task)
                instruction = (config.get("dataset_kwargs") or {}).get("instruction") or task
                if not items:
                    raise EstimateInputError(
                        f"{samples}: instruction {instruction!r} ({task}) saw no items; its accuracy cannot be "
                        "estimated (was the run cut short, or the budget too small for the pool?)")
                n_shot = (data.get("n-shot") or {}).get(task)
                if not isinstance(n_shot, int):
                    n_shot = config.get("num_fewshot") if isinstance(config.get("num_fewshot"), int) else 0
                design = {k: meta.get(k) for k in ("sparse_group", "sparse_budget", "sparse_seed", "sparse_n_items",
                                                   "sparse_pool_seed", "sparse_members")}
                st = SparseTask(model.key, task, instruction, info, n_shot, design, items, str(path))
                run.models.setdefault(model.key, model)
                pair = newest.offer((model.key, n_shot, task), date, st)
                if pair:
                    run.notes.append(f"{task} appears in {pair[0].source} and {pair[1].source}; using the newer run")
        run.inputs.append({"path": str(raw), "results_files": [str(f) for f in files]})
    run.tasks = newest.kept()
    if not run.tasks:
        what = (f"its {len(full_tasks)} instrobust task(s) ({', '.join(sorted(full_tasks)[:3])}"
                f"{', ...' if len(full_tasks) > 3 else ''}) are full, not sparse" if full_tasks
                else "it holds no instrobust tasks")
        raise EstimateInputError(
            f"{', '.join(map(str, paths))} is not a sparse run: {what}. Run with a budget, e.g. "
            "`--tasks mmlu_cloze_observed_flan2022,mmlu_cloze_unobserved --metadata '{\"sparse_budget\": 2}' "
            "--log_samples`, and use `instrobust report` for full runs")
    if full_tasks:
        run.notes.append(f"ignored {len(full_tasks)} full (non-sparse) task(s): {', '.join(sorted(full_tasks)[:5])}"
                     + (" ..." if len(full_tasks) > 5 else ""))
    assign_labels(run.models)
    return run
