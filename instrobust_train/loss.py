"""The alignment objective of the seed paper (section 5), in log space.

    L     = (1 - lambda) * CE + lambda * L_KL
    L_KL  = 1/(N-1) * sum_{i != r} sum_j KL( y_i^(j) || y_r^(j) )

for one example with N instruction variants (r = the reference instruction, i = its
paraphrases) and j running over target positions; y^(j) is the model's distribution over the
vocabulary at target position j. With several examples in a batch, L_KL is their mean.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from instrobust_train.collate import IGNORE_INDEX


def target_log_probs(
    logits: torch.Tensor, labels: torch.Tensor, *, causal: bool
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probabilities at the target positions, indexed by target position j.

    Returns ``(log_probs [R, J, V] float32, targets [R, J], valid [R, J])``. Seq2seq decoder
    positions already are target positions. For causal LMs the logit at position t predicts
    token t+1 and the response starts at a different offset in each row (the instructions
    differ in length), so the j-th labelled token of every row is gathered to column j: rows of
    one group then compare the same target token, whatever their prompt lengths.
    """
    if causal:
        logits, labels = logits[:, :-1], labels[:, 1:]
        mask = labels != IGNORE_INDEX
        rows, pos = mask.nonzero(as_tuple=True)
        rank = (mask.cumsum(1) - 1)[rows, pos]  # j of each labelled position within its row
        width = int(rank.max()) + 1 if rank.numel() else 1
        n_rows, vocab = logits.shape[0], logits.shape[-1]
        index = torch.zeros(n_rows, width, dtype=torch.long, device=logits.device)
        index[rows, rank] = pos
        targets = torch.full((n_rows, width), IGNORE_INDEX, dtype=torch.long, device=logits.device)
        targets[rows, rank] = labels[rows, pos]
        logits = logits.gather(1, index.unsqueeze(-1).expand(-1, -1, vocab))
        labels = targets
    valid = labels != IGNORE_INDEX
    return logits.float().log_softmax(dim=-1), labels, valid


