"""Read lm-eval output directories (``--output_path``, with or without ``--log_samples``) into cells.

lm-eval writes ``<output_path>/<model>/results_<stamp>.json`` and, with --log_samples, one
``samples_<task>_<stamp>.jsonl`` per task next to it. We take per-task accuracy from the results
file and per-item scores from the samples file of the same run (same stamp), and check that the
two agree.

The one reader of lm-eval output files: instrobust.sparse.results reads sparse runs through
``find_results_files``, ``read_results_json``, ``samples_file``, ``sample_rows`` and
``model_from_results`` too (with its own error class), so both read the same layout the same way.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from instrobust.names import budget_in_name
from instrobust.report.cells import Cell, ModelInfo, ReportInputError
from instrobust.report.tasks import classify

try:  # several GB of samples for a full MMLU run: orjson, when installed, parses them ~3x faster
    import orjson as _fastjson

    _loads = _fastjson.loads
except ImportError:  # pragma: no cover - depends on the environment
    _loads = json.loads

# Metric preference: the paper reports accuracy; generation tasks report exact match.
_METRIC_PREFERENCE = ("acc", "exact_match", "acc_norm")
_NON_METRIC_KEYS = {"alias", "name", "sample_len", "samples"}


@dataclass
class RunsRead:
    """What reading lm-eval output folders gives every consumer: the models, notes for the reader
    (skipped or superseded runs), and the input files it used."""

    models: dict[str, ModelInfo]
    notes: list[str] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)


@dataclass
class Loaded(RunsRead):
    """The report's view: one cell per (model, task)."""

    cells: list[Cell] = field(default_factory=list)


class NewestRun:
    """When one (model, setting, task) appears in several runs, the newest run's entry wins."""

    def __init__(self) -> None:
        self._chosen: dict[tuple, tuple[float, Any]] = {}

    def offer(self, key: tuple, date: float, entry: Any) -> tuple[Any, Any] | None:
        """Keep ``entry`` (from a run dated ``date``) unless a newer one holds ``key``; on a repeat,
        return (older, newer) of the two entries."""
        if key not in self._chosen:
            self._chosen[key] = (date, entry)
            return None
        old_date, old = self._chosen[key]
        if date >= old_date:
            self._chosen[key] = (date, entry)
            return old, entry
        return entry, old

    def kept(self) -> list:
        return [entry for _, entry in self._chosen.values()]


def find_results_files(path: Path) -> list[Path]:
    """results_*.json files under ``path`` (or ``path`` itself when it is one)."""
    if not path.exists():
        raise ReportInputError(f"{path}: no such file or directory")
    if path.is_file():
        if not (path.name.startswith("results") and path.suffix == ".json"):
            raise ReportInputError(f"{path}: expected an lm-eval results_*.json file or an --output_path directory")
        return [path]
    files = sorted(p for p in path.rglob("results*.json") if p.is_file())
    if not files:
        raise ReportInputError(
            f"{path}: no lm-eval results_*.json found in this directory or below it "
            "(pass the folder given to lm_eval --output_path)"
        )
    return files


def read_results_json(path: Path, error: type[Exception] = ReportInputError) -> dict:
    """One results_*.json, checked to be an lm-eval results file (``error`` names the file otherwise)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise error(f"{path}: cannot read it as JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), dict):
        raise error(f"{path}: not an lm-eval results file (no 'results' section)")
    return data


def samples_file(results_path: Path, task: str) -> Path | None:
    """Where --log_samples put ``task``'s samples of the run that wrote ``results_path`` (same stamp)."""
    stem = results_path.stem
    return results_path.parent / f"samples_{task}_{stem[len('results_'):]}.jsonl" if stem.startswith("results_") else None


def sample_rows(path: Path, error: type[Exception] = ReportInputError) -> Iterator[tuple[int, dict]]:
    """(line number, logged sample) for each non-blank line of a samples_*.jsonl file."""
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield lineno, _loads(line)
            except ValueError as exc:
                raise error(f"{path}:{lineno}: not valid JSON ({exc})") from None


def _model_args(config: dict) -> dict:
    args = config.get("model_args") or {}
    if isinstance(args, str):  # "pretrained=x,peft=y" as typed on the command line
        pairs = (kv.split("=", 1) for kv in args.split(",") if "=" in kv)
        args = {k.strip(): v.strip() for k, v in pairs}
    return dict(args)


def model_from_results(data: dict, path: Path) -> ModelInfo:
    config = data.get("config") or {}
    args = _model_args(config)
    pretrained = args.get("pretrained") or data.get("model_name") or config.get("model")
    if not pretrained:
        raise ReportInputError(f"{path}: cannot tell which model was evaluated (no config.model_args.pretrained)")
    peft = args.get("peft") or None
    key = str(pretrained) + (f"+peft={peft}" if peft else "")
    n_params = config.get("model_num_parameters")
    return ModelInfo(key=key, label=key, pretrained=str(pretrained), peft=peft,
                     num_parameters=int(n_params) if isinstance(n_params, (int, float)) and n_params > 0 else None)


