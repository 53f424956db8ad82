"""`instrobust estimate`: full-benchmark robustness report estimated from a sparse (budgeted) run.

    instrobust estimate RESULTS_DIR [RESULTS_DIR ...] --out OUTDIR [--draws N] [--seed S]
                        [--covariates collection,length] [--confidence 0.95] [--no-figures]
                        [--observed 'flan-t5*=flan2022' ...]

Reads the ``--log_samples`` output of tasks run with a sparse budget, fits the logistic IRT model of
:mod:`instrobust.sparse.irt` per model x setting x scoring x benchmark (observed and unobserved
instructions together, so they share the item difficulties), and writes report.md / report.json in
the schema of ``instrobust report``, every number marked "estimated (budget B)", plus an
``estimated`` block: per-instruction estimates with intervals, per-group mean / std / quantiles /
worst instruction and the observed-unobserved gap with intervals, and the naive baseline (each
instruction's mean over its own items) next to them.
"""
from __future__ import annotations

import argparse
import math
import sys
from collections import defaultdict
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from instrobust.errors import InstrobustError
from instrobust.sparse.irt import (QUANTILES, IRTConfig, Observations, fit_irt, group_stats, interval,
                                   naive_accuracy, posterior_predictive)
from instrobust.sparse.results import EstimateInputError, SparseRun, SparseTask, load_sparse

ESTIMATE_SCHEMA_VERSION = "1.1"
IRT_INTERVAL = ("percentiles over {n} posterior-predictive draws of the IRT model (what the full run on these "
                "instructions and items would show); not a bootstrap")
METHOD = "irt-posterior-predictive"
COVARIATES = ("collection", "observed", "length")
STAT_KEYS = ("mean", "std", "min", "max", *(f"q{int(round(100 * q)):02d}" for q in QUANTILES))


def side_of(t: SparseTask) -> str:
    """observed (the model's own collection, set by ``relabel_tasks``), unobserved (ours), or another collection."""
    if t.info.observed:
        return "observed"
    return t.info.collection


def relabel_tasks(run: SparseRun, rules: tuple[str, ...] = ()) -> None:
    """Observed = from a collection this task's model was trained on (the rule of ``instrobust report``)."""
    from instrobust.report.build import assign_trained_on
    from instrobust.report.trained_on import observed_in

    assign_trained_on(run.models, rules)
    for t in run.tasks:
        t.info = replace(t.info, observed=observed_in(t.info.collection, run.models[t.model].trained_on))


@dataclass
class EstimateConfig:
    """What the estimator adds to the IRT model and how it reports."""

    covariates: tuple[str, ...] = ("collection",)  # instruction-level fixed effects
    n_draws: int = 400
    seed: int = 0
    level: float = 0.95
    tau_method: str = "moments"
    observed: tuple[str, ...] = ()  # --observed overrides of the model -> collections map


@dataclass
class FitGroup:
    """Tasks that share one item pool: one model, setting, scoring and benchmark."""

    model: str
    n_shot: int
    category: str
    benchmark: str
    tasks: list[SparseTask]
    items: list[int] = field(default_factory=list)
    draws: np.ndarray | None = None  # (n_draws, n_tasks) accuracy over all items
    naive: np.ndarray | None = None
    plugin: np.ndarray | None = None
    fit_info: dict = field(default_factory=dict)


def _template_length(instruction: str) -> float | None:
    from instrobust import harness

    try:
        ins = harness.instruction(instruction)  # upstream text lives in values, not in the template
        return float(len(ins.template) + sum(len(v) for v in ins.values.values()))
    except InstrobustError:
        return None


def _covariates(tasks: list[SparseTask], names: tuple[str, ...], notes: list[str]) -> np.ndarray | None:
    cols = []
    for name in names:
        if name == "collection":
            levels = sorted({t.info.collection for t in tasks})
            cols += [[1.0 if t.info.collection == lev else 0.0 for t in tasks] for lev in levels[1:]]
        elif name == "observed":
            if "collection" not in names and len({t.info.observed for t in tasks}) > 1:
                cols.append([1.0 if t.info.observed else 0.0 for t in tasks])
        elif name == "length":
            lengths = [_template_length(t.instruction) for t in tasks]
            if any(v is None for v in lengths):
                notes.append("template length covariate skipped: some instructions could not be loaded here")
                continue
            x = np.log(np.array(lengths))
            cols.append(list((x - x.mean()) / (x.std() or 1.0)))
        else:
            raise EstimateInputError(f"unknown covariate {name!r} (known: {', '.join(COVARIATES)})")
    return np.array(cols, dtype=float).T if cols else None


