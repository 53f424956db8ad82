"""Cost of the KL term: a ``pt+kl`` training step vs a ``pt`` (CE-only) step, same batches, CPU.

    python benchmarks/bench_train_step.py            # all model configs below
    python benchmarks/bench_train_step.py --models t5-tiny --steps 10 --rounds 3

For each tiny model (built from a config: random weights, real transformers/PEFT classes) both
methods run the same pre-collated batches of alignment groups (reference + 3 paraphrases per
example) through ``AlignmentTrainer.training_step`` plus an optimizer step. Time: median over
rounds of steps/s, the methods alternating so machine load hits both alike. Memory: the peak
of CPU bytes allocated during a step above what was allocated before it (activations, logits,
log-probabilities, KL temporaries, gradients), from the torch profiler's allocator events;
weights and optimizer state, the same for both methods, are listed apart. Goal: time ratio <= 1.2,
memory ratio <= 1.3.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
FIXTURES = REPO / "tests" / "fixtures" / "train"

from instrobust_train.config import AlignmentConfig, DataConfig, ModelConfig, SoftPromptConfig  # noqa: E402
from instrobust_train.data import GroupDataset, attach_paraphrases, load_examples  # noqa: E402
from instrobust_train.model import load_base, soft_prompt_peft_config  # noqa: E402
from instrobust_train.trainer import AlignmentTrainer  # noqa: E402

MODELS = {
    # name: (builder, kwargs, vocab override); vocab 32128 = flan-t5's, so the vocabulary-sized
    # tensors of CE and KL weigh what they weigh on the real model.
    "t5-tiny": ("t5", {"d_model": 64, "layers": 2, "heads": 4}, None),
    "t5-tiny-vocab32k": ("t5", {"d_model": 64, "layers": 2, "heads": 4}, 32128),
    "llama-tiny": ("llama", {"hidden": 64, "layers": 2, "heads": 4}, None),
    # flan-t5-small's shape (d_model 512, 8 heads of 64, 6+6 layers, 32k vocab), random weights:
    # how the ratios look once the model, not the vocabulary, carries the step.
    "t5-small-shape": ("t5", {"d_model": 512, "layers": 6, "heads": 8}, 32128),
}


def build_model(name: str, root: Path) -> Path:
    from instrobust.tiny import build_tiny_llama, build_tiny_t5

    kind, kwargs, vocab = MODELS[name]
    path = root / name
    (build_tiny_t5 if kind == "t5" else build_tiny_llama)(path, **kwargs)
    if vocab:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM

        config = AutoConfig.from_pretrained(path)
        config.vocab_size = vocab
        auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
        torch.manual_seed(0)
        auto.from_config(config).save_pretrained(path)
    return path


def make_trainer(path: Path, method: str, out: Path):
    model_cfg = ModelConfig(base=str(path))
    args = AlignmentConfig(output_dir=str(out), method=method, use_cpu=True, seed=0, report_to="none",
                           disable_tqdm=True, learning_rate=1e-3)
    model, tok = load_base(model_cfg)
    peft_config = soft_prompt_peft_config(model, SoftPromptConfig(num_virtual_tokens=20, encoder_hidden_size=512))
    trainer = AlignmentTrainer(model, args, processing_class=tok, peft_config=peft_config)
    trainer.create_optimizer()
    trainer.current_gradient_accumulation_steps = 1  # set by Trainer.train(), which we bypass
    return trainer, tok


def make_batches(trainer, tok, groups_per_batch: int, n_batches: int) -> list[dict]:
    cfg = DataConfig(source=str(FIXTURES / "alignment_examples.jsonl"), n_examples=1000)
    examples = attach_paraphrases(load_examples(cfg), FIXTURES / "alignment_paraphrases.jsonl", 3)
    data = GroupDataset(examples, tok, cfg, trainer.is_encoder_decoder)
    items = [data[i % len(data)] for i in range(groups_per_batch * n_batches)]
    return [trainer.data_collator(items[i:i + groups_per_batch]) for i in range(0, len(items), groups_per_batch)]


def one_step(trainer, batch) -> None:
    trainer.training_step(trainer.model, batch)
    trainer.optimizer.step()
    trainer.optimizer.zero_grad(set_to_none=True)


def steps_per_second(trainer, batches, steps: int) -> float:
    start = time.perf_counter()
    for i in range(steps):
        one_step(trainer, batches[i % len(batches)])
    return steps / (time.perf_counter() - start)


def step_peak_bytes(trainer, batches, trace_dir: Path) -> int:
    """Peak bytes allocated during single steps, counted from the allocator events of the profiler."""
    from torch.profiler import ProfilerActivity, profile

    peak = 0
    for i, batch in enumerate(batches[:3]):
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            one_step(trainer, batch)
        trace = trace_dir / f"trace{i}.json"
        prof.export_chrome_trace(str(trace))
        events = [e for e in json.loads(trace.read_text())["traceEvents"] if e.get("name") == "[memory]"]
        trace.unlink()
        if events:  # "Total Allocated" counts from the start of profiling: state made before is excluded
            peak = max(peak, max(e["args"]["Total Allocated"] for e in events))
    return peak


def state_bytes(trainer) -> int:
    params = sum(p.numel() * p.element_size() for p in trainer.model.parameters())
    optim = sum(t.numel() * t.element_size() for s in trainer.optimizer.state.values() for t in s.values()
                if torch.is_tensor(t))
    return params + optim


def bench(name: str, root: Path, args) -> dict:
    path = build_model(name, root)
    trainers = {m: make_trainer(path, m, root / f"out-{name}-{m}") for m in ("pt", "pt+kl")}
    batches = make_batches(*trainers["pt"], args.groups, n_batches=6)
    rows = int(batches[0]["input_ids"].shape[0])
    speed = {m: [] for m in trainers}
    for trainer, _ in trainers.values():
        for b in batches[:3]:  # warm-up: optimizer state, allocator, kernels
            one_step(trainer, b)
    for _ in range(args.rounds):
        for method, (trainer, _) in trainers.items():
            speed[method].append(steps_per_second(trainer, batches, args.steps))
    peak = {m: step_peak_bytes(t, batches, root) for m, (t, _) in trainers.items()}
    med = {m: statistics.median(v) for m, v in speed.items()}
    return {
        "model": name, "rows_per_batch": rows, "vocab": trainers["pt"][0].model.config.vocab_size,
        "pt_steps_s": med["pt"], "ptkl_steps_s": med["pt+kl"], "time_ratio": med["pt"] / med["pt+kl"],
        "pt_peak_mib": peak["pt"] / 2**20, "ptkl_peak_mib": peak["pt+kl"] / 2**20,
        "mem_ratio": peak["pt+kl"] / peak["pt"], "state_mib": state_bytes(trainers["pt"][0]) / 2**20,
    }


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        cpu = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, torch {torch.__version__}, {torch.get_num_threads()} threads"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per method (median reported)")
    parser.add_argument("--groups", type=int, default=2, help="examples per batch (each brings 4 rows)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 by default: on a shared small box more threads make timings erratic")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"machine: {machine()}")
    print(f"{'model':18} {'vocab':>6} {'rows':>4} {'pt step/s':>9} {'pt+kl step/s':>12} {'time x':>6} "
          f"{'pt MiB':>7} {'pt+kl MiB':>9} {'mem x':>5} {'state MiB':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            r = bench(name, Path(tmp), args)
            print(f"{r['model']:18} {r['vocab']:>6} {r['rows_per_batch']:>4} {r['pt_steps_s']:>9.2f} "
                  f"{r['ptkl_steps_s']:>12.2f} {r['time_ratio']:>6.3f} {r['pt_peak_mib']:>7.2f} "
                  f"{r['ptkl_peak_mib']:>9.2f} {r['mem_ratio']:>5.3f} {r['state_mib']:>9.2f}", flush=True)
    print("time x = pt+kl step time / pt step time (goal <= 1.2); mem x = step peak ratio (goal <= 1.3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
