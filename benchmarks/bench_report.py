"""Time `instrobust report` on a full-size MMLU output folder against just reading the same files.

    python benchmarks/bench_report.py [--items 14042] [--models 1] [--bootstrap 2000] [--keep DIR]

Writes a synthetic lm-eval output folder in lm-eval 0.4's exact layout (results_<stamp>.json and
one samples_<task>_<stamp>.jsonl per task, lines shaped like real --log_samples lines, ~2.5 kB
each) for the 107 MMLU letter tasks (50 Flan 2022, 20 Alpaca, 13 P3 and 24 unobserved instructions;
the model is google/flan-t5-xl, so Flan 2022 is its observed collection and Alpaca / P3 are reported
as their own rows), then times:

  baseline   loads() of the results file and of every samples line (what any reader must do), with
             the stdlib json and, if installed, orjson (which the report uses when available)
  report     instrobust.report.make_report (load + statistics + bootstrap + figures + writing; with
             --models 2 also the adapter-vs-base bootstrap and sign-flip test over the items)

and prints report/baseline. Objective: the report should cost a small multiple of reading its input.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from instrobust.report import ReportConfig, make_report  # noqa: E402

OBSERVED = [("flan2022", 50), ("alpaca", 20), ("p3", 13)]
N_UNOBSERVED = 24
STAMP = "2026-01-01T00-00-00.000001"


def task_names() -> list[tuple[str, str]]:
    names = [(f"mmlu_obs_{c}_{i:02d}", c) for c, n in OBSERVED for i in range(1, n + 1)]
    return names + [(f"mmlu_unobs_{i:02d}", "unobserved") for i in range(1, N_UNOBSERVED + 1)]


def write_model(root: Path, model: str, n_items: int, seed: int, peft: str | None = None) -> None:
    rng = random.Random(seed)
    folder = root / model.replace("/", "__")
    folder.mkdir(parents=True, exist_ok=True)
    question = "Which of the following statements about the given field extension is correct? " * 2
    prompt = f"Answer the question with the letter of the right option.\n\n{question}\nA. 0\nB. 4\nC. 2\nD. 6\nAnswer:"
    results, configs = {}, {}
    for task, collection in task_names():
        p = 0.45 + rng.uniform(-0.05, 0.05)
        correct = 0
        with open(folder / f"samples_{task}_{STAMP}.jsonl", "w") as fh:
            for doc_id in range(n_items):
                acc = 1.0 if rng.random() < p else 0.0
                correct += acc
                row = {"doc_id": doc_id, "doc": {"question": question, "choices": ["0", "4", "2", "6"], "answer": 1,
                                                 "subject": "abstract algebra", "letters": list("ABCD"),
                                                 "instruction": task},
                       "target": "1",
                       "arguments": {f"gen_args_{k}": {"arg_0": prompt, "arg_1": f" {'ABCD'[k]}"} for k in range(4)},
                       "resps": [[[str(-rng.random() * 8), "False"]] for _ in range(4)],
                       "filtered_resps": [[str(-rng.random() * 8), "False"] for _ in range(4)],
                       "filter": "none", "metrics": ["acc"], "doc_hash": "0" * 64, "prompt_hash": "1" * 64,
                       "target_hash": "2" * 64, "acc": acc}
                fh.write(json.dumps(row) + "\n")
        results[task] = {"alias": task, "acc,none": correct / n_items, "acc_stderr,none": 0.0, "sample_len": n_items}
        configs[task] = {"task": task, "num_fewshot": 0, "metadata": {
            "version": 1.0, "collection": collection, "observed": collection != "unobserved", "scoring": "letter"}}
    data = {"results": results, "group_subtasks": {}, "configs": configs,
            "n-shot": {t: 0 for t in results},
            "n-samples": {t: {"original": 14042, "effective": n_items} for t in results},
            "config": {"model": "hf", "model_args": {"pretrained": model, **({"peft": peft} if peft else {})}},
            "model_name": model, "date": 1.0}
    (folder / f"results_{STAMP}.json").write_text(json.dumps(data))


def baseline_read(root: Path, loads=json.loads) -> int:
    n = 0
    for results in root.rglob("results_*.json"):
        loads(results.read_bytes())
        for samples in results.parent.glob("samples_*.jsonl"):
            with open(samples, "rb") as fh:
                for line in fh:
                    loads(line)
                    n += 1
    return n


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=14042, help="items per task (14042 = all of MMLU)")
    ap.add_argument("--models", type=int, default=1, help="1 = one model; 2 = plus an adapter of it (comparisons)")
    ap.add_argument("--bootstrap", type=int, default=2000)
    ap.add_argument("--keep", help="write the synthetic folder here and keep it (reused if it exists)")
    args = ap.parse_args()
    root = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_report_"))
    try:
        t = time.perf_counter()
        if not (root / "runs").is_dir():  # --keep DIR from an earlier run: reuse its files
            write_model(root / "runs", "google/flan-t5-xl", args.items, seed=0)
            if args.models > 1:
                write_model(root / "runs_adapter", "google/flan-t5-xl", args.items, seed=1, peft="/ckpt/prefix")
        size = sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and "out" not in f.parts)
        print(f"lm-eval output: {size / 1e9:.2f} GB ({len(task_names())} tasks x {args.items} items x "
              f"{args.models} model(s)), ready in {time.perf_counter() - t:.0f} s")
        baselines = {"json": json.loads}
        try:
            import orjson

            baselines["orjson"] = orjson.loads  # what the report uses when it is installed
        except ImportError:
            pass
        for name, loads in baselines.items():
            t = time.perf_counter()
            lines = baseline_read(root, loads)
            base = time.perf_counter() - t  # the last one (the report's own parser) is the ratio's base
            print(f"baseline: {name}.loads of results + {lines} samples lines: {base:.1f} s")
        inputs = [root / "runs"] + ([root / "runs_adapter"] if args.models > 1 else [])
        timings = {}
        for name, cfg, figures in (("report, no bootstrap, no figures", ReportConfig(n_boot=0), False),
                                   (f"report, bootstrap {args.bootstrap}, figures", ReportConfig(n_boot=args.bootstrap),
                                    True)):
            t = time.perf_counter()
            make_report(inputs, root / "out", cfg, figures=figures)
            timings[name] = time.perf_counter() - t
            print(f"{name}: {timings[name]:.1f} s = {timings[name] / base:.2f} x baseline")
        print(f"(ratios are against the {list(baselines)[-1]} baseline: the parser the report itself uses)")
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    print(f"machine: {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