def fit_groups(run: SparseRun, cfg: EstimateConfig, notes: list[str]) -> list[FitGroup]:
    grouped: dict[tuple, list[SparseTask]] = defaultdict(list)
    for t in run.tasks:
        grouped[(t.model, t.n_shot, t.info.category, t.info.benchmark)].append(t)
    out = []
    for k, ((model, n_shot, category, bench), tasks) in enumerate(sorted(grouped.items())):
        tasks = sorted(tasks, key=lambda t: (not t.info.observed, t.task))
        items = sorted(set().union(*(t.items for t in tasks)))
        index = {item: j for j, item in enumerate(items)}
        inst, item, y = [], [], []
        for i, t in enumerate(tasks):
            for it, v in t.items.items():
                inst.append(i)
                item.append(index[it])
                y.append(v)
        obs = Observations(np.array(inst), np.array(item), np.array(y), len(tasks), len(items),
                           _covariates(tasks, cfg.covariates, notes))
        fg = FitGroup(model, n_shot, category, bench, tasks, items)
        fit = fit_irt(obs, IRTConfig(tau_method=cfg.tau_method))
        dr = posterior_predictive(fit, cfg.n_draws, cfg.seed + k)
        fg.draws, fg.plugin, fg.naive = dr.acc, dr.plugin, naive_accuracy(obs)
        budgets = {}
        for side in dict.fromkeys(side_of(t) for t in tasks):
            side_tasks = [t for t in tasks if side_of(t) == side]
            budgets[side] = sum(len(t.items) for t in side_tasks) / len(items)
        nominal = sorted({str(t.design.get("sparse_budget")) for t in tasks})
        fg.fit_info = {
            "model": model, "n_shot": n_shot, "category": category, "benchmark": bench,
            "n_instructions": len(tasks), "n_items": len(items), "n_observations": int(len(y)),
            "nominal_budget": nominal[0] if len(nominal) == 1 else nominal,
            "effective_budget": budgets,  # evaluations / items, per side: the cost in single-instruction runs
            "design_groups": sorted({str(t.design.get("sparse_group")) for t in tasks}),
            "seeds": sorted({str(t.design.get("sparse_seed")) for t in tasks}),
            "tau_u": fit.tau_u, "tau_b": fit.tau_b, "tau_method": cfg.tau_method,
            "covariates": list(cfg.covariates), "intercept": float(fit.w_small[0] * fit.small_scale[0]),
        }
        out.append(fg)
    return out


def side_stats(members: list[tuple[FitGroup, int]]) -> tuple[dict[str, np.ndarray], list[str], np.ndarray]:
    """Per-draw statistics of a group of instructions, as ``instrobust report`` computes them.

    Mean, std and quantiles are over all (task, instruction) pairs; min, max, spread and CPS are
    per benchmark task, averaged over tasks (task difficulty is not instruction sensitivity). Also
    returns the instruction names and, per draw, each one's mean deviation from its tasks' means
    (an instruction used on several tasks is one name): its argmin is the worst instruction.
    """
    d = np.column_stack([fg.draws[:, i] for fg, i in members])
    stats = group_stats(d)
    by_task: dict[str, list[int]] = defaultdict(list)
    for j, (fg, _) in enumerate(members):
        by_task[fg.benchmark].append(j)
    per = [group_stats(d[:, cols]) for cols in by_task.values()]
    stats["min"] = np.mean([p["min"] for p in per], axis=0)
    stats["max"] = np.mean([p["max"] for p in per], axis=0)
    stats["spread"] = np.mean([p["max"] - p["min"] for p in per], axis=0)
    stats["cps"] = np.mean([(1.0 - (p["max"] - p["mean"])) * p["max"] for p in per], axis=0)
    deviation = d.copy()
    for cols in by_task.values():
        deviation[:, cols] -= d[:, cols].mean(axis=1, keepdims=True)
    several = len(by_task) > 1
    names = [fg.tasks[i].instruction if several else fg.tasks[i].task for fg, i in members]
    keys = list(dict.fromkeys(names))
    cols_of = {k: [j for j, n in enumerate(names) if n == k] for k in keys}
    return stats, keys, np.column_stack([deviation[:, cols_of[k]].mean(axis=1) for k in keys])


