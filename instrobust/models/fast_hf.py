"""``instrobust-hf``: lm-eval's ``hf`` model, paying for each multiple-choice context once.

Requests are grouped by context (:mod:`instrobust.models.grouping`) and scored

* for encoder-decoder models with one encoder pass per question (:mod:`.seq2seq_fast`);
* for causal models from one pass over the shared context and its key/value cache (:mod:`.causal_fast`).

Tokenisation is the parent's (``HFLM.loglikelihood`` -> ``_encode_pair``), and so are the
log-softmax, greedy check and truncation rules, so answers equal ``hf``'s up to float noise.
Whatever the fast paths cannot promise that for goes to the parent's code, and the reason is
logged once: ``fast=False``, prompt-learning PEFT adapters that feed their own virtual tokens or
cache, models whose forward takes no key/value cache, ``loglikelihood_rolling`` and generation.
"""
from __future__ import annotations

import logging

import torch
from lm_eval.api.registry import register_model
from lm_eval.models.huggingface import HFLM
from tqdm import tqdm

from instrobust.models.causal_fast import (CacheUnusable, CausalPrefixScoring, SharedPassScoring, cache_arguments,
                                          takes_custom_masks)
from instrobust.models.grouping import ContextGroup, TokenRequest, group_requests, parse_flag
from instrobust.models.seq2seq_fast import Seq2SeqGroupedScoring

log = logging.getLogger(__name__)


