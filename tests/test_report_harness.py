"""`instrobust report` on real lm-eval output: the harness runs a tiny T5 and the same T5 with a PEFT adapter.

Two harness runs per session (2 observed P3 + 2 unobserved MMLU tasks, --limit 4, samples logged),
written by lm-eval's own EvaluationTracker exactly as `lm_eval --output_path --log_samples` does.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from instrobust.report import ReportConfig, load, main, make_report

TASKS = ["mmlu_obs_p3_01", "mmlu_obs_p3_02", "mmlu_unobs_01", "mmlu_unobs_02"]
LIMIT = 4


def _run_harness(model_args: dict, out: Path, task_manager) -> Path:
    import lm_eval
    from lm_eval.loggers import EvaluationTracker

    tracker = EvaluationTracker(output_path=str(out))
    results = lm_eval.simple_evaluate(model="hf", model_args=model_args, tasks=TASKS, limit=LIMIT, device="cpu",
                                      log_samples=True, task_manager=task_manager, evaluation_tracker=tracker)
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task in results["configs"]:
        tracker.save_results_samples(task_name=task, samples=samples[task])
    return out


@pytest.fixture(scope="session")
def harness_runs(tiny_t5, task_manager, data_dir, tmp_path_factory) -> dict[str, Path]:
    """Real lm-eval output folders: base tiny T5, and tiny T5 + a (randomly initialised) LoRA adapter."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import T5ForConditionalGeneration

    root = tmp_path_factory.mktemp("report_harness")
    adapter = root / "adapter-lora"
    torch.manual_seed(1)
    model = T5ForConditionalGeneration.from_pretrained(tiny_t5)
    # init_lora_weights=False: B is random, so the adapter really changes the model's answers
    config = LoraConfig(r=4, lora_alpha=32, target_modules=["q", "v"], init_lora_weights=False,
                        task_type="SEQ_2_SEQ_LM")
    get_peft_model(model, config).save_pretrained(adapter)
    return {
        "base": _run_harness({"pretrained": str(tiny_t5)}, root / "base", task_manager),
        "adapter": _run_harness({"pretrained": str(tiny_t5), "peft": str(adapter)}, root / "adapter", task_manager),
    }


def _harness_numbers(out: Path) -> tuple[dict[str, float], dict[str, dict[int, float]]]:
    (results_file,) = out.rglob("results_*.json")
    data = json.loads(results_file.read_text())
    accs = {t: data["results"][t]["acc,none"] for t in TASKS}
    items = {}
    for t in TASKS:
        (samples_file,) = results_file.parent.glob(f"samples_{t}_*.jsonl")
        rows = [json.loads(line) for line in samples_file.read_text().splitlines()]
        items[t] = {r["doc_id"]: r["acc"] for r in rows}
    return accs, items


def test_cells_match_the_harness_files(harness_runs):
    accs, items = _harness_numbers(harness_runs["base"])
    loaded = load([harness_runs["base"]])
    assert len(loaded.models) == 1 and not loaded.notes
    cells = {c.task: c for c in loaded.cells}
    assert set(cells) == set(TASKS)
    for task, cell in cells.items():
        assert cell.acc == pytest.approx(accs[task])
        assert cell.items == items[task] and sorted(cell.items) == list(range(LIMIT))
        assert cell.n_items == LIMIT and cell.n_items_total == 14042 and cell.n_shot == 0
        assert cell.observed == ("_obs_" in task) and cell.category == "MMLU"
        assert cell.collection == ("p3" if "_obs_" in task else "unobserved")


def test_report_from_real_runs(harness_runs, tmp_path):
    base_acc, base_items = _harness_numbers(harness_runs["base"])
    adapter_acc, adapter_items = _harness_numbers(harness_runs["adapter"])
    out = tmp_path / "report"
    # the tiny T5 was trained on no collection: say it was trained on P3, as T0 was
    assert main([str(harness_runs["base"]), str(harness_runs["adapter"]), "--out", str(out),
                 "--bootstrap", "400", "--observed", "tiny_t5*=p3"]) == 0
    report = json.loads((out / "report.json").read_text())
    rows = {r["label"]: r for r in report["table3"]}
    (base_label,) = [k for k in rows if "+" not in k]
    (adapter_label,) = [k for k in rows if "+ adapter-lora" in k]
    base = rows[base_label]
    obs = np.mean([base_acc[t] for t in TASKS[:2]])
    unobs = np.mean([base_acc[t] for t in TASKS[2:]])
    assert base["observed"]["mean"] == pytest.approx(obs)
    assert base["delta"] == pytest.approx(unobs - obs)
    assert base["delta_ci"]["method"] == "items+instructions"
    assert base["observed"]["pss"] == pytest.approx(
        np.mean([abs(base_items[TASKS[0]][i] - base_items[TASKS[1]][i]) for i in range(LIMIT)]))
    assert any(f"{LIMIT} of 14042 items" in p for p in base["partial"])
    assert base["observed_collections"] == ["p3"] and "tiny_t5*=p3" in report["models"][0]["trained_on"]["reason"]
    # adapter vs base: items are the clusters of the test (one per-item difference, averaged over instructions)
    (cmp,) = report["comparisons"]
    assert cmp["adapter_label"] == adapter_label and cmp["n_instructions"] == 4
    per_item = [np.mean([adapter_items[t][i] - base_items[t][i] for t in TASKS]) for i in range(LIMIT)]
    assert cmp["test"]["n_items"] == LIMIT and cmp["test"]["statistic"] == pytest.approx(np.mean(per_item))
    assert 0 < cmp["test"]["p_value"] <= 1
    assert cmp["acc_change"] == pytest.approx(np.mean(list(adapter_acc.values())) - np.mean(list(base_acc.values())))
    md = (out / "report.md").read_text()
    assert "Before vs after alignment" in md and adapter_label in md
    import matplotlib.image

    assert report["figures"]
    for f in report["figures"]:
        img = matplotlib.image.imread(out / f["png"])
        assert img.shape[0] >= 200 and img.shape[1] >= 300


def test_pooled_equals_mean_when_every_instruction_sees_the_same_items(harness_runs, tmp_path):
    rule = ("tiny_t5*=p3",)
    a = make_report([harness_runs["base"]], tmp_path / "a", ReportConfig(n_boot=0, observed=rule), figures=False)
    b = make_report([harness_runs["base"]], tmp_path / "b", ReportConfig(n_boot=0, pooled=True, observed=rule),
                    figures=False)
    assert a["table3"][0]["observed_headline"] == pytest.approx(b["table3"][0]["observed_headline"])
