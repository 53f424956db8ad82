"""The seq2seq half of ``instrobust-hf``: one encoder pass per question.

lm-eval 0.4.13's ``HFLM._loglikelihood_tokens`` re-runs the encoder for every (context, option)
pair of an encoder-decoder model (Flan-T5, T0), so a 4-option question costs four full forward
passes. Here the requests are grouped by context and each batch of contexts costs:

* single-token options only (letters): one full forward pass (encoder + decoder), whose decoder
  step 0 scores every option (they all start from the decoder-start token);
* option texts: one encoder pass; then, per part of whole questions whose option rows fit the
  batch size (at least one question), one decoder step on the decoder-start token with
  ``use_cache=True``, whose logits score every option's first token and whose cache holds the
  cross-attention keys/values of the encoder output; then the options' remaining tokens in one
  pass on that cache expanded over the options (``index_select``). The encoder output is projected
  once per question, not once per option as in ``hf``. Models whose decoder returns no
  ``EncoderDecoderCache`` (and prefix-tuning adapters, which bring their own cache) decode every
  option row whole on the saved encoder outputs instead.

The per-token log-softmax, the greedy check and the truncation rules are the harness's, so
log-likelihoods match ``hf`` up to float noise from other matrix shapes (measured up to 1.5e-5 on
sums of 50-100 nats in float32, the size of ``hf``'s own differences between batch sizes).
Prompt-learning PEFT adapters other than prefix tuning change the encoder input; the model class
(:mod:`instrobust.models.fast_hf`) sends those to the parent's path.
"""
from __future__ import annotations

import torch
from lm_eval.models.utils_hf import pad_and_concat
from transformers.cache_utils import DynamicCache, EncoderDecoderCache
from transformers.modeling_outputs import BaseModelOutput

from instrobust.models.causal_fast import cache_arguments
from instrobust.models.grouping import ContextGroup, score_row


class NoDecoderCache(RuntimeError):
    """The decoder returned no ``EncoderDecoderCache`` to decode the options on."""


def select_cache(cache: EncoderDecoderCache, which: torch.Tensor) -> EncoderDecoderCache:
    """A new cache whose batch row r is row ``which[r]`` of ``cache`` (both self- and cross-attention)."""
    out = EncoderDecoderCache(DynamicCache(), DynamicCache())
    for part, source in ((out.self_attention_cache, cache.self_attention_cache),
                         (out.cross_attention_cache, cache.cross_attention_cache)):
        for i, layer in enumerate(source.layers):
            idx = which.to(layer.keys.device)
            part.update(layer.keys.index_select(0, idx), layer.values.index_select(0, idx), i)
    out.is_updated = {i: True for i in range(len(cache.cross_attention_cache.layers))}  # reuse, never recompute
    return out