@register_model("instrobust-hf")
class FastHFLM(SharedPassScoring, CausalPrefixScoring, Seq2SeqGroupedScoring, HFLM):
    """``hf`` plus context-grouped multiple-choice scoring for causal and encoder-decoder models.

    Accepts every ``hf`` model argument (``pretrained``, ``peft``, ``dtype``, ``device``,
    ``batch_size`` incl. ``auto``, ...) and one more: ``fast`` (default True; ``fast=False`` gives
    the parent's path, for A/B checks). ``batch_size`` counts *contexts* (questions) per pass over
    the contexts; see docs/fast-backend.md for what each pass holds.
    """

    def __init__(self, *args, fast: bool = True, **kwargs) -> None:
        fast = parse_flag("fast", fast)  # before the (slow) model load
        super().__init__(*args, **kwargs)
        self.fast = fast
        self._blocker = self._find_blocker()
        if self.fast and self._blocker:
            log.warning("instrobust-hf: using the plain hf scoring path because %s", self._blocker)

    # -- when the fast paths apply ---------------------------------------------------------------

    def _find_blocker(self) -> str | None:
        """Why the grouped paths cannot promise the harness's numbers here (None: they can)."""
        if not self.fast:
            return "fast=False was given"
        if self.backend not in ("causal", "seq2seq"):
            return f"the model backend is {self.backend!r}"
        peft_config = getattr(self.model, "active_peft_config", None)
        if peft_config is not None and getattr(peft_config, "is_prompt_learning", False):
            peft_type = str(getattr(peft_config.peft_type, "value", peft_config.peft_type))
            # Seq2seq prefix tuning only feeds the decoder's attention caches; every other prompt
            # method prepends virtual tokens (or, causal, its own cache) that a shared pass would not carry.
            if self.backend == "causal" or peft_type != "PREFIX_TUNING":
                return f"the PEFT adapter is {peft_type}, which feeds the model its own virtual tokens or cache"
        if self.backend == "causal":
            self._cache_arg, self._keeps_logits = cache_arguments(self.model)
            # one pass per batch (shared prefix, custom mask) where the model takes such a mask,
            # checked against hf's code on the first question; else the two-pass cache path
            self._causal_mode = "shared" if takes_custom_masks(self.model) else "cache"
            if self._causal_mode == "cache" and self._cache_arg is None:
                return "the model's forward takes neither a custom attention mask nor a key/value cache"
        return None

    def _no_grad_call(self, module=None, **kwargs):
        """The parent's ``_model_call`` context (no grad, optional autocast), returning the whole output."""
        with (
            torch.no_grad(),
            torch.autocast(
                device_type=self.device.type,
                dtype=self.mixed_precision_dtype,
                enabled=self.mixed_precision_dtype is not None,
            ),
        ):
            return (module or self.model)(**kwargs)

    def _loglikelihood_tokens(
        self,
        requests: list[TokenRequest],
        disable_tqdm: bool = False,
        override_bs: int | None = None,
    ) -> list[tuple[float, bool]]:
        # override_bs: loglikelihood_rolling's windows, each with its own context: nothing to share
        if override_bs is not None or self._blocker:
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm, override_bs=override_bs)
        if self.backend == "seq2seq":
            for i, (_, context_enc, continuation_enc) in enumerate(requests):
                # same checks as HFLM._loglikelihood_tokens
                assert len(context_enc) > 0 and len(continuation_enc) > 0, f"empty request {i}"
                assert len(continuation_enc) <= self.max_length
            groups = group_requests(requests, range(len(requests)), truncate=self.max_length)
            return self._run_groups(requests, groups, [], disable_tqdm)
        limit = self._causal_fast_limit()
        fits = [len(c) >= 2 and len(c) + len(x) <= limit for _, c, x in requests]
        groups = group_requests(requests, [i for i, ok in enumerate(fits) if ok])
        if self._causal_mode == "shared":
            # one pass holds a context and all its option rows: batch questions of similar such
            # length (the harness's order, by context + longest option, pads more)
            groups.sort(key=lambda g: (-(len(g.context) - 1 + sum(len(r) for r in g.rows)), tuple(g.context)))
        try:
            return self._run_groups(requests, groups, [i for i, ok in enumerate(fits) if not ok], disable_tqdm)
        except CacheUnusable as exc:
            self._blocker = str(exc)
            log.warning("instrobust-hf: using the plain hf scoring path because %s", exc)
            return super()._loglikelihood_tokens(requests, disable_tqdm=disable_tqdm)

    _shared_checked = False

    def _check_shared_pass(self, requests, group: ContextGroup) -> None:
        """Once per model: the one-pass layout must reproduce hf's answers on a real question.

        A model whose attention ignores or rewrites a custom 4D mask would give different numbers;
        then (said once) the two-pass cache path is used instead.
        """
        self._shared_checked = True
        got = {opt.index: answer for opt, answer in self._score_shared_chunk([group])}
        want = HFLM._loglikelihood_tokens(self, [requests[i] for i in got], disable_tqdm=True)
        worst = max(abs(got[i][0] - w[0]) for i, w in zip(got, want, strict=True))
        if worst > 1e-3:
            self._causal_mode = "cache" if self._cache_arg else "plain"
            log.warning("instrobust-hf: the one-pass shared-prefix layout differs from hf by %.3g on this model; "
                        "using the %s path", worst, "key/value cache" if self._cache_arg else "plain hf")
            if not self._cache_arg:
                self._blocker = "the model's attention does not follow a custom mask and it has no cache"
                raise CacheUnusable(self._blocker)

    # -- the grouped loop --------------------------------------------------------------------------

    def _contexts_per_batch(self, pos: int, groups: list[ContextGroup]) -> int:
        if self.batch_size != "auto":
            return int(self.batch_size)
        # the parent's detector sizes a full forward on the longest request at `pos`
        representatives = [(None, g.context, g.rows[0]) for g in groups]
        return max(1, int(self._batch_scheduler(pos, representatives)))

    def _run_groups(self, requests, groups: list[ContextGroup], plain: list[int], disable_tqdm: bool):
        answers: list[tuple[float, bool] | None] = [None] * len(requests)
        if plain:  # requests the fast path does not take: the parent's code, the parent's answers
            done = super()._loglikelihood_tokens([requests[i] for i in plain], disable_tqdm=disable_tqdm)
            for i, answer in zip(plain, done, strict=True):
                answers[i] = answer
        if self.batch_size == "auto":
            self.batch_sizes = {}  # as the parent: detect against this request set
        pbar = tqdm(total=len(requests) - len(plain), disable=(disable_tqdm or (self.rank != 0)),
                    desc="Running loglikelihood requests (grouped by context)")
        pos = 0
        while pos < len(groups):
            n = self._contexts_per_batch(pos, groups)
            chunk = groups[pos : pos + n]
            pos += len(chunk)
            if self.backend == "seq2seq":
                scored = self._score_seq2seq_chunk(chunk, row_batch=n)
            elif self._causal_mode == "shared":
                if not self._shared_checked:
                    self._check_shared_pass(requests, chunk[0])
                scored = (self._score_shared_chunk if self._causal_mode == "shared" else self._score_causal_chunk)(chunk)
            else:
                scored = self._score_causal_chunk(chunk)
            for opt, answer in scored:
                answers[opt.index] = answer
                if opt.cache_key is not None:
                    self.cache_hook.add_partial("loglikelihood", opt.cache_key, answer)
                pbar.update(1)
        pbar.close()
        assert all(a is not None for a in answers)
        return answers


FastSeq2SeqHFLM = FastHFLM  # the name this class had while it only sped up seq2seq models
