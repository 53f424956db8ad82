"""Assemble the report (a plain dict, the content of report.json) from cells and models.

``build_report(cells, models, config)`` is the entry point other producers of accuracies reuse.
Every number is computed from ``Cell.acc`` (and ``Cell.items`` when per-item scores exist).
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import numpy as np

import instrobust.report.stats as stats
from instrobust.names import OBSERVED_COLLECTIONS
from instrobust.report.cells import Cell, ModelInfo, ReportInputError
from instrobust.report.reference import paper_reference
from instrobust.report.tasks import CATEGORY_ORDER, VARIANT_COLLECTIONS, setting_label
from instrobust.report.trained_on import observed_in, parse_rule, trained_on

SCHEMA_VERSION = "1.0"


@dataclass
class ReportConfig:
    """How to aggregate and how much to resample."""

    pooled: bool = False  # headline mean pools items over instructions instead of averaging instructions
    n_boot: int = 2000  # bootstrap replicates for every interval
    seed: int = 0
    level: float = 0.95  # confidence level of the intervals
    planned_counts: dict[tuple[str, str, int], int] | None = None  # (category, collection, shots) -> tasks
    observed: tuple[str, ...] = ()  # overrides 'PATTERN=COLL[,COLL]' of the model -> collections map
    n_perm: int = 10000  # permutations of the adapter-vs-base test


def _category_key(category: str) -> tuple[int, str]:
    base = category.split(" (")[0] if category not in CATEGORY_ORDER else category
    order = CATEGORY_ORDER.index(base) if base in CATEGORY_ORDER else len(CATEGORY_ORDER)
    return order, category


def role(cell: Cell) -> str | None:
    """observed | unobserved | designer | other for Table-3 cells; None for cells only the variant study uses.

    observed = from a collection this model was trained on (``Cell.observed``, set by
    ``relabel``); other = from a collection it was not trained on (its own rows, never pooled).
    """
    if cell.variant or cell.variant_study:
        return None
    if cell.collection in ("designer", "unobserved"):
        return cell.collection
    return "observed" if cell.observed else "other"


def assign_trained_on(models: dict[str, ModelInfo], rules: tuple[str, ...] = ()) -> None:
    """Each model's instruction collections (paper section 4.1), unless a producer set them already."""
    parsed = tuple(parse_rule(r) for r in rules)
    for m in models.values():
        if m.trained_on is None or parsed:
            m.trained_on = trained_on(m.pretrained, m.peft, parsed)


def relabel(cells: list[Cell], models: dict[str, ModelInfo]) -> list[Cell]:
    """Cells whose ``observed`` says whether *their model* was trained on their collection."""
    return [replace(c, observed=observed_in(c.collection, models[c.model].trained_on)) for c in cells]


def _summary(cells: list[Cell], with_pss: bool = True) -> stats.Summary:
    accs = {c.task: c.acc for c in cells}
    n_items = {c.task: c.n_items for c in cells if c.n_items}
    pss = None
    if with_pss:
        matrices = [m for m, _ in _item_matrices(cells).values()]
        pss = stats.pss(matrices) if matrices else None
    return stats.summarize(accs, n_items, pss, task_of={c.task: c.benchmark for c in cells},
                           instruction_of={c.task: c.instruction or c.task for c in cells})


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


def _unit(c: Cell) -> str:
    return c.instruction or c.task


def _gap_interval(obs: list[Cell], unobs: list[Cell], cfg: ReportConfig) -> tuple[dict | None, str | None]:
    """Bootstrap CI of Δ; (None, why) when it cannot be had honestly."""
    cells = obs + unobs
    matrices = _item_matrices(cells)
    weights = None
    if matrices:
        tasks = {b: (m, [c.observed for c in group]) for b, (m, group) in matrices.items()}
        units = {b: [_unit(c) for c in group] for b, (_, group) in matrices.items()}
        if cfg.pooled:
            weights = {b: [float(m.shape[0])] * m.shape[1] for b, (m, _) in matrices.items()}
        ci = stats.gap_interval(tasks, cfg.n_boot, cfg.seed, cfg.level, weights=weights, units=units)
        return ci.to_dict(), None
    why = ("no per-item scores (run lm_eval with --log_samples)" if any(c.items is None for c in cells)
           else "the instructions' samples share no items")
    if len(obs) < 2 or len(unobs) < 2:
        return None, f"{why} and fewer than 2 instructions in a group: nothing to resample"
    by_bench: dict[str, list[Cell]] = defaultdict(list)
    for c in cells:
        by_bench[c.benchmark].append(c)
    tasks = {b: (np.array([[c.acc for c in g]]), [c.observed for c in g]) for b, g in by_bench.items()}
    units = {b: [_unit(c) for c in g] for b, g in by_bench.items()}
    if cfg.pooled:
        weights = {b: [float(c.n_items or 1) for c in g] for b, g in by_bench.items()}
    ci = stats.gap_interval(tasks, cfg.n_boot, cfg.seed, cfg.level, weights=weights, has_items=False, units=units)
    return ci.to_dict(), f"{why}: resampled instructions only"


