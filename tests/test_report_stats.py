"""instrobust.report.stats on known numbers, checked against scipy and closed forms."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats

from instrobust.report import stats


def test_summarize_known_values():
    s = stats.summarize({"a": 0.50, "b": 0.70, "c": 0.60}, n_items={"a": 100, "b": 100, "c": 200})
    assert s.n_instructions == 3
    assert s.mean == pytest.approx(0.60)
    assert s.std == pytest.approx(math.sqrt((0.01 + 0.01 + 0.0) / 3))  # population std
    assert s.median == pytest.approx(0.60)
    assert (s.min, s.worst_instruction) == (pytest.approx(0.50), "a")
    assert (s.max, s.best_instruction) == (pytest.approx(0.70), "b")
    assert s.spread == pytest.approx(0.20)
    assert s.cps == pytest.approx((1 - (0.70 - 0.60)) * 0.70)
    assert s.pooled_mean == pytest.approx((50 + 70 + 120) / 400)
    assert s.n_items == 400


def test_summarize_single_instruction_has_no_spread():
    s = stats.summarize({"only": 0.4})
    assert s.std is None and s.spread is None
    assert s.mean == s.min == s.max == pytest.approx(0.4)
    with pytest.raises(ValueError):
        stats.summarize({})


def test_pss_matches_definition():
    y = np.array([[1, 0, 1], [1, 1, 1]], dtype=float)
    # item 1: pairs |1-0|, |1-1|, |0-1| -> 2/3; item 2: 0
    assert stats.pss([y]) == pytest.approx(1 / 3)
    rng = np.random.default_rng(0)
    z = rng.random((40, 6))
    brute = np.mean([np.mean([abs(r[i] - r[j]) for i, j in itertools.combinations(range(6), 2)]) for r in z])
    assert stats.pss([z]) == pytest.approx(brute)
    # items pool over strata; a one-instruction stratum has no pairs
    assert stats.pss([y, np.ones((5, 1))]) == pytest.approx(1 / 3)
    assert stats.pss([np.ones((5, 1))]) is None


def test_instruction_bootstrap_agrees_with_scipy():
    rng = np.random.default_rng(1)
    obs, unobs = rng.uniform(0.40, 0.60, 12), rng.uniform(0.30, 0.60, 9)
    ours = stats.instruction_gap_interval(obs, unobs, n_boot=20000, seed=3)
    ref = scipy.stats.bootstrap((obs, unobs), lambda a, b, axis: b.mean(axis) - a.mean(axis), vectorized=True,
                                n_resamples=20000, method="percentile", random_state=4).confidence_interval
    assert ours.estimate == pytest.approx(unobs.mean() - obs.mean())
    assert ours.method == "instructions"
    assert ours.low == pytest.approx(ref.low, abs=0.004)
    assert ours.high == pytest.approx(ref.high, abs=0.004)


def test_instruction_bootstrap_width_matches_analytic_standard_error():
    """The bootstrap variance of a mean is exactly var_pop / n; large B must recover it."""
    rng = np.random.default_rng(2)
    obs, unobs = rng.uniform(0.3, 0.7, 30), rng.uniform(0.2, 0.7, 25)
    se = math.sqrt(obs.var() / len(obs) + unobs.var() / len(unobs))
    ci = stats.instruction_gap_interval(obs, unobs, n_boot=40000, seed=5)
    assert (ci.high - ci.low) / (2 * 1.959964) == pytest.approx(se, rel=0.04)


def test_item_bootstrap_with_one_instruction_per_side_is_a_paired_bootstrap():
    rng = np.random.default_rng(3)
    y = (rng.random((400, 2)) < [0.62, 0.50]).astype(float)
    ours = stats.gap_interval({"task": (y, [True, False])}, n_boot=20000, seed=6)
    ref = scipy.stats.bootstrap((y[:, 1] - y[:, 0],), np.mean, n_resamples=20000, method="percentile",
                                random_state=7).confidence_interval
    assert ours.method == "items+instructions"
    assert ours.estimate == pytest.approx(y[:, 1].mean() - y[:, 0].mean())
    assert ours.low == pytest.approx(ref.low, abs=0.006)
    assert ours.high == pytest.approx(ref.high, abs=0.006)


def test_two_way_bootstrap_is_wider_than_either_source_alone():
    rng = np.random.default_rng(4)
    difficulty = rng.random(300)
    shift = np.r_[rng.normal(0.05, 0.05, 6), rng.normal(-0.05, 0.05, 6)]
    y = (rng.random((300, 12)) < np.clip(difficulty[:, None] + shift[None, :], 0, 1)).astype(float)
    flags = [True] * 6 + [False] * 6
    both = stats.gap_interval({"t": (y, flags)}, n_boot=4000, seed=1)
    instr_only = stats.gap_interval({"t": (y.mean(0, keepdims=True), flags)}, n_boot=4000, seed=1, has_items=False)
    assert both.estimate == pytest.approx(instr_only.estimate)
    assert both.high - both.low > instr_only.high - instr_only.low


def test_kendall_tau_matrix_equals_scipy_with_ties():
    rng = np.random.default_rng(5)
    x = np.round(rng.random((6, 5)), 1)
    x[1, 0] = x[2, 0]  # a tie
    tau = stats.kendall_tau_b_matrix(x)
    for i, j in itertools.combinations(range(5), 2):
        assert tau[i, j] == pytest.approx(scipy.stats.kendalltau(x[:, i], x[:, j]).statistic)


def test_ranking_agreement_finds_the_instruction_that_reorders_models():
    scores = {"m1": {"i1": 0.3, "i2": 0.3, "i3": 0.6}, "m2": {"i1": 0.5, "i2": 0.5, "i3": 0.4},
              "m3": {"i1": 0.7, "i2": 0.7, "i3": 0.2}}
    out = stats.ranking_agreement(scores)
    assert out["n_instructions"] == 3 and out["n_pairs"] == 3
    assert out["min_tau"] == pytest.approx(-1.0)
    assert "i3" in out["min_pair"]
    assert out["mean_tau"] == pytest.approx((1 - 1 - 1) / 3)
    assert stats.ranking_agreement({"m1": {"i1": 0.1}}) is None


def test_mcnemar_counts_and_exact_p_value():
    base = [1, 1, 1, 0, 0, 1, 0, 1, 1, 1]
    other = [1, 0, 0, 1, 1, 1, 1, 1, 1, 1]
    out = stats.mcnemar(base, other)
    assert (out["base_only_correct"], out["other_only_correct"]) == (2, 3)
    assert out["p_value"] == pytest.approx(scipy.stats.binomtest(3, 5, 0.5).pvalue)
    assert stats.mcnemar([1, 0], [1, 0])["p_value"] == 1.0
    with pytest.raises(ValueError):
        stats.mcnemar([0.5], [1.0])


def test_an_instruction_used_on_several_tasks_is_one_resampling_unit():
    # Two BBL tasks; observed instructions o1 (always right) and o2 (always wrong) are used on both.
    y = np.array([[1.0, 0.0, 0.5]] * 4)
    tasks = {"t1": (y, [True, True, False]), "t2": (y, [True, True, False])}
    units = {"t1": ["o1", "o2", "u1"], "t2": ["o1", "o2", "u2"]}
    strata, unit_class = stats.gap_strata(tasks, units=units)
    assert len(unit_class) == 4  # o1, o2, u1, u2
    assert unit_class[0] == unit_class[1] and len({*unit_class[2:]} - {unit_class[0]}) == 2
    means = stats._group_means(strata, unit_class, 2, np.random.default_rng(0), 2000)[:, 0]
    # drawn jointly on both tasks: the observed mean is 0, 1/2 or 1, never 1/4 or 3/4
    assert set(np.round(means, 6)) == {0.0, 0.5, 1.0}
    separate = stats.gap_strata(tasks)  # each column its own unit: mixes draws across tasks
    assert 0.25 in set(np.round(stats._group_means(*separate, 2, np.random.default_rng(0), 2000)[:, 0], 6))


def _simulate(n_sims: int, shift: float, rng: np.random.Generator, n_items: int = 80, n_instr: int = 10):
    """0/1 scores of base and adapter sharing item effects; each model has its own item x model effect,
    shared by all instructions on that item (what makes (item, instruction) pairs dependent)."""
    item = rng.normal(0, 1.5, (n_sims, n_items, 1))
    instr = rng.normal(0, 0.3, (n_sims, 1, n_instr))
    logit_b = item + instr + rng.normal(0, 1.0, (n_sims, n_items, 1))
    logit_a = item + instr + rng.normal(0, 1.0, (n_sims, n_items, 1)) + shift
    base = (rng.random((n_sims, n_items, n_instr)) < 1 / (1 + np.exp(-logit_b))).astype(float)
    adapter = (rng.random((n_sims, n_items, n_instr)) < 1 / (1 + np.exp(-logit_a))).astype(float)
    return base, adapter


def test_adapter_vs_base_test_keeps_its_level_with_shared_item_effects_and_has_power():
    rng = np.random.default_rng(1)  # over seeds 0-3 the type-I error is 0.04-0.06 (mean 0.048)
    base, adapter = _simulate(400, 0.0, rng)
    p_flip = np.array([stats.sign_flip_test([(a - b).mean(axis=1)], [1.0], n_perm=400, seed=k)["p_value"]
                       for k, (b, a) in enumerate(zip(base, adapter))])
    type1 = float((p_flip <= 0.05).mean())
    assert type1 <= 0.07
    # the old test on pooled (item, instruction) pairs does not keep its level here
    p_mcnemar = np.array([stats.mcnemar(b.ravel(), a.ravel())["p_value"] for b, a in zip(base, adapter)])
    assert (p_mcnemar <= 0.05).mean() > 0.15
    base, adapter = _simulate(200, 0.8, rng)  # a real shift of 0.8 logits (~ +12 points)
    p_shift = np.array([stats.sign_flip_test([(a - b).mean(axis=1)], [1.0], n_perm=400, seed=k)["p_value"]
                        for k, (b, a) in enumerate(zip(base, adapter))])
    assert (p_shift <= 0.05).mean() >= 0.7


def test_sign_flip_test_is_exact_on_a_small_case():
    out = stats.sign_flip_test([np.array([1.0, 1.0, 1.0])], [1.0], n_perm=20000, seed=0)
    assert out["statistic"] == pytest.approx(1.0)
    assert out["p_value"] == pytest.approx(2 / 8, abs=0.015)  # +++ and --- of 8 sign patterns (MC error 0.003)
    assert "items" in out["test"]
