"""A BIG-bench task as its task.json files hold it: read by instrobust.bbl.data (a local copy) and
instrobust.bbl.hub (the hub copy's pinned formats) alike, so neither imports the other for it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instrobust.errors import DataError

_LABEL_MAX_WORDS = 3


@dataclass(frozen=True)
class RawTask:
    """What a source yields for one task: examples (with where they came from) and metadata."""

    examples: tuple[tuple[str, dict], ...]  # (location used in error messages, example)
    meta: dict[str, Any]                    # the task.json whose prefixes apply (minus examples)
    designer: str | None                    # task_prefix, else description; None if unknown
    origin: str


def format_input(text: str, meta: dict[str, Any]) -> str:
    """The example's input with the task's ``example_input_prefix`` convention applied.

    Leading newlines and trailing whitespace are dropped (indentation of a first code line is
    kept). A short field label ("Sentence: ", "\\nPython code:\\n") stays in front; BIG-bench's
    implicit default prefix ("Q: ") is not added; long instruction-like prefixes are dropped.
    """
    body = text.lstrip("\n").rstrip()
    prefix = meta.get("example_input_prefix")
    if isinstance(prefix, str):
        label = prefix.strip()
        if label.endswith(":") and len(label.split()) <= _LABEL_MAX_WORDS:
            return prefix.lstrip("\n") + body
    return body


def read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object (a BIG-bench task.json)")
    return data


def subtask_dirs(task_dir: Path) -> list[Path]:
    return sorted(p for p in task_dir.iterdir() if p.is_dir() and (p / "task.json").is_file())


def task_meta(data: dict) -> dict:
    return {k: v for k, v in data.items() if k != "examples"}