def _summ(stats: dict[str, np.ndarray], level: float) -> dict:
    """Point estimate (mean over draws) and interval of each group statistic."""
    out = {}
    for key in (*STAT_KEYS, "spread", "cps"):
        v = stats[key]
        lo, hi = interval(v, level) if len(v) > 1 else (float(v[0]), float(v[0]))
        out[key] = {"estimate": float(v.mean()), "low": lo, "high": hi}
    return out


def _naive_summ(values: np.ndarray) -> dict:
    stats = group_stats(values[None, :])
    return {key: float(stats[key][0]) for key in STAT_KEYS}


def _wilson(k: float, n: int, level: float) -> tuple[float, float]:
    from scipy.stats import norm

    z = float(norm.ppf(0.5 + level / 2))
    p = k / n
    den = 1 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return mid - half, mid + half


def estimate_blocks(groups: list[FitGroup], cfg: EstimateConfig) -> dict:
    """The ``estimated`` block of report.json (plain numbers, accuracies in [0, 1])."""
    instructions, summaries, gaps = [], [], []
    by_side: dict[tuple, list[tuple[FitGroup, int]]] = defaultdict(list)
    for fg in groups:
        for i, t in enumerate(fg.tasks):
            lo, hi = interval(fg.draws[:, i], cfg.level)
            nlo, nhi = _wilson(fg.naive[i] * len(t.items), len(t.items), cfg.level)
            instructions.append({
                "model": t.model, "n_shot": t.n_shot, "category": t.info.category, "benchmark": t.info.benchmark,
                "task": t.task, "instruction": t.instruction, "collection": t.info.collection,
                "observed": t.info.observed, "n_items_seen": len(t.items), "n_items": len(fg.items),
                "estimate": float(fg.draws[:, i].mean()), "low": lo, "high": hi,
                "plugin": float(fg.plugin[i]), "naive": float(fg.naive[i]), "naive_low": nlo, "naive_high": nhi,
            })
            by_side[(t.model, t.n_shot, t.info.category, side_of(t))].append((fg, i))
    keys = sorted({k[:3] for k in by_side})
    for model, n_shot, category in keys:
        side_draws = {}
        sides = sorted({k[3] for k in by_side if k[:3] == (model, n_shot, category)},
                       key=lambda x: (x != "observed", x != "unobserved", x))
        for side in sides:
            members = by_side.get((model, n_shot, category, side))
            if not members:
                continue
            # every statistic is computed per draw, then summarised over draws
            d = np.column_stack([fg.draws[:, i] for fg, i in members])
            naive = np.array([fg.naive[i] for fg, i in members])
            plugin = np.array([fg.plugin[i] for fg, i in members])
            names = [fg.tasks[i].task for fg, i in members]
            stats, keys, deviation = side_stats(members)
            worst = int(deviation.mean(axis=0).argmin())
            p_worst = np.bincount(deviation.argmin(axis=1), minlength=len(keys)) / d.shape[0]
            side_draws[side] = d
            summaries.append({
                "model": model, "n_shot": n_shot, "category": category,
                "side": side, "n_instructions": len(members),
                "n_tasks": len({fg.benchmark for fg, _ in members}),
                "estimate": _summ(stats, cfg.level), "plugin": _naive_summ(plugin), "naive": _naive_summ(naive),
                "worst_instruction": keys[worst], "worst_instruction_probability": float(p_worst[worst]),
                "naive_worst_instruction": names[int(naive.argmin())],
            })
        if {"observed", "unobserved"} <= set(side_draws):
            delta = side_draws["unobserved"].mean(axis=1) - side_draws["observed"].mean(axis=1)
            lo, hi = interval(delta, cfg.level)
            naive_of = {s["side"]: s["naive"]["mean"] for s in summaries
                        if (s["model"], s["n_shot"], s["category"]) == (model, n_shot, category)}
            gaps.append({"model": model, "n_shot": n_shot, "category": category,
                         "estimate": float(delta.mean()), "low": lo, "high": hi, "level": cfg.level,
                         "kind": "irt-posterior", "method": "IRT posterior predictive",
                         "description": IRT_INTERVAL.format(n=cfg.n_draws),
                         "naive": naive_of["unobserved"] - naive_of["observed"]})
    budgets = sorted({str(fg.fit_info["nominal_budget"]) for fg in groups})
    return {
        "schema_version": ESTIMATE_SCHEMA_VERSION,
        "budget": budgets[0] if len(budgets) == 1 else budgets,
        "method": METHOD,
        "description": (
            "Logistic IRT (instruction + item effects, instruction covariates "
            f"{', '.join(cfg.covariates) or 'none'}) fitted by L2-penalised logistic regression (scikit-learn); "
            "prior scales from pairwise moments; observed answers kept, missing ones imputed from the "
            f"posterior predictive ({cfg.n_draws} draws: instruction-side parameters from their Laplace posterior, "
            "items at their conditional mode, then Bernoulli answers). Point estimate = mean over draws, "
            "interval = percentiles over draws: uncertainty about what the full run on these instructions and "
            "items would show."),
        "n_draws": cfg.n_draws, "seed": cfg.seed, "level": cfg.level,
        "fits": [fg.fit_info for fg in groups],
        "groups": summaries, "deltas": gaps, "instructions": instructions,
        "baselines": {"naive": "each instruction's mean over its own sampled items",
                      "plugin": "observed answers + model probabilities at the posterior mode (PromptEval-style)"},
    }


