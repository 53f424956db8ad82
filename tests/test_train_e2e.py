"""End to end: the saved adapter in the real lm-eval harness, and exact resumption after a kill."""
from __future__ import annotations

import glob
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import safetensors.torch
import torch
from transformers import TrainerCallback

from instrobust_train.config import AlignmentConfig, DataConfig, ModelConfig, SoftPromptConfig
from instrobust_train.errors import CheckpointError
from instrobust_train.train import train
from instrobust_train.runs import TRAINER_STATE_FILE
from instrobust_train.trainer import PROMPT_ENCODER_STATE

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures" / "train"
EXAMPLES = str(FIXTURES / "alignment_examples.jsonl")
PARAPHRASES = str(FIXTURES / "alignment_paraphrases.jsonl")
TASK = "mmlu_unobs_01"


def _configs(base, out, *, steps=3, peft_type="auto", **args):
    data = DataConfig(source=EXAMPLES, paraphrases=PARAPHRASES, n_examples=12, max_source_length=48,
                      max_target_length=24)
    prompt = SoftPromptConfig(peft_type=peft_type, num_virtual_tokens=4, encoder_hidden_size=16)
    defaults = dict(output_dir=str(out), max_steps=steps, use_cpu=True, logging_steps=1, save_strategy="no",
                    disable_tqdm=True, seed=0, learning_rate=3e-2)
    return ModelConfig(base=str(base)), data, prompt, AlignmentConfig(**{**defaults, **args})


def _loglikelihood(model, tok, context: str, continuation: str, seq2seq: bool) -> float:
    """The in-memory model's log P(continuation | context), tokenized as lm-eval's HFLM does."""
    spaces = len(context) - len(context.rstrip())
    if spaces:  # lm-eval moves trailing context spaces into the continuation
        context, continuation = context[:-spaces], context[-spaces:] + continuation
    with torch.no_grad():
        if seq2seq:
            ctx = tok.encode(context)
            cont = tok.encode(continuation, add_special_tokens=False)
            logits = model(input_ids=torch.tensor([ctx]), attention_mask=torch.ones(1, len(ctx), dtype=torch.long),
                           labels=torch.tensor([cont])).logits[0]
        else:
            whole, ctx = tok.encode(context + continuation), tok.encode(context)
            cont = whole[len(ctx):]
            logits = model(input_ids=torch.tensor([whole[:-1]])).logits[0, len(ctx) - 1:]
    return logits.float().log_softmax(-1).gather(-1, torch.tensor(cont).unsqueeze(-1)).sum().item()


def _compare(samples: list[dict], model, tok, seq2seq: bool) -> None:
    model.eval()
    compared, moved = 0, 0.0
    for doc in samples:
        # simple_evaluate keeps (context, continuation) tuples; the CLI's JSONL has {"arg_0", "arg_1"} dicts.
        pairs = doc["arguments"].values() if isinstance(doc["arguments"], dict) else doc["arguments"]
        for args, resp in zip(pairs, doc["resps"]):
            context, continuation = (args["arg_0"], args["arg_1"]) if isinstance(args, dict) else args
            harness = float(resp[0][0])
            mine = _loglikelihood(model, tok, context, continuation, seq2seq)
            assert harness == pytest.approx(mine, abs=1e-4), (continuation, harness, mine)
            with model.disable_adapter():
                moved = max(moved, abs(mine - _loglikelihood(model, tok, context, continuation, seq2seq)))
            compared += 1
    assert compared >= 8
    assert moved > 1e-3  # the adapter changes the numbers, so agreement above means it was loaded