def _partial_reasons(sides: dict[str, tuple[list[Cell], tuple[str, ...]]], category: str, n_shot: int,
                     cfg: ReportConfig) -> list[str]:
    """Why an entry is partial: a side with no instructions, fewer than generated, or an item subset."""
    reasons = []
    for side, (group, collections) in sides.items():
        if not group:
            reasons.append(f"no {side} instructions" + (f" ({', '.join(collections)})" if side == "observed" else ""))
            continue
        counts = cfg.planned_counts or {}
        # k-shot tasks may be generated per setting (_<k>shot files) or run with --num_fewshot on the zero-shot ones
        planned = sum(counts.get((category, c, n_shot), counts.get((category, c, 0), 0)) for c in collections)
        n = len({c.task for c in group})
        if planned and n < planned:
            reasons.append(f"{side}: {n} of {planned} planned task-instruction pairs")
    every = [c for group, _ in sides.values() for c in group]
    subset = [c for c in every if c.n_items and c.n_items_total and c.n_items < c.n_items_total]
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
                rows.append(_table3_row(grouped.get((model, n_shot, cat), []), models[model], n_shot, cat, cfg))
    return rows


def _table3_row(cells: list[Cell], model: ModelInfo, n_shot: int, cat: str, cfg: ReportConfig) -> dict:
    known = model.trained_on.collections
    row = {"model": model.key, "label": model.label, "n_shot": n_shot, "setting": setting_label(n_shot),
           "category": cat, "missing": not cells, "observed_collections": list(known) if known is not None else None}
    ref = paper_reference(model.pretrained, n_shot, cat) if not model.peft else None
    # the paper's observed column is its model's own collection: only comparable under the same rule
    row["reference"] = ref if ref and known is not None and tuple(ref["observed_collections"]) == known else None
    if not cells:
        row.update(observed=None, unobserved=None, designer=None, other={}, delta=None, delta_ci=None,
                   partial=[f"no {cat} tasks for this model (other models have them)"])
        return row
    by_role: dict[str, list[Cell]] = defaultdict(list)
    other: dict[str, list[Cell]] = defaultdict(list)
    for c in cells:
        by_role[role(c)].append(c)
        if role(c) == "other":
            other[c.collection].append(c)
    obs, unobs, designer = by_role["observed"], by_role["unobserved"], by_role["designer"]
    s_obs = _summary(obs) if obs else None
    s_unobs = _summary(unobs) if unobs else None
    s_designer = _summary(designer) if designer else None
    s_other = {k: _summary(other[k]) for k in _collection_order(other)}
    h_obs, h_unobs = _headline(s_obs, cfg.pooled), _headline(s_unobs, cfg.pooled)
    sides: dict[str, tuple[list[Cell], tuple[str, ...]]] = {}
    if known is not None:
        sides["observed"] = (obs, known)
    sides["unobserved"] = (unobs, ("unobserved",))
    sides.update({k: (g, (k,)) for k, g in other.items()})
    row.update(
        observed=s_obs.to_dict() if s_obs else None,
        unobserved=s_unobs.to_dict() if s_unobs else None,
        designer=s_designer.to_dict() if s_designer else None,
        other={k: v.to_dict() for k, v in s_other.items()},
        observed_headline=h_obs, unobserved_headline=h_unobs,
        designer_headline=_headline(s_designer, cfg.pooled),
        other_headlines={k: _headline(v, cfg.pooled) for k, v in s_other.items()},
        delta=(h_unobs - h_obs) if obs and unobs else None,
        delta_ci=None, delta_ci_note=None,
        partial=_partial_reasons(sides, cat, n_shot, cfg),
    )
    if known is None:
        row["delta_ci_note"] = "no Δ: " + model.trained_on.reason
    if obs and unobs and cfg.n_boot > 0:
        row["delta_ci"], row["delta_ci_note"] = _gap_interval(obs, unobs, cfg)
    return row


