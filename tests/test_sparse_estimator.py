"""The IRT estimator on responses drawn from a known IRT model: accuracy recovery and interval coverage."""
from __future__ import annotations

import numpy as np
import pytest

from instrobust.sparse.design import sparse_design
from instrobust.sparse.irt import (IRTConfig, Observations, fit_irt, group_stats, moment_taus, naive_accuracy,
                                   posterior_predictive)

M_OBS, M_UNOBS, N_ITEMS, BUDGET = 20, 10, 400, 4
TAU_U, TAU_B, GAP = 0.35, 1.2, -0.3


def simulate(seed: int, n_items: int = N_ITEMS, budget: int = BUDGET):
    """A sparse run of 30 instructions (two design groups, budget B each) on a known IRT model."""
    rng = np.random.default_rng(seed)
    unobserved = np.array([0] * M_OBS + [1] * M_UNOBS)
    theta = -0.5 + GAP * unobserved + rng.normal(0, TAU_U, M_OBS + M_UNOBS)
    beta = rng.normal(0, TAU_B, n_items)
    y = (rng.random((len(theta), n_items)) < 1 / (1 + np.exp(-(theta[:, None] + beta[None, :])))).astype(float)
    inst, item = [], []
    for offset, m in ((0, M_OBS), (M_OBS, M_UNOBS)):
        for k, items in enumerate(sparse_design(n_items, m, budget, seed)):
            inst += [offset + k] * len(items)
            item += list(items)
    inst, item = np.array(inst), np.array(item)
    obs = Observations(inst, item, y[inst, item], len(theta), n_items, unobserved[:, None].astype(float))
    return obs, y.mean(axis=1), unobserved


def test_recovers_per_instruction_accuracy_and_beats_naive():
    errs, naive_errs, plugin_errs = [], [], []
    for seed in range(3):
        obs, truth, _ = simulate(seed)
        draws = posterior_predictive(fit_irt(obs), n_draws=200, seed=seed)
        errs.append(np.abs(draws.acc.mean(axis=0) - truth))
        naive_errs.append(np.abs(naive_accuracy(obs) - truth))
        plugin_errs.append(np.abs(draws.plugin - truth))
    mae, naive_mae = float(np.mean(errs)), float(np.mean(naive_errs))
    # each instruction saw 53 or 80 of 400 items (naive standard error ~5-6 points); stated tolerance: 3.5 points MAE
    assert mae < 0.035, mae
    assert mae < 0.9 * naive_mae, (mae, naive_mae)
    assert float(np.mean(plugin_errs)) < 0.9 * naive_mae


def test_intervals_cover_the_full_run_at_about_the_nominal_rate():
    hits = []
    for seed in range(10, 20):
        obs, truth, _ = simulate(seed)
        draws = posterior_predictive(fit_irt(obs), n_draws=100, seed=seed)
        lo, hi = np.quantile(draws.acc, [0.05, 0.95], axis=0)  # 90% intervals
        hits.append((lo <= truth) & (truth <= hi))
    coverage = float(np.mean(hits))  # 10 runs x 30 instructions
    assert 0.8 <= coverage <= 0.98, coverage