@pytest.mark.parametrize("which,peft_type,saved_as", [
    ("t5", "auto", "P_TUNING"),  # the default on encoder-decoder models
    pytest.param("t5", "prefix", "PREFIX_TUNING", marks=pytest.mark.slow),
    pytest.param("llama", "auto", "PREFIX_TUNING", marks=pytest.mark.slow),
])
def test_adapter_in_lm_eval_matches_in_memory_model(which, peft_type, saved_as, tiny_t5, tiny_llama, data_dir,
                                                    task_manager, tmp_path):
    import lm_eval

    base = tiny_t5 if which == "t5" else tiny_llama
    result = train(*_configs(base, tmp_path / "adapter", peft_type=peft_type))
    assert json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())["peft_type"] == saved_as
    out = lm_eval.simple_evaluate(
        model="hf", model_args=f"pretrained={base},peft={tmp_path / 'adapter'}", tasks=[TASK], limit=3,
        device="cpu", batch_size=2, log_samples=True, task_manager=task_manager,
    )
    _compare(out["samples"][TASK], result.model, result.tokenizer, seq2seq=which == "t5")


@pytest.mark.slow
def test_adapter_through_the_lm_eval_cli(tiny_t5, data_dir, tmp_path):
    result = train(*_configs(tiny_t5, tmp_path / "adapter"))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "INSTROBUST_DATA_DIR": str(data_dir),
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf",
           "--model_args", f"pretrained={tiny_t5},peft={tmp_path / 'adapter'}",
           "--include_path", str(REPO / "lm_eval_tasks"), "--tasks", TASK, "--limit", "3", "--device", "cpu",
           "--output_path", str(tmp_path / "eval"), "--log_samples"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (path,) = glob.glob(str(tmp_path / "eval" / "**" / f"samples_{TASK}_*.jsonl"), recursive=True)
    samples = [json.loads(line) for line in Path(path).read_text().splitlines()]
    _compare(samples, result.model, result.tokenizer, seq2seq=True)


class _Crash(Exception):
    pass


class _CrashAfterSave(TrainerCallback):
    def __init__(self, step: int):
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise _Crash(f"crashed after saving checkpoint-{self.step}")


def _adapter(path: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(path / "adapter_model.safetensors"))


def _same(run_a: Path, run_b: Path) -> bool:
    """The two runs' final adapters are bitwise equal."""
    a, b = _adapter(run_a), _adapter(run_b)
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_a_crash_gives_the_same_adapter(tiny_t5, tmp_path):
    ckpt = dict(steps=4, save_strategy="steps", save_steps=2)
    straight = train(*_configs(tiny_t5, tmp_path / "straight", **ckpt))
    with pytest.raises(_Crash):
        train(*_configs(tiny_t5, tmp_path / "resumed", **ckpt), callbacks=[_CrashAfterSave(2)])
    assert (tmp_path / "resumed" / "checkpoint-2" / PROMPT_ENCODER_STATE).is_file()
    assert not (tmp_path / "resumed" / "adapter_model.safetensors").exists()
    resumed = train(*_configs(tiny_t5, tmp_path / "resumed", resume_from_checkpoint="last", **ckpt))
    assert _same(tmp_path / "straight", tmp_path / "resumed")
    assert [h["loss"] for h in straight.log_history if "loss" in h][2:] == \
        [h["loss"] for h in resumed.log_history if "loss" in h][-2:]
    # A checkpoint without the full prompt encoder (PEFT's adapter file alone) cannot resume exactly.
    (tmp_path / "resumed" / "checkpoint-2" / PROMPT_ENCODER_STATE).unlink()
    with pytest.raises(CheckpointError, match="no prompt_encoder_state.safetensors"):
        train(*_configs(tiny_t5, tmp_path / "again", resume_from_checkpoint=str(tmp_path / "resumed" / "checkpoint-2"),
                        **ckpt))


