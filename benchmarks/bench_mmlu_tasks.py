"""Cost of instrobust's MMLU tasks against the plain-harness baseline a user would otherwise write.

    INSTROBUST_DATA_DIR=../shared/data python benchmarks/bench_mmlu_tasks.py [--limit 200] [--repeats 3]

(a) per-request time: `mmlu_unobs_01` vs a plain lm-eval task using the harness's own MMLU prompt
    format over the same local CSVs (one pool, same --limit, same tiny model, same process);
(b) time to index + build many instruction tasks (every observed task that can be had plus all
    unobserved ones) vs building 57 plain per-subject tasks (the shape of lm-eval's `mmlu` group)
    over the same CSVs.
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

PLAIN = """task: {name}
dataset_path: csv
dataset_kwargs:
  data_files: {files}
  column_names: [question, A, B, C, D, answer]
test_split: train
output_type: multiple_choice
doc_to_text: "{{{{question.strip()}}}}\\nA. {{{{A}}}}\\nB. {{{{B}}}}\\nC. {{{{C}}}}\\nD. {{{{D}}}}\\nAnswer:"
doc_to_choice: ["A", "B", "C", "D"]
doc_to_target: "{{{{['A', 'B', 'C', 'D'].index(answer)}}}}"
metric_list:
  - metric: acc
"""


def write_plain_tasks(folder: Path, csv_dir: Path) -> list[str]:
    files = sorted(csv_dir.glob("*.csv"))
    (folder / "plain_mmlu_pool.yaml").write_text(PLAIN.format(name="plain_mmlu_pool", files=[str(f) for f in files]))
    names = []
    for f in files:
        name = "plain_mmlu_" + f.stem.rsplit("_", 1)[0]
        (folder / f"{name}.yaml").write_text(PLAIN.format(name=name, files=[str(f)]))
        names.append(name)
    return names


def timed(fn, repeats):
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=200)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    data_dir = Path(os.environ.setdefault("INSTROBUST_DATA_DIR", str(REPO.parent / "shared" / "data")))

    import lm_eval.evaluator
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager, get_task_dict

    from instrobust.bank import InstructionBank
    from tiny_models import build_tiny_t5

    tmp = Path(tempfile.mkdtemp(prefix="instrobust-bench-"))
    model_dir = build_tiny_t5(tmp / "t5", d_model=64, layers=2)
    plain_dir = tmp / "plain"
    plain_dir.mkdir()
    subject_tasks = write_plain_tasks(plain_dir, data_dir / "mmlu" / "test")

    t = time.perf_counter()
    tm = TaskManager(include_path=[str(REPO / "lm_eval_tasks"), str(plain_dir)])
    index_s = time.perf_counter() - t
    lm = HFLM(pretrained=str(model_dir), device="cpu", batch_size=8)

    # (a) per request
    rows = {}
    for name in ("plain_mmlu_pool", "mmlu_unobs_01"):
        tasks = get_task_dict([name], tm)
        n_req = 4 * args.limit
        sec, _ = timed(lambda: lm_eval.evaluator.evaluate(lm, tasks, limit=args.limit, verbosity="ERROR"), args.repeats)
        rows[name] = sec / n_req
    ratio_a = rows["mmlu_unobs_01"] / rows["plain_mmlu_pool"]

    # (b) build many instruction tasks vs 57 per-subject plain tasks (after one warm-up build each)
    bank = InstructionBank.load("mmlu")
    ours = [i.id for i in bank]
    get_task_dict(ours[:1], tm), get_task_dict(subject_tasks[:1], tm)
    build_ours, _ = timed(lambda: get_task_dict(ours, tm), args.repeats)
    build_plain, _ = timed(lambda: get_task_dict(subject_tasks, tm), args.repeats)
    ratio_b = build_ours / build_plain

    print(f"TaskManager index (lm-eval's tasks + ours + 58 plain): {index_s:.1f} s")
    print(f"(a) seconds/request, limit {args.limit}, tiny T5 d_model=64, CPU:")
    print(f"    plain harness MMLU format  {rows['plain_mmlu_pool'] * 1e3:8.2f} ms")
    print(f"    mmlu_unobs_01              {rows['mmlu_unobs_01'] * 1e3:8.2f} ms   ratio {ratio_a:.3f}x (goal <= 1.05x)")
    print(f"(b) build {len(ours)} instruction tasks: {build_ours:.2f} s; 57 plain subject tasks: {build_plain:.2f} s;"
          f" ratio {ratio_b:.2f}x (goal <= 2x)")
    if bank.skipped:
        print(f"    (skipped collections: {', '.join(bank.skipped)})")


if __name__ == "__main__":
    main()