def _collection_order(names) -> list[str]:
    return [c for c in OBSERVED_COLLECTIONS if c in names] + sorted(c for c in names if c not in OBSERVED_COLLECTIONS)


def _breakdown(regular: list[Cell], models: dict[str, ModelInfo], key: str, cfg: ReportConfig) -> list[dict]:
    """Summaries per model x setting x category x <collection|benchmark>."""
    grouped: dict[tuple, list[Cell]] = defaultdict(list)
    for c in regular:
        grouped[(c.model, c.n_shot, c.category, getattr(c, key))].append(c)
    order = list(models)
    rows = []
    for (model, n_shot, cat, name), cells in sorted(
            grouped.items(), key=lambda kv: (kv[0][1], order.index(kv[0][0]), _category_key(kv[0][2]), kv[0][3])):
        by_role = {r: [c for c in cells if role(c) == r] for r in ("observed", "unobserved", "designer", "other")}
        row = {"model": model, "label": models[model].label, "n_shot": n_shot, "category": cat, key: name}
        if key == "collection":
            row["role"] = next(r for r, group in by_role.items() if group)
            row["summary"] = _summary(cells).to_dict()
        else:
            for r in ("observed", "unobserved", "designer"):
                row[r] = _summary(by_role[r]).to_dict() if by_role[r] else None
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


def _paired_strata(pairs: list[tuple[Cell, Cell]], groups_of) -> tuple[list[stats.Stratum], np.ndarray, bool]:
    """Strata for base-vs-adapter statistics; columns = [base cells..., adapter cells...] per benchmark.

    One instruction (on every task it is used on, base and adapter column alike) is one resampling unit.
    """
    by_bench: dict[str, list[tuple[Cell, Cell]]] = defaultdict(list)
    for b, a in pairs:
        by_bench[b.benchmark].append((b, a))
    with_items = all(b.items is not None and a.items is not None for b, a in pairs)
    matrices, keys = [], []
    for bench, bp in by_bench.items():
        if with_items:
            shared = set.intersection(*(set(b.items) & set(a.items) for b, a in bp))
            if not shared:
                return [], np.zeros(0, dtype=int), False
            ids = sorted(shared)
            y = np.array([[b.items[i] for b, _ in bp] + [a.items[i] for _, a in bp] for i in ids], dtype=float)
        else:
            y = np.array([[b.acc for b, _ in bp] + [a.acc for _, a in bp]], dtype=float)
        matrices.append((y, bp))
        keys.append([_unit(b) for b, _ in bp] * 2)
    side = {_unit(b): int(not b.observed) for b, _ in pairs}
    unit_of, unit_class = stats.unit_index(keys, side)
    strata = []
    for (y, bp), unit in zip(matrices, unit_of):
        group = np.array([groups_of(b, False) for b, _ in bp] + [groups_of(a, True) for _, a in bp])
        strata.append(stats.Stratum(y, unit, group, np.ones(2 * len(bp)), with_items and y.shape[0] > 1))
    return strata, unit_class, with_items


def _paired_test(pairs: list[tuple[Cell, Cell]], with_items: bool, cfg: ReportConfig) -> tuple[dict | None, str | None]:
    """Sign-flip permutation test of the accuracy change, items (or, without them, instructions) as clusters."""
    if not with_items:
        if len(pairs) < 2:
            return None, "needs per-item scores (--log_samples) from both runs, or 2+ instructions"
        diffs = [np.array([a.acc - b.acc for b, a in pairs])]
        out = stats.sign_flip_test(diffs, [1.0], cfg.n_perm, cfg.seed)
        out["test"] = stats.SIGN_FLIP_TEST_INSTRUCTIONS
        return out, "no per-item scores: instructions are the clusters (--log_samples for items)"
    by_bench: dict[str, list[tuple[Cell, Cell]]] = defaultdict(list)
    for b, a in pairs:
        by_bench[b.benchmark].append((b, a))
    diffs, weights = [], []
    for bp in by_bench.values():
        ids = sorted(set.intersection(*(set(b.items) & set(a.items) for b, a in bp)))
        diffs.append(np.array([np.mean([a.items[i] - b.items[i] for b, a in bp]) for i in ids]))
        weights.append(len(bp) / len(pairs))
    return stats.sign_flip_test(diffs, weights, cfg.n_perm, cfg.seed), None


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
            rows.append(_comparison(pairs, base, adapter, n_shot, cat, cfg))
    return rows


