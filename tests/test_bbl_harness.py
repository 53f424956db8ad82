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
    assert set(ds["test"].column_names) == {"input", "choices", "letters", "answer", "task", "instruction", "scoring",
                                            "prompt_format", "instruction_head", "description"}
    # P3 super_glue/multirc "found_this_answer": the input has no closing question, so it is all
    # question (empty paragraph, prompt stripped); the answer under judgement is option A. The
    # prompt opens with the document, so there is no instruction head: all of it is doc_to_text.
    doc = ds["test"][0]
    assert doc["description"] == "" and harness.doc_to_text(doc) == render(harness.instruction("bbl_bc_obs_p3_01"), doc)
    assert harness.doc_to_text(doc).endswith('I found this answer "correct". Is that correct? Yes or no?')
    # ... and it is scored on its own answer words (promptsource answer_choices), not on the options
    assert harness.doc_to_choice(doc) == ["Yes", "No"] and harness.doc_to_target(doc) == doc["answer"]
    with pytest.raises(UnknownInstructionError, match=r"'bbl_qa_obs_p3_01' is for BBL qa tasks, not for 'winowhy'"):
        harness.load_bbl(instruction="bbl_qa_obs_p3_01", bbl_task="winowhy")
    with pytest.raises(UnknownInstructionError, match=r"is for strategyqa, not for 'winowhy'"):
        harness.load_bbl(instruction="bbl_strategyqa_unobs_01", bbl_task="winowhy")
    with pytest.raises(UnknownInstructionError, match="must set dataset_kwargs.instruction and metadata.bbl_task"):
        harness.load_bbl(instruction="bbl_winowhy_unobs_01")


def _run(model: str, tasks: list[str], task_manager, **kw) -> dict:
    import lm_eval

    return lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={model}", tasks=tasks, device="cpu",
                                   task_manager=task_manager, log_samples=True, **kw)


def test_zero_and_one_shot_through_lm_eval(data_dir, tiny_t5, task_manager):
    """Zero-shot the prompt is the rendered instruction; one-shot (--num_fewshot 1) the instruction
    head is stated once, then the demonstration answered in the instruction's own words, then the query."""
    task = "bbl_winowhy_obs_p3_01"
    ins = harness.instruction("bbl_bc_obs_p3_01")
    pool = bbl_pool("winowhy")
    demo = pool.heldout[0]
    words = {0: "Yes", 1: "No"}  # option A under judgement: "Yes" iff it is the gold option
    for shots in (0, 1):
        out = _run(tiny_t5, [task], task_manager, limit=3, num_fewshot=shots)
        samples = sorted(out["samples"][task], key=lambda s: s["doc_id"])
        assert [s["doc"]["input"] for s in samples] == [d["input"] for d in pool.test[:3]]
        for s in samples:
            context = s["arguments"][0][0]
            query = render(ins, s["doc"])
            assert context == (render(ins, demo) + " " + words[demo["answer"]] + "\n\n" + query if shots else query)
            assert [a[1] for a in s["arguments"]] == [" Yes", " No"]
            assert s["acc"] == float(_pred(s["resps"]) == s["target"])
        acc = sum(_pred(s["resps"]) == s["target"] for s in samples) / len(samples)
        assert out["results"][task]["acc,none"] == pytest.approx(acc)
        assert "acc_norm,none" in out["results"][task]
        assert out["configs"][task]["num_fewshot"] == shots


def test_one_shot_prompt_states_the_instruction_once(data_dir, tiny_t5, task_manager):
    """The whole one-shot prompt of our MMLU template 01: its instruction line, the first dev
    question answered with its letter, then the test question."""
    from instrobust.mmlu.data import mmlu_split

    out = _run(tiny_t5, ["mmlu_unobs_01"], task_manager, limit=1, num_fewshot=1)
    demo, query = mmlu_split("dev")[0], mmlu_split("test")[0]

    def item(d):
        return d["question"] + "\n" + "".join(f"{l}. {c}\n" for l, c in zip("ABCD", d["choices"])) + "Letter:"

    [sample] = out["samples"]["mmlu_unobs_01"]
    expected = ("One option is right. Give its letter.\n\n" + item(demo) + " " + "ABCD"[demo["answer"]]
                + "\n\n" + item(query))
    assert sample["arguments"][0][0] == expected
    assert [a[1] for a in sample["arguments"]] == [" A", " B", " C", " D"]


def test_alpaca_prompt_format_wraps_every_task_alike(real_data, tiny_t5):  # the authors' file: real data only
    """--metadata '{"prompt_format": "alpaca"}': the authors' Alpaca wrapper (read from their
    pinned file at run time) around instruction, demonstration and query."""
    from lm_eval.tasks import TaskManager

    from instrobust.formats import wrapper

    tm = TaskManager(include_path=str(REPO / "lm_eval_tasks"), metadata={"prompt_format": "alpaca"})
    prefix, suffix = wrapper("alpaca")
    assert prefix.startswith("Below is an instruction") and suffix.endswith("### Response:")
    out = _run(tiny_t5, ["mmlu_unobs_01", "bbl_winowhy_obs_p3_01"], tm, limit=1, num_fewshot=1)
    plain = _run(tiny_t5, ["mmlu_unobs_01", "bbl_winowhy_obs_p3_01"], _plain_tm(), limit=1,
                 num_fewshot=1)
    for task in ("mmlu_unobs_01", "bbl_winowhy_obs_p3_01"):
        wrapped, bare = out["samples"][task][0]["arguments"][0][0], plain["samples"][task][0]["arguments"][0][0]
        assert wrapped == prefix + bare + suffix
        assert out["configs"][task]["metadata"]["prompt_format"] == "alpaca"


def _plain_tm():
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=str(REPO / "lm_eval_tasks"))


def test_chat_template_and_system_instruction(data_dir, tiny_llama, task_manager):
    """--apply_chat_template --system_instruction on a tiny Llama with a chat template: the
    system turn holds the system instruction and the instruction head, the user turn the rest."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_llama)
    tok.chat_template = CHAT_TEMPLATE
    chat_model = tiny_llama.parent / "tiny_llama_chat"
    tok.save_pretrained(chat_model)
    for f in tiny_llama.iterdir():
        if not (chat_model / f.name).exists():
            (chat_model / f.name).symlink_to(f)
    out = _run(str(chat_model), ["mmlu_unobs_01", "bbl_winowhy_obs_p3_01"], task_manager, limit=1,
               apply_chat_template=True, system_instruction="Answer briefly.")
    from instrobust.mmlu.data import mmlu_split

    query = mmlu_split("test")[0]
    [mmlu] = out["samples"]["mmlu_unobs_01"]
    head = "One option is right. Give its letter.\n\n"
    rest = render(harness.instruction("mmlu_unobs_01"), query)[len(head):]
    assert mmlu["arguments"][0][0] == (f"<|system|>Answer briefly.\n\n{head}<|end|><|user|>{rest}<|end|><|assistant|>")
    assert [a[1] for a in mmlu["arguments"]] == ["A", "B", "C", "D"]
    [bbl] = out["samples"]["bbl_winowhy_obs_p3_01"]
    assert bbl["arguments"][0][0].startswith("<|system|>Answer briefly.<|end|><|user|>Question: ")
    assert out["results"]["bbl_winowhy_obs_p3_01"]["acc,none"] in (0.0, 1.0)


CHAT_TEMPLATE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}"
                 "{% if add_generation_prompt %}<|assistant|>{% endif %}")


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