def test_spread_and_gap_are_not_shrunk_away():
    """The plug-in (posterior mode) understates the spread across instructions and the naive estimate
    inflates it with sampling noise; the posterior-predictive draws get closest."""
    err = {"draws": [], "plugin": [], "naive": []}
    gap_err = []
    for seed in range(30, 34):
        obs, truth, unobserved = simulate(seed, n_items=800, budget=2)
        draws = posterior_predictive(fit_irt(obs), n_draws=100, seed=seed)
        sel = unobserved == 0
        true_std = truth[sel].std()
        err["draws"].append(group_stats(draws.acc[:, sel])["std"].mean() - true_std)
        err["plugin"].append(draws.plugin[sel].std() - true_std)
        err["naive"].append(naive_accuracy(obs)[sel].std() - true_std)
        gap = draws.acc[:, ~sel].mean(axis=1) - draws.acc[:, sel].mean(axis=1)
        true_gap = truth[~sel].mean() - truth[sel].mean()
        lo, hi = np.quantile(gap, [0.025, 0.975])
        naive = naive_accuracy(obs)
        gap_err.append((gap.mean() - (naive[~sel].mean() - naive[sel].mean()), lo <= true_gap <= hi))
    mean_abs = {k: float(np.mean(np.abs(v))) for k, v in err.items()}
    assert mean_abs["draws"] < mean_abs["plugin"] and mean_abs["draws"] < mean_abs["naive"], mean_abs
    assert np.mean(err["plugin"]) < 0 < np.mean(err["naive"])  # shrunk / inflated, as the docstring says
    assert abs(np.mean(err["draws"])) < 0.01, err
    # the gap: the naive difference of means is unbiased under the balanced design, and the model must
    # not move it (a global calibration once shrank it by ~0.5 points); its interval covers the full run
    assert max(abs(e) for e, _ in gap_err) < 0.003 and sum(c for _, c in gap_err) >= 3, gap_err


def test_prior_scales_from_moments_are_close_at_scale():
    obs, _, _ = simulate(5, n_items=3000, budget=2)
    tau_u, tau_b = moment_taus(obs)
    assert tau_u == pytest.approx(TAU_U, abs=0.15) and tau_b == pytest.approx(TAU_B, abs=0.2)


def test_fixed_prior_scales_and_evidence_method():
    obs, _, _ = simulate(1, n_items=200)
    fit = fit_irt(obs, IRTConfig(tau_u=0.3, tau_b=1.0))
    assert (fit.tau_u, fit.tau_b) == (0.3, 1.0)
    fit = fit_irt(obs, IRTConfig(tau_method="evidence"))
    assert fit.grid and all(np.isfinite(g["log_evidence"]) for g in fit.grid)
    with pytest.raises(ValueError, match="tau_method"):
        fit_irt(obs, IRTConfig(tau_method="guess"))


def test_bad_observations_are_refused():
    with pytest.raises(ValueError, match="0/1"):
        Observations(np.array([0]), np.array([0]), np.array([0.5]), 1, 1)
    with pytest.raises(ValueError, match="no observations"):
        fit_irt(Observations(np.array([], int), np.array([], int), np.array([]), 1, 1))


def _sparse_run(model: str, seed: int = 0):
    """A sparse run built from known per-collection accuracies: Flan 0.8, P3 0.3, ours 0.5 (each
    instruction sees half the items of a 200-item pool)."""
    from instrobust.report.cells import ModelInfo
    from instrobust.report.tasks import classify
    from instrobust.sparse.results import SparseRun, SparseTask

    rng = np.random.default_rng(seed)
    truth = {"flan2022": 0.8, "p3": 0.3, "unobserved": 0.5}
    tasks = []
    for coll, p in truth.items():
        for k in range(1, 7):
            name = f"mmlu_unobs_{k:02d}" if coll == "unobserved" else f"mmlu_obs_{coll}_{k:02d}"
            items = {i: float(rng.random() < p) for i in range(200) if (i + k) % 2 == 0}
            info = classify(name, {"metadata": {"collection": coll, "observed": coll != "unobserved",
                                                "scoring": "letter"}})
            tasks.append(SparseTask(model, name, name, info, 0, {"sparse_budget": 3, "sparse_group": coll},
                                    items, "synthetic"))
    return SparseRun({model: ModelInfo(key=model, label=model, pretrained=model)}, tasks=tasks)


