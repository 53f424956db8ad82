"""The causal half of ``instrobust-hf``: each question's context runs once for all its options.

lm-eval 0.4.13's ``hf`` scores a causal request by running ``(context + continuation)[:-1]`` and
reading the logits at the continuation's positions; only one-token options share a pass, so a
4-option cloze question costs four passes over its context. Two layouts replace that; both feed
an option row ``[context[-1]] + continuation[:-1]`` at positions ``len(context) - 1 + j``, so the
logits that score a continuation token come from the same position as in ``hf``, and nothing is
re-tokenised (the ids are ``HFLM._encode_pair``'s):

* one pass (:class:`SharedPassScoring`, preferred): per context one sequence ``context[:-1]`` +
  all option rows, with a 4D mask that lets each row see the shared prefix and itself only, and
  logits projected only at option positions;
* two passes (:class:`CausalPrefixScoring`, for models that take no custom mask): ``context[:-1]``
  with ``use_cache=True``, then the option rows on its key/value cache (``batch_select_indices``).
  Contexts of different lengths are right-padded with an attention mask; the option rows then get
  that mask and explicit position ids.

Requests the harness would left-truncate (context + continuation longer than ``max_length + 1``),
one-token contexts and requests longer than a sliding attention window go to ``hf``'s own code.
"""
from __future__ import annotations

import inspect

import torch
from lm_eval.models.utils_hf import pad_and_concat

from instrobust.models.grouping import ContextGroup, score_row


try:  # transformers >= 5: logits_to_keep may be a boolean [batch, seq] mask of the positions to project
    from transformers.modeling_utils import slice_logits_to_keep  # noqa: F401

    SELECTS_POSITIONS = True
except ImportError:
    SELECTS_POSITIONS = False


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


def takes_custom_masks(model) -> bool:
    """Whether the model applies a 4D additive attention mask and explicit position ids as given."""
    base = _base_model(model)
    impl = getattr(getattr(base, "config", None), "_attn_implementation", None)
    params = inspect.signature(base.forward).parameters
    # flash / flex kernels build their own causal masks; eager and sdpa add the given one
    return impl in ("eager", "sdpa") and "position_ids" in params and "attention_mask" in params


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


def shared_layout(chunk: list[ContextGroup]):
    """One sequence per context: ``context[:-1]`` then every option row, each at its own positions.

    Returns (input ids [B, S], position ids [B, S], segment ids [B, S], row spans) where segment -1
    is the shared prefix, r >= 0 option row r, -2 padding; row spans are (group, row, start).
    """
    seqs, spans = [], []
    for gi, g in enumerate(chunk):
        prefix = g.context[:-1]
        ids, pos, seg = list(prefix), list(range(len(prefix))), [-1] * len(prefix)
        for ri, row in enumerate(g.rows):
            spans.append((gi, ri, len(ids)))
            ids += [g.context[-1], *row[:-1]]
            pos += range(len(prefix), len(prefix) + len(row))
            seg += [ri] * len(row)
        seqs.append((ids, pos, seg))
    width = max(len(ids) for ids, _, _ in seqs)

    def padded(k: int, fill: int) -> torch.Tensor:
        return torch.tensor([s[k] + [fill] * (width - len(s[k])) for s in seqs], dtype=torch.long)

    return padded(0, 0), padded(1, 0), padded(2, -2), spans


def shared_mask(segments: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Additive 4D mask [B, 1, S, S]: causal, and an option row sees only the prefix and itself.

    Padding positions see earlier padding (never an empty row, so no NaN reaches any value vector).
    """
    width = segments.shape[1]
    causal = torch.ones(width, width, dtype=torch.bool, device=segments.device).tril()
    seg_q, seg_k = segments.unsqueeze(2), segments.unsqueeze(1)
    allowed = causal & ((seg_k == -1) | (seg_k == seg_q))
    mask = torch.zeros(allowed.shape, dtype=dtype, device=segments.device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min).unsqueeze(1)


class SharedPassScoring:
    """Mixin: a chunk of causal context groups in one forward pass (prefix shared through the mask)."""

    def _score_shared_chunk(self, chunk: list[ContextGroup]):
        """Yield (option, answer) for every option of the chunk's groups."""
        input_ids, positions, segments, spans = shared_layout(chunk)
        width = input_ids.shape[1]
        kwargs = {"position_ids": positions.to(self.device), "use_cache": False,
                  "attention_mask": shared_mask(segments.to(self.device), self._mask_dtype())}
        keep = (segments >= 0).to(self.device)  # logits only where an option is scored
        if self._keeps_logits and SELECTS_POSITIONS:
            kwargs["logits_to_keep"] = keep  # -> logits [option positions, vocab], row-major
            flat = (torch.cumsum(keep.flatten(), 0) - 1).view(keep.shape)
        elif self._keeps_logits:  # older transformers: keep the last positions from the shortest prefix on
            kwargs["logits_to_keep"] = width - min(len(g.context) - 1 for g in chunk)
        logits = self._no_grad_call(input_ids=input_ids.to(self.device), **kwargs).logits
        for gi, ri, start in spans:
            n = len(chunk[gi].rows[ri])
            if logits.dim() == 2:
                row_logits = logits[flat[gi, start] : flat[gi, start] + n]
            else:
                shift = width - logits.shape[1]  # positions dropped by an int logits_to_keep
                row_logits = logits[gi, start - shift : start - shift + n]
            for opt in chunk[gi].options:
                if opt.row == ri:
                    yield opt, score_row(row_logits, opt.continuation, self.softmax_dtype)

    def _mask_dtype(self) -> torch.dtype:
        dtype = getattr(self.model, "dtype", torch.float32)
        if self.mixed_precision_dtype is not None:
            dtype = self.mixed_precision_dtype
        return dtype if dtype.is_floating_point else torch.float32
