"""The causal half of ``instrobust-hf``: each question's context runs once, its options from the cache.

lm-eval 0.4.13's ``hf`` scores a causal request by running ``(context + continuation)[:-1]`` and
reading the logits at the continuation's positions; only one-token options share a pass, so a
4-option cloze question costs four passes over its context. Here, for a batch of contexts:

1. *prefix pass*: ``context[:-1]`` of every context, with ``use_cache=True`` (and
   ``logits_to_keep=1`` where the model takes it: no logits are needed from this pass);
2. *option pass*: one row per distinct ``continuation[:-1]``, fed ``[context[-1]] +
   continuation[:-1]`` on the prefix's key/value cache (selected per row with
   ``Cache.batch_select_indices``). The last context token goes with the options, so the
   logits that score the first continuation token come from the same position as in ``hf``
   (position ``len(context) - 1``); nothing is re-tokenised: the ids are ``HFLM._encode_pair``'s.

Contexts of different lengths in one batch are right-padded with an attention mask; the option
rows then get that mask and explicit position ids. A single context, or equal lengths, runs
without a mask, as ``hf`` does. Requests the harness would left-truncate (context + continuation
longer than ``max_length + 1``), one-token contexts and requests longer than a sliding attention
window go to ``hf``'s own code.
"""
from __future__ import annotations

import inspect

import torch
from lm_eval.models.utils_hf import pad_and_concat

from instrobust.models.grouping import ContextGroup, score_row


class CacheUnusable(RuntimeError):
    """The model returned no key/value cache we can select rows from."""


def _base_model(model):
    get_base = getattr(model, "get_base_model", None)  # a PEFT wrapper
    return get_base() if callable(get_base) else model


def cache_arguments(model) -> tuple[str | None, bool]:
    """(name of the forward's key/value-cache argument or None, whether it takes ``logits_to_keep``)."""
    params = inspect.signature(_base_model(model).forward).parameters
    # transformers >= 5.24 renamed past_key_values to cache (the old name is a deprecated alias)
    name = next((n for n in ("cache", "past_key_values") if n in params), None)
    return name, "logits_to_keep" in params


def sliding_window(model) -> int | None:
    config = getattr(_base_model(model), "config", None)
    window = getattr(config, "sliding_window", None) if config is not None else None
    return int(window) if isinstance(window, int) and window > 0 else None


class CausalPrefixScoring:
    """Mixin for an ``HFLM`` subclass: scoring one chunk of causal context groups from a shared cache."""

    _cache_arg: str | None = None
    _keeps_logits: bool = False

    def _causal_fast_limit(self) -> int:
        """Longest context + continuation the fast path takes (the rest is the parent's)."""
        limit = self.max_length + 1  # beyond this the harness truncates from the left
        window = sliding_window(self.model)
        return min(limit, window) if window else limit

    def _score_causal_chunk(self, chunk: list[ContextGroup]):
        """Yield (option, answer) for every option of the chunk's groups."""
        prefixes = [torch.tensor(g.context[:-1], dtype=torch.long, device=self.device) for g in chunk]
        lengths = [len(p) for p in prefixes]
        width = max(lengths)
        padded = min(lengths) != width
        prefix_mask = pad_and_concat(width, [torch.ones_like(p) for p in prefixes]) if padded else None
        kwargs = {"use_cache": True}
        if padded:
            kwargs["attention_mask"] = prefix_mask
        if self._keeps_logits:
            kwargs["logits_to_keep"] = 1
        out = self._no_grad_call(input_ids=pad_and_concat(width, prefixes), **kwargs)
        cache = getattr(out, "cache", None)
        if cache is None:
            cache = getattr(out, "past_key_values", None)
        del out
        if cache is None or not callable(getattr(cache, "batch_select_indices", None)):
            raise CacheUnusable(f"its forward returned {type(cache).__name__} as the key/value cache")

        rows = [(gi, ri) for gi, g in enumerate(chunk) for ri in range(len(g.rows))]
        inputs = [torch.tensor([chunk[gi].context[-1], *chunk[gi].rows[ri][:-1]], dtype=torch.long,
                               device=self.device) for gi, ri in rows]
        span = max(len(x) for x in inputs)
        which = torch.tensor([gi for gi, _ in rows], dtype=torch.long, device=self.device)
        if len(rows) != len(chunk):  # one cache row per option row (else it already is)
            cache.batch_select_indices(which)
        kwargs = {self._cache_arg: cache, "use_cache": True}
        if padded:
            # cached pad positions stay masked; the option rows continue at their own context length
            kwargs["attention_mask"] = torch.cat(
                [prefix_mask.index_select(0, which), torch.ones(len(rows), span, dtype=torch.long, device=self.device)],
                dim=1)
            start = torch.tensor(lengths, dtype=torch.long, device=self.device).index_select(0, which)
            kwargs["position_ids"] = start.unsqueeze(1) + torch.arange(span, device=self.device)
        out = self._no_grad_call(input_ids=pad_and_concat(span, inputs), **kwargs)
        logits = out.logits
        del out, cache
        for (gi, ri), row_logits in zip(rows, logits, strict=True):
            for opt in chunk[gi].options:
                if opt.row == ri:
                    yield opt, score_row(row_logits, opt.continuation, self.softmax_dtype)