def build_estimated_report(run: SparseRun, cfg: EstimateConfig | None = None) -> dict:
    """report.json content: ``instrobust report``'s schema from estimated cells, plus ``estimated``."""
    from instrobust.report import ReportConfig, build_report
    from instrobust.report.cells import Cell
    from instrobust.report.load import planned_counts

    cfg = cfg or EstimateConfig()
    notes = list(run.notes)
    relabel_tasks(run, cfg.observed)
    groups = fit_groups(run, cfg, notes)
    block = estimate_blocks(groups, cfg)
    est_of = {(r["model"], r["n_shot"], r["task"]): r for r in block["instructions"]}
    cells = []
    for fg in groups:
        for t in fg.tasks:
            r = est_of[(t.model, t.n_shot, t.task)]
            cells.append(Cell(
                model=t.model, task=t.task, benchmark=t.info.benchmark, category=t.info.category,
                collection=t.info.collection, observed=t.info.observed, acc=r["estimate"], n_shot=t.n_shot,
                n_items=len(fg.items), variant=t.info.variant, scoring=t.info.scoring, source=t.source,
                estimated={"method": METHOD, "budget": fg.fit_info["nominal_budget"], "low": r["low"],
                           "high": r["high"], "naive": r["naive"], "n_items_seen": r["n_items_seen"]}))
    report = build_report(cells, run.models, ReportConfig(n_boot=0, seed=cfg.seed, level=cfg.level,
                                                           planned_counts=planned_counts()), notes, run.inputs)
    _overwrite_summaries(report, block)
    _overwrite_breakdowns(report, groups)
    report["generated_by"] = "instrobust estimate"
    report["config"]["n_draws"] = cfg.n_draws
    report["estimated"] = block
    return report


def _overwrite_summaries(report: dict, block: dict) -> None:
    """Table 3 entries: distribution statistics and the gap interval from the draws, not from the
    shrunk per-instruction point estimates (which understate the spread)."""
    by = {(s["model"], s["n_shot"], s["category"], s["side"]): s for s in block["groups"]}
    gaps = {(g["model"], g["n_shot"], g["category"]): g for g in block["deltas"]}
    for row in report["table3"]:
        for side in ("observed", "unobserved", *(row.get("other") or {})):
            s = by.get((row["model"], row["n_shot"], row["category"], side))
            summary = row.get(side) if side in ("observed", "unobserved") else row["other"][side]
            if s is None or summary is None:
                continue
            e = s["estimate"]
            several = summary["n_instructions"] > 1
            summary.update(mean=e["mean"]["estimate"], std=e["std"]["estimate"] if several else None,
                           median=e["q50"]["estimate"], min=e["min"]["estimate"], max=e["max"]["estimate"],
                           spread=e["spread"]["estimate"] if several else None, cps=e["cps"]["estimate"],
                           worst_instruction=s["worst_instruction"], estimated=True)
            if side in ("observed", "unobserved"):
                row[f"{side}_headline"] = summary["mean"]
            else:
                row["other_headlines"][side] = summary["mean"]
        g = gaps.get((row["model"], row["n_shot"], row["category"]))
        if g is not None:
            row["delta"] = g["estimate"]
            # its own field: delta_ci is the bootstrap's (none here), never an interval of another kind
            row["delta_irt"] = {k: g[k] for k in ("estimate", "low", "high", "level", "kind", "method",
                                                  "description")} | {"n_draws": block["n_draws"]}
            row["delta_ci_note"] = None


