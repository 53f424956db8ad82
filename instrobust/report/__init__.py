"""`instrobust report`: robustness report (paper tables and figures, with statistics) from lm-eval outputs.

    instrobust report RESULTS_DIR [RESULTS_DIR ...] --out OUTDIR [--pooled] [--bootstrap N] [--seed S]
                      [--observed 'flan-t5*=flan2022' ...]

Library use: ``load(paths)`` -> cells and models; ``build_report(cells, models, ReportConfig())``
-> the report.json dict; ``write_report(report, outdir)`` -> report.md, report.json, figures/.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from instrobust.errors import InstrobustError
from instrobust.report.build import SCHEMA_VERSION, ReportConfig, build_report
from instrobust.report.cells import Cell, ModelInfo, ReportInputError
from instrobust.report.load import load, planned_counts
from instrobust.report.render import render_markdown
from instrobust.report.stats import Summary, summarize
from instrobust.report.trained_on import parse_rule, trained_on

__all__ = ["Cell", "ModelInfo", "ReportConfig", "ReportInputError", "SCHEMA_VERSION", "Summary", "build_report",
           "load", "main", "make_report", "prepare_outdir", "render_markdown", "summarize", "trained_on",
           "write_report"]


def prepare_outdir(outdir: str | Path) -> Path:
    """The --out folder, created; the figures an earlier report wrote there are removed (they may be stale)."""
    outdir = Path(outdir)
    if outdir.exists() and not outdir.is_dir():
        raise ReportInputError(f"--out {outdir}: is an existing file, not a folder; give a folder for report.md, "
                               "report.json and figures/")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ReportInputError(f"--out {outdir}: cannot create this folder ({exc.strerror})") from None
    try:
        previous = json.loads((outdir / "report.json").read_text()).get("figures") or []
    except (OSError, ValueError, AttributeError):
        previous = []
    figures = (outdir / "figures").resolve()
    for fig in previous:
        for key in ("png", "csv"):
            path = (outdir / str(fig.get(key, "") if isinstance(fig, dict) else "")).resolve()
            if path.parent == figures and path.is_file():  # only what we wrote, never outside figures/
                path.unlink()
    return outdir


def write_report(report: dict, outdir: str | Path, figures: bool = True, render=None) -> Path:
    """Write report.md, report.json and figures/*.png+csv under ``outdir``; returns the report.md path."""
    outdir = prepare_outdir(outdir)
    if figures:
        from instrobust.report.plots import make_figures

        report["figures"] = make_figures(report, outdir / "figures")
    (outdir / "report.json").write_text(json.dumps(report, indent=1, ensure_ascii=False) + "\n")
    md = outdir / "report.md"
    md.write_text((render or render_markdown)(report))
    return md


def make_report(paths: list[str | Path], outdir: str | Path, config: ReportConfig | None = None,
                figures: bool = True) -> dict:
    """Load lm-eval output directories, compute the report and write it; returns the report dict."""
    prepare_outdir(outdir)  # a bad --out fails before minutes of loading
    loaded = load(paths)
    cfg = config or ReportConfig()
    if cfg.planned_counts is None:
        cfg.planned_counts = planned_counts()
    report = build_report(loaded.cells, loaded.models, cfg, loaded.notes, loaded.inputs)
    write_report(report, outdir, figures)
    return report


def results_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The arguments `instrobust report` and `instrobust estimate` share: which runs, which folder to write."""
    ap = argparse.ArgumentParser(prog=prog, description=description)
    ap.add_argument("results", nargs="+", metavar="RESULTS", help="lm-eval --output_path folder(s) or results_*.json")
    ap.add_argument("--out", required=True, help="folder for report.md, report.json and figures/")
    ap.add_argument("--no-figures", action="store_true", help="skip the PNG/CSV figures")
    ap.add_argument("--observed", action="append", default=[], metavar="PATTERN=COLL[,COLL]",
                    help="the instruction collection(s) a model was trained on, e.g. 'flan-t5*=flan2022' "
                         "(repeatable; matched on the model name, its config.json _name_or_path or its adapter's "
                         "base; overrides the known families Flan-T5=flan2022, Alpaca=alpaca, T0=p3)")
    return ap


def check_results_args(args: argparse.Namespace, error: type[Exception]) -> None:
    """The shared arguments' checks, before anything is loaded: the interval level and --observed rules."""
    if not 0 < args.confidence < 1:
        raise error(f"--confidence must be between 0 and 1, got {args.confidence}")
    for spec in args.observed:
        parse_rule(spec)  # a malformed override fails before loading anything


def main(argv: list[str] | None = None) -> int:
    ap = results_parser(
        "instrobust report",
        "Robustness report from lm-eval output directories (--output_path, ideally with --log_samples).")
    ap.add_argument("--pooled", action="store_true",
                    help="headline means pool items over instructions instead of averaging instructions")
    ap.add_argument("--bootstrap", type=int, default=2000, metavar="N", help="bootstrap replicates (0 = no CIs)")
    ap.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    ap.add_argument("--confidence", type=float, default=0.95, help="confidence level of the intervals")
    args = ap.parse_args(argv)
    try:
        if args.bootstrap < 0:
            raise ReportInputError(f"--bootstrap must be >= 0, got {args.bootstrap}")
        check_results_args(args, ReportInputError)
        cfg = ReportConfig(pooled=args.pooled, n_boot=args.bootstrap, seed=args.seed, level=args.confidence,
                           observed=tuple(args.observed))
        report = make_report(args.results, args.out, cfg, figures=not args.no_figures)
    except InstrobustError as exc:
        print(f"instrobust report: error: {exc}", file=sys.stderr)
        return 2
    for note in report["notes"]:
        print(f"instrobust report: note: {note}", file=sys.stderr)
    n_partial = sum(1 for r in report["table3"] if r["partial"])
    print(f"wrote {Path(args.out) / 'report.md'}, report.json and {len(report['figures'])} figure(s)"
          + (f"; {n_partial} table entr{'y is' if n_partial == 1 else 'ies are'} partial" if n_partial else ""))
    return 0
