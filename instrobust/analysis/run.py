"""One analysis: resolve tasks, extract (or reload) representations, join accuracies, write outputs."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from instrobust.analysis.accuracy import Accuracies, LinearFit, degradations, linear_fit, load_accuracies
from instrobust.analysis.distances import category_distances, instruction_distances
from instrobust.analysis.errors import AnalysisError
from instrobust.analysis.extract import ExtractConfig, extract, load_model, with_adapter
from instrobust.analysis.store import Representations
from instrobust.analysis.tasks import AnalysisTask, category_key, check_comparable, resolve_tasks
from instrobust.report.build import json_safe
from instrobust.errors import InstrobustError

SCHEMA_VERSION = 1
RUN_LABELS = ("base", "peft")  # without and with the adapter (Table 6: before / after alignment)


@dataclass
class AnalysisConfig:
    """Everything `instrobust analyze` takes (see docs/analysis.md)."""

    out: Path
    model: str | None = None
    peft: str | None = None
    tasks: list[str] = field(default_factory=list)
    tasks_dir: str | None = None
    results: list[str] = field(default_factory=list)       # accuracies of the model (base)
    peft_results: list[str] = field(default_factory=list)  # accuracies of the model + adapter
    from_saved: str | None = None
    device: str | None = None
    dtype: str = "float32"
    extract: ExtractConfig = field(default_factory=ExtractConfig)
    tsne: bool = True
    tsne_max_points: int = 3000
    tsne_perplexity: float | None = None
    observed: tuple[str, ...] = ()  # --observed overrides of the model -> training collections map


def own_collections(model: str | None, peft: str | None, rules: Sequence[str]) -> tuple[str, ...]:
    """The collections the model was trained on: its observed instructions (same rule as `instrobust report`)."""
    from instrobust.report.trained_on import parse_rule, trained_on

    try:
        found = trained_on(model, peft, tuple(parse_rule(r) for r in rules))
    except InstrobustError as exc:
        raise AnalysisError(str(exc)) from None
    if found.collections is None:
        raise AnalysisError(f"{found.reason}: the analysis measures the distance to the instructions the model "
                            "was trained on, so it needs to know them")
    return found.collections


def relabel(tasks: Sequence[AnalysisTask], collections: tuple[str, ...]) -> list[AnalysisTask]:
    """Observed = from a collection this model was trained on; ours and other collections are not."""
    return [replace(t, observed=t.collection in collections) for t in tasks]


def load_saved(directory: str | Path) -> dict[str, Representations]:
    """Saved runs from a previous --out folder (its representations/<label>/) or one run folder."""
    directory = Path(directory)
    if (directory / "vectors.npy").is_file():
        reps = Representations.load(directory)
        return {str(reps.meta.get("label") or "base"): reps}
    runs = {label: Representations.load(directory / "representations" / label) for label in RUN_LABELS
            if (directory / "representations" / label).is_dir()}
    if not runs:
        raise AnalysisError(f"--from-saved {directory}: no vectors.npy there and no representations/base/ below it")
    return runs


def compute_representations(cfg: AnalysisConfig) -> dict[str, Representations]:
    if not cfg.model or not cfg.tasks:
        raise AnalysisError("--model and --tasks are required (or --from-saved DIR to reuse saved representations)")
    tasks = resolve_tasks(cfg.tasks, Path(cfg.tasks_dir) if cfg.tasks_dir else None)
    collections = own_collections(cfg.model, cfg.peft, cfg.observed)
    tasks = relabel(tasks, collections)
    check_comparable(tasks)
    loaded = load_model(cfg.model, cfg.device, cfg.dtype)
    runs = {}
    started = time.perf_counter()
    runs["base"] = extract(loaded, tasks, cfg.extract, "base")
    runs["base"].meta["seconds"] = round(time.perf_counter() - started, 2)
    if cfg.peft:
        # After the base run: PEFT wraps the base model in place.
        loaded = with_adapter(loaded, cfg.peft)
        started = time.perf_counter()
        runs["peft"] = extract(loaded, tasks, cfg.extract, "peft")
        runs["peft"].meta["seconds"] = round(time.perf_counter() - started, 2)
    for label, reps in runs.items():
        reps.meta["observed_collections"] = list(collections)
        reps.save(Path(cfg.out) / "representations" / label)
    return runs


def relabel_saved(runs: dict[str, Representations], rules: Sequence[str]) -> None:
    """Saved runs keep the collections they were analysed with, unless --observed says otherwise."""
    for reps in runs.values():
        saved = reps.meta.get("observed_collections")
        collections = (own_collections(reps.meta.get("model"), None, rules) if rules or saved is None
                       else tuple(saved))
        reps.tasks = {n: t for n, t in zip(reps.tasks, relabel(list(reps.tasks.values()), collections))}
        reps.meta["observed_collections"] = list(collections)


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def summarize(reps: Representations, acc: Accuracies | None) -> dict:
    """Distances per instruction and per category (Table 4), joined with accuracies when given (Figure 5)."""
    all_dists = instruction_distances(reps)
    # Table 4 is about our unobserved instructions; other collections (not trained on) get their own rows
    dists = [d for d in all_dists if d.observed or d.collection == "unobserved"]
    tasks = [t for t in reps.tasks.values() if t.observed or t.collection == "unobserved"]
    accs = acc.acc if acc else {}
    degr, notes = degradations(list(reps.tasks.values()), accs) if acc else ({}, [])
    if acc and not any(t.name in accs for t in tasks):
        raise AnalysisError(f"none of the {len(tasks)} analysed tasks has an accuracy in the results given "
                            f"({', '.join(acc.files[:3])}): were they evaluated under the same task names?")
    instructions = [{**d.to_dict(), "acc": accs.get(d.task), "degradation": degr.get(d.task)} for d in all_dists]
    categories = []
    for c in category_distances(dists):
        in_cat = [t for t in tasks if t.category == c.category]
        row = c.to_dict()
        row["degradation"] = _mean([degr[t.name] for t in in_cat if t.name in degr])
        row["acc_unobserved"] = _mean([accs[t.name] for t in in_cat if not t.observed and t.name in accs])
        row["acc_observed"] = _mean([accs[t.name] for t in in_cat if t.observed and t.name in accs])
        categories.append(row)
    points = [{"task": r["task"], "category": r["category"], "distance": r["mean"], "degradation": r["degradation"]}
              for r in instructions if r["collection"] == "unobserved" and r["degradation"] is not None]
    fit = linear_fit([p["distance"] for p in points], [p["degradation"] for p in points])
    by_category = {}
    for c in sorted({p["category"] for p in points}, key=category_key):
        f = linear_fit([p["distance"] for p in points if p["category"] == c],
                       [p["degradation"] for p in points if p["category"] == c])
        by_category[c] = f.to_dict() if f else None
    if acc and points and fit is None:
        notes.append(f"linear fit undefined: {len(points)} point(s) (needs 3 with distinct distances)")
    return {
        "meta": reps.meta,
        "n_rows": len(reps.rows),
        "accuracy_source": {"model": acc.model, "files": acc.files, "notes": acc.notes} if acc else None,
        "observed_collections": reps.meta.get("observed_collections"),
        "categories": categories,
        "other_collections": _other_collections(all_dists, degr),
        "instructions": instructions,
        "points": points,
        "fit": fit.to_dict() if fit else None,
        "fit_by_category": by_category,
        "notes": notes,
    }


def _other_collections(dists: list, degr: dict[str, float]) -> list[dict]:
    """Per category and collection the model was not trained on: distance to its observed instructions."""
    rows = []
    for coll in sorted({d.collection for d in dists if not d.observed and d.collection != "unobserved"}):
        for c in category_distances([d for d in dists if d.observed or d.collection == coll]):
            mine = [d.task for d in dists if d.collection == coll and d.category == c.category and d.task in degr]
            rows.append({**c.to_dict(), "collection": coll,
                         "degradation": _mean([degr[t] for t in mine])})
    return rows


def _diff(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else b - a


def before_after(base: dict, peft: dict) -> list[dict]:
    """Table 6: per category, the distance and accuracies before and after the adapter."""
    after = {c["category"]: c for c in peft["categories"]}
    rows = []
    for b in base["categories"]:
        a = after.get(b["category"])
        if a is None:
            continue
        rows.append({
            "category": b["category"],
            "distance_before": b["mean"], "distance_after": a["mean"], "distance_change": a["mean"] - b["mean"],
            "acc_unobserved_before": b["acc_unobserved"], "acc_unobserved_after": a["acc_unobserved"],
            "acc_unobserved_change": _diff(b["acc_unobserved"], a["acc_unobserved"]),
            "acc_observed_before": b["acc_observed"], "acc_observed_after": a["acc_observed"],
            "acc_observed_change": _diff(b["acc_observed"], a["acc_observed"]),
            "degradation_before": b["degradation"], "degradation_after": a["degradation"],
        })
    return rows


def draw_figures(runs: dict[str, Representations], summaries: dict[str, dict], cfg: AnalysisConfig) -> list[dict]:
    from instrobust.analysis.plots import BENCHMARK_TITLES, degradation_plot, tsne_plot

    figures = []
    figdir = Path(cfg.out) / "figures"
    for label, reps in runs.items():
        suffix = "" if len(runs) == 1 else f"_{label}"
        who = Path(str(reps.meta.get("model", ""))).name + (" + adapter" if label == "peft" else "")
        if cfg.tsne:
            for bench in dict.fromkeys(t.benchmark for t in reps.tasks.values()):
                fig = tsne_plot(reps, bench, figdir / f"tsne_{bench}{suffix}.png", seed=cfg.extract.seed,
                                max_points=cfg.tsne_max_points, perplexity=cfg.tsne_perplexity,
                                title=f"{BENCHMARK_TITLES.get(bench, bench)}: observed vs unobserved ({who})")
                if fig:
                    figures.append({**fig, "run": label})
        points = summaries[label]["points"]
        if points:
            fit = summaries[label]["fit"]
            fig = degradation_plot(points, LinearFit(**fit) if fit else None,
                                   figdir / f"degradation_vs_distance{suffix}.png",
                                   title=f"Degradation vs distance ({who})")
            figures.append({**fig, "run": label})
    return figures


def analyze(cfg: AnalysisConfig) -> dict:
    """Run the whole analysis and write analysis.json, analysis.md, figures/ and representations/."""
    from instrobust.analysis.render import render_markdown

    out = Path(cfg.out)
    if cfg.peft_results and not cfg.peft and not cfg.from_saved:
        raise AnalysisError("--peft-results needs --peft (the adapter whose accuracies they are)")
    if cfg.from_saved and (cfg.model or cfg.tasks or cfg.peft):
        raise AnalysisError("--from-saved reuses the saved model, adapter and tasks: drop --model, --peft and --tasks")
    # Read accuracies first: a wrong --results path should fail before minutes of extraction.
    accs = {"base": load_accuracies(cfg.results) if cfg.results else None,
            "peft": load_accuracies(cfg.peft_results) if cfg.peft_results else None}
    if cfg.from_saved:
        runs = load_saved(cfg.from_saved)
        relabel_saved(runs, cfg.observed)
    else:
        runs = compute_representations(cfg)
    if cfg.peft_results and "peft" not in runs:
        raise AnalysisError(f"--peft-results given but {cfg.from_saved} holds no adapter run (representations/peft/)")
    summaries = {label: summarize(reps, accs.get(label)) for label, reps in runs.items()}
    report = {
        "schema_version": SCHEMA_VERSION,
        "generated_by": "instrobust analyze",
        "definition": {
            "representation": "first decoded token, hidden_states[-2] (penultimate layer)",
            "distance": "per example: l2 distance to the nearest observed instruction on the same example; "
                        "mean over sampled examples, then over a category's unobserved instructions",
            "degradation": "100 * (unobserved accuracy - mean observed accuracy on the same pool and scoring), points",
        },
        "config": {"tasks": cfg.tasks, "n_examples": cfg.extract.n_examples, "seed": cfg.extract.seed,
                   "from_saved": cfg.from_saved, "results": cfg.results, "peft_results": cfg.peft_results},
        "runs": summaries,
        "before_after": before_after(summaries["base"], summaries["peft"]) if {"base", "peft"} <= set(summaries) else [],
        "figures": [],
    }
    out.mkdir(parents=True, exist_ok=True)
    report["figures"] = [{**f, "file": str(Path(f["file"]).relative_to(out))} for f in draw_figures(runs, summaries, cfg)]
    report = json_safe(report)
    (out / "analysis.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "analysis.md").write_text(render_markdown(report))
    return report
