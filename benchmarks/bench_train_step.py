"""Cost of the KL term: a ``pt+kl`` training step vs a ``pt`` (CE-only) step, same batches, CPU;
and the consistency KL that training reaches with each soft prompt type.

    python benchmarks/bench_train_step.py            # all model configs and soft prompt types below
    python benchmarks/bench_train_step.py --models t5-tiny --peft_types p_tuning --steps 10 --rounds 3

For each tiny model (built from a config: random weights, real transformers/PEFT classes) and
soft prompt type (``prefix``; ``p_tuning``, the ``auto`` choice for T5) both methods run the
same pre-collated batches of alignment groups (reference + 3 paraphrases per
example) through ``AlignmentTrainer.training_step`` plus an optimizer step. Time: median over
rounds of steps/s, the methods alternating so machine load hits both alike. Memory: the peak
of CPU bytes allocated during a step above what was allocated before it (activations, logits,
log-probabilities, KL temporaries, gradients), from the torch profiler's allocator events;
weights and optimizer state, the same for both methods, are listed apart. Goal: time ratio <= 1.2,
memory ratio <= 1.3.

Second table (``--kl_steps``, 0 to skip): on the tiny T5 and the fixture task (24 examples x
reference + 3 paraphrases), the mean L_KL over all groups (eval mode, ``kl_reduction=sum``) of the
base model, and after ``pt`` and ``pt+kl`` training with each type (same seed, steps, lr).
"""
from __future__ import annotations

import argparse
import dataclasses
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
sys.path.insert(0, str(REPO / "tests"))  # tests/tiny_models.py: tiny random models built from a config
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
    from tiny_models import build_tiny_llama, build_tiny_t5

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


def make_trainer(path: Path, method: str, out: Path, peft_type: str = "prefix"):
    model_cfg = ModelConfig(base=str(path))
    args = AlignmentConfig(output_dir=str(out), method=method, use_cpu=True, seed=0, report_to="none",
                           disable_tqdm=True, learning_rate=1e-3)
    model, tok = load_base(model_cfg)
    peft_config = soft_prompt_peft_config(
        model, SoftPromptConfig(peft_type=peft_type, num_virtual_tokens=20, encoder_hidden_size=512))
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


def bench(name: str, peft_type: str, root: Path, args) -> dict:
    path = root / name if (root / name).is_dir() else build_model(name, root)
    trainers = {m: make_trainer(path, m, root / f"out-{name}-{m}", peft_type) for m in ("pt", "pt+kl")}
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
        "model": name, "peft_type": peft_type, "rows_per_batch": rows, "vocab": trainers["pt"][0].model.config.vocab_size,
        "pt_steps_s": med["pt"], "ptkl_steps_s": med["pt+kl"], "time_ratio": med["pt"] / med["pt+kl"],
        "pt_peak_mib": peak["pt"] / 2**20, "ptkl_peak_mib": peak["pt+kl"] / 2**20,
        "mem_ratio": peak["pt+kl"] / peak["pt"], "state_mib": state_bytes(trainers["pt"][0]) / 2**20,
    }


def mean_kl(trainer, dataset, with_adapter: bool = True) -> tuple[float, float]:
    """Mean (L_KL, CE) over all groups of ``dataset``, two groups per batch, eval mode, no updates."""
    import contextlib

    model = trainer.model.eval()
    kls, ces = [], []
    off = contextlib.nullcontext() if with_adapter else model.disable_adapter()
    with torch.no_grad(), off:
        for start in range(0, len(dataset), 2):
            batch = trainer.data_collator([dataset[i] for i in range(start, min(start + 2, len(dataset)))])
            trainer.compute_loss(model, batch)
            kls.append(trainer._metrics["kl"].pop().item())
            ces.append(trainer._metrics["ce"].pop().item())
    return statistics.mean(kls), statistics.mean(ces)


def _instruction_tuned(path: Path, root: Path, data: DataConfig, steps: int):
    """The tiny T5 fully fine-tuned on the reference instructions only (no paraphrases), so that,
    like a real instruction-tuned model, it fits the wording it was trained on."""
    from instrobust_train.train import train

    out = root / "t5-tiny-tuned"
    ref_only = dataclasses.replace(data, max_paraphrases=0)
    args = AlignmentConfig(output_dir=str(out), method="ft", use_cpu=True, seed=0, report_to="none", disable_tqdm=True,
                           learning_rate=3e-3, max_steps=steps, save_strategy="no", logging_steps=steps)
    train(ModelConfig(base=str(path)), ref_only, SoftPromptConfig(), args)
    return out


