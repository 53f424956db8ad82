"""Which lm-eval tasks to analyse: task and group names resolved through the catalog of our tasks
(instrobust.catalog, what the generated YAMLs say) or the YAMLs of a folder given with --tasks-dir.

A task names its instruction (``dataset_kwargs.instruction``) and says what it is
(``metadata: {collection, observed, scoring}``, BBL tasks add ``task_type`` and ``bbl_task``).
The analysis works on those tasks, so what it measures is exactly what the harness evaluates.
"""
from __future__ import annotations

import difflib
import functools
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

import yaml

from instrobust.analysis.errors import AnalysisError


@dataclass(frozen=True)
class AnalysisTask:
    """One lm-eval task = one instruction over one example pool."""

    name: str         # lm-eval task name (the key for accuracies)
    instruction: str  # instruction id in the bank
    observed: bool
    collection: str   # flan2022 | alpaca | p3 | unobserved | designer | ...
    benchmark: str    # "mmlu" or "bbl" (picks the document source)
    source: str       # example pool: "mmlu" or the BIG-bench task name
    category: str     # MMLU, MMLU (cloze), BBL-QA, BBL-BC, BBL-MC (Table 4 rows)
    scoring: str      # letter | cloze

    def to_dict(self) -> dict:
        return dict(self.__dict__)


CATEGORY_ORDER = ("MMLU", "MMLU (cloze)", "BBL-QA", "BBL-BC", "BBL-MC")


def category_key(category: str) -> tuple[int, str]:
    return (CATEGORY_ORDER.index(category) if category in CATEGORY_ORDER else len(CATEGORY_ORDER), category)


class _Loader(yaml.SafeLoader):
    """SafeLoader that tolerates lm-eval's ``!function`` tags (only base YAMLs carry them)."""


_Loader.add_multi_constructor("!", lambda loader, suffix, node: None)


@functools.lru_cache(maxsize=4)
def _yaml_index(tasks_dir: Path) -> dict[str, Path]:
    """Task/group name -> YAML file (the generator names every file after its task or group)."""
    if not tasks_dir.is_dir():
        raise AnalysisError(f"{tasks_dir}: no such task folder (pass --tasks-dir, the lm_eval --include_path)")
    return {p.stem: p for p in sorted(tasks_dir.rglob("*.yaml"))}


def _read(path: Path) -> dict:
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except yaml.YAMLError as exc:
        raise AnalysisError(f"{path}: not valid YAML ({exc})") from None
    if not isinstance(data, dict):
        raise AnalysisError(f"{path}: expected a mapping at the top level")
    return data


def _leaf(name: str, where: object, instruction: object, meta: dict) -> AnalysisTask:
    """The analysis task from a task's instruction id and lm-eval metadata (``where``: its YAML file,
    or the catalog, for error messages)."""
    missing = [k for k, v in (("dataset_kwargs.instruction", instruction), ("metadata.observed", meta.get("observed")),
                              ("metadata.collection", meta.get("collection"))) if v is None]
    if missing:
        raise AnalysisError(f"task {name!r} ({where}) is not an instrobust instruction task: it lacks {', '.join(missing)}")
    scoring = str(meta.get("scoring") or "letter")
    if meta.get("bbl_task"):
        task_type = str(meta.get("task_type") or "").lower()
        if task_type not in ("qa", "bc", "mc"):
            raise AnalysisError(f"task {name!r} ({where}): metadata.task_type must be qa, bc or mc, got {task_type!r}")
        benchmark, source, category = "bbl", str(meta["bbl_task"]), f"BBL-{task_type.upper()}"
    else:
        benchmark = str(instruction).split("_", 1)[0]
        source = benchmark
        category = "MMLU" if scoring == "letter" else f"MMLU ({scoring})"
    return AnalysisTask(name=name, instruction=str(instruction), observed=bool(meta["observed"]),
                        collection=str(meta["collection"]), benchmark=benchmark, source=source,
                        category=category, scoring=scoring)