def _pick_metric(task: str, metrics: dict, path: Path) -> tuple[str, str, float]:
    """(metric, filter, value) of the headline metric of one task's results entry."""
    found: dict[str, dict[str, object]] = {}
    for key, value in metrics.items():
        if key in _NON_METRIC_KEYS or "," not in key:
            continue
        name, filt = key.split(",", 1)
        if name.endswith("_stderr"):
            continue
        found.setdefault(name, {})[filt] = value
    for name in [*_METRIC_PREFERENCE, *sorted(found)]:
        if name in found:
            filt = "none" if "none" in found[name] else sorted(found[name])[0]
            value = found[name][filt]
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
                    or not 0.0 <= float(value) <= 1.0:
                raise ReportInputError(
                    f"{path}: results.{task}.'{name},{filt}' is {value!r}; expected an accuracy in [0, 1]")
            return name, filt, float(value)
    raise ReportInputError(f"{path}: results.{task} holds no metric value (keys: {sorted(metrics)})")


def _read_samples(path: Path, metric: str, filt: str) -> dict[int, float]:
    items: dict[int, float] = {}
    for lineno, row in sample_rows(path):
        if row.get("filter", filt) != filt:
            continue
        if "doc_id" not in row or metric not in row:
            raise ReportInputError(f"{path}:{lineno}: sample has no 'doc_id' or no '{metric}' field")
        value = row[metric]
        if isinstance(value, bool):
            value = float(value)
        if not isinstance(value, (int, float)):
            raise ReportInputError(f"{path}:{lineno}: '{metric}' is {value!r}; expected a number")
        items[int(row["doc_id"])] = float(value)
    return items


def _sparse_budget(task: str, config: dict | None) -> object | None:
    """The sparse budget of a task: its metadata's sparse_budget, else an old-style _b<B> name suffix."""
    budget = ((config or {}).get("metadata") or {}).get("sparse_budget")
    if budget is not None:
        return None if budget == "all" else budget
    return budget_in_name(task)


def load_results_file(path: Path, with_samples: bool = True) -> tuple[ModelInfo, list[Cell], list[str], float]:
    """Cells of one results_*.json, its model, notes about tasks we skipped, and the run's date."""
    data = read_results_json(path)
    model = model_from_results(data, path)
    configs = data.get("configs") or {}
    groups = set(data.get("groups") or {}) | {g for g, subs in (data.get("group_subtasks") or {}).items() if subs}
    n_shot_map = data.get("n-shot") or {}
    n_samples = data.get("n-samples") or {}
    cells: list[Cell] = []
    ignored: list[str] = []
    for task, metrics in data["results"].items():
        if task in groups:
            continue  # group means are recomputed from the tasks themselves
        info = classify(task, configs.get(task))
        if info is None:
            ignored.append(task)
            continue
        budget = _sparse_budget(task, configs.get(task))
        if budget is not None:
            # A budgeted task scored only its share of the items: its accuracy is not the
            # instruction's benchmark accuracy, so reporting it as one would be silently wrong.
            raise ReportInputError(
                f"{path}: {task} is a sparse (budget {budget}) task that saw only part of the items; "
                f"use `instrobust estimate` on this run instead of `instrobust report`"
            )
        metric, filt, acc = _pick_metric(task, metrics, path)
        n_shot = n_shot_map.get(task)
        if not isinstance(n_shot, int):
            n_shot = (configs.get(task) or {}).get("num_fewshot")
        if not isinstance(n_shot, int):
            n_shot = info.shots_in_name or 0
        counts = n_samples.get(task) or {}
        n_items = counts.get("effective", metrics.get("sample_len"))
        cell = Cell(
            model=model.key, task=task, benchmark=info.benchmark, category=info.category,
            collection=info.collection, observed=info.observed, acc=acc, n_shot=n_shot,
            n_items=int(n_items) if n_items is not None else None,
            n_items_total=int(counts["original"]) if "original" in counts else None,
            variant=info.variant, variant_study=info.variant_study, scoring=info.scoring,
            metric=metric if filt == "none" else f"{metric},{filt}", source=str(path),
            instruction=str(((configs.get(task) or {}).get("dataset_kwargs") or {}).get("instruction") or task),
        )
        samples_path = samples_file(path, task)
        if with_samples and samples_path is not None and samples_path.is_file():
            items = _read_samples(samples_path, metric, filt)
            if items:
                cell.items = items
                mean = sum(items.values()) / len(items)
                if cell.n_items is not None and len(items) != cell.n_items:
                    cell.notes.append(f"{samples_path.name} has {len(items)} items, results say {cell.n_items}")
                elif abs(mean - acc) > 1e-6:
                    raise ReportInputError(
                        f"{samples_path}: mean per-item {metric} is {mean:.6f} but {path.name} reports "
                        f"{acc:.6f} for {task}; the samples file is not from this run")
        cells.append(cell)
    notes = []
    if ignored:
        shown = ", ".join(sorted(ignored)[:8]) + (f" and {len(ignored) - 8} more" if len(ignored) > 8 else "")
        notes.append(f"{path}: ignored {len(ignored)} task(s) that are not instrobust tasks: {shown}")
    date = data.get("date")
    return model, cells, notes, float(date) if isinstance(date, (int, float)) else path.stat().st_mtime


