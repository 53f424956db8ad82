"""The MMLU item filter of the authors' ``specific`` config (``SUBSET = True``), as an option.

Their loader drops every item whose ``"{answer} {A} {B} {C} {D}"`` (the gold option's text, then
the four options, space-separated) is 150 tokens or longer under the evaluated model's tokenizer
(``tokenizer(text, truncation=True)``). Off by default; turn it on for a task with
``--metadata '{"paper_subset": "<tokenizer name or path>"}'`` (or
``{"paper_subset": {"tokenizer": ..., "max_tokens": 150}}``). See docs/paper-collection.md.
"""
from __future__ import annotations

from typing import Any

from instrobust.errors import DataError

MAX_TOKENS = 150  # configs/MMLU/specific.py


def subset_text(doc: dict) -> str:
    choices = [str(c) for c in doc["choices"]]
    return " ".join([choices[int(doc["answer"])], *choices])


def kept_indices(docs, tokenizer, max_tokens: int = MAX_TOKENS) -> list[int]:
    """Indices of the documents their filter keeps (fewer than ``max_tokens`` tokens)."""
    texts = [subset_text(d) for d in docs]
    lengths = [len(ids) for ids in tokenizer(texts, truncation=True)["input_ids"]]
    return [i for i, n in enumerate(lengths) if n < max_tokens]


def _settings(value: Any) -> tuple[str, int]:
    if isinstance(value, str):
        return value, MAX_TOKENS
    if isinstance(value, dict) and isinstance(value.get("tokenizer"), str):
        return value["tokenizer"], int(value.get("max_tokens", MAX_TOKENS))
    raise DataError(f"metadata paper_subset={value!r}: give a tokenizer name/path, or "
                    f'{{"tokenizer": ..., "max_tokens": {MAX_TOKENS}}}')


def paper_subset(dataset, value: Any):
    """``dataset`` (a datasets.Dataset of MMLU documents) restricted to the items they kept."""
    from transformers import AutoTokenizer

    name, max_tokens = _settings(value)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as exc:
        raise DataError(f"metadata paper_subset: cannot load tokenizer {name!r}: {exc}") from None
    return dataset.select(kept_indices(dataset, tokenizer, max_tokens))
