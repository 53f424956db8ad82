"""Requests grouped by context, shared by the seq2seq and causal fast paths of ``instrobust-hf``.

A multiple-choice question reaches the harness as one loglikelihood request per option, all with
the same context. Grouping them lets a backend pay for the context once. Options whose
continuations agree on all but their last token (``continuation[:-1]``) need the same model
input, so they share one *row* (lm-eval's causal path does the same for one-token options).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from instrobust.errors import InstrobustError

# One harness loglikelihood request after tokenisation: (cache key, context ids, continuation ids).
TokenRequest = tuple[tuple[str, str] | None, list[int], list[int]]


class BackendArgumentError(InstrobustError):
    """A model argument of ``instrobust-hf`` has a value we cannot interpret."""


def parse_flag(name: str, value: object) -> bool:
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
class Option:
    """One request of a context group: where its answer goes and which row scores it."""

    index: int  # position in the harness's request list
    cache_key: tuple[str, str] | None
    continuation: list[int]  # already truncated like the harness does
    row: int = -1  # index into ContextGroup.rows


@dataclass
class ContextGroup:
    """All requests sharing one context: the context is run once for all of them."""

    context: list[int]
    options: list[Option] = field(default_factory=list)
    rows: list[list[int]] = field(default_factory=list)  # one continuation per distinct row, longest first

    def assign_rows(self) -> None:
        """Deduplicate model inputs: options with the same continuation[:-1] share a row."""
        by_prefix: dict[tuple[int, ...], list[int]] = {}
        for opt in self.options:
            by_prefix.setdefault(tuple(opt.continuation[:-1]), opt.continuation)
        ordered = sorted(by_prefix.items(), key=lambda kv: (-len(kv[1]), kv[0]))
        self.rows = [labels for _, labels in ordered]
        row_of = {prefix: i for i, (prefix, _) in enumerate(ordered)}
        for opt in self.options:
            opt.row = row_of[tuple(opt.continuation[:-1])]

    @property
    def sort_key(self) -> tuple:
        # The harness sorts by descending total length: batches of similar length, OOMs first.
        return -(len(self.context) + len(self.rows[0])), tuple(self.context)


def group_requests(requests, indices, truncate: int | None = None) -> list[ContextGroup]:
    """Group ``requests[i]`` for i in ``indices`` by context, sorted like the harness sorts."""
    groups: dict[tuple[int, ...], ContextGroup] = {}
    for i in indices:
        cache_key, context_enc, continuation_enc = requests[i]
        context, continuation = list(context_enc), list(continuation_enc)
        if truncate is not None:  # the harness's seq2seq truncation
            context, continuation = context[-truncate:], continuation[-truncate:]
        group = groups.setdefault(tuple(context), ContextGroup(context=context))
        group.options.append(Option(i, cache_key, continuation))
    for group in groups.values():
        group.assign_rows()
    return sorted(groups.values(), key=lambda g: g.sort_key)


def score_row(logits: torch.Tensor, continuation: list[int], softmax_dtype) -> tuple[float, bool]:
    """The harness's per-request answer from the logits [seq, vocab] that predict ``continuation``."""
    logprobs = F.log_softmax(logits[: len(continuation)], dim=-1, dtype=softmax_dtype)
    cont = torch.tensor(continuation, dtype=torch.long, device=logprobs.device)
    is_greedy = bool((logprobs.argmax(dim=-1) == cont).all())
    return float(torch.gather(logprobs, 1, cont.unsqueeze(-1)).sum()), is_greedy
