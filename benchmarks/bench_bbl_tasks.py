"""Cost of instrobust's BIG-bench Lite tasks against the plain-harness task a user would otherwise write.

    INSTROBUST_DATA_DIR=../shared/data python benchmarks/bench_bbl_tasks.py [--limit 100] [--repeats 3]

(a) per-request time: `bbl_winowhy_unobs_01` (instruction rendered through instrobust.bank.render)
    vs a plain lm-eval task over the same winowhy task.json (`dataset_path: json`, field
    `examples`, `doc_to_text: "{{input}}"`), same --limit, same tiny model, same process;
(b) time to build the winowhy instruction tasks that can be had (observed without Alpaca +
    unobserved + designer: 36; one pool, 36 tagged views) vs building 1 plain task;
(c) cold start of the BBL bank (every instruction, upstream files parsed and checked) and of
    all 19 task pools (task.json parsing, documents, held-out split).
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))  # tests/tiny_models.py: tiny random models built from a config

PLAIN = """task: plain_winowhy
dataset_path: json
dataset_kwargs:
  data_files: {path}
  field: examples
test_split: train
output_type: multiple_choice
doc_to_text: "{{{{input}}}}"
doc_to_choice: "{{{{target_scores.keys() | list}}}}"
doc_to_target: "{{{{(target_scores.values() | list).index(1)}}}}"
metric_list:
  - metric: acc
"""


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    data_dir = Path(os.environ.get("INSTROBUST_DATA_DIR", REPO.parent / "shared" / "data"))
    os.environ["INSTROBUST_DATA_DIR"] = str(data_dir)

    import lm_eval
    from lm_eval.tasks import TaskManager

    from instrobust.bbl import TASKS
    from instrobust.bbl.tasks import task_specs
    from tiny_models import build_tiny_t5

    tmp = Path(tempfile.mkdtemp(prefix="bench_bbl_"))
    (tmp / "plain").mkdir()
    (tmp / "plain" / "plain_winowhy.yaml").write_text(PLAIN.format(path=data_dir / "bigbench" / "winowhy" / "task.json"))
    model = build_tiny_t5(tmp / "tiny_t5")
    tm = TaskManager(include_path=[str(REPO / "lm_eval_tasks"), str(tmp / "plain")])

    def run(task):
        return lambda: lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={model}", tasks=[task],
                                               limit=args.limit, device="cpu", task_manager=tm)

    print(f"(a) evaluate {args.limit} winowhy documents (median of {args.repeats})")
    t_plain, _ = timed(run("plain_winowhy"), args.repeats)
    t_ours, _ = timed(run("bbl_winowhy_unobs_01"), args.repeats)
    print(f"    plain lm-eval task      {t_plain:7.2f} s")
    print(f"    bbl_winowhy_unobs_01    {t_ours:7.2f} s   ratio {t_ours / t_plain:.2f}x")

    names = [s.name for s in task_specs() if s.bbl_task == "winowhy" and s.collection != "alpaca"]
    print(f"(b) build tasks (median of {args.repeats})")
    t_plain_b, _ = timed(lambda: tm.load(["plain_winowhy"]), args.repeats)
    t_ours_b, _ = timed(lambda: tm.load(names), args.repeats)
    print(f"    1 plain task            {t_plain_b:7.2f} s")
    print(f"    {len(names)} winowhy instruction tasks {t_ours_b:7.2f} s   per task {t_ours_b / len(names) / t_plain_b:.2f}x the plain one")

    print("(c) cold start, fresh process state")
    from instrobust.bbl import data as bbl_data
    from instrobust.bbl import instructions

    bbl_data.bbl_pool.cache_clear()
    instructions.observed_for_type.cache_clear()
    t0 = time.perf_counter()
    docs = sum(len(bbl_data.bbl_pool(t).test) for t in TASKS)
    t1 = time.perf_counter()
    bank = instructions.load_bbl_bank()
    t2 = time.perf_counter()
    print(f"    19 task pools: {docs} test documents in {t1 - t0:.2f} s")
    print(f"    BBL bank: {len(bank)} instructions loaded and checked in {t2 - t1:.2f} s (pools cached)")


if __name__ == "__main__":
    main()
