"""Representations on disk: redraw plots and recompute distances without touching the model.

A saved run is a folder with ``vectors.npy`` (float32, one row per (task, example)),
``rows.jsonl`` (the index: task, instruction, pool, doc_id of each row, in order) and
``meta.json`` (the model, the layer and position read, and every task's metadata).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from instrobust.analysis.errors import AnalysisError
from instrobust.analysis.tasks import AnalysisTask

FORMAT_VERSION = 1


@dataclass(frozen=True)
class Row:
    """Which (instruction task, example) one vector belongs to."""

    task: str
    instruction: str
    source: str
    doc_id: int


@dataclass
class Representations:
    """First-decoded-token vectors of one model (base or base+adapter), one per (task, example)."""

    vectors: np.ndarray  # [n_rows, hidden] float32
    rows: list[Row]
    tasks: dict[str, AnalysisTask]
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.vectors.ndim != 2 or len(self.vectors) != len(self.rows):
            raise AnalysisError(
                f"representations: {len(self.rows)} index rows but vectors of shape {tuple(self.vectors.shape)}")
        unknown = sorted({r.task for r in self.rows} - set(self.tasks))
        if unknown:
            raise AnalysisError(f"representations: rows refer to tasks with no metadata: {', '.join(unknown[:5])}")

    def grid(self, source: str) -> tuple[list[str], list[int], np.ndarray]:
        """(task names, doc ids, vectors [n_tasks, n_docs, hidden]) of one example pool.

        Every task of the pool must have a vector for every example of the pool: distances are
        taken example by example.
        """
        cells: dict[str, dict[int, int]] = {}
        for i, r in enumerate(self.rows):
            if r.source == source:
                cells.setdefault(r.task, {})[r.doc_id] = i
        if not cells:
            raise AnalysisError(f"representations: no rows for pool {source!r}")
        names = list(cells)
        doc_ids = sorted(cells[names[0]])
        for name in names[1:]:
            if sorted(cells[name]) != doc_ids:
                raise AnalysisError(
                    f"representations: task {name!r} has vectors for other examples of {source!r} than "
                    f"{names[0]!r}; every task of a pool must cover the same examples")
        index = np.array([[cells[n][d] for d in doc_ids] for n in names])
        return names, doc_ids, self.vectors[index]

    @property
    def sources(self) -> list[str]:
        return list(dict.fromkeys(r.source for r in self.rows))

    def save(self, directory: str | Path) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / "vectors.npy", np.ascontiguousarray(self.vectors, dtype=np.float32))
        with open(directory / "rows.jsonl", "w", encoding="utf-8") as fh:
            for r in self.rows:
                fh.write(json.dumps(r.__dict__) + "\n")
        meta = {**self.meta, "format_version": FORMAT_VERSION,
                "tasks": [t.to_dict() for t in self.tasks.values()]}
        (directory / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        return directory

    @classmethod
    def load(cls, directory: str | Path) -> "Representations":
        directory = Path(directory)
        needed = [directory / n for n in ("vectors.npy", "rows.jsonl", "meta.json")]
        missing = [p.name for p in needed if not p.is_file()]
        if missing:
            raise AnalysisError(f"{directory}: not a saved representation folder (missing {', '.join(missing)})")
        try:
            meta = json.loads(needed[2].read_text())
            tasks = {t["name"]: AnalysisTask(**t) for t in meta.pop("tasks")}
            rows = [Row(**json.loads(line)) for line in needed[1].read_text().splitlines() if line.strip()]
        except (ValueError, KeyError, TypeError) as exc:
            raise AnalysisError(f"{directory}: broken meta.json or rows.jsonl ({type(exc).__name__}: {exc})") from None
        if meta.get("format_version") != FORMAT_VERSION:
            raise AnalysisError(f"{directory}/meta.json: format_version {meta.get('format_version')!r}, "
                                f"this instrobust reads {FORMAT_VERSION}")
        vectors = np.load(needed[0], allow_pickle=False)
        try:
            return cls(vectors=vectors, rows=rows, tasks=tasks, meta=meta)
        except AnalysisError as exc:
            raise AnalysisError(f"{directory}: {exc}") from None
