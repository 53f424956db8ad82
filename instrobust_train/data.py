"""Alignment data: N examples sampled with a seed from an instruction-tuning source.

A source is a local JSONL/JSON file of ``{"instruction", "input", "output"}`` rows (field names
configurable) or a hub dataset (``tatsu-lab/alpaca``, a Flan mixture) read with
``datasets.load_dataset``. Each example keeps its reference instruction; its paraphrases come
from a file written by ``instrobust-paraphrase`` (see :mod:`instrobust_train.paraphrase_cache`).
"""
from __future__ import annotations

import json
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import torch

from instrobust_train.config import DataConfig
from instrobust_train.errors import AlignmentDataError, ParaphraseError
from instrobust_train.paraphrase_cache import instruction_key, read_paraphrases

log = logging.getLogger(__name__)

_ALPACA_WITH_INPUT = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
_ALPACA_NO_INPUT = (
    "Below is an instruction that describes a task. "
    "Write a response that appropriately completes the request.\n\n"
    "### Instruction:\n{instruction}\n\n### Response:\n"
)


@dataclass(frozen=True)
class AlignmentExample:
    """One training example; ``instruction`` is its reference instruction."""

    id: str
    instruction: str
    input: str
    output: str
    paraphrases: tuple[str, ...] = field(default=(), compare=False)

    @property
    def instructions(self) -> tuple[str, ...]:
        """The reference instruction first, then its paraphrases (the rows of one batch group)."""
        return (self.instruction, *self.paraphrases)


def format_prompt(instruction: str, input_text: str, prompt_format: str = "plain") -> str:
    """The text the model reads for one (instruction, input) pair."""
    if prompt_format == "alpaca":
        if input_text:
            return _ALPACA_WITH_INPUT.format(instruction=instruction, input=input_text)
        return _ALPACA_NO_INPUT.format(instruction=instruction)
    return f"{instruction}\n\n{input_text}" if input_text else instruction


def _check_row(row: Any, where: str, cfg: DataConfig) -> tuple[str, str, str]:
    if not isinstance(row, dict):
        raise AlignmentDataError(f"{where}: expected a JSON object, got {type(row).__name__}")
    fields = ", ".join(sorted(row)) or "none"
    for name, option in ((cfg.instruction_field, "instruction_field"), (cfg.output_field, "output_field")):
        if name not in row or row[name] is None:
            raise AlignmentDataError(
                f"{where}: row has no {name!r} field (fields: {fields}); set --{option} if it lives under another name"
            )
        if not isinstance(row[name], str) or not row[name].strip():
            raise AlignmentDataError(f"{where}: field {name!r} must be a non-empty string, got {row[name]!r}")
    input_text = row.get(cfg.input_field) or ""
    if not isinstance(input_text, str):
        raise AlignmentDataError(f"{where}: field {cfg.input_field!r} must be a string, got {input_text!r}")
    return row[cfg.instruction_field].strip(), input_text, row[cfg.output_field]


def _read_local(path: Path) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise AlignmentDataError(f"{path}: cannot read ({exc.strerror})") from None
    if path.suffix == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise AlignmentDataError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        if not isinstance(rows, list):
            raise AlignmentDataError(f"{path}: expected a JSON list of rows")
        return rows
    rows = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise AlignmentDataError(f"{path}:{lineno}: not valid JSON ({exc.msg})") from None
    return rows


def _read_hub(cfg: DataConfig) -> list[Any]:
    try:
        import datasets

        ds = datasets.load_dataset(cfg.source, split=cfg.split)
    except Exception as exc:  # offline, unknown name, bad split: say which
        raise AlignmentDataError(
            f"cannot load alignment source {cfg.source!r} split {cfg.split!r}: {type(exc).__name__}: {exc}. "
            "Pass a local .jsonl/.json file or a hub dataset name reachable from here."
        ) from None
    missing = [f for f in (cfg.instruction_field, cfg.output_field) if f not in ds.column_names]
    if missing:
        raise AlignmentDataError(
            f"{cfg.source}[{cfg.split}]: no column {', '.join(map(repr, missing))} "
            f"(columns: {', '.join(ds.column_names)}); set --instruction_field/--output_field"
        )
    return ds  # indexable; rows are dicts


