"""MMLU tasks through the real lm-evaluation-harness on tiny real models."""
from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import lm_eval
import pytest

from instrobust.bank import render
from instrobust.mmlu.data import mmlu_split
from instrobust.errors import UnknownInstructionError
from instrobust.harness import instruction


@pytest.fixture(scope="module")
def unobserved_run(tiny_t5, task_manager, data_dir):
    return lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={tiny_t5}", tasks=["mmlu_unobserved"], limit=3,
        log_samples=True, task_manager=task_manager, device="cpu", batch_size=4,
    )


def test_group_reports_the_mean_over_its_instructions(unobserved_run):
    res = unobserved_run["results"]
    subtasks = sorted(t for t in res if t.startswith("mmlu_unobs_"))
    assert len(subtasks) == 24
    accs = [res[t]["acc,none"] for t in subtasks]
    assert res["mmlu_unobserved"]["acc,none"] == pytest.approx(statistics.fmean(accs), abs=1e-12)


def test_harness_requests_are_our_rendered_prompts_scored_over_letters(unobserved_run):
    pool = mmlu_split("test")
    samples = unobserved_run["samples"]["mmlu_unobs_07"]
    assert [s["doc_id"] for s in samples] == [0, 1, 2]
    for s in samples:
        row = pool[s["doc_id"]]
        prompt = render(instruction("mmlu_unobs_07"), row)
        assert [tuple(a) for a in s["arguments"]] == [(prompt, f" {l}") for l in "ABCD"]
        assert s["target"] == row["answer"]
    assert pool[0]["question"].startswith("Find the degree for the given field extension")


def test_cloze_variant_scores_option_texts(tiny_t5, task_manager):
    out = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={tiny_t5}", tasks=["mmlu_cloze_obs_p3_02"], limit=2,
        log_samples=True, task_manager=task_manager, device="cpu",
    )
    row = mmlu_split("test")[1]
    sample = next(s for s in out["samples"]["mmlu_cloze_obs_p3_02"] if s["doc_id"] == 1)
    assert [a[1] for a in sample["arguments"]] == [" " + c for c in row["choices"]]
    assert out["configs"]["mmlu_cloze_obs_p3_02"]["metadata"]["collection"] == "p3"


def test_skipped_collection_fails_with_a_clear_message(tiny_t5, task_manager, data_dir, tmp_path, monkeypatch):
    from instrobust import harness

    # a data folder like data_dir without the Alpaca file
    (tmp_path / "observed_sources").mkdir()
    (tmp_path / "mmlu").symlink_to(data_dir / "mmlu")
    for entry in (data_dir / "observed_sources").iterdir():
        if entry.name != "alpaca":
            (tmp_path / "observed_sources" / entry.name).symlink_to(entry)
    monkeypatch.setenv("INSTROBUST_DATA_DIR", str(tmp_path))
    harness.bank_for.cache_clear()
    try:
        with pytest.raises(UnknownInstructionError, match=r"mmlu_obs_alpaca_01.*alpaca_data.*not in the offline"):
            lm_eval.simple_evaluate(
                model="hf", model_args=f"pretrained={tiny_t5}", tasks=["mmlu_obs_alpaca_01"], limit=1,
                task_manager=task_manager, device="cpu",
            )
    finally:
        harness.bank_for.cache_clear()


def _tasks_inside_lm_eval() -> bool:
    """lm-eval's TaskManager walks its own tasks folder on disk: an editable install's import
    mapping of lm_eval.tasks.instrobust is invisible to it, a `pip install .` copy is not."""
    import lm_eval.tasks

    return (Path(lm_eval.tasks.__file__).parent / "instrobust").is_dir()


@pytest.mark.skipif(not _tasks_inside_lm_eval(),
                    reason="instrobust not installed with `pip install .` (tasks ship inside lm_eval's folder)")
def test_bare_lm_eval_cli_finds_installed_tasks(tiny_llama, tmp_path, data_dir):
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={tiny_llama}",
           "--tasks", "mmlu_observed_p3", "--limit", "2", "--device", "cpu", "--output_path", str(out)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(next(out.rglob("results_*.json")).read_text())["results"]
    accs = [results[f"mmlu_obs_p3_{i:02d}"]["acc,none"] for i in range(1, 14)]
    assert results["mmlu_observed_p3"]["acc,none"] == pytest.approx(statistics.fmean(accs))
    assert "mmlu_observed_p3" in proc.stdout