class Seq2SeqGroupedScoring:
    """Mixin for an ``HFLM`` subclass: the grouped encoder-decoder scoring of one chunk of contexts."""

    def _decoder_input(self, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the harness's ``labels=`` call makes the model feed its decoder, without the loss."""
        shift = getattr(self.model, "prepare_decoder_input_ids_from_labels", None)
        if callable(shift):
            return {"decoder_input_ids": shift(labels=labels)}
        return {"labels": labels}

    def _seq2seq_forward(self, **kwargs):
        # Scoring never reuses the decoder's key/value cache: don't build it (hf does, memory only).
        # Prefix-tuning adapters pass their prefixes in that cache, so leave those calls alone.
        if getattr(self.model, "active_peft_config", None) is None:
            kwargs["use_cache"] = False
        return self._no_grad_call(**kwargs)

    def _pad_rows(self, rows: list[list[int]]) -> torch.Tensor:
        tensors = [torch.tensor(r, dtype=torch.long, device=self.device) for r in rows]
        return pad_and_concat(max(len(r) for r in rows), tensors)  # right-padded with 0, as hf does

    def _score_seq2seq_chunk(self, chunk: list[ContextGroup], row_batch: int):
        """Yield (option, answer) for every option of the chunk's groups."""
        contexts = [torch.tensor(g.context, dtype=torch.long, device=self.device) for g in chunk]
        inp_len = max(len(c) for c in contexts)
        masks = [torch.ones_like(c) for c in contexts]  # before padding: pad_and_concat pads in place
        input_ids = pad_and_concat(inp_len, contexts)  # right padding + mask, as hf does
        attention_mask = pad_and_concat(inp_len, masks)

        if all(len(g.rows) == 1 for g in chunk):
            # single-token options (letters): one full pass, its decoder step 0 scores them all
            out = self._seq2seq_forward(input_ids=input_ids, attention_mask=attention_mask,
                                        **self._decoder_input(self._pad_rows([g.rows[0] for g in chunk])))
            scored = [(opt, score_row(logits, opt.continuation, self.softmax_dtype))
                      for g, logits in zip(chunk, out.logits, strict=True) for opt in g.options]
            del out
            yield from scored
            return
        # option texts: the encoder alone, then every option row on its outputs, at least one whole
        # question per decoder pass (its options are short next to the context the encoder saw)
        encoder = self.model.get_encoder()
        encoder_hidden = self._no_grad_call(encoder, input_ids=input_ids, attention_mask=attention_mask)[0]
        row_batch = max(row_batch, max(len(g.rows) for g in chunk))
        if self._decoder_cache_arg() is not None:
            try:
                scored = list(self._decode_on_cache(chunk, input_ids, attention_mask, encoder_hidden, row_batch))
            except NoDecoderCache:
                self._seq2seq_cache_arg = None  # this model keeps no usable cache: whole rows from now on
            else:
                yield from scored
                return
        rows = [(gi, ri) for gi, g in enumerate(chunk) for ri in range(len(g.rows))]
        for start in range(0, len(rows), row_batch):
            part = rows[start : start + row_batch]
            which = torch.tensor([gi for gi, _ in part], dtype=torch.long, device=input_ids.device)
            out = self._seq2seq_forward(
                # input_ids only tell a PEFT wrapper the batch size; the encoder is not run again
                input_ids=input_ids.index_select(0, which),
                attention_mask=attention_mask.index_select(0, which),
                encoder_outputs=BaseModelOutput(
                    last_hidden_state=encoder_hidden.index_select(0, which.to(encoder_hidden.device))
                ),
                **self._decoder_input(self._pad_rows([chunk[gi].rows[ri] for gi, ri in part])),
            )
            scored = [(opt, score_row(logits, opt.continuation, self.softmax_dtype))
                      for (gi, ri), logits in zip(part, out.logits, strict=True)
                      for opt in chunk[gi].options if opt.row == ri]
            del out
            yield from scored

    _seq2seq_cache_arg: str | None | bool = False  # False: not determined yet

    def _decoder_cache_arg(self) -> str | None:
        """The forward's cache argument when options can be decoded on a shared decoder cache, else None."""
        if self._seq2seq_cache_arg is False:
            name, _ = cache_arguments(self.model)
            shifts = callable(getattr(self.model, "prepare_decoder_input_ids_from_labels", None))
            # a prompt-learning adapter (seq2seq prefix tuning) feeds its own cache: whole rows leave it alone
            config = getattr(self.model, "active_peft_config", None)
            prompt_learning = config is not None and getattr(config, "is_prompt_learning", False)
            self._seq2seq_cache_arg = name if (shifts and not prompt_learning) else None
        return self._seq2seq_cache_arg

    def _decode_on_cache(self, chunk, input_ids, attention_mask, encoder_hidden, row_batch: int):
        """Per part of whole questions (their option rows fitting ``row_batch``): the decoder-start step
        (cached), then every option's remaining tokens on that cache expanded over the options.

        Parts keep memory near ``hf``'s: a part holds its questions' cache and its rows' copy of it,
        and ``hf`` holds one cross-attention cache per request of its batch.
        """
        parts, part, size = [], [], 0
        for gi, g in enumerate(chunk):
            if part and size + len(g.rows) > row_batch:
                parts.append(part)
                part, size = [], 0
            part.append(gi)
            size += len(g.rows)
        parts.append(part)
        for questions in parts:
            sel = torch.tensor(questions, dtype=torch.long, device=input_ids.device)
            yield from self._decode_part([chunk[gi] for gi in questions], input_ids.index_select(0, sel),
                                         attention_mask.index_select(0, sel),
                                         encoder_hidden.index_select(0, sel.to(encoder_hidden.device)))

    def _decode_part(self, groups: list[ContextGroup], input_ids, attention_mask, encoder_hidden):
        start = self.model.prepare_decoder_input_ids_from_labels(
            labels=torch.zeros((len(groups), 1), dtype=torch.long, device=input_ids.device))
        first = self._no_grad_call(input_ids=input_ids, attention_mask=attention_mask, use_cache=True,
                                   encoder_outputs=BaseModelOutput(last_hidden_state=encoder_hidden),
                                   decoder_input_ids=start)
        cache = getattr(first, "cache", None)
        if cache is None:  # transformers < 5.24 names it past_key_values
            cache = getattr(first, "past_key_values", None)
        if not isinstance(cache, EncoderDecoderCache) or not hasattr(cache.cross_attention_cache, "layers"):
            raise NoDecoderCache(type(cache).__name__)  # (caches have per-layer objects since transformers 4.54)
        first_logits = first.logits[:, 0]  # [questions, vocab]: predicts every option's first token
        del first
        longer = [(gi, ri) for gi, g in enumerate(groups) for ri, row in enumerate(g.rows) if len(row) > 1]
        rest = {}
        if longer:
            which = torch.tensor([gi for gi, _ in longer], dtype=torch.long, device=input_ids.device)
            row_cache = select_cache(cache, which)
            del cache
            out = self._no_grad_call(
                input_ids=input_ids.index_select(0, which),  # only tell a PEFT wrapper the batch size
                attention_mask=attention_mask.index_select(0, which),
                encoder_outputs=BaseModelOutput(
                    last_hidden_state=encoder_hidden.index_select(0, which.to(encoder_hidden.device))),
                decoder_input_ids=self._pad_rows([groups[gi].rows[ri][:-1] for gi, ri in longer]),
                use_cache=True, **{self._seq2seq_cache_arg: row_cache},
            )
            rest = dict(zip(longer, out.logits, strict=True))
            del out, row_cache
        for gi, g in enumerate(groups):
            for ri in range(len(g.rows)):
                logits = first_logits[gi : gi + 1]
                if (gi, ri) in rest:
                    logits = torch.cat([logits, rest[(gi, ri)]], dim=0)
                for opt in g.options:
                    if opt.row == ri:
                        yield opt, score_row(logits, opt.continuation, self.softmax_dtype)
