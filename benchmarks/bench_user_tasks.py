"""A user's instruction on a wrapped lm-eval task vs that lm-eval task alone, same documents, same model.

    python benchmarks/bench_user_tasks.py [--docs 400] [--repeats 3]

The benchmark is a local-JSON lm-eval ``multiple_choice`` task (4 options per document, the test's
quiz schema, ``--docs`` synthetic documents); the user's instruction is tests/fixtures/user/prompts/01.jinja
(letters). Timed, in one process and in alternating order, with a tiny random Llama (tests/tiny_models.py):

* ``instrobust tasks`` once (its checks and the observed-collection comparison included);
* building the task (``TaskManager.load``): plain lm-eval vs the wrapped user task, whose loader
  builds the lm-eval task again and maps its documents;
* a whole ``simple_evaluate`` (build + scoring every document): the ratio is the user-task tax.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # tests/tiny_models.py: tiny random models built from a config
PROMPTS = REPO / "tests" / "fixtures" / "user" / "prompts"
QUIZ_YAML = """task: school_quiz
dataset_path: json
dataset_kwargs:
  data_files:
    test: {path}
output_type: multiple_choice
test_split: test
doc_to_text: "Question: {{{{query_text}}}}\\nAnswer:"
doc_to_choice: "{{{{options}}}}"
doc_to_target: "{{{{['A', 'B', 'C', 'D'].index(gold)}}}}"
metadata:
  version: 1.0
"""


def _setup(root: Path, n_docs: int) -> tuple[Path, Path, Path]:
    quiz = root / "quiz"
    quiz.mkdir()
    with open(quiz / "test.jsonl", "w") as f:
        for i in range(n_docs):
            f.write(json.dumps({"query_text": f"Which number comes right after {i}?",
                                "options": [str(i + d) for d in (2, 1, 3, 0)], "gold": "B"}) + "\n")
    (quiz / "quiz.yaml").write_text(QUIZ_YAML.format(path=quiz / "test.jsonl"))
    prompts = root / "prompts"
    prompts.mkdir()
    shutil.copy(PROMPTS / "01.jinja", prompts)
    (prompts / "answers.yaml").write_text('"01": letters\n')
    return quiz, prompts, root / "tasks"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=400)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    import lm_eval
    from lm_eval.tasks import TaskManager

    from tiny_models import build_tiny_llama
    from instrobust.user_tasks import main as tasks

    root = Path(tempfile.mkdtemp(prefix="bench-user-tasks-"))
    quiz, prompts, out = _setup(root, args.docs)
    model = build_tiny_llama(root / "llama")
    t = time.perf_counter()
    assert tasks(["--instructions", str(prompts), "--benchmark", "lm-eval:school_quiz", "--out", str(out),
                  "--lm-eval-include", str(quiz), "--field", "question=query_text"]) == 0
    print(f"instrobust tasks: {time.perf_counter() - t:.2f} s")

    sides = {"plain": (quiz, "school_quiz"), "user": (out, "school_quiz_user_01")}
    build = {k: [] for k in sides}
    run = {k: [] for k in sides}
    for r in range(args.repeats):
        for side in (list(sides) if r % 2 == 0 else list(sides)[::-1]):
            folder, task = sides[side]
            tm = TaskManager(include_path=str(folder), include_defaults=False)
            t = time.perf_counter()
            tm.load(task)
            build[side].append(time.perf_counter() - t)
            t = time.perf_counter()
            res = lm_eval.simple_evaluate(model="hf", model_args={"pretrained": str(model)}, tasks=[task],
                                          task_manager=tm, device="cpu", batch_size=32)
            run[side].append(time.perf_counter() - t)
            assert res["n-samples"][task]["effective"] == args.docs
    for name, times in (("build the task", build), ("simple_evaluate", run)):
        plain, user = statistics.median(times["plain"]), statistics.median(times["user"])
        print(f"{name}: plain {plain:.2f} s, user {user:.2f} s, ratio {user / plain:.2f} "
              f"(median of {args.repeats}, {args.docs} documents)")
    shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
