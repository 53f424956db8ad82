"""``instrobust-hf``: lm-eval's ``hf`` model, with one encoder pass per question for seq2seq models.

Objective: the harness's own numbers, cheaper. lm-eval 0.4.13's ``HFLM._loglikelihood_tokens``
shares work between answer options only for causal models; for an encoder-decoder (Flan-T5, T0)
every (context, option) pair re-runs the encoder, so a 4-letter MMLU question costs four full
forward passes. Here the requests are grouped by context and each group costs:

* one full forward pass (encoder + decoder) for the group's longest option, whose decoder step 0
  also scores every single-token option (they all start from the same decoder-start token);
* for the other multi-token options, decoder-only passes over the saved encoder outputs (expanded
  over the options with ``index_select``).

Decoder inputs are deduplicated by ``continuation[:-1]``: options that differ only in their last
token share a decoder row (the decoder is causal, so right padding never changes earlier
positions). The per-token log-softmax, the greedy check and the truncation rules are the
harness's, so log-likelihoods match ``hf`` up to float noise from different padding (~1e-7 in
float32) and is_greedy flags are equal.

Everything else is the parent's: causal models, ``loglikelihood_rolling``, ``generate_until``,
and prompt-learning PEFT adapters other than prefix tuning (whose virtual tokens change the
encoder input, see ``_fast_path_blocker``).
"""
from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from lm_eval.models.utils_hf import pad_and_concat
from tqdm import tqdm
from transformers.modeling_outputs import BaseModelOutput

from instrobust.errors import InstrobustError

log = logging.getLogger(__name__)

# One harness loglikelihood request after tokenisation: (cache key, context ids, continuation ids).
TokenRequest = tuple[tuple[str, str] | None, list[int], list[int]]


class BackendArgumentError(InstrobustError):
    """A model argument of ``instrobust-hf`` has a value we cannot interpret."""


def _parse_flag(name: str, value: object) -> bool:
    # lm-eval's --model_args parser turns "True"/"False" into bools; anything else is a mistake
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise BackendArgumentError(
        f"instrobust-hf model argument {name}={value!r}: expected True or False (e.g. --model_args {name}=False)"
    )


@dataclass
class _Option:
    """One request of a context group: where its answer goes and which decoder row scores it."""

    index: int  # position in the harness's request list
    cache_key: tuple[str, str] | None
    continuation: list[int]  # already truncated like the harness does
    row: int = -1  # index into _ContextGroup.rows


