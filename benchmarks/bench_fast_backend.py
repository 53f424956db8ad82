"""Seconds per question and peak memory: ``instrobust-hf`` vs lm-eval's ``hf`` on seq2seq MMLU.

    INSTROBUST_DATA_DIR=../shared/data python benchmarks/bench_fast_backend.py [--limit 40] [--cloze]

Same model (a randomly initialised T5 shaped like t5-small: d_model 512, d_ff 2048, 8 heads, 6+6
layers, with an 8k BPE vocabulary trained on MMLU text so prompt lengths are realistic), same task (`mmlu_unobs_01`: 4 single-token letters; `--cloze` adds
`mmlu_cloze_unobs_01`: multi-token option texts), same requests, same process for the timings;
runs alternate between backends and the median is kept. Per batch size it prints

* seconds per question for the scoring call (``lm.loglikelihood`` on the task's requests) and for
  a whole ``simple_evaluate`` run (tasks already indexed; includes the harness's fixed cost of
  building the task, about a second here), and the hf / instrobust-hf ratio;
* memory, in a fresh subprocess per backend: peak bytes torch allocates while scoring (profiler
  allocator events), the rise of RSS while scoring (sampled every 2 ms) and the process's peak
  RSS (mostly libraries and weights), and the instrobust-hf / hf ratios;
* that both backends give the same accuracy and the largest log-likelihood difference.
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
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("INSTROBUST_DATA_DIR", str(REPO.parent / "shared" / "data"))

BACKENDS = ("hf", "instrobust-hf")


def build_model(path: Path, d_model: int, layers: int, heads: int, vocab: int) -> Path:
    """A random T5 with a BPE tokenizer trained on MMLU text, so prompts have realistic lengths.

    (``instrobust.tiny``'s 512-token vocabulary is nearly byte-level: an MMLU prompt would be
    ~4x longer than with T5's own tokenizer, which would overstate the encoder's share.)
    """
    import torch
    from transformers import T5Config, T5ForConditionalGeneration

    from instrobust.data import mmlu_split
    from instrobust.tiny import build_tokenizer

    if (path / "config.json").exists():
        return path
    pool = mmlu_split("test")
    text = [q["question"] + " " + " ".join(q["choices"]) for q in pool[::4]]
    tok = build_tokenizer(path, extra_text=text, vocab_size=vocab)
    torch.manual_seed(0)
    cfg = T5Config(
        vocab_size=len(tok), d_model=d_model, d_kv=d_model // heads, d_ff=d_model * 4, num_layers=layers,
        num_decoder_layers=layers, num_heads=heads, pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id, dropout_rate=0.0,
    )
    T5ForConditionalGeneration(cfg).save_pretrained(path)
    return path


def make_lm(name: str, model: Path, batch_size: int):
    import instrobust.models  # noqa: F401  (registers instrobust-hf)
    from lm_eval.api.registry import get_model

    return get_model(name)(pretrained=str(model), device="cpu", dtype="float32", batch_size=batch_size)


def task_requests(task_manager, task: str, limit: int):
    """The task's loglikelihood Instances, exactly as simple_evaluate builds them."""
    from lm_eval.tasks import get_task_dict

    t = get_task_dict([task], task_manager)[task]
    t.build_all_requests(limit=limit, rank=0, world_size=1)
    return t.instances


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def memory_child(args) -> None:
    """One backend in a fresh process: peak RSS of the whole process and its rise while scoring."""
    import resource

    from lm_eval.api.instance import Instance

    pairs = json.loads(Path(args.requests).read_text())
    instances = [Instance("loglikelihood", {}, tuple(pair), i) for i, pair in enumerate(pairs)]
    lm = make_lm(args.memory_child, Path(args.model), args.batch_sizes[0])
    lm.loglikelihood(instances[:8], disable_tqdm=True)  # allocator warm-up, as in a real run
    before = rss_kib()
    peak = [before]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], rss_kib())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lm.loglikelihood(instances, disable_tqdm=True)
    done.set()
    sampler.join()
    peak[0] = max(peak[0], rss_kib())
    print(json.dumps({
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "scoring_rise_mib": (peak[0] - before) / 1024,
        "torch_peak_mib": torch_peak_bytes(lm, instances, Path(args.requests).parent) / 2**20,
    }))