def cross_entropy(log_probs: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Token-mean negative log-likelihood of ``targets`` over the valid positions."""
    nll = -log_probs.gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1)
    return torch.where(valid, nll, 0.0).sum() / valid.sum().clamp_min(1)


class _PairwiseKL(torch.autograd.Function):
    """KL(y_i^(j) || y_r^(j)) for each (paraphrase row i, reference row r) pair and position j: [P, J].

    Same values as ``F.kl_div(log_probs[r], log_probs[i], log_target=True).sum(-1)`` on indexed
    copies, but one pair at a time: autograd on the batched form would hold several [P, J, V]
    temporaries (the two row copies, the elementwise KL and its backward terms), which on a 32k
    vocabulary weigh more than the model's own activations. Saved for backward is only
    ``log_probs``, which log_softmax keeps anyway; the gradient goes into one buffer:
    d/d log p_i = p_i * (log p_i - log p_r + 1) and d/d log p_r = -p_i per pair and position.
    A ``-inf`` log-probability (a masked vocabulary entry) would make 0 * inf = NaN or an infinite
    loss: the pairs whose KL comes out non-finite are redone with log-probabilities clamped at
    :data:`LOG_PROB_FLOOR` (see :func:`kl_consistency_loss`).
    """

    @staticmethod
    def forward(ctx, log_probs, para_rows, ref_rows, mask, detach_reference):
        pairs = list(zip(para_rows.tolist(), ref_rows.tolist()))
        out = torch.stack([
            F.kl_div(log_probs[r], log_probs[i], reduction="none", log_target=True).sum(-1) for i, r in pairs
        ])
        floored = (~torch.isfinite(out).all(-1)).nonzero(as_tuple=True)[0].tolist()  # one sync, usually empty
        for k in floored:
            i, r = pairs[k]
            out[k] = F.kl_div(_floor(log_probs[r]), _floor(log_probs[i]), reduction="none", log_target=True).sum(-1)
        ctx.save_for_backward(log_probs, mask)
        ctx.pairs, ctx.floored, ctx.detach_reference = pairs, set(floored), detach_reference
        return torch.where(mask, out, 0.0)

    @staticmethod
    def backward(ctx, grad_out):
        log_probs, mask = ctx.saved_tensors
        # Paraphrase rows are written whole below; only the other rows need zeros first.
        grad = torch.empty_like(log_probs)
        written = {i for i, _ in ctx.pairs}
        for row in range(log_probs.shape[0]):
            if row not in written:
                grad[row].zero_()
        weights = torch.where(mask, grad_out, 0.0).unsqueeze(-1)  # [P, J, 1]
        for k, (i, r) in enumerate(ctx.pairs):
            log_p, log_q = log_probs[i], log_probs[r]
            if k in ctx.floored:
                log_p, log_q = _floor(log_p), _floor(log_q)
            weighted_p = log_p.exp().mul_(weights[k])
            torch.addcmul(weighted_p, weighted_p, log_p - log_q, out=grad[i])  # w p (log p - log q + 1)
            if not ctx.detach_reference:
                grad[r].sub_(weighted_p)
        return grad, None, None, None, None


# A masked (-inf) log-probability counts as log(e^-100) ~ log(3.7e-44): below any probability a
# real softmax gives (so no real entry moves), yet the penalty for mass p that the reference
# forbids, p * (log p + 100), stays bounded. The dtype's minimum (-3.4e38) gave ~1e37 there.
LOG_PROB_FLOOR = -100.0


def _floor(log_probs: torch.Tensor) -> torch.Tensor:
    return log_probs.clamp_min(LOG_PROB_FLOOR)


def kl_consistency_loss(
    log_probs: torch.Tensor,
    valid: torch.Tensor,
    group_index: torch.Tensor,
    is_reference: torch.Tensor,
    *,
    reduction: str = "sum",
    detach_reference: bool = False,
) -> torch.Tensor:
    """L_KL = 1/(N-1) sum_{i != r} sum_j KL(y_i^(j) || y_r^(j)), averaged over the groups of a batch.

    ``log_probs`` [R, J, V] are log-softmax outputs aligned on target position j (see
    :func:`target_log_probs`); rows with the same ``group_index`` are the N instruction variants of
    one example and exactly one of them has ``is_reference``. ``reduction='sum'`` sums over j as in
    the paper; ``'mean'`` averages over the valid j instead. Padding positions are masked out.
    Computed with ``kl_div(log_target=True)`` one row pair at a time (see :class:`_PairwiseKL`).

    Masked vocabulary entries (``-inf`` log-probabilities) are clamped, not dropped: in a pair
    with any ``-inf`` (whose KL would be NaN or infinite) every log-probability below
    :data:`LOG_PROB_FLOOR` (-100) is raised to it. So an entry masked in both rows adds 0 (up
    to e^-100); an entry the reference masks but where the paraphrase has probability p adds
    p * (log p + 100), at most 100 per position, with a finite gradient that moves the
    paraphrase's mass off it. Groups without a paraphrase add nothing; a batch without any
    paraphrase gives 0 (still attached to the graph).
    """
    if reduction not in ("sum", "mean"):
        raise ValueError(f"reduction must be 'sum' or 'mean', got {reduction!r}")
    n_groups = int(group_index.max()) + 1
    ref_count = torch.zeros(n_groups, dtype=torch.long, device=group_index.device).index_add_(
        0, group_index, is_reference.long()
    )
    if not torch.all(ref_count == 1):
        raise ValueError("every group needs exactly one reference row")
    ref_row = torch.empty(n_groups, dtype=torch.long, device=group_index.device)
    ref_row[group_index[is_reference]] = is_reference.nonzero(as_tuple=True)[0]
    para_rows = (~is_reference).nonzero(as_tuple=True)[0]
    if para_rows.numel() == 0:
        return log_probs.sum() * 0.0
    para_groups = group_index[para_rows]
    ref_rows = ref_row[para_groups]
    mask = valid[para_rows] & valid[ref_rows]
    kl = _PairwiseKL.apply(log_probs, para_rows, ref_rows, mask, detach_reference).sum(-1)  # [P]
    if reduction == "mean":
        kl = kl / mask.sum(-1).clamp_min(1)
    per_group = torch.zeros(n_groups, dtype=kl.dtype, device=kl.device).index_add_(0, para_groups, kl)
    n_para = torch.zeros(n_groups, dtype=kl.dtype, device=kl.device).index_add_(
        0, para_groups, torch.ones_like(kl)
    )
    has_para = n_para > 0
    return (per_group[has_para] / n_para[has_para]).mean()