def _short(name: str) -> str:
    if name.startswith(("/", ".", "~")) or Path(name).exists():
        return Path(name).name or name  # local checkpoint: its folder name
    return name  # hub id such as google/flan-t5-xl: keep the organisation


def assign_labels(models: dict[str, ModelInfo]) -> None:
    for m in models.values():
        m.label = _short(m.pretrained) + (f" + {_short(m.peft)}" if m.peft else "")
    seen: dict[str, list[ModelInfo]] = {}
    for m in models.values():
        seen.setdefault(m.label, []).append(m)
    for same in seen.values():
        if len(same) > 1:  # two local folders with the same name: show their parents too
            for m in same:
                parent = Path(m.pretrained).parent.name
                m.label = f"{parent}/{m.label}"


def load(paths: list[str | Path], with_samples: bool = True) -> Loaded:
    """All cells of all results files under ``paths``; the newest run wins when a task repeats."""
    if not paths:
        raise ReportInputError("give at least one lm-eval output directory")
    models: dict[str, ModelInfo] = {}
    newest = NewestRun()
    notes: list[str] = []
    inputs: list[dict] = []
    duplicates: dict[tuple[str, str], list[str]] = {}
    for raw in paths:
        path = Path(raw)
        files = find_results_files(path)
        n_cells = 0
        for f in files:
            model, cells, file_notes, date = load_results_file(f, with_samples)
            notes.extend(file_notes)
            if not cells:
                continue
            models.setdefault(model.key, model)
            for cell in cells:
                n_cells += 1
                pair = newest.offer((cell.model, cell.n_shot, cell.task), date, cell)
                if pair:
                    older, newer = pair
                    duplicates.setdefault((older.source, newer.source), []).append(cell.task)
        inputs.append({"path": str(path), "results_files": [str(f) for f in files], "cells": n_cells})
    cells = newest.kept()
    notes.extend(_duplicate_notes(duplicates))
    if not cells:
        detail = "; ".join(notes) if notes else "the results files hold no tasks"
        raise ReportInputError(
            "no instrobust tasks (mmlu_*, mmlu_cloze_*, bbl_*) in " + ", ".join(map(str, paths)) + f": {detail}")
    assign_labels(models)
    # Families together, small to large, each base model before its adapters.
    ordered = sorted(models.values(), key=lambda m: (m.family, m.size or 0.0, m.pretrained, m.peft or ""))
    return Loaded(models={m.key: m for m in ordered}, cells=cells, notes=notes, inputs=inputs)


def _duplicate_notes(duplicates: dict[tuple[str, str], list[str]]) -> list[str]:
    return [f"{len(tasks)} task(s) ({', '.join(sorted(tasks)[:3])}{', ...' if len(tasks) > 3 else ''}) of the same "
            f"model and setting appear in {older} and in {newer}; using the newer run {newer}"
            for (older, newer), tasks in duplicates.items()]


_LEAF_TASK = re.compile(r"_\d+(_\d+shot)?$")


def planned_counts(tasks_dir: Path | None = None) -> dict[tuple[str, str, int], int]:
    """(category, collection, n_shot) -> number of our tasks, to mark partial categories.

    Counted from the task names of the catalog (instrobust.catalog), or of the task YAML files
    (one file per task, named after it) of a folder given as ``tasks_dir``; never from group names.
    """
    if tasks_dir is None:
        import instrobust.catalog as catalog

        names = list(catalog.tasks())
    else:
        names = [p.stem for p in tasks_dir.rglob("*.yaml") if _LEAF_TASK.search(p.stem)]
    counts: dict[tuple[str, str, int], int] = {}
    for name in names:
        info = classify(name)
        if info is None or info.variant or info.variant_study:
            continue
        key = (info.category, info.collection, info.shots_in_name or 0)
        counts[key] = counts.get(key, 0) + 1
    return counts