def torch_peak_bytes(lm, instances, trace_dir: Path) -> int:
    """Peak bytes torch holds during one scoring call, from the profiler's allocator events.

    "Total Allocated" counts from the start of profiling, so the weights loaded before are excluded;
    unlike RSS it does not depend on when the C allocator hands memory back to the system.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        lm.loglikelihood(instances, disable_tqdm=True)
    trace = trace_dir / f"trace-{os.getpid()}.json"
    prof.export_chrome_trace(str(trace))
    events = [e for e in json.loads(trace.read_text())["traceEvents"] if e.get("name") == "[memory]"]
    trace.unlink()
    return max((e["args"]["Total Allocated"] for e in events), default=0)


def measure_memory(args, backend: str, batch_size: int, instances) -> dict:
    # the child gets the task's requests as (context, continuation) pairs: no task indexing there
    requests = Path(args.model).parent / "requests.json"
    requests.write_text(json.dumps([list(i.args) for i in instances]))
    cmd = [sys.executable, __file__, "--memory-child", backend, "--model", str(args.model),
           "--requests", str(requests), "--batch-sizes", str(batch_size), "--threads", str(args.threads)]
    out = subprocess.run(cmd, capture_output=True, text=True, env=os.environ)
    if out.returncode != 0:
        raise SystemExit(f"memory run for {backend} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def machine() -> str:
    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True).stdout.splitlines() if line.startswith("Model name"))
    except (StopIteration, OSError):
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import torch

    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} CPU cores ({cpu}), {ram:.0f} GiB RAM, no GPU, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}; load average {load}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--limit", type=int, default=40, help="questions per task")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--d-model", type=int, default=512)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=8192, help="tokenizer vocabulary (trained on MMLU text)")
    ap.add_argument("--cloze", action="store_true", help="also time mmlu_cloze_unobs_01 (multi-token options)")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: OpenMP threads spin badly on a shared machine)")
    ap.add_argument("--requests", help=argparse.SUPPRESS)
    ap.add_argument("--model", default=None, help="reuse a model folder (built if missing)")
    ap.add_argument("--memory-child", choices=BACKENDS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress is readable when redirected to a file
    import torch

    torch.set_num_threads(args.threads)
    if args.memory_child:
        return memory_child(args)

    import lm_eval
    from lm_eval.tasks import TaskManager

    args.model = build_model(Path(args.model or tempfile.mkdtemp(prefix="instrobust-fast-") + "/t5"),
                             args.d_model, args.layers, args.heads, args.vocab)
    task_lists = [["mmlu_unobs_01"]] + ([["mmlu_cloze_unobs_01"]] if args.cloze else [])
    tm = TaskManager(include_path=str(REPO / "lm_eval_tasks"))
    print(f"machine: {machine()}")
    print(f"model: random T5 d_model={args.d_model} d_ff={4 * args.d_model} heads={args.heads} "
          f"layers={args.layers}+{args.layers} vocab={args.vocab}, float32; --limit {args.limit}, median of {args.repeats}")
    rows = []
    for tasks in task_lists:
        instances = [i for task in tasks for i in task_requests(tm, task, args.limit)]
        for bs in args.batch_sizes:
            lms = {name: make_lm(name, args.model, bs) for name in BACKENDS}
            for lm in lms.values():
                lm.loglikelihood(instances[:8], disable_tqdm=True)  # warm-up
            score_t = {name: [] for name in BACKENDS}
            run_t = {name: [] for name in BACKENDS}
            answers, acc = {}, {}
            for _ in range(args.repeats):
                for name, lm in lms.items():  # alternate, so machine noise hits both alike
                    t = time.perf_counter()
                    answers[name] = lm.loglikelihood(instances, disable_tqdm=True)
                    score_t[name].append(time.perf_counter() - t)
                for name, lm in lms.items():
                    t = time.perf_counter()
                    res = lm_eval.simple_evaluate(model=lm, tasks=tasks, limit=args.limit, task_manager=tm,
                                                  bootstrap_iters=0, verbosity="ERROR")
                    run_t[name].append(time.perf_counter() - t)
                    acc[name] = res["results"][tasks[0]]["acc,none"]
            diff = max(abs(a[0] - b[0]) for a, b in zip(answers["hf"], answers["instrobust-hf"]))
            flips = sum(a[1] != b[1] for a, b in zip(answers["hf"], answers["instrobust-hf"]))
            mem = {name: measure_memory(args, name, bs, instances) for name in BACKENDS}
            q = args.limit * len(tasks)
            s = {name: statistics.median(v) / q for name, v in score_t.items()}
            r = {name: statistics.median(v) / q for name, v in run_t.items()}
            rows.append((tasks[0], bs, s, r, mem, acc, diff, flips))
            ctx_len = statistics.mean(len(lms["hf"].tok_encode(i.args[0])) for i in instances)
            print(f"\n{tasks[0]}  batch_size={bs}  ({len(instances)} requests, {q} questions, "
                  f"mean prompt {ctx_len:.0f} tokens)")
            print(f"  scoring s/question   hf {s['hf']:.4f}   instrobust-hf {s['instrobust-hf']:.4f}   "
                  f"ratio {s['hf'] / s['instrobust-hf']:.2f}x")
            print(f"  whole run s/question hf {r['hf']:.4f}   instrobust-hf {r['instrobust-hf']:.4f}   "
                  f"ratio {r['hf'] / r['instrobust-hf']:.2f}x")
            for key, label in (("torch_peak_mib", "torch peak MiB    "), ("scoring_rise_mib", "RSS rise scoring  "),
                               ("peak_rss_mib", "process peak RSS  ")):
                print(f"  {label}   hf {mem['hf'][key]:.0f}   instrobust-hf {mem['instrobust-hf'][key]:.0f}   "
                      f"ratio {mem['instrobust-hf'][key] / max(mem['hf'][key], 1e-9):.2f}")
            print(f"  acc hf {acc['hf']:.4f}  instrobust-hf {acc['instrobust-hf']:.4f}   "
                  f"max |dLL| {diff:.2e}  is_greedy flips {flips}")


if __name__ == "__main__":
    main()