def _comparison(pairs: list[tuple[Cell, Cell]], base: ModelInfo, adapter: ModelInfo, n_shot: int, cat: str,
                cfg: ReportConfig) -> dict:
    row = {"base": base.key, "adapter": adapter.key, "base_label": base.label, "adapter_label": adapter.label,
           "n_shot": n_shot, "category": cat, "n_instructions": len(pairs)}
    row["base_mean"] = float(np.mean([b.acc for b, _ in pairs]))
    row["adapter_mean"] = float(np.mean([a.acc for _, a in pairs]))
    strata, unit_class, with_items = _paired_strata(pairs, lambda c, is_adapter: int(is_adapter))
    row["acc_change"] = row["adapter_mean"] - row["base_mean"]
    row["acc_change_ci"] = row["delta_change"] = row["delta_change_ci"] = None
    row["method"] = "items+instructions" if with_items else "instructions"
    if strata and cfg.n_boot > 0 and (with_items or len(pairs) > 1):
        ci = stats.bootstrap(strata, unit_class, 2, lambda m: m[:, 1] - m[:, 0], cfg.n_boot, cfg.seed, cfg.level)
        row["acc_change_ci"] = ci.to_dict()
    if {b.observed for b, _ in pairs} == {True, False}:
        def gap(cells: list[Cell]) -> float:
            return float(np.mean([c.acc for c in cells if not c.observed])
                         - np.mean([c.acc for c in cells if c.observed]))

        row["delta_change"] = gap([a for _, a in pairs]) - gap([b for b, _ in pairs])
        strata4, classes4, _ = _paired_strata(pairs, lambda c, is_adapter: 2 * int(is_adapter) + int(not c.observed))
        if strata4 and cfg.n_boot > 0:
            ci = stats.bootstrap(strata4, classes4, 4, lambda m: (m[:, 3] - m[:, 2]) - (m[:, 1] - m[:, 0]),
                                 cfg.n_boot, cfg.seed, cfg.level)
            row["delta_change_ci"] = ci.to_dict()
    row["test"], row["test_note"] = _paired_test(pairs, with_items, cfg) if strata or not with_items else (
        None, "the two runs share no items")
    return row


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


def json_safe(obj):
    """JSON-safe: NaN/inf become None, numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_safe(v) for v in obj]
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
    assign_trained_on(models, cfg.observed)
    cells = relabel(cells, models)
    regular = [c for c in cells if role(c) is not None]
    core = [c for c in regular if role(c) != "designer"]  # what Δ, comparisons and rankings are about
    for c in cells:
        notes.extend(f"{c.task} ({models[c.model].label}): {n}" for n in c.notes)
    used_models = {k: m for k, m in models.items() if any(c.model == k for c in cells)}
    notes.extend(f"{m.label}: {m.trained_on.reason}: each collection is shown as its own row, with no "
                 "observed-vs-unobserved Δ" for m in used_models.values() if m.trained_on.collections is None)
    report = {
        "schema_version": SCHEMA_VERSION,
        "generated_by": "instrobust report",
        "config": {"aggregation": "pooled" if cfg.pooled else "instruction-mean", "std_ddof": stats.STD_DDOF,
                   "n_boot": cfg.n_boot, "seed": cfg.seed, "confidence_level": cfg.level,
                   "delta_definition": "unobserved - observed (negative = degradation on unobserved instructions)",
                   "observed_definition": "observed = instructions of the collection(s) the model was trained on "
                                          "(paper section 4.1); other collections are reported as their own rows",
                   "observed_overrides": list(cfg.observed), "n_perm": cfg.n_perm},
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
    return json_safe(report)