def load_examples(cfg: DataConfig) -> list[AlignmentExample]:
    """Sample ``cfg.n_examples`` rows (seeded) and return them as examples, without paraphrases."""
    path = Path(cfg.source)
    if path.is_file():
        rows, name = _read_local(path), str(path)
        where = lambda i: f"{path}:{i + 1}" if path.suffix != ".json" else f"{path}[{i}]"  # noqa: E731
    elif path.suffix in (".jsonl", ".json") or path.is_dir():
        raise AlignmentDataError(f"{path}: alignment source file not found")
    else:
        rows, name = _read_hub(cfg), cfg.source
        where = lambda i: f"{cfg.source}[{cfg.split}][{i}]"  # noqa: E731
    total = len(rows)
    if total == 0:
        raise AlignmentDataError(f"{name}: no rows")
    if cfg.n_examples >= total:
        if cfg.n_examples > total:
            log.warning("%s has only %d rows; using all of them (asked for %d)", name, total, cfg.n_examples)
        indices = list(range(total))
    else:
        indices = sorted(random.Random(cfg.sample_seed).sample(range(total), cfg.n_examples))
    if path.is_file():  # a local file is checked whole: a bad row should not hide behind the sample
        for i in range(total):
            _check_row(rows[i], where(i), cfg)
    examples = []
    for i in indices:
        instruction, input_text, output = _check_row(rows[i], where(i), cfg)
        examples.append(AlignmentExample(f"{Path(name).name}:{i}", instruction, input_text, output))
    log.info("sampled %d of %d rows from %s (seed %d)", len(examples), total, name, cfg.sample_seed)
    return examples


def attach_paraphrases(examples: Iterable[AlignmentExample], path: str | Path, max_paraphrases: int) -> list[AlignmentExample]:
    """Give each example up to ``max_paraphrases`` paraphrases of its instruction from ``path``.

    Raises :class:`ParaphraseError` when the file lacks any sampled instruction: a file made for
    another sample (other seed, other source) must not silently train on the reference alone.
    """
    table = read_paraphrases(path)
    examples = list(examples)
    missing = [ex for ex in examples if instruction_key(ex.instruction) not in table]
    if missing:
        raise ParaphraseError(
            f"{path}: no paraphrases for {len(missing)} of the {len(examples)} sampled instructions "
            f"(first: {missing[0].instruction[:80]!r}, example {missing[0].id}). The file was made for other "
            f"instructions; run instrobust-paraphrase with the same --source/--n_examples/--sample_seed."
        )
    out, without = [], 0
    for ex in examples:
        paras = tuple(table[instruction_key(ex.instruction)][:max_paraphrases])
        without += not paras
        out.append(AlignmentExample(ex.id, ex.instruction, ex.input, ex.output, paras))
    if without:
        log.warning("%d examples have no usable paraphrase: they add CE but no KL term", without)
    log.info("attached %d paraphrases to %d examples", sum(len(e.paraphrases) for e in out), len(out))
    return out


class GroupDataset(torch.utils.data.Dataset):
    """One item per example: the tokenized prompt of each instruction variant and the shared target.

    Item ``{"prompt_ids": [[reference], [paraphrase 1], ...], "target_ids": [...]}``; the group
    collator turns a list of items into one batch (see :mod:`instrobust_train.collate`).
    """

    def __init__(self, examples: list[AlignmentExample], tokenizer, cfg: DataConfig, is_encoder_decoder: bool):
        self.examples = examples
        self.items = [self._encode(ex, tokenizer, cfg, is_encoder_decoder) for ex in examples]

    @staticmethod
    def _encode(ex: AlignmentExample, tokenizer, cfg: DataConfig, is_encoder_decoder: bool) -> dict:
        prompts = [format_prompt(ins, ex.input, cfg.prompt_format) for ins in ex.instructions]
        prompt_ids = [
            tokenizer(p, truncation=True, max_length=cfg.max_source_length)["input_ids"] for p in prompts
        ]
        if is_encoder_decoder:
            target_ids = tokenizer(text_target=ex.output, truncation=True, max_length=cfg.max_target_length)["input_ids"]
        else:
            # The response follows the prompt; EOS teaches the model to stop.
            target_ids = tokenizer(ex.output, add_special_tokens=False)["input_ids"][: cfg.max_target_length - 1]
            target_ids = target_ids + [tokenizer.eos_token_id]
        if not target_ids:
            raise AlignmentDataError(f"example {ex.id}: output {ex.output!r} tokenizes to nothing")
        return {"prompt_ids": prompt_ids, "target_ids": target_ids}

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]
