"""BBL tasks through the real lm-evaluation-harness with a tiny real model."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from instrobust import harness
from instrobust.bank import render
from instrobust.bbl.data import bbl_pool
from instrobust.errors import UnknownInstructionError

REPO = Path(__file__).resolve().parents[1]


def _pred(resps) -> int:
    """The option with the highest log-likelihood, from a logged sample's raw responses."""
    lls = [float(r[0][0]) for r in resps]
    return max(range(len(lls)), key=lls.__getitem__)


def test_load_bbl_tags_the_pool_and_checks_the_instruction(data_dir):
    ds = harness.load_bbl(instruction="bbl_bc_obs_p3_01", bbl_task="winowhy", version=1.0, collection="p3")
    pool = bbl_pool("winowhy")
    assert ds["test"].num_rows == len(pool.test) and ds["heldout"].num_rows == 5
    assert set(ds["test"].column_names) == {"input", "choices", "letters", "answer", "task", "instruction", "scoring"}
    # P3 super_glue/multirc "found_this_answer": the input has no closing question, so it is all
    # question (empty paragraph, prompt stripped); the answer under judgement is option A
    assert harness.doc_to_text(ds["test"][0]) == (
        f"Question: {pool.test[0]['input']}\nI found this answer \"correct\". Is that correct? Yes or no?")
    with pytest.raises(UnknownInstructionError, match=r"'bbl_qa_obs_p3_01' is for BBL qa tasks, not for 'winowhy'"):
        harness.load_bbl(instruction="bbl_qa_obs_p3_01", bbl_task="winowhy")
    with pytest.raises(UnknownInstructionError, match=r"is for strategyqa, not for 'winowhy'"):
        harness.load_bbl(instruction="bbl_strategyqa_unobs_01", bbl_task="winowhy")
    with pytest.raises(UnknownInstructionError, match="must set dataset_kwargs.instruction and metadata.bbl_task"):
        harness.load_bbl(instruction="bbl_winowhy_unobs_01")


def test_zero_and_one_shot_through_lm_eval(data_dir, tiny_t5, task_manager):
    import lm_eval

    tasks = ["bbl_winowhy_unobs_01", "bbl_winowhy_unobs_01_1shot"]
    out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={tiny_t5}", tasks=tasks, limit=3,
                                  device="cpu", task_manager=task_manager, log_samples=True)
    ins = harness.instruction("bbl_winowhy_unobs_01")
    pool = bbl_pool("winowhy")
    demo = pool.heldout[0]
    demo_text = render(ins, demo) + " " + demo["choices"][demo["answer"]] + "\n\n"
    for task in tasks:
        samples = sorted(out["samples"][task], key=lambda s: s["doc_id"])
        assert [s["doc"]["input"] for s in samples] == [d["input"] for d in pool.test[:3]]
        for s in samples:
            context, continuation = s["arguments"][0]
            query = render(ins, s["doc"])
            assert context == (demo_text + query if task.endswith("_1shot") else query)
            assert continuation == " " + s["doc"]["choices"][0]
            assert s["acc"] == float(_pred(s["resps"]) == s["target"])
        acc = sum(_pred(s["resps"]) == s["target"] for s in samples) / len(samples)
        assert out["results"][task]["acc,none"] == pytest.approx(acc)
    assert out["configs"]["bbl_winowhy_unobs_01_1shot"]["num_fewshot"] == 1


def test_mmlu_one_shot_demonstration_is_the_first_dev_question(data_dir, tiny_t5, task_manager):
    import lm_eval

    from instrobust.data import mmlu_split

    out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={tiny_t5}", tasks=["mmlu_unobs_01_1shot"],
                                  limit=1, device="cpu", task_manager=task_manager, log_samples=True)
    ins = harness.instruction("mmlu_unobs_01")
    demo, query = mmlu_split("dev")[0], mmlu_split("test")[0]
    [sample] = out["samples"]["mmlu_unobs_01_1shot"]
    context = sample["arguments"][0][0]
    assert context == render(ins, demo) + " " + demo["letters"][demo["answer"]] + "\n\n" + render(ins, query)


@pytest.mark.slow
def test_bc_unobserved_group_via_cli(data_dir, tiny_t5, tmp_path):
    """`lm_eval --tasks bbl_bc_unobserved --limit 2`: per-task and group accuracy from the sample log."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "INSTROBUST_DATA_DIR": str(data_dir),
           "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={tiny_t5},max_length=256",
           "--include_path", str(REPO / "lm_eval_tasks"), "--tasks", "bbl_bc_unobserved", "--limit", "2",
           "--device", "cpu", "--output_path", str(tmp_path), "--log_samples"]
    subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)
    [results_file] = tmp_path.rglob("results_*.json")
    results = json.loads(results_file.read_text())["results"]
    accs = {}
    for path in tmp_path.rglob("samples_*.jsonl"):
        samples = [json.loads(line) for line in path.read_text().splitlines()]
        task = path.name.removeprefix("samples_").rsplit("_", 1)[0]
        # the sample log writes the target index as a string
        accs[task] = sum(_pred(s["resps"]) == int(s["target"]) for s in samples) / len(samples)
        assert len(samples) == 2 and results[task]["acc,none"] == pytest.approx(accs[task])
    assert len(accs) == 40 and all(t.startswith("bbl_") and "_unobs_" in t for t in accs)
    group = results["bbl_bc_unobserved"]["acc,none"]
    assert group == pytest.approx(sum(accs.values()) / len(accs)) and not math.isnan(group)
