"""A real sparse run through lm-eval (tiny T5, two MMLU groups at budget 2 on a 40-item pool) and its estimated report.

The budget and pool are run-time metadata on the ordinary groups, as
``--metadata '{"sparse_budget": 2, "sparse_n_items": 40}'`` passes them (TaskManager metadata); the
loader applies them before the harness sees the documents; outputs are written by lm-eval's own
EvaluationTracker exactly as ``lm_eval --output_path --log_samples`` writes them.
"""
from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from instrobust.sparse.design import pool_items, sparse_subset
from instrobust.sparse.estimate import EstimateConfig, build_estimated_report, main
from instrobust.sparse.loader import available_members
from instrobust.sparse.results import EstimateInputError, load_sparse

REPO = Path(__file__).resolve().parents[1]
N_ITEMS = 40
GROUPS = ["mmlu_unobserved", "mmlu_observed_p3"]
BUDGETED = {"sparse_budget": 2, "sparse_n_items": N_ITEMS}


def _run(tiny_t5: Path, out: Path, tasks: list[str], metadata: dict | None, limit: int | None = None,
         log_samples: bool = True) -> Path:
    import lm_eval
    from lm_eval.loggers import EvaluationTracker
    from lm_eval.tasks import TaskManager

    # only the folders these tasks live in: indexing all of lm-eval's tasks is the slow part
    tm = TaskManager(include_path=str(REPO / "lm_eval_tasks" / "mmlu"), include_defaults=False, metadata=metadata)
    tracker = EvaluationTracker(output_path=str(out))
    results = lm_eval.simple_evaluate(model="hf", model_args={"pretrained": str(tiny_t5)}, tasks=tasks, limit=limit,
                                      device="cpu", batch_size=16, log_samples=log_samples, task_manager=tm,
                                      evaluation_tracker=tracker)
    samples = results.pop("samples", None)
    tracker.save_results_aggregated(results=results, samples=samples)
    if log_samples:
        for task in results["configs"]:
            tracker.save_results_samples(task_name=task, samples=samples[task])
    return out


@pytest.fixture(scope="module")
def sparse_run(tiny_t5, data_dir, tmp_path_factory) -> Path:
    return _run(tiny_t5, tmp_path_factory.mktemp("sparse") / "run", GROUPS, BUDGETED)


def test_each_task_evaluated_exactly_its_design_share(sparse_run):
    run = load_sparse([sparse_run])
    pool = pool_items(14042, N_ITEMS)
    by_task = {t.task: t for t in run.tasks}
    members = {g: available_members(g) for g in GROUPS}
    assert len(by_task) == 24 + 13 and [len(m) for m in members.values()] == [24, 13]
    seen = {g: Counter() for g in GROUPS}
    for t in run.tasks:
        group = t.design["sparse_group"]
        want = [pool[i] for i in sparse_subset(N_ITEMS, len(members[group]), members[group].index(t.instruction), 2, seed=0)]
        assert sorted(t.items) == want, t.task
        assert t.design["sparse_budget"] == 2 and t.design["sparse_n_items"] == N_ITEMS
        seen[group].update(t.items.keys())
    # each group the user ran cost exactly 2 single-instruction runs: 2 x 40 documents, every item twice
    for group in GROUPS:
        assert sum(seen[group].values()) == 2 * N_ITEMS, group
        assert set(seen[group]) == set(pool) and set(seen[group].values()) == {2}


