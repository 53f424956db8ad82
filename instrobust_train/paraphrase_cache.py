"""The paraphrase file: JSONL, one line per reference instruction, keyed by the instruction's hash.

Line: ``{"key": sha256(instruction)[:16], "instruction": ..., "paraphrases": [...],
"generator": {...}, "rejected": {"empty": n, ...}}``. ``instrobust-paraphrase`` appends a line as
soon as an instruction is done, so an interrupted or repeated run asks the model only for the
instructions not in the file yet; ``instrobust-train`` reads the file to build batch groups.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from instrobust_train.errors import ParaphraseError


def instruction_key(instruction: str) -> str:
    """Stable key of a reference instruction (surrounding whitespace ignored)."""
    return hashlib.sha256(instruction.strip().encode("utf-8")).hexdigest()[:16]


def read_paraphrase_records(path: str | Path) -> dict[str, dict]:
    """All records of a paraphrase file by key; a missing file reads as empty."""
    path = Path(path)
    if not path.exists():
        return {}
    records: dict[str, dict] = {}
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ParaphraseError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
            if not isinstance(rec, dict) or not isinstance(rec.get("instruction"), str):
                raise ParaphraseError(f"{path}:{lineno}: a record needs an 'instruction' string")
            paras = rec.get("paraphrases")
            if not isinstance(paras, list) or not all(isinstance(p, str) for p in paras):
                raise ParaphraseError(f"{path}:{lineno}: 'paraphrases' must be a list of strings")
            key = instruction_key(rec["instruction"])
            if rec.get("key", key) != key:
                raise ParaphraseError(
                    f"{path}:{lineno}: key {rec['key']!r} does not match the hash of its instruction "
                    f"({key}); was the instruction edited by hand?"
                )
            records[key] = rec
    return records


def read_paraphrases(path: str | Path) -> dict[str, list[str]]:
    """Paraphrases by instruction key; raises :class:`ParaphraseError` if the file is missing."""
    if not Path(path).is_file():
        raise ParaphraseError(f"{path}: paraphrase file not found (write it with instrobust-paraphrase)")
    return {key: rec["paraphrases"] for key, rec in read_paraphrase_records(path).items()}


def append_record(path: str | Path, record: dict) -> None:
    """Append one finished instruction (flushed at once: a crash loses at most the one in flight)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"key": instruction_key(record["instruction"]), **record}
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, ensure_ascii=False) + "\n")