def test_last_skips_an_incomplete_checkpoint(tiny_t5, tmp_path, caplog):
    """Fast variant of the SIGKILL test below: a real checkpoint made incomplete by hand."""
    ckpt = dict(steps=4, save_strategy="steps", save_steps=2)
    train(*_configs(tiny_t5, tmp_path / "straight", **ckpt))
    with pytest.raises(_Crash):
        train(*_configs(tiny_t5, tmp_path / "killed", **ckpt), callbacks=[_CrashAfterSave(4)])
    (tmp_path / "killed" / "checkpoint-4" / TRAINER_STATE_FILE).unlink()  # as if killed while saving it
    with pytest.raises(CheckpointError, match="incomplete checkpoint"):
        train(*_configs(tiny_t5, tmp_path / "other", resume_from_checkpoint=str(tmp_path / "killed" / "checkpoint-4"),
                        **ckpt))
    with caplog.at_level(logging.WARNING, logger="instrobust_train"):
        resumed = train(*_configs(tiny_t5, tmp_path / "killed", resume_from_checkpoint="last", **ckpt))
    assert f"skipping {tmp_path / 'killed' / 'checkpoint-4'}: incomplete checkpoint" in caplog.text
    assert "incomplete checkpoint" in (tmp_path / "killed" / "train.log").read_text()
    assert [h["step"] for h in resumed.log_history if "loss" in h][-2:] == [3, 4]  # continued from checkpoint-2
    assert _same(tmp_path / "straight", tmp_path / "killed")


_KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from instrobust_train.cli import parse
    from instrobust_train.train import train
    from instrobust_train.trainer import AlignmentTrainer

    save_optimizer = AlignmentTrainer._save_optimizer_and_scheduler

    def save_then_die(self, output_dir):  # the adapter and optimizer are on disk, trainer_state.json is not
        save_optimizer(self, output_dir)
        if self.state.global_step == 6:
            os.kill(os.getpid(), signal.SIGKILL)

    AlignmentTrainer._save_optimizer_and_scheduler = save_then_die
    train(*parse(sys.argv[1:]))
""")


@pytest.mark.slow
def test_resume_after_sigkill_during_a_save_through_the_cli(tiny_t5, tmp_path):
    from instrobust_train.cli import main

    def argv(out, *extra):
        return ["--base", str(tiny_t5), "--source", EXAMPLES, "--paraphrases", PARAPHRASES, "--n_examples", "12",
                "--output_dir", str(out), "--max_steps", "8", "--save_steps", "2", "--use_cpu", "--seed", "0",
                "--num_virtual_tokens", "4", "--encoder_hidden_size", "16", "--learning_rate", "3e-2",
                "--disable_tqdm", "true", "--report_to", "none", "--logging_steps", "1", *extra]

    assert main(argv(tmp_path / "straight")) == 0
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", _KILL_SCRIPT, *argv(tmp_path / "killed")], env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr[-2000:]
    killed = tmp_path / "killed"
    assert (killed / "checkpoint-6" / "adapter_model.safetensors").is_file()
    assert not (killed / "checkpoint-6" / "trainer_state.json").exists()  # killed in the middle of the save
    assert main(argv(killed, "--resume_from_checkpoint", "last")) == 0
    assert f"skipping {killed / 'checkpoint-6'}: incomplete checkpoint" in (killed / "train.log").read_text()
    log = [json.loads(line) for line in (killed / "training_log.jsonl").read_text().splitlines()]
    assert [h["step"] for h in log if "loss" in h] == list(range(1, 9))  # each step once: no mixed histories
    assert _same(tmp_path / "straight", killed)


@pytest.mark.slow
def test_two_process_ddp_run_on_cpu(tiny_t5, tmp_path):
    """torchrun with two CPU processes (gloo): groups are sharded whole, one adapter is written."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "instrobust_train.cli",
           "--base", str(tiny_t5), "--source", EXAMPLES, "--paraphrases", PARAPHRASES, "--n_examples", "12",
           "--output_dir", str(tmp_path / "ddp"), "--max_steps", "3", "--use_cpu", "--ddp_backend", "gloo",
           "--num_virtual_tokens", "4", "--encoder_hidden_size", "16", "--logging_steps", "1",
           "--disable_tqdm", "true"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (tmp_path / "ddp" / "adapter_model.safetensors").is_file()
    log = [json.loads(line) for line in (tmp_path / "ddp" / "training_log.jsonl").read_text().splitlines()]
    assert [h["step"] for h in log if "kl" in h] == [1, 2, 3]
