"""The alignment objective on hand-made tensors: formula, direction, masking, alignment, no NaN."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from instrobust_train.collate import GroupCollator
from instrobust_train.loss import LOG_PROB_FLOOR, _PairwiseKL, cross_entropy, kl_consistency_loss, target_log_probs


def _kl(p_logits: torch.Tensor, q_logits: torch.Tensor) -> float:
    """KL(p || q) for one position, the textbook way."""
    p, q = p_logits.softmax(-1), q_logits.softmax(-1)
    return float((p * (p.log() - q.log())).sum())


def test_kl_matches_the_paper_formula_direction_and_group_mean():
    torch.manual_seed(0)
    # Two groups: rows 0 (ref), 1, 2 | rows 3 (ref), 4. Three target positions, vocab 5.
    logits = torch.randn(5, 3, 5)
    valid = torch.ones(5, 3, dtype=torch.bool)
    valid[3:, 2] = False  # group 2's target is one token shorter
    group = torch.tensor([0, 0, 0, 1, 1])
    is_ref = torch.tensor([True, False, False, True, False])
    got = kl_consistency_loss(logits.log_softmax(-1), valid, group, is_ref, reduction="sum")
    g0 = (sum(_kl(logits[1, j], logits[0, j]) for j in range(3))
          + sum(_kl(logits[2, j], logits[0, j]) for j in range(3))) / 2  # 1/(N-1) with N = 3
    g1 = sum(_kl(logits[4, j], logits[3, j]) for j in range(2))  # N = 2; padded j=2 left out
    assert got.item() == pytest.approx((g0 + g1) / 2, rel=1e-5)
    # KL(paraphrase || reference), not the reverse.
    reverse = sum(_kl(logits[4, j], logits[3, j]) for j in range(2))
    assert reverse != pytest.approx(sum(_kl(logits[3, j], logits[4, j]) for j in range(2)), rel=1e-3)
    mean = kl_consistency_loss(logits.log_softmax(-1), valid, group, is_ref, reduction="mean")
    assert mean.item() == pytest.approx((g0 / 3 + g1 / 2) / 2, rel=1e-5)


def test_kl_is_zero_for_identical_rows_and_positive_otherwise():
    torch.manual_seed(1)
    ref = torch.randn(1, 4, 7)
    same = torch.cat([ref, ref, ref]).log_softmax(-1)
    valid = torch.ones(3, 4, dtype=torch.bool)
    group, is_ref = torch.zeros(3, dtype=torch.long), torch.tensor([True, False, False])
    assert kl_consistency_loss(same, valid, group, is_ref).item() == 0.0
    other = torch.cat([ref, ref, ref + 0.5 * torch.randn(1, 4, 7)]).log_softmax(-1)
    assert kl_consistency_loss(other, valid, group, is_ref).item() > 1e-3


def test_padding_positions_do_not_count():
    torch.manual_seed(2)
    logits = torch.randn(2, 4, 6)
    valid = torch.tensor([[True, True, False, False], [True, True, False, False]])
    group, is_ref = torch.zeros(2, dtype=torch.long), torch.tensor([True, False])
    before = kl_consistency_loss(logits.log_softmax(-1), valid, group, is_ref)
    logits[:, 2:] = torch.randn(2, 2, 6) * 100  # garbage where the rows are padded
    after = kl_consistency_loss(logits.log_softmax(-1), valid, group, is_ref)
    assert before.item() == pytest.approx(after.item(), rel=1e-6)


def test_masked_vocabulary_entries_give_no_nan():
    torch.manual_seed(3)
    logits = torch.randn(2, 3, 6)
    logits[:, :, -1] = -math.inf  # e.g. padded vocabulary rows masked by the model
    logits[1, 1, 4] = -math.inf  # only in the paraphrase row
    logits.requires_grad_(True)
    log_probs, targets, valid = target_log_probs(logits, torch.tensor([[1, 2, 3], [1, 2, 3]]), causal=False)
    loss = 0.5 * cross_entropy(log_probs, targets, valid) + 0.5 * kl_consistency_loss(
        log_probs, valid, torch.zeros(2, dtype=torch.long), torch.tensor([True, False]))
    loss.backward()
    assert torch.isfinite(loss) and loss.item() > 0
    assert torch.isfinite(logits.grad).all()


def test_reference_masking_an_entry_the_paraphrase_uses_costs_a_bounded_penalty():
    """-inf in the reference where the paraphrase has mass p: clamped at the floor, p * (log p + 100), not ~1e37."""
    torch.manual_seed(5)
    logits = torch.randn(2, 2, 6, dtype=torch.float64)
    logits[0, 0, 2] = -math.inf  # reference forbids entry 2 at j = 0; the paraphrase (row 1) does not
    logits.requires_grad_(True)
    log_probs = logits.log_softmax(-1)
    kl = kl_consistency_loss(log_probs, torch.ones(2, 2, dtype=torch.bool), torch.zeros(2, dtype=torch.long),
                             torch.tensor([True, False]))
    (grad,) = torch.autograd.grad(kl, logits)
    lp = log_probs.detach()
    p, log_q = lp[1, 0].exp(), lp[0, 0].clamp_min(LOG_PROB_FLOOR)
    expected = float((p * (lp[1, 0] - log_q)).sum()) + _kl(logits[1, 1].detach(), logits[0, 1].detach())
    assert float(p[2]) > 0.05  # the paraphrase really puts mass on the masked entry
    assert kl.item() == pytest.approx(expected, rel=1e-9)
    assert 0.05 * 100 < kl.item() < 2 * 100  # dominated by p[2] * (log p[2] + 100), far from 1e37
    assert torch.isfinite(grad).all() and grad.abs().max() < 1e3
    assert grad[1, 0, 2] > 0  # descending the loss lowers the paraphrase's logit on the forbidden entry


def test_causal_rows_are_aligned_on_label_positions_not_offsets():
    # Reference prompt 3 tokens, paraphrase prompt 5 tokens, same 2-token target (ids 7, 8).
    collate = GroupCollator(pad_token_id=0, is_encoder_decoder=False)
    batch = collate([{"prompt_ids": [[11, 12, 13], [21, 22, 23, 24, 25]], "target_ids": [7, 8]}])
    assert batch["labels"].tolist() == [[-100, -100, -100, 7, 8, -100, -100], [-100] * 5 + [7, 8]]
    # Logit at position t encodes (row, t) so we can see which positions were picked.
    rows, length, vocab = 2, batch["input_ids"].shape[1], 16
    logits = torch.zeros(rows, length, vocab)
    for r in range(rows):
        for t in range(length):
            logits[r, t, 0] = 100 * r + t
    log_probs, targets, valid = target_log_probs(logits, batch["labels"], causal=True)
    picked = log_probs[..., 0] - log_probs[..., 1]  # = logits[..., 0] since the other logits are 0
    # Target j=0 is predicted from the last prompt token (t = prompt_len - 1), j=1 from the next.
    assert picked.round().tolist() == [[2.0, 3.0], [104.0, 105.0]]
    assert targets.tolist() == [[7, 8], [7, 8]]
    assert valid.all()


def test_each_group_needs_one_reference():
    log_probs = torch.zeros(2, 1, 3).log_softmax(-1)
    with pytest.raises(ValueError, match="exactly one reference"):
        kl_consistency_loss(log_probs, torch.ones(2, 1, dtype=torch.bool), torch.zeros(2, dtype=torch.long),
                            torch.tensor([False, False]))


def test_seq2seq_collator_pads_per_batch_and_shifts_targets():
    collate = GroupCollator(pad_token_id=0, is_encoder_decoder=True, decoder_start_token_id=0)
    batch = collate([
        {"prompt_ids": [[5, 6, 1], [5, 6, 7, 8, 1]], "target_ids": [9, 1]},
        {"prompt_ids": [[4, 1]], "target_ids": [3, 3, 1]},
    ])
    assert batch["input_ids"].shape == (3, 5)  # longest prompt of this batch, not a global maximum
    assert batch["attention_mask"].sum(1).tolist() == [3, 5, 2]
    assert batch["labels"].tolist() == [[9, 1, -100], [9, 1, -100], [3, 3, 1]]
    assert batch["decoder_input_ids"].tolist() == [[0, 9, 0], [0, 9, 0], [0, 3, 3]]
    assert batch["group_index"].tolist() == [0, 0, 1]
    assert batch["is_reference"].tolist() == [True, False, True]


def _plain_kl(log_probs, valid, group, is_ref, detach):
    """The batched autograd form the memory-lean implementation must equal (values and gradients)."""
    loss, groups = 0.0, group.unique()
    for g in groups:
        rows = (group == g).nonzero(as_tuple=True)[0]
        r = rows[is_ref[rows]][0]
        paras = rows[~is_ref[rows]]
        ref = log_probs[r].detach() if detach else log_probs[r]
        kl = F.kl_div(ref.expand(len(paras), -1, -1), log_probs[paras], reduction="none", log_target=True).sum(-1)
        loss = loss + (kl * (valid[paras] & valid[r])).sum() / len(paras)
    return loss / len(groups)


@pytest.mark.parametrize("detach", [False, True])
def test_memory_lean_kl_has_the_autograd_gradient(detach):
    torch.manual_seed(4)
    logits = torch.randn(6, 4, 9, dtype=torch.float64, requires_grad=True)
    valid = torch.ones(6, 4, dtype=torch.bool)
    valid[4:, 3] = False
    group = torch.tensor([0, 0, 0, 0, 1, 1])
    is_ref = torch.tensor([True, False, False, False, False, True])  # the reference need not come first
    lean = kl_consistency_loss(logits.log_softmax(-1), valid, group, is_ref, detach_reference=detach)
    plain = _plain_kl(logits.log_softmax(-1), valid, group, is_ref, detach)
    (g_lean,) = torch.autograd.grad(lean, logits)
    (g_plain,) = torch.autograd.grad(plain, logits)
    assert lean.item() == pytest.approx(plain.item(), rel=1e-12)
    assert torch.allclose(g_lean, g_plain, atol=1e-12)
    log_probs = torch.randn(3, 2, 5, dtype=torch.float64, requires_grad=True)
    mask = torch.tensor([[True, True], [True, False]])
    if not detach:  # detaching drops the reference's share of the Jacobian on purpose
        assert torch.autograd.gradcheck(
            lambda lp: _PairwiseKL.apply(lp, torch.tensor([1, 2]), torch.tensor([0, 0]), mask, False), (log_probs,))
