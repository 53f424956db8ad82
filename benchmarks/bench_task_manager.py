"""The plugin tax: how much longer lm-eval's ``TaskManager()`` takes to build with our tasks.

    python benchmarks/bench_task_manager.py [--repeats 5] [--tasks-dir lm_eval_tasks]
    python benchmarks/bench_task_manager.py --installed-python VENV/bin/python   # a real `pip install .`

lm-eval 0.4.13 indexes every ``*.yaml`` under ``lm_eval/tasks/`` (where ``pip install .`` puts
ours, as ``lm_eval/tasks/instrobust/``) and every ``--include_path`` on every run, whatever the
tasks asked for. Scanning our folder through ``include_path`` costs the same as scanning it
inside ``lm_eval/tasks/``: one parse per file (plus its ``include:``). So each repeat builds, in
a fresh interpreter and in alternating order,

* ``TaskManager()``                             - lm-eval alone (what other users pay), and
* ``TaskManager(include_path=<our task folder>)`` - lm-eval with instrobust installed,

(or, with ``--installed-python``, ``TaskManager()`` under an interpreter whose lm-eval has
instrobust installed in ``lm_eval/tasks/instrobust/``), and the ratio of the medians is the tax, in wall-clock time and in CPU time of the building
process (the steadier number on a shared machine). The number of YAML files and indexed names is
printed too. Goal (issue 15): ratio <= 1.15.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Run in a child interpreter so that each build starts cold (imports done before the clock).
CHILD = """
import json, sys, time
from lm_eval.tasks import TaskManager
path = sys.argv[1] or None
t, c = time.perf_counter(), time.process_time()
tm = TaskManager(include_path=path)
print(json.dumps({"seconds": time.perf_counter() - t, "cpu": time.process_time() - c, "names": len(tm.all_tasks)}))
"""


def build_once(include_path: str | None, python: str = sys.executable) -> dict:
    out = subprocess.run([python, "-c", CHILD, include_path or ""], check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tasks-dir", default=str(REPO / "lm_eval_tasks"), help="our generated task folder")
    ap.add_argument("--installed-python", help="an interpreter with instrobust pip-installed next to lm-eval")
    args = ap.parse_args(argv)
    ours = Path(args.tasks_dir)
    if args.installed_python:  # the plain side still runs under this interpreter: lm-eval without our tasks
        def build_with_ours():
            return build_once(None, args.installed_python)
        where = "import lm_eval.tasks.instrobust as m; print(m.__path__[0])"
        ours = Path(subprocess.run([args.installed_python, "-c", where], check=True, capture_output=True,
                                   text=True).stdout.strip())
    else:
        def build_with_ours():
            return build_once(str(ours))
    n_yaml = sum(1 for _ in ours.rglob("*.yaml"))
    runs: dict[bool, list[dict]] = {False: [], True: []}
    for r in range(args.repeats):
        # alternate which build goes first, so drift on a shared machine hits both sides
        for ours_too in ([False, True] if r % 2 == 0 else [True, False]):
            runs[ours_too].append(build_with_ours() if ours_too else build_once(None))
    print(f"our task folder: {ours} ({n_yaml} YAML files)")
    names = {k: v[0]["names"] for k, v in runs.items()}
    for key in ("seconds", "cpu"):
        med = {k: statistics.median(r[key] for r in v) for k, v in runs.items()}
        label = "wall" if key == "seconds" else "CPU "
        for ours_too, what in ((False, "lm-eval alone  "), (True, "with instrobust")):
            extra = f", +{names[True] - names[False]}" if ours_too else ""
            print(f"{label} TaskManager() {what}: median {med[ours_too]:.2f} s "
                  f"{[round(r[key], 2) for r in runs[ours_too]]} ({names[ours_too]} names{extra})")
        print(f"{label} ratio (goal <= 1.15): {med[True] / med[False]:.3f}x  (+{med[True] - med[False]:.2f} s per run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