def _draw_summary(groups: list[FitGroup], keep) -> dict | None:
    """Distribution statistics (means over draws) of the instructions for which ``keep(task)`` holds."""
    members = [(fg, i) for fg in groups for i, t in enumerate(fg.tasks) if keep(t)]
    if not members:
        return None
    stats, _, _ = side_stats(members)
    out = {k: float(stats[k].mean()) for k in ("mean", "std", "min", "max", "spread", "cps")}
    out["median"] = float(stats["q50"].mean())
    if len(members) < 2:
        out["std"] = out["spread"] = None
    return out


def _apply(summary: dict | None, stats: dict | None) -> None:
    if summary is not None and stats is not None:
        summary.update(stats, estimated=True)


def _overwrite_breakdowns(report: dict, groups: list[FitGroup]) -> None:
    """Per-collection and per-task summaries from the draws too, so all tables agree on the spread."""
    for row in report["collections"]:
        _apply(row.get("summary"), _draw_summary(groups, lambda t, r=row: (
            t.model, t.n_shot, t.info.category, t.info.collection) == (r["model"], r["n_shot"], r["category"], r["collection"])))
    for row in report["tasks"]:
        for side in ("observed", "unobserved"):
            _apply(row.get(side), _draw_summary(groups, lambda t, r=row, side=side: (
                t.model, t.n_shot, t.info.category, t.info.benchmark, side_of(t))
                == (r["model"], r["n_shot"], r["category"], r["benchmark"], side)))
        if row.get("observed") and row.get("unobserved"):
            row["delta"] = row["unobserved"]["mean"] - row["observed"]["mean"]


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{100 * x:.1f}"


def render_estimate_section(block: dict, labels: dict[str, str]) -> list[str]:
    from instrobust.report.render import markdown_table  # the report's own Markdown table writer

    level = int(round(100 * block["level"]))
    budget = block["budget"]
    lines = [f"## Estimated from a sparse run (budget {budget})", "", block["description"], ""]
    lines += [f"Naive baseline: {block['baselines']['naive']}. Plug-in: {block['baselines']['plugin']}.", ""]
    head = ["Model", "Setting", "Category", "Instructions", "n", "Statistic",
            f"IRT estimate [{level}% interval]", "plug-in", "naive"]
    rows = []
    for s in block["groups"]:
        for key in STAT_KEYS:
            e = s["estimate"][key]
            rows.append([labels.get(s["model"], s["model"]), "zero-shot" if s["n_shot"] == 0 else f"{s['n_shot']}-shot",
                         s["category"], s["side"], str(s["n_instructions"]), key,
                         f"{_pct(e['estimate'])} [{_pct(e['low'])}, {_pct(e['high'])}]",
                         _pct(s["plugin"][key]), _pct(s["naive"][key])])
        rows.append([labels.get(s["model"], s["model"]), "", s["category"], s["side"], "", "worst instruction",
                     f"{s['worst_instruction']} (P = {s['worst_instruction_probability']:.2f})", "",
                     s["naive_worst_instruction"]])
    lines += markdown_table(head, rows)
    if block["deltas"]:
        lines += ["Δ = unobserved − observed:", ""]
        lines += markdown_table(["Model", "Setting", "Category", f"Δ estimate [{level}% interval]", "naive Δ"], [
            [labels.get(g["model"], g["model"]), "zero-shot" if g["n_shot"] == 0 else f"{g['n_shot']}-shot",
             g["category"], f"{100 * g['estimate']:+.1f} [{100 * g['low']:+.1f}, {100 * g['high']:+.1f}]",
             f"{100 * g['naive']:+.1f}"] for g in block["deltas"]])
    lines += ["Fits:", ""]
    lines += markdown_table(["Model", "Category", "Benchmark", "instructions", "items", "answers", "budget per side (runs)",
                     "tau_u", "tau_b"], [
        [labels.get(f["model"], f["model"]), f["category"], f["benchmark"], str(f["n_instructions"]),
         str(f["n_items"]), str(f["n_observations"]),
         ", ".join(f"{k} {v:.2f}" for k, v in f["effective_budget"].items()), f"{f['tau_u']:.3f}", f"{f['tau_b']:.3f}"]
        for f in block["fits"]])
    lines += ["Per instruction (estimated accuracy over all items; naive = its own items only):", ""]
    lines += markdown_table(["Model", "Category", "Task", "Collection", "items seen", f"estimate [{level}%]", "naive [Wilson]"], [
        [labels.get(r["model"], r["model"]), r["category"], r["task"], r["collection"],
         f"{r['n_items_seen']}/{r['n_items']}", f"{_pct(r['estimate'])} [{_pct(r['low'])}, {_pct(r['high'])}]",
         f"{_pct(r['naive'])} [{_pct(r['naive_low'])}, {_pct(r['naive_high'])}]"] for r in block["instructions"]])
    return lines


