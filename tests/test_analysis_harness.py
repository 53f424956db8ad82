"""`instrobust analyze` on real lm-eval output: the harness scores the tasks, the analysis joins its
accuracies (results_*.json, and the report.json of `instrobust report` when that module is present)."""
from __future__ import annotations

import json

import pytest

from instrobust.analysis import main

TASKS = ["mmlu_obs_p3_01", "mmlu_obs_p3_03", "mmlu_unobs_01", "mmlu_unobs_07", "mmlu_unobs_12"]


@pytest.mark.slow
def test_accuracies_from_a_real_lm_eval_run(tiny_t5, task_manager, data_dir, tmp_path):
    import lm_eval
    from lm_eval.loggers import EvaluationTracker

    results_dir = tmp_path / "lm_eval_out"
    tracker = EvaluationTracker(output_path=str(results_dir))
    res = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={tiny_t5}", tasks=TASKS, limit=8,
                                  device="cpu", batch_size=8, task_manager=task_manager,
                                  evaluation_tracker=tracker)
    tracker.save_results_aggregated(results=res, samples=None)
    harness_acc = {t: res["results"][t]["acc,none"] for t in TASKS}

    out = tmp_path / "analysis"
    rc = main(["--model", str(tiny_t5), "--tasks", ",".join(TASKS), "--n-examples", "4", "--max-length", "96",
               "--out", str(out), "--device", "cpu", "--no-progress", "--no-tsne", "--results", str(results_dir),
               "--observed", "tiny_t5*=p3"])  # the tiny T5 stands in for a P3-trained model (as T0)
    assert rc == 0
    run = json.loads((out / "analysis.json").read_text())["runs"]["base"]
    by_task = {r["task"]: r for r in run["instructions"]}
    observed_mean = (harness_acc["mmlu_obs_p3_01"] + harness_acc["mmlu_obs_p3_03"]) / 2
    for t in ("mmlu_unobs_01", "mmlu_unobs_07", "mmlu_unobs_12"):
        assert by_task[t]["acc"] == pytest.approx(harness_acc[t])
        assert by_task[t]["degradation"] == pytest.approx(100 * (harness_acc[t] - observed_mean))

    # The same accuracies through the report of `instrobust report`, when that module is installed.
    report_mod = pytest.importorskip("instrobust.report")
    report_dir = tmp_path / "report"
    report_mod.make_report([results_dir], report_dir, figures=False)
    out2 = tmp_path / "analysis2"
    rc = main(["--from-saved", str(out), "--out", str(out2), "--no-tsne", "--results", str(report_dir / "report.json")])
    assert rc == 0
    run2 = json.loads((out2 / "analysis.json").read_text())["runs"]["base"]
    assert [r["acc"] for r in run2["instructions"]] == pytest.approx([r["acc"] for r in run["instructions"]])
