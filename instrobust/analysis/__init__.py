"""`instrobust analyze`: how far unobserved instructions sit from observed ones in the model (paper,
section 4.5, Table 4, Figures 4-5; Table 6 with --peft).

    instrobust analyze --model google/flan-t5-xl [--peft ADAPTER] --tasks mmlu_observed_flan2022,mmlu_unobserved \\
        --n-examples 300 --seed 0 --out OUTDIR [--results DIR ...] [--peft-results DIR ...] \\
        [--device cpu] [--batch-size 16] [--observed 'my-model*=flan2022']
    instrobust analyze --from-saved OUTDIR --out OUTDIR2 [--results DIR ...]

Library use: ``analyze(AnalysisConfig(...))``; the parts are ``resolve_tasks`` (tasks.py),
``load_model``/``extract``/``first_token_states`` (extract.py), ``Representations`` (store.py),
``instruction_distances``/``nearest_distances`` (distances.py), ``load_accuracies``/``linear_fit``
(accuracy.py) and the figures (plots.py).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from instrobust.analysis.accuracy import Accuracies, LinearFit, degradations, linear_fit, load_accuracies
from instrobust.analysis.distances import category_distances, instruction_distances, nearest_distances
from instrobust.analysis.errors import AnalysisError
from instrobust.analysis.extract import ExtractConfig, extract, first_token_states, load_model, with_adapter
from instrobust.analysis.run import AnalysisConfig, analyze, load_saved
from instrobust.analysis.store import Representations, Row
from instrobust.analysis.tasks import AnalysisTask, check_comparable, resolve_tasks
from instrobust.errors import InstrobustError

__all__ = ["Accuracies", "AnalysisConfig", "AnalysisError", "AnalysisTask", "ExtractConfig", "LinearFit",
           "Representations", "Row", "analyze", "category_distances", "check_comparable", "degradations",
           "extract", "first_token_states", "instruction_distances", "linear_fit", "load_accuracies",
           "load_model", "load_saved", "main", "nearest_distances", "resolve_tasks", "with_adapter"]


def _names(values: list[str]) -> list[str]:
    return [n.strip() for v in values for n in v.split(",") if n.strip()]


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="instrobust analyze",
        description="Distances between observed and unobserved instructions in a model's representation of the "
                    "first decoded token (penultimate layer), joined with accuracies from lm-eval output.")
    ap.add_argument("--model", help="model folder or hub id (seq2seq or causal)")
    ap.add_argument("--peft", metavar="ADAPTER", help="PEFT adapter folder (e.g. from instrobust-train): also "
                    "analyse model + adapter and compare (Table 6)")
    ap.add_argument("--tasks", action="append", default=[], help="comma-separated lm-eval task or group names, "
                    "e.g. mmlu_observed_p3,mmlu_unobserved (repeatable)")
    ap.add_argument("--tasks-dir", help="folder of task YAMLs to read instead of instrobust's own tasks (the catalog)")
    ap.add_argument("--n-examples", type=int, default=300, help="examples sampled per pool (MMLU, each BBL task)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True, help="folder for analysis.json, analysis.md, figures/, representations/")
    ap.add_argument("--results", nargs="+", action="extend", default=[], metavar="DIR",
                    help="lm-eval --output_path folder(s), results_*.json or report.json of the model")
    ap.add_argument("--peft-results", nargs="+", action="extend", default=[], metavar="DIR",
                    help="the same for model + adapter")
    ap.add_argument("--from-saved", metavar="DIR", help="reuse representations saved by an earlier run (its --out)")
    ap.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda when available)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--max-length", type=int, help="keep only the last N prompt tokens")
    ap.add_argument("--tsne-max-points", type=int, default=3000, help="t-SNE on at most this many points per plot")
    ap.add_argument("--tsne-perplexity", type=float, help="default: min(30, (points - 1) / 3)")
    ap.add_argument("--no-tsne", action="store_true", help="skip the t-SNE figures")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--observed", action="append", default=[], metavar="PATTERN=COLL[,COLL]",
                    help="the instruction collection(s) the model was trained on (its observed instructions), e.g. "
                         "'my-model*=flan2022'; known: Flan-T5=flan2022, Alpaca=alpaca, T0=p3 (repeatable)")
    return ap


def config_from_args(args: argparse.Namespace) -> AnalysisConfig:
    return AnalysisConfig(
        out=Path(args.out), model=args.model, peft=args.peft, tasks=_names(args.tasks), tasks_dir=args.tasks_dir,
        results=args.results, peft_results=args.peft_results, from_saved=args.from_saved, device=args.device,
        dtype=args.dtype,
        extract=ExtractConfig(n_examples=args.n_examples, seed=args.seed, batch_size=args.batch_size,
                              max_length=args.max_length, progress=not args.no_progress),
        tsne=not args.no_tsne, tsne_max_points=args.tsne_max_points, tsne_perplexity=args.tsne_perplexity,
        observed=tuple(args.observed))


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        if args.peft and not args.from_saved:
            from instrobust.errors import check_adapter_dir

            check_adapter_dir(args.peft)
        report = analyze(config_from_args(args))
    except InstrobustError as exc:
        print(f"instrobust analyze: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    for label, run in report["runs"].items():
        for c in run["categories"]:
            extra = f", avg Δacc {c['degradation']:+.1f} points" if c.get("degradation") is not None else ""
            print(f"{label}: {c['category']}: avg l2 distance to nearest observed {c['mean']:.3f} "
                  f"over {c['n_unobserved']} unobserved instruction(s){extra}")
    print(f"wrote {out / 'analysis.md'} and {out / 'analysis.json'}")
    return 0
