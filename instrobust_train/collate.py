"""Batch groups: each example brings its reference-instruction row plus its paraphrase rows.

The Trainer's sampler draws examples (so shuffling, ``--seed``, resuming and the DDP sharding
of ``DistributedSampler`` all act on whole groups and never split one), and
:class:`GroupCollator` flattens the drawn groups into one batch padded to its own longest row.
Padding is always on the right: a causal LM without ``position_ids`` would otherwise see its
positions shifted by the padding.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

IGNORE_INDEX = -100


def _pad(seqs: list[list[int]], value: int) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    out = torch.full((len(seqs), width), value, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = torch.tensor(s, dtype=torch.long)
    return out


@dataclass
class GroupCollator:
    """Flatten groups into rows; add ``group_index`` and ``is_reference`` for the KL term.

    Seq2seq: ``input_ids`` is the prompt (one per instruction variant), ``labels`` the shared
    target and ``decoder_input_ids`` the target shifted right, so decoder position j holds the same
    target token in every row of a group. Causal: each row is prompt + target with the prompt
    masked out of ``labels``; prompts differ in length, so targets sit at different offsets and
    the loss aligns them on label positions (:func:`instrobust_train.loss.target_log_probs`).
    """

    pad_token_id: int
    is_encoder_decoder: bool
    decoder_start_token_id: int | None = None

    def __call__(self, groups: list[dict]) -> dict[str, torch.Tensor]:
        prompts, targets, group_index, is_reference = [], [], [], []
        for g, item in enumerate(groups):
            for v, prompt in enumerate(item["prompt_ids"]):
                prompts.append(list(prompt))
                targets.append(list(item["target_ids"]))
                group_index.append(g)
                is_reference.append(v == 0)
        batch: dict[str, torch.Tensor] = {}
        if self.is_encoder_decoder:
            batch["input_ids"] = _pad(prompts, self.pad_token_id)
            batch["attention_mask"] = _pad([[1] * len(p) for p in prompts], 0)
            batch["labels"] = _pad(targets, IGNORE_INDEX)
            start = self.pad_token_id if self.decoder_start_token_id is None else self.decoder_start_token_id
            batch["decoder_input_ids"] = _pad([[start] + t[:-1] for t in targets], self.pad_token_id)
        else:
            batch["input_ids"] = _pad([p + t for p, t in zip(prompts, targets)], self.pad_token_id)
            batch["attention_mask"] = _pad([[1] * (len(p) + len(t)) for p, t in zip(prompts, targets)], 0)
            batch["labels"] = _pad([[IGNORE_INDEX] * len(p) + t for p, t in zip(prompts, targets)], IGNORE_INDEX)
        batch["group_index"] = torch.tensor(group_index, dtype=torch.long)
        batch["is_reference"] = torch.tensor(is_reference, dtype=torch.bool)
        return batch