class _Catalog:
    """Our own tasks and groups, read from instrobust.catalog (what the generated YAMLs say)."""

    def __init__(self) -> None:
        import instrobust.catalog as catalog

        self.tasks, self.groups = catalog.tasks(), catalog.groups()

    def names(self) -> list[str]:
        return [*self.tasks, *self.groups]

    def lookup(self, name: str) -> list[str] | AnalysisTask | None:
        """A group's member names, a task's analysis task, or None for a name we do not have."""
        if name in self.groups:
            return list(self.groups[name])
        task = self.tasks.get(name)
        return None if task is None else _leaf(name, "instrobust catalog", task.instruction, task.metadata)


class _Folder:
    """The task YAMLs of a folder given with --tasks-dir (the lm_eval --include_path)."""

    def __init__(self, tasks_dir: Path) -> None:
        self.index = _yaml_index(tasks_dir.resolve())

    def names(self) -> list[str]:
        return list(self.index)

    def lookup(self, name: str) -> list[str] | AnalysisTask | None:
        path = self.index.get(name)
        if path is None:
            return None
        data = _read(path)
        if "group" in data:
            members = data.get("task") or []
            if isinstance(members, str):
                members = [members]
            for m in members:
                if not isinstance(m, str):
                    raise AnalysisError(f"group {name!r} ({path}) lists an inline task config; only task names are supported")
            return members
        if data.get("num_fewshot"):
            raise AnalysisError(
                f"task {name!r} ({path}) is a {data['num_fewshot']}-shot task: the analysis measures the zero-shot "
                f"prompt (paper section 4.5); use {name.removesuffix('_1shot')!r} instead")
        return _leaf(name, path, (data.get("dataset_kwargs") or {}).get("instruction"), data.get("metadata") or {})


def resolve_tasks(names: Iterable[str], tasks_dir: Path | None = None) -> list[AnalysisTask]:
    """The zero-shot instruction tasks named by ``names`` (task or group names, groups expanded):
    ours from the catalog, or those of a task folder given as ``tasks_dir``."""
    source = _Folder(Path(tasks_dir)) if tasks_dir else _Catalog()
    out: dict[str, AnalysisTask] = {}

    def visit(name: str, trail: tuple[str, ...]) -> None:
        if name in trail:
            raise AnalysisError(f"group {trail[-1]!r} includes itself through {' -> '.join(trail + (name,))}")
        found = source.lookup(name)
        if found is None:
            close = difflib.get_close_matches(name, source.names(), n=3)
            hint = f" Did you mean {', '.join(close)}?" if close else ""
            where = f" (inside group {trail[-1]!r})" if trail else ""
            raise AnalysisError(f"unknown lm-eval task or group {name!r}{where}.{hint}")
        if isinstance(found, list):
            for m in found:
                visit(m, trail + (name,))
        elif name not in out:
            out[name] = found

    for name in names:
        name = name.strip()
        if name:
            visit(name, ())
    if not out:
        raise AnalysisError("no tasks given (--tasks takes comma-separated lm-eval task or group names)")
    return list(out.values())


def check_comparable(tasks: Sequence[AnalysisTask]) -> None:
    """Every example pool with unobserved tasks needs observed tasks on the same pool to compare to."""
    by_source: dict[str, list[AnalysisTask]] = defaultdict(list)
    for t in tasks:
        by_source[t.source].append(t)
    if not any(not t.observed for t in tasks):
        raise AnalysisError(
            f"no unobserved instructions among the {len(tasks)} tasks given ({_names(tasks)}): "
            "add an unobserved group such as mmlu_unobserved")
    for source, group in by_source.items():
        if any(not t.observed for t in group) and not any(t.observed for t in group):
            example = "mmlu_observed_flan2022" if source == "mmlu" else f"bbl_{source}_observed_flan2022"
            raise AnalysisError(
                f"no observed instructions to compare to on {source!r}: the tasks given for it "
                f"({_names(group)}) are all unobserved; add an observed task or group such as {example}")


def _names(tasks: Sequence[AnalysisTask], limit: int = 4) -> str:
    names = [t.name for t in tasks]
    return ", ".join(names[:limit]) + (f", ... ({len(names)} in all)" if len(names) > limit else "")