def test_estimated_report_from_the_run(sparse_run, tmp_path):
    out = tmp_path / "report"
    # observed = the model's own collection (issue 13): say the tiny T5 was trained on P3, as T0 was
    assert main([str(sparse_run), "--out", str(out), "--draws", "100", "--no-figures", "--observed", "tiny_t5*=p3"]) == 0
    report = json.loads((out / "report.json").read_text())
    est = report["estimated"]
    assert est["budget"] == "2" and est["method"] == "irt-posterior-predictive"
    assert report["generated_by"] == "instrobust estimate"
    (fit,) = est["fits"]
    assert fit["n_items"] == N_ITEMS and fit["n_instructions"] == 37
    assert fit["effective_budget"]["unobserved"] == pytest.approx(2.0)
    run = load_sparse([sparse_run])
    own = {t.task: sum(t.items.values()) / len(t.items) for t in run.tasks}
    for r in est["instructions"]:
        assert 0.0 <= r["low"] <= r["estimate"] <= r["high"] <= 1.0
        assert r["naive"] == pytest.approx(own[r["task"]])  # the baseline is the task's own mean
    sides = {g["side"]: g for g in est["groups"]}
    assert sides["unobserved"]["n_instructions"] == 24 and sides["observed"]["n_instructions"] == 13
    for g in sides.values():
        e = g["estimate"]
        assert e["q05"]["estimate"] <= e["q50"]["estimate"] <= e["q95"]["estimate"]
        assert e["min"]["estimate"] <= e["q05"]["estimate"]
        assert e["mean"]["low"] <= e["mean"]["estimate"] <= e["mean"]["high"]
    (gap,) = est["deltas"]
    assert gap["estimate"] == pytest.approx(sides["unobserved"]["estimate"]["mean"]["estimate"]
                                            - sides["observed"]["estimate"]["mean"]["estimate"], abs=1e-9)
    (row,) = report["table3"]
    assert row["delta_irt"]["method"] == "IRT posterior predictive" and row["observed"]["estimated"] is True
    assert row["delta_ci"] is None  # the bootstrap's field is never filled with an interval of another kind
    md = (out / "report.md").read_text()
    assert "**Estimated (budget 2).**" in md and "## Estimated from a sparse run (budget 2)" in md
    assert "naive" in md and "mmlu_unobs_07" in md


def test_bad_inputs_give_clear_errors(sparse_run, tiny_t5, tmp_path, capsys):
    # no --log_samples output next to the results
    no_samples = tmp_path / "no_samples"
    shutil.copytree(sparse_run, no_samples)
    for f in no_samples.rglob("samples_*.jsonl"):
        f.unlink()
    with pytest.raises(EstimateInputError, match="rerun lm_eval with --log_samples"):
        load_sparse([no_samples])
    assert main([str(no_samples), "--out", str(tmp_path / "x")]) == 2
    assert "instrobust estimate: error:" in capsys.readouterr().err
    # an instruction that saw no items (e.g. a run cut short)
    empty = tmp_path / "empty"
    shutil.copytree(sparse_run, empty)
    victim = next(empty.rglob("samples_mmlu_unobs_05_2*.jsonl"))
    victim.write_text("")
    with pytest.raises(EstimateInputError, match=r"instruction 'mmlu_unobs_05' \(mmlu_unobs_05\) saw no items"):
        load_sparse([empty])
    # a full (non-sparse) run
    full = _run(tiny_t5, tmp_path / "full", ["mmlu_unobs_01", "mmlu_obs_p3_01"], None, limit=2)
    with pytest.raises(EstimateInputError, match="is not a sparse run: its 2 instrobust task"):
        load_sparse([full])


def test_config_covariates_and_draws(sparse_run):
    report = build_estimated_report(load_sparse([sparse_run]), EstimateConfig(covariates=(), n_draws=50))
    assert report["estimated"]["n_draws"] == 50 and report["estimated"]["fits"][0]["covariates"] == []


def test_report_refuses_sparse_results_instead_of_reporting_subset_accuracies(tmp_path):
    import json

    from instrobust.report.load import load_results_file
    from instrobust.report.cells import ReportInputError

    path = tmp_path / "results_2026-01-01T00-00-00.json"
    path.write_text(json.dumps({
        "results": {"mmlu_unobs_01": {"acc,none": 0.5, "alias": "mmlu_unobs_01"}},
        "configs": {"mmlu_unobs_01": {"task": "mmlu_unobs_01", "metadata": {
            "collection": "unobserved", "observed": False, "scoring": "letter", "sparse_budget": 2}}},
        "config": {"model": "hf", "model_args": "pretrained=/tmp/tiny"},
    }))
    with pytest.raises(ReportInputError, match=r"mmlu_unobs_01 is a sparse \(budget 2\) task.*instrobust estimate"):
        load_results_file(path)