def test_estimate_uses_the_models_own_collection_and_keeps_delta_ci_for_the_bootstrap():
    from instrobust.sparse.estimate import EstimateConfig, build_estimated_report

    report = build_estimated_report(_sparse_run("google/flan-t5-base"), EstimateConfig(n_draws=60))
    sides = {g["side"]: g for g in report["estimated"]["groups"]}
    assert set(sides) == {"observed", "unobserved", "p3"}  # P3 is not Flan-T5's: its own group
    (gap,) = report["estimated"]["deltas"]
    assert gap["estimate"] == pytest.approx(0.5 - 0.8, abs=0.05) and gap["kind"] == "irt-posterior"
    (row,) = report["table3"]
    assert row["observed_collections"] == ["flan2022"] and row["other"]["p3"]["mean"] == pytest.approx(0.3, abs=0.05)
    assert row["delta_ci"] is None and row["delta_irt"]["kind"] == "irt-posterior"
    assert "posterior-predictive draws" in row["delta_irt"]["description"]
    from instrobust.sparse.estimate import render_estimated_markdown

    md = render_estimated_markdown(report)
    assert "Intervals (95%, irt-posterior): percentiles over 60 posterior-predictive draws" in md
    assert "| Observed (Flan 2022) |" in md and "| P3 (not trained on) |" in md
    # a model with no known collection: no observed side and no Δ, in the estimate as in the report
    unknown = build_estimated_report(_sparse_run("HuggingFaceTB/SmolLM2-135M-Instruct"), EstimateConfig(n_draws=60))
    assert {g["side"] for g in unknown["estimated"]["groups"]} == {"flan2022", "p3", "unobserved"}
    assert unknown["estimated"]["deltas"] == [] and unknown["table3"][0]["delta"] is None
    # with an override, the same run's observed side is P3
    override = build_estimated_report(_sparse_run("HuggingFaceTB/SmolLM2-135M-Instruct"),
                                      EstimateConfig(n_draws=60, observed=("*smollm2*=p3",)))
    assert override["estimated"]["deltas"][0]["estimate"] == pytest.approx(0.5 - 0.3, abs=0.05)


def test_estimated_bbl_spread_is_per_task_then_averaged():
    """Two BBL-BC tasks, every instruction at its task's accuracy (0.8 / 0.2): no instruction sensitivity."""
    from instrobust.report.cells import ModelInfo
    from instrobust.report.tasks import classify
    from instrobust.sparse.estimate import EstimateConfig, build_estimated_report
    from instrobust.sparse.results import SparseRun, SparseTask

    rng = np.random.default_rng(3)
    tasks = []
    for bench, p in (("strategyqa", 0.8), ("winowhy", 0.2)):
        for coll in ("flan2022", "unobserved"):
            for k in range(1, 5):
                name = f"bbl_{bench}_unobs_{k:02d}" if coll == "unobserved" else f"bbl_{bench}_obs_{coll}_{k:02d}"
                instruction = f"bbl_bc_obs_{coll}_{k:02d}" if coll != "unobserved" else name
                meta = {"collection": coll, "observed": coll != "unobserved", "scoring": "cloze", "task_type": "bc",
                        "bbl_task": bench}
                items = {i: float(rng.random() < p) for i in range(300) if (i + k) % 2 == 0}
                tasks.append(SparseTask("google/flan-t5-base", name, instruction, classify(name, {"metadata": meta}),
                                        0, {"sparse_budget": 2}, items, "synthetic"))
    run = SparseRun({"google/flan-t5-base": ModelInfo("google/flan-t5-base", "flan-t5-base", "google/flan-t5-base")},
                    tasks=tasks)
    report = build_estimated_report(run, EstimateConfig(n_draws=60))
    (row,) = report["table3"]
    obs = row["observed"]
    assert obs["spread"] < 0.15 and obs["min"] == pytest.approx(0.5, abs=0.08)  # pooled, it would be ~0.6 and ~0.2
    assert obs["std"] > 0.25  # over all pairs, as the paper's ± (task difficulty included)
    sides = {g["side"]: g for g in report["estimated"]["groups"]}
    assert sides["observed"]["n_tasks"] == 2
    assert sides["observed"]["worst_instruction"].startswith("bbl_bc_obs_flan2022_")  # one name across tasks