def kl_after_training(root: Path, steps: int, learning_rate: float, base: str) -> list[dict]:
    """Train ``pt`` and ``pt+kl`` with each soft prompt type on the fixture task; measure L_KL after."""
    import logging

    from instrobust_train.train import train

    quiet = logging.StreamHandler()  # train() adds no console handler of its own when one exists
    quiet.setLevel(logging.WARNING)
    logging.getLogger("instrobust_train").addHandler(quiet)
    path = root / "t5-tiny" if (root / "t5-tiny").is_dir() else build_model("t5-tiny", root)
    data = DataConfig(source=str(FIXTURES / "alignment_examples.jsonl"),
                      paraphrases=str(FIXTURES / "alignment_paraphrases.jsonl"), n_examples=1000)
    if base == "tuned":
        path = _instruction_tuned(path, root, data, steps=300)
    rows = []
    for peft_type in ("prefix", "p_tuning"):
        for method in ("pt", "pt+kl"):
            args = AlignmentConfig(output_dir=str(root / f"kl-{base}-{peft_type}-{method}"), method=method,
                                   use_cpu=True, seed=0, report_to="none", disable_tqdm=True,
                                   learning_rate=learning_rate, max_steps=steps, save_strategy="no",
                                   logging_steps=steps)
            result = train(ModelConfig(base=str(path)), data,
                           SoftPromptConfig(peft_type=peft_type, num_virtual_tokens=20, encoder_hidden_size=512), args)
            trainer = result.trainer
            trainer.args.method = "pt+kl"  # pt trained on CE alone; measuring still needs the KL term
            dataset = trainer.train_dataset
            if not rows:
                base_kl, base_ce = mean_kl(trainer, dataset, with_adapter=False)
                rows.append({"peft_type": "(no soft prompt)", "method": "-", "kl": base_kl, "ce": base_ce})
                print(f"  {base} base model, no soft prompt: L_KL {base_kl:.4f}  CE {base_ce:.4f}", flush=True)
            kl, ce = mean_kl(trainer, dataset)
            rows.append({"peft_type": peft_type, "method": method, "kl": kl, "ce": ce})
            print(f"  {peft_type:9} {method:6} L_KL {kl:.4f}  CE {ce:.4f}", flush=True)
    return rows


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
    parser.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS),
                        help="models of the step table (none: only the KL table)")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per method (median reported)")
    parser.add_argument("--groups", type=int, default=2, help="examples per batch (each brings 4 rows)")
    parser.add_argument("--peft_types", nargs="+", default=["prefix", "p_tuning"], choices=["prefix", "p_tuning"])
    parser.add_argument("--kl_steps", type=int, default=120,
                        help="training steps per run of the KL-after-training table (0: skip it)")
    parser.add_argument("--kl_lr", type=float, default=1e-2, help="learning rate of those runs")
    parser.add_argument("--kl_bases", nargs="+", default=["random", "tuned"], choices=["random", "tuned"],
                        help="random: the random-weights tiny T5; tuned: it after full fine-tuning on the "
                             "reference instructions (instruction-sensitive, like a real instruction-tuned model)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads; 1 by default: on a shared small box more threads make timings erratic")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    print(f"machine: {machine()}")
    print(f"{'model':18} {'type':8} {'vocab':>6} {'rows':>4} {'pt step/s':>9} {'pt+kl step/s':>12} {'time x':>6} "
          f"{'pt MiB':>7} {'pt+kl MiB':>9} {'mem x':>5} {'state MiB':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            for peft_type in args.peft_types:
                r = bench(name, peft_type, Path(tmp), args)
                print(f"{r['model']:18} {r['peft_type']:8} {r['vocab']:>6} {r['rows_per_batch']:>4} "
                      f"{r['pt_steps_s']:>9.2f} {r['ptkl_steps_s']:>12.2f} {r['time_ratio']:>6.3f} "
                      f"{r['pt_peak_mib']:>7.2f} {r['ptkl_peak_mib']:>9.2f} {r['mem_ratio']:>5.3f} "
                      f"{r['state_mib']:>9.2f}", flush=True)
        print("time x = pt+kl step time / pt step time (goal <= 1.2); mem x = step peak ratio (goal <= 1.3)")
        for kl_base in args.kl_bases if args.kl_steps else []:
            print(f"\nconsistency L_KL on the fixture task, {kl_base} t5-tiny, after {args.kl_steps} steps "
                  f"(lr {args.kl_lr}):")
            kl_after_training(Path(tmp), args.kl_steps, args.kl_lr, kl_base)
    return 0


if __name__ == "__main__":
    sys.exit(main())