def render_estimated_markdown(report: dict) -> str:
    from instrobust.report.render import render_markdown

    block = report["estimated"]
    md = render_markdown(report)
    head, _, rest = md.partition("\n")
    head = f"{head} (estimated, budget {block['budget']})"
    rest = rest.replace("Generated by `instrobust report`", "Generated by `instrobust estimate`", 1)
    rest = rest.replace("n/a (needs --log_samples)", "n/a (sparse run)")
    banner = (f"\n> **Estimated (budget {block['budget']}).** Every accuracy below is an estimate of what the full run "
              "(every instruction on every item) would show, from a sparse run in which each instruction saw only "
              f"part of the items ({block['method']}). Intervals are {int(round(100 * block['level']))}% "
              "posterior-predictive intervals; the naive baseline is shown in the last section.\n")
    labels = {m["key"]: m["label"] for m in report["models"]}
    return "\n".join([head + banner + rest.rstrip(), "", *render_estimate_section(block, labels)]).rstrip() + "\n"


def write_estimated_report(report: dict, outdir: str | Path, figures: bool = True) -> Path:
    from instrobust.report import write_report

    return write_report(report, outdir, figures, render=render_estimated_markdown)


def main(argv: list[str] | None = None) -> int:
    from instrobust.report import check_results_args, results_parser

    ap = results_parser(
        "instrobust estimate",
        "Estimate the full-benchmark robustness report from a sparse lm-eval run (--metadata '{\"sparse_budget\": B}') with --log_samples.")
    ap.add_argument("--draws", type=int, default=400, help="posterior-predictive draws (intervals)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--confidence", type=float, default=0.95, help="level of the intervals")
    ap.add_argument("--covariates", default="collection",
                    help=f"comma-separated instruction covariates from {', '.join(COVARIATES)} ('' = none)")
    args = ap.parse_args(argv)
    try:
        if args.draws < 20:
            raise EstimateInputError(f"--draws must be at least 20, got {args.draws}")
        covs = tuple(c.strip() for c in args.covariates.split(",") if c.strip())
        bad = [c for c in covs if c not in COVARIATES]
        if bad:
            raise EstimateInputError(f"unknown covariate(s) {', '.join(bad)} (known: {', '.join(COVARIATES)})")
        check_results_args(args, EstimateInputError)
        cfg = EstimateConfig(covariates=covs, n_draws=args.draws, seed=args.seed, level=args.confidence,
                             observed=tuple(args.observed))
        report = build_estimated_report(load_sparse(args.results), cfg)
        md = write_estimated_report(report, args.out, figures=not args.no_figures)
    except InstrobustError as exc:
        print(f"instrobust estimate: error: {exc}", file=sys.stderr)
        return 2
    for note in report["notes"]:
        print(f"instrobust estimate: note: {note}", file=sys.stderr)
    print(f"wrote {md}, report.json and {len(report['figures'])} figure(s) (estimated, budget {report['estimated']['budget']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
