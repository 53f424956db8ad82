"""The seq2seq half of ``instrobust-hf``: one encoder pass per question.

lm-eval 0.4.13's ``HFLM._loglikelihood_tokens`` re-runs the encoder for every (context, option)
pair of an encoder-decoder model (Flan-T5, T0), so a 4-option question costs four full forward
passes. Here the requests are grouped by context and each batch of contexts costs:

* single-token options only (letters): one full forward pass (encoder + decoder), whose decoder
  step 0 scores every option (they all start from the decoder-start token);
* option texts: one encoder pass, then decoder-only passes over the saved encoder outputs
  (expanded over the options with ``index_select``); a pass takes at least all the options of
  one question, so a question's option texts are decoded together.

The per-token log-softmax, the greedy check and the truncation rules are the harness's, so
log-likelihoods match ``hf`` up to float noise from different padding (~1e-7 in float32).
Prompt-learning PEFT adapters other than prefix tuning change the encoder input; the model class
(:mod:`instrobust.models.fast_hf`) sends those to the parent's path.
"""
from __future__ import annotations

import torch
from lm_eval.models.utils_hf import pad_and_concat
from transformers.modeling_outputs import BaseModelOutput

from instrobust.models.grouping import ContextGroup, score_row


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
        rows = [(gi, ri) for gi, g in enumerate(chunk) for ri in range(len(g.rows))]
        row_batch = max(row_batch, max(len(g.rows) for g in chunk))
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