@dataclass
class _ContextGroup:
    """All requests sharing one (truncated) context: one encoder pass."""

    context: list[int]
    options: list[_Option] = field(default_factory=list)
    # Decoder label rows, longest first; row 0 rides along with the encoder pass.
    rows: list[list[int]] = field(default_factory=list)

    def assign_rows(self) -> None:
        """Deduplicate decoder inputs: options with the same continuation[:-1] share a row."""
        by_prefix: dict[tuple[int, ...], list[int]] = {}
        for opt in self.options:
            prefix = tuple(opt.continuation[:-1])
            # any option with this prefix gives the same decoder input (labels shifted right)
            by_prefix.setdefault(prefix, opt.continuation)
        ordered = sorted(by_prefix.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        self.rows = [labels for _, labels in ordered]
        row_of = {prefix: i for i, (prefix, _) in enumerate(ordered)}
        for opt in self.options:
            opt.row = row_of[tuple(opt.continuation[:-1])]

    @property
    def sort_key(self) -> tuple:
        # The harness sorts by descending total length: batches of similar length, OOMs first.
        return -(len(self.context) + len(self.rows[0])), tuple(self.context)


@register_model("instrobust-hf")
class FastSeq2SeqHFLM(HFLM):
    """``hf`` plus context-grouped scoring for encoder-decoder models.

    Accepts every ``hf`` model argument (``pretrained``, ``peft``, ``dtype``, ``device``,
    ``batch_size`` incl. ``auto``, ...) and one more: ``fast`` (default True; ``fast=False``
    gives the parent's path, for A/B checks). ``batch_size`` counts contexts per encoder pass and
    decoder rows per decoder-only pass, so peak memory stays at the ``hf`` level.
    """

    def __init__(self, *args, fast: bool = True, **kwargs) -> None:
        fast = _parse_flag("fast", fast)  # before the (slow) model load
        super().__init__(*args, **kwargs)
        self.fast = fast
        self._rolling_depth = 0
        blocker = self._fast_path_blocker()
        if self.fast and blocker and self.backend == "seq2seq":
            log.warning("instrobust-hf: using the plain hf scoring path because %s", blocker)

    # -- when the fast path applies -------------------------------------------------------------

    def _fast_path_blocker(self) -> str | None:
        """Why the grouped path cannot promise the harness's numbers here (None: it can)."""
        if not self.fast:
            return "fast=False was given"
        if self.backend != "seq2seq":
            return "the model is not an encoder-decoder (the parent already groups causal requests)"
        peft_config = getattr(self.model, "active_peft_config", None)
        if peft_config is not None and getattr(peft_config, "is_prompt_learning", False):
            peft_type = str(getattr(peft_config.peft_type, "value", peft_config.peft_type))
            # Prefix tuning only feeds the decoder's attention caches; prompt/p-tuning prepend
            # virtual tokens to the encoder input, which reused encoder outputs would not carry.
            if peft_type != "PREFIX_TUNING":
                return f"the PEFT adapter is {peft_type} (only prefix tuning and non-prompt adapters are grouped)"
        return None

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False):
        # Rolling windows each have their own context: nothing to share, keep the parent's path.
        self._rolling_depth += 1
        try:
            return super().loglikelihood_rolling(requests, disable_tqdm=disable_tqdm)
        finally:
            self._rolling_depth -= 1

    def _loglikelihood_tokens(
        self,
        requests: list[TokenRequest],
        disable_tqdm: bool = False,
        override_bs: int | None = None,
    ) -> list[tuple[float, bool]]:
        if self._rolling_depth or override_bs is not None or self._fast_path_blocker():
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        return self._grouped_seq2seq_loglikelihood(requests, disable_tqdm=disable_tqdm)

    # -- the grouped seq2seq path --------------------------------------------------------------

    def _group_by_context(self, requests: Sequence[TokenRequest]) -> list[_ContextGroup]:
        groups: dict[tuple[int, ...], _ContextGroup] = {}
        for i, (cache_key, context_enc, continuation_enc) in enumerate(requests):
            # same checks and truncation as HFLM._loglikelihood_tokens' seq2seq branch
            assert len(context_enc) > 0
            assert len(continuation_enc) > 0
            assert len(continuation_enc) <= self.max_length
            context = list(context_enc)[-self.max_length :]
            group = groups.setdefault(tuple(context), _ContextGroup(context=context))
            group.options.append(_Option(i, cache_key, list(continuation_enc)[-self.max_length :]))
        for group in groups.values():
            group.assign_rows()
        return sorted(groups.values(), key=lambda g: g.sort_key)

    def _decoder_input(self, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        """What the harness's ``labels=`` call makes the model feed its decoder, without the loss."""
        shift = getattr(self.model, "prepare_decoder_input_ids_from_labels", None)
        if callable(shift):
            return {"decoder_input_ids": shift(labels=labels)}
        return {"labels": labels}

    def _forward(self, **kwargs):
        # the parent's _model_call context (no grad, optional autocast), returning the whole output.
        # Scoring never reuses the decoder's key/value cache: don't build it (hf does, memory only).
        # Prefix-tuning adapters pass their prefixes in that cache, so leave those calls alone.
        if getattr(self.model, "active_peft_config", None) is None:
            kwargs["use_cache"] = False
        with (
            torch.no_grad(),
            torch.autocast(
                device_type=self.device.type,
                dtype=self.mixed_precision_dtype,
                enabled=self.mixed_precision_dtype is not None,
            ),
        ):
            return self.model(**kwargs)

    def _pad_rows(self, rows: list[list[int]]) -> torch.Tensor:
        tensors = [torch.tensor(r, dtype=torch.long, device=self.device) for r in rows]
        return pad_and_concat(max(len(r) for r in rows), tensors)  # right-padded with 0, as hf does

    def _score(self, logits: torch.Tensor, continuation: list[int]) -> tuple[float, bool]:
        """The harness's per-request answer from one decoder row's logits [seq, vocab]."""
        logprobs = F.log_softmax(logits[: len(continuation)], dim=-1, dtype=self.softmax_dtype)
        cont = torch.tensor(continuation, dtype=torch.long, device=logprobs.device)
        is_greedy = bool((logprobs.argmax(dim=-1) == cont).all())
        return float(torch.gather(logprobs, 1, cont.unsqueeze(-1)).sum()), is_greedy

    def _contexts_per_batch(self, pos: int, groups: list[_ContextGroup]) -> int:
        if self.batch_size != "auto":
            return int(self.batch_size)
        # the parent's detector sizes a full forward on the longest request at `pos`
        representatives = [(None, g.context, g.rows[0]) for g in groups]
        return max(1, int(self._batch_scheduler(pos, representatives)))

    def _grouped_seq2seq_loglikelihood(
        self, requests: list[TokenRequest], disable_tqdm: bool = False
    ) -> list[tuple[float, bool]]:
        groups = self._group_by_context(requests)
        answers: list[tuple[float, bool] | None] = [None] * len(requests)
        if self.batch_size == "auto":
            self.batch_sizes = {}  # as the parent: detect against this request set
        pbar = tqdm(
            total=len(requests),
            disable=(disable_tqdm or (self.rank != 0)),
            desc="Running loglikelihood requests (grouped by context)",
        )
        pos = 0
        while pos < len(groups):
            n = self._contexts_per_batch(pos, groups)
            chunk = groups[pos : pos + n]
            pos += len(chunk)
            for opt, answer in self._score_chunk(chunk, row_batch=n):
                answers[opt.index] = answer
                if opt.cache_key is not None:
                    self.cache_hook.add_partial("loglikelihood", opt.cache_key, answer)
                pbar.update(1)
        pbar.close()
        assert all(a is not None for a in answers)
        return answers  # type: ignore[return-value]

    def _score_chunk(self, chunk: list[_ContextGroup], row_batch: int):
        """Yield (option, answer) for every option of the chunk's groups."""
        contexts = [torch.tensor(g.context, dtype=torch.long, device=self.device) for g in chunk]
        inp_len = max(len(c) for c in contexts)
        masks = [torch.ones_like(c) for c in contexts]  # before padding: pad_and_concat pads in place
        input_ids = pad_and_concat(inp_len, contexts)  # right padding + mask, as hf does
        attention_mask = pad_and_concat(inp_len, masks)

        # Pass 1: encoder for every context + the decoder on each group's row 0.
        out = self._forward(
            input_ids=input_ids,
            attention_mask=attention_mask,
            **self._decoder_input(self._pad_rows([g.rows[0] for g in chunk])),
        )
        encoder_hidden = out.encoder_last_hidden_state
        if encoder_hidden is None and any(len(g.rows) > 1 for g in chunk):  # a model that hides it
            encoder_hidden = self.model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)[0]
        scored = [(opt, self._score(logits, opt.continuation))
                  for g, logits in zip(chunk, out.logits, strict=True) for opt in g.options if opt.row == 0]
        del out  # free this pass's logits and caches before the decoder-only passes
        yield from scored

        # Pass 2: decoder-only over the saved encoder outputs for the remaining rows.
        extra = [(gi, ri) for gi, g in enumerate(chunk) for ri in range(1, len(g.rows))]
        for start in range(0, len(extra), row_batch):
            part = extra[start : start + row_batch]
            which = torch.tensor([gi for gi, _ in part], dtype=torch.long, device=input_ids.device)
            out = self._forward(
                # input_ids only tell a PEFT wrapper the batch size; the encoder is not run again
                input_ids=input_ids.index_select(0, which),
                attention_mask=attention_mask.index_select(0, which),
                encoder_outputs=BaseModelOutput(
                    last_hidden_state=encoder_hidden.index_select(0, which.to(encoder_hidden.device))
                ),
                **self._decoder_input(self._pad_rows([chunk[gi].rows[ri] for gi, ri in part])),
            )
            scored = [(opt, self._score(logits, opt.continuation))
                      for (gi, ri), logits in zip(part, out.logits, strict=True)
                      for opt in chunk[gi].options if opt.row == ri]
            del out
            yield from scored
