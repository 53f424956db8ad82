"""Assemble the report (a plain dict, the content of report.json) from cells and models.

``build_report(cells, models, config)`` is the entry point other producers of accuracies reuse.
Every number is computed from ``Cell.acc`` (and ``Cell.items`` when per-item scores exist).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np

from instrobust.report import stats
from instrobust.report.cells import Cell, ModelInfo, ReportInputError
from instrobust.report.reference import paper_reference
from instrobust.report.tasks import CATEGORY_ORDER, VARIANT_COLLECTIONS, setting_label

SCHEMA_VERSION = "1.0"


@dataclass
class ReportConfig:
    """How to aggregate and how much to resample."""

    pooled: bool = False  # headline mean pools items over instructions instead of averaging instructions
    n_boot: int = 2000  # bootstrap replicates for every interval
    seed: int = 0
    level: float = 0.95  # confidence level of the intervals
    planned_counts: dict[str, int] | None = None  # group name -> planned task count, for "partial" marks


def _category_key(category: str) -> tuple[int, str]:
    base = category.split(" (")[0] if category not in CATEGORY_ORDER else category
    order = CATEGORY_ORDER.index(base) if base in CATEGORY_ORDER else len(CATEGORY_ORDER)
    return order, category


def role(cell: Cell) -> str | None:
    """observed | unobserved | designer for Table-3 cells; None for cells only the variant study uses."""
    if cell.variant or cell.variant_study:
        return None
    if cell.collection == "designer":
        return "designer"
    return "observed" if cell.observed else "unobserved"


def _planned_group(category: str, side: str, n_shot: int) -> str:
    """Name of the lm-eval group YAML that lists all planned tasks of a category (see generate.py)."""
    suffix = "" if n_shot == 0 else f"_{n_shot}shot"
    if category == "MMLU":
        return f"mmlu_{side}{suffix}"
    if category.startswith("MMLU ("):
        return f"mmlu_{category[6:-1]}_{side}{suffix}"
    return f"bbl_{category.split(' ')[0][4:].lower()}_{side}{suffix}"


def _summary(cells: list[Cell], with_pss: bool = True) -> stats.Summary:
    accs = {c.task: c.acc for c in cells}
    n_items = {c.task: c.n_items for c in cells if c.n_items}
    pss = None
    if with_pss:
        matrices = [m for m, _ in _item_matrices(cells).values()]
        pss = stats.pss(matrices) if matrices else None
    return stats.summarize(accs, n_items, pss)


def _item_matrices(cells: list[Cell]) -> dict[str, tuple[np.ndarray, list[Cell]]]:
    """Per benchmark: (items x cells) scores on the items every cell has; {} unless all cells have items."""
    if not cells or any(c.items is None for c in cells):
        return {}
    by_bench: dict[str, list[Cell]] = defaultdict(list)
    for c in cells:
        by_bench[c.benchmark].append(c)
    out = {}
    for bench, group in by_bench.items():
        shared = set.intersection(*(set(c.items) for c in group))
        if not shared:
            return {}
        ids = sorted(shared)
        out[bench] = (np.array([[c.items[i] for c in group] for i in ids], dtype=float), group)
    return out


def _headline(s: stats.Summary | None, pooled: bool) -> float | None:
    if s is None:
        return None
    return s.pooled_mean if pooled and s.pooled_mean is not None else s.mean


def _gap_interval(obs: list[Cell], unobs: list[Cell], cfg: ReportConfig) -> tuple[dict | None, str | None]:
    """Bootstrap CI of Δ; (None, why) when it cannot be had honestly."""
    cells = obs + unobs
    matrices = _item_matrices(cells)
    weights = None
    if matrices:
        tasks = {b: (m, [c.observed for c in group]) for b, (m, group) in matrices.items()}
        if cfg.pooled:
            weights = {b: [float(m.shape[0])] * m.shape[1] for b, (m, _) in matrices.items()}
        ci = stats.gap_interval(tasks, cfg.n_boot, cfg.seed, cfg.level, weights=weights)
        return ci.to_dict(), None
    why = ("no per-item scores (run lm_eval with --log_samples)" if any(c.items is None for c in cells)
           else "the instructions' samples share no items")
    if len(obs) < 2 or len(unobs) < 2:
        return None, f"{why} and fewer than 2 instructions in a group: nothing to resample"
    by_bench: dict[str, list[Cell]] = defaultdict(list)
    for c in cells:
        by_bench[c.benchmark].append(c)
    tasks = {b: (np.array([[c.acc for c in g]]), [c.observed for c in g]) for b, g in by_bench.items()}
    if cfg.pooled:
        weights = {b: [float(c.n_items or 1) for c in g] for b, g in by_bench.items()}
    ci = stats.gap_interval(tasks, cfg.n_boot, cfg.seed, cfg.level, weights=weights, has_items=False)
    return ci.to_dict(), f"{why}: resampled instructions only"


def _partial_reasons(obs: list[Cell], unobs: list[Cell], category: str, n_shot: int,
                     cfg: ReportConfig) -> list[str]:
    reasons = []
    for side, group in (("observed", obs), ("unobserved", unobs)):
        if not group:
            reasons.append(f"no {side} instructions")
            continue
        planned = (cfg.planned_counts or {}).get(_planned_group(category, side, n_shot))
        if planned and len({c.task for c in group}) < planned:
            reasons.append(f"{side}: {len({c.task for c in group})} of {planned} planned task-instruction pairs")
    subset = [c for c in obs + unobs if c.n_items and c.n_items_total and c.n_items < c.n_items_total]
    if subset:
        c = subset[0]
        reasons.append(f"items subset (--limit): {c.n_items} of {c.n_items_total} items per task")
    return reasons


def _table3(regular: list[Cell], models: dict[str, ModelInfo], cfg: ReportConfig, notes: list[str]) -> list[dict]:
    grouped: dict[tuple[str, int, str], list[Cell]] = defaultdict(list)
    for c in regular:
        grouped[(c.model, c.n_shot, c.category)].append(c)
    rows = []
    for n_shot in sorted({c.n_shot for c in regular}):
        cats = sorted({k[2] for k in grouped if k[1] == n_shot}, key=_category_key)
        for model in models:
            if not any(k[0] == model and k[1] == n_shot for k in grouped):
                continue
            for cat in cats:
                cells = grouped.get((model, n_shot, cat), [])
                row = {"model": model, "label": models[model].label, "n_shot": n_shot,
                       "setting": setting_label(n_shot), "category": cat, "missing": not cells}
                ref = paper_reference(models[model].pretrained, n_shot, cat) if not models[model].peft else None
                row["reference"] = ref
                if not cells:
                    row.update(observed=None, unobserved=None, designer=None, delta=None, delta_ci=None,
                               partial=[f"no {cat} tasks for this model (other models have them)"])
                    rows.append(row)
                    continue
                obs = [c for c in cells if role(c) == "observed"]
                unobs = [c for c in cells if role(c) == "unobserved"]
                designer = [c for c in cells if role(c) == "designer"]
                s_obs = _summary(obs) if obs else None
                s_unobs = _summary(unobs) if unobs else None
                s_designer = _summary(designer) if designer else None
                h_obs, h_unobs = _headline(s_obs, cfg.pooled), _headline(s_unobs, cfg.pooled)
                row.update(
                    observed=s_obs.to_dict() if s_obs else None,
                    unobserved=s_unobs.to_dict() if s_unobs else None,
                    designer=s_designer.to_dict() if s_designer else None,
                    observed_headline=h_obs, unobserved_headline=h_unobs,
                    designer_headline=_headline(s_designer, cfg.pooled),
                    delta=(h_unobs - h_obs) if obs and unobs else None,
                    delta_ci=None, delta_ci_note=None,
                    partial=_partial_reasons(obs, unobs, cat, n_shot, cfg),
                )
                if obs and unobs and cfg.n_boot > 0:
                    row["delta_ci"], row["delta_ci_note"] = _gap_interval(obs, unobs, cfg)
                rows.append(row)
    return rows


def _breakdown(regular: list[Cell], models: dict[str, ModelInfo], key: str, cfg: ReportConfig) -> list[dict]:
    """Summaries per model x setting x category x <collection|benchmark>."""
    grouped: dict[tuple, list[Cell]] = defaultdict(list)
    for c in regular:
        grouped[(c.model, c.n_shot, c.category, getattr(c, key))].append(c)
    order = list(models)
    rows = []
    for (model, n_shot, cat, name), cells in sorted(
            grouped.items(), key=lambda kv: (kv[0][1], order.index(kv[0][0]), _category_key(kv[0][2]), kv[0][3])):
        by_role = {r: [c for c in cells if role(c) == r] for r in ("observed", "unobserved", "designer")}
        row = {"model": model, "label": models[model].label, "n_shot": n_shot, "category": cat, key: name}
        if key == "collection":
            row["role"] = next(r for r, group in by_role.items() if group)
            row["summary"] = _summary(cells).to_dict()
        else:
            for r, group in by_role.items():
                row[r] = _summary(group).to_dict() if group else None
            h_obs = _headline(stats.Summary(**row["observed"]), cfg.pooled) if row["observed"] else None
            h_unobs = _headline(stats.Summary(**row["unobserved"]), cfg.pooled) if row["unobserved"] else None
            row["delta"] = h_unobs - h_obs if h_obs is not None and h_unobs is not None else None
        rows.append(row)
    return rows


def _variant_name(cell: Cell) -> str | None:
    if cell.variant:
        return cell.variant
    return cell.collection if cell.collection in ("designer", "unobserved") else None


def _variants(cells: list[Cell], models: dict[str, ModelInfo]) -> list[dict]:
    """Figure 3: per model and setting, each instruction variant's accuracy averaged over the study's benchmarks.

    The study's benchmarks are those with variant tasks (closest/incorrect/negated/nonsensical) or
    that only the study uses; their ``designer`` and ``unobserved`` (newly collected) cells are the
    task-designer and newly-collected variants.
    """
    grouped: dict[tuple[str, int], list[Cell]] = defaultdict(list)
    for c in cells:
        grouped[(c.model, c.n_shot)].append(c)
    rows = []
    for (model, n_shot), mine in grouped.items():
        study = {c.benchmark for c in mine if c.variant or c.variant_study}
        if not study:
            continue
        per_variant: dict[str, dict[str, list[Cell]]] = defaultdict(lambda: defaultdict(list))
        for c in mine:
            name = _variant_name(c) if c.benchmark in study else None
            if name:
                per_variant[name][c.benchmark].append(c)
        names = [v for v in VARIANT_COLLECTIONS if v in per_variant] + sorted(
            v for v in per_variant if v not in VARIANT_COLLECTIONS)
        for name in names:
            benches = per_variant[name]
            bench_means = {b: float(np.mean([c.acc for c in group])) for b, group in sorted(benches.items())}
            values = np.array(list(bench_means.values()))
            rows.append({
                "model": model, "label": models[model].label, "n_shot": n_shot, "variant": name,
                "observed": any(c.observed for group in benches.values() for c in group),
                "mean": float(values.mean()), "std_over_benchmarks": float(values.std()) if len(values) > 1 else None,
                "n_benchmarks": len(values), "n_instructions": sum(len(g) for g in benches.values()),
                "per_benchmark": bench_means,
                "missing_benchmarks": sorted(study - set(benches)),
            })
    return rows


def _paired_strata(pairs: list[tuple[Cell, Cell]], groups_of) -> tuple[list[stats.Stratum], bool]:
    """Strata for base-vs-adapter statistics; columns = [base cells..., adapter cells...] per benchmark."""
    by_bench: dict[str, list[tuple[Cell, Cell]]] = defaultdict(list)
    for b, a in pairs:
        by_bench[b.benchmark].append((b, a))
    with_items = all(b.items is not None and a.items is not None for b, a in pairs)
    strata = []
    for bench, bp in by_bench.items():
        k = len(bp)
        if with_items:
            shared = set.intersection(*(set(b.items) & set(a.items) for b, a in bp))
            if not shared:
                return [], False
            ids = sorted(shared)
            y = np.array([[b.items[i] for b, _ in bp] + [a.items[i] for _, a in bp] for i in ids], dtype=float)
        else:
            y = np.array([[b.acc for b, _ in bp] + [a.acc for _, a in bp]], dtype=float)
        unit = np.concatenate([np.arange(k), np.arange(k)])
        unit_class = np.array([0 if b.observed else 1 for b, _ in bp])
        group = np.array([groups_of(b, False) for b, _ in bp] + [groups_of(a, True) for _, a in bp])
        strata.append(stats.Stratum(y, unit, unit_class, group, np.ones(2 * k), with_items and y.shape[0] > 1))
    return strata, with_items


def _comparisons(regular: list[Cell], models: dict[str, ModelInfo], cfg: ReportConfig) -> list[dict]:
    """Adapter vs its base model (same pretrained, one with peft=): accuracy change and gap change."""
    rows = []
    index = {(c.model, c.n_shot, c.task): c for c in regular}
    for adapter in models.values():
        if not adapter.peft:
            continue
        base = next((m for m in models.values() if m.pretrained == adapter.pretrained and not m.peft), None)
        if base is None:
            continue
        keys = sorted({(c.n_shot, c.category) for c in regular if c.model == adapter.key})
        for n_shot, cat in keys:
            pairs = [(index[(base.key, n_shot, c.task)], c) for c in regular
                     if c.model == adapter.key and c.n_shot == n_shot and c.category == cat
                     and (base.key, n_shot, c.task) in index]
            if not pairs:
                continue
            row = {"base": base.key, "adapter": adapter.key, "base_label": base.label,
                   "adapter_label": adapter.label, "n_shot": n_shot, "category": cat, "n_instructions": len(pairs)}
            row["base_mean"] = float(np.mean([b.acc for b, _ in pairs]))
            row["adapter_mean"] = float(np.mean([a.acc for _, a in pairs]))
            strata, with_items = _paired_strata(pairs, lambda c, is_adapter: int(is_adapter))
            row["acc_change"] = row["adapter_mean"] - row["base_mean"]
            row["acc_change_ci"] = row["delta_change"] = row["delta_change_ci"] = row["mcnemar"] = None
            row["method"] = "items+instructions" if with_items else "instructions"
            if strata and cfg.n_boot > 0 and (with_items or len(pairs) > 1):
                ci = stats.bootstrap(strata, 2, lambda m: m[:, 1] - m[:, 0], cfg.n_boot, cfg.seed, cfg.level)
                row["acc_change_ci"] = ci.to_dict()
            has_both = {b.observed for b, _ in pairs} == {True, False}
            if has_both:
                def gap(cells: list[Cell]) -> float:
                    return float(np.mean([c.acc for c in cells if not c.observed])
                                 - np.mean([c.acc for c in cells if c.observed]))

                row["delta_change"] = gap([a for _, a in pairs]) - gap([b for b, _ in pairs])
                strata4, _ = _paired_strata(pairs, lambda c, is_adapter: 2 * int(is_adapter) + int(not c.observed))
                if strata4 and cfg.n_boot > 0:
                    ci = stats.bootstrap(strata4, 4, lambda m: (m[:, 3] - m[:, 2]) - (m[:, 1] - m[:, 0]),
                                         cfg.n_boot, cfg.seed, cfg.level)
                    row["delta_change_ci"] = ci.to_dict()
            if with_items:
                b_scores, a_scores = [], []
                for b, a in pairs:
                    for i in sorted(set(b.items) & set(a.items)):
                        b_scores.append(b.items[i])
                        a_scores.append(a.items[i])
                try:
                    row["mcnemar"] = stats.mcnemar(b_scores, a_scores)
                except ValueError as exc:  # non-binary per-item scores
                    row["mcnemar_note"] = str(exc)
            else:
                row["mcnemar_note"] = "needs per-item scores (--log_samples) from both runs"
            rows.append(row)
    return rows


def _rankings(regular: list[Cell], models: dict[str, ModelInfo]) -> list[dict]:
    rows = []
    for n_shot, cat in sorted({(c.n_shot, c.category) for c in regular}, key=lambda k: (k[0], _category_key(k[1]))):
        scores: dict[str, dict[str, float]] = defaultdict(dict)
        for c in regular:
            if c.n_shot == n_shot and c.category == cat:
                scores[c.model][c.task] = c.acc
        if len(scores) < 2:
            continue
        agreement = stats.ranking_agreement(scores)
        if agreement is None:
            continue
        agreement["labels"] = [models[m].label for m in agreement["models"]]
        rows.append({"n_shot": n_shot, "category": cat, **agreement,
                     "note": None if len(scores) >= 3 else "only 2 models: tau is +1, -1 or undefined"})
    return rows


def _cell_row(c: Cell, models: dict[str, ModelInfo]) -> dict:
    # not asdict(): it would deep-copy every per-item score
    row = {f.name: getattr(c, f.name) for f in fields(c) if f.name != "items"}
    row["label"] = models[c.model].label
    row["role"] = role(c)
    row["has_item_scores"] = c.items is not None
    return row


def _clean(obj):
    """JSON-safe: NaN/inf become None, numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def build_report(cells: list[Cell], models: dict[str, ModelInfo], config: ReportConfig | None = None,
                 notes: list[str] | None = None, inputs: list[dict] | None = None) -> dict:
    """The whole report as a JSON-ready dict (schema in docs/report.md)."""
    cfg = config or ReportConfig()
    if not cells:
        raise ReportInputError("no cells to report on")
    unknown = {c.model for c in cells} - set(models)
    if unknown:
        raise ReportInputError(f"cells refer to models that were not given: {sorted(unknown)}")
    notes = list(notes or [])
    regular = [c for c in cells if role(c) is not None]
    core = [c for c in regular if role(c) != "designer"]  # what Δ, comparisons and rankings are about
    for c in cells:
        notes.extend(f"{c.task} ({models[c.model].label}): {n}" for n in c.notes)
    used_models = {k: m for k, m in models.items() if any(c.model == k for c in cells)}
    report = {
        "schema_version": SCHEMA_VERSION,
        "generated_by": "instrobust report",
        "config": {"aggregation": "pooled" if cfg.pooled else "instruction-mean", "std_ddof": stats.STD_DDOF,
                   "n_boot": cfg.n_boot, "seed": cfg.seed, "confidence_level": cfg.level,
                   "delta_definition": "unobserved - observed (negative = degradation on unobserved instructions)"},
        "inputs": inputs or [],
        "models": [{**asdict(m), "size": m.size, "family": m.family} for m in used_models.values()],
        "instructions": [_cell_row(c, models) for c in sorted(
            cells, key=lambda c: (list(models).index(c.model), c.n_shot, _category_key(c.category), c.task))],
        "table3": _table3(regular, used_models, cfg, notes),
        "collections": _breakdown(regular, used_models, "collection", cfg),
        "tasks": _breakdown(regular, used_models, "benchmark", cfg),
        "variants": _variants(cells, used_models),
        "comparisons": _comparisons(core, used_models, cfg),
        "rankings": _rankings(core, used_models),
        "figures": [],
        "notes": notes,
    }
    return _clean(report)
