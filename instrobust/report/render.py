"""report.md from the report dict: the paper's tables first, then what the paper did not report."""
from __future__ import annotations

from instrobust.names import OBSERVED_COLLECTIONS
from instrobust.report.tasks import setting_label

HOW_TO_SET_MD = ("Set it with `instrobust report --observed 'NAME=COLLECTION'` (collections: flan2022, alpaca, p3), "
                 "e.g. `--observed 'my-model*=flan2022'`.")


VARIANT_LABELS = {"designer": "task designer", "unobserved": "newly collected (unobserved)",
                  "paper_newly": "newly collected (the paper's)", "paper_nonsensical": "nonsensical (the paper's)"}
COLLECTION_LABELS = {"flan2022": "Flan 2022", "alpaca": "Alpaca", "p3": "P3", "unobserved": "ours (unobserved)",
                     "designer": "task designer", "paper": "the paper's unobserved",
                     "paper_alpaca": "the paper's unobserved, Alpaca prompt",
                     "paper_specific": "the paper's subject-specific"}


def collection_label(name: str) -> str:
    return COLLECTION_LABELS.get(name, name)


def collections_label(names) -> str:
    return " + ".join(collection_label(n) for n in names)


def pct(x: float | None, digits: int = 1) -> str:
    return "n/a" if x is None else f"{100 * x:.{digits}f}"


def mean_std(s: dict | None, key: str = "mean") -> str:
    if s is None:
        return "—"
    std = f" ± {pct(s['std'])}" if s.get("std") is not None else ""
    value = s[key] if s.get(key) is not None else s["mean"]  # pooled needs item counts; else the mean
    return f"{pct(value)}{std} (n={s['n_instructions']})"


def params(n: float | None) -> str:
    if not n:
        return ""
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.3g}{unit}"
    return f"{n:.0f}"


def arrow(delta: float | None) -> str:
    if delta is None:
        return "n/a"
    points = 100 * delta
    if round(points, 1) == 0:
        return "= 0.0"
    return f"{'↓' if points < 0 else '↑'} {abs(points):.1f}"


def interval(ci: dict | None) -> str:
    return "" if not ci else f" [{pct(ci['low'])}, {pct(ci['high'])}]"


def markdown_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines + [""]


def _model_rows(cells: dict[str, dict | None], cats: list[str], key: str, marks: dict[str, str]) -> list[list[str]]:
    """One model's Table-3 rows: its observed collection(s), ours, each other collection, task designer, Δ."""
    first = next(r for r in cells.values() if r is not None)
    known = first.get("observed_collections")
    missing = {c: cells[c] is None or cells[c]["missing"] for c in cats}
    others = list(dict.fromkeys(k for c in cats if not missing[c] for k in cells[c]["other"]))
    out = []
    if known is not None:
        out.append([f"Observed ({collections_label(known)})"] + [
            ("— (missing)" if missing[c] else mean_std(cells[c]["observed"], key)) + marks[c] for c in cats])
    out.append(["Unobserved (ours)"] + [
        ("— (missing)" if missing[c] and known is None else "—" if missing[c] else mean_std(cells[c]["unobserved"], key))
        + (marks[c] if known is None else "") for c in cats])
    for k in others:
        name = collection_label(k) + (" (not trained on)" if known is not None and k in OBSERVED_COLLECTIONS else "")
        out.append([name] + ["—" if missing[c] or k not in cells[c]["other"] else mean_std(cells[c]["other"][k], key)
                             for c in cats])
    if any(not missing[c] and cells[c].get("designer") for c in cats):
        out.append(["Task designer"] + [
            mean_std(cells[c]["designer"], key) if not missing[c] and cells[c].get("designer") else "—" for c in cats])
    if known is not None:
        out.append(["Δ [interval]"] + [
            "—" if missing[c] else arrow(cells[c]["delta"]) + interval(cells[c]["delta_ci"] or cells[c].get("delta_irt"))
            for c in cats])
    return out


def _table3(report: dict, n_shot: int, key: str) -> list[str]:
    rows3 = [r for r in report["table3"] if r["n_shot"] == n_shot]
    cats = list(dict.fromkeys(r["category"] for r in rows3))
    by = {(r["model"], r["category"]): r for r in rows3}
    out, footnotes, unknown = [], [], []
    for model, label in dict.fromkeys((r["model"], r["label"]) for r in rows3):
        cells = {c: by.get((model, c)) for c in cats}

        def mark(c: str) -> str:
            r = cells[c]
            if r is None or not r["partial"]:
                return ""
            footnotes.append(f"{label} / {c}: " + "; ".join(r["partial"]))
            return f" †{len(footnotes)}"

        marks = {c: mark(c) for c in cats}
        rows = _model_rows(cells, cats, key, marks)
        out += [[f"**{label}**" if i == 0 else "", *row] for i, row in enumerate(rows)]
        if next(r for r in cells.values() if r)["observed_collections"] is None:
            unknown.append(label)
        refs = [cells[c]["reference"] if cells[c] else None for c in cats]
        if any(refs):
            ref = next(r for r in refs if r)
            out.append(["", f"Paper ({ref['model']}, observed = {collections_label(ref['observed_collections'])}): "
                            "obs / unobs / Δ"] + [
                f"{pct(r['observed_mean'])} / {pct(r['unobserved_mean'])} / {arrow(r['delta'])}" if r else "—"
                for r in refs])
            if any(r and r["designer_mean"] is not None for r in refs) and any(
                    cells[c] and cells[c].get("designer") for c in cats):
                out.append(["", "Paper: task designer (default prompt)"] + [
                    pct(r["designer_mean"]) if r and r["designer_mean"] is not None else "—" for r in refs])
    lines = markdown_table(["Model", ""] + cats, out)
    for label in unknown:
        lines += [f"{label}: no known instruction collection, so no instruction is \"observed\" and there is no Δ; "
                  "each collection is its own row. " + HOW_TO_SET_MD, ""]
    if footnotes:
        lines += ["Partial entries:", ""] + [f"- †{i}: {f}" for i, f in enumerate(footnotes, 1)] + [""]
    lines += interval_lines([r.get("delta_ci") or r.get("delta_irt") for r in rows3],
                            report["config"]["confidence_level"])
    notes = {r["delta_ci_note"] for r in rows3 if r.get("delta_ci_note") and r.get("delta_ci")}
    lines += [f"Note: {n}." for n in sorted(notes)] + ([""] if notes else [])
    return lines


def interval_lines(intervals: list[dict | None], level: float) -> list[str]:
    """One line per kind of interval shown: how it was obtained."""
    kinds = {(i.get("kind", "bootstrap"), i.get("description") or i.get("method", "")) for i in intervals if i}
    return [f"Intervals ({int(round(100 * level))}%, {kind}): {desc}." for kind, desc in sorted(kinds)] + (
        [""] if kinds else [])


def _robustness(report: dict, n_shot: int) -> list[str]:
    rows = []
    for r in report["table3"]:
        if r["n_shot"] != n_shot or r["missing"]:
            continue
        known = r.get("observed_collections")
        sides = [(f"observed ({collections_label(known)})" if known else "observed", r["observed"]),
                 ("ours (unobserved)", r["unobserved"])]
        sides += [(collection_label(k) + (" (not trained on)" if known is not None and k in OBSERVED_COLLECTIONS else ""), v)
                  for k, v in (r.get("other") or {}).items()]
        for side, s in sides:
            if s is None:
                continue
            rows.append([r["label"], r["category"], side, str(s["n_instructions"]), mean_std(s).split(" (n=")[0],
                         pct(s["pooled_mean"]), pct(s["median"]), f"{pct(s['min'])} ({s['worst_instruction']})",
                         f"{pct(s['max'])} ({s['best_instruction']})", pct(s["spread"]), pct(s["cps"]),
                         pct(s["pss"]) if s["pss"] is not None else "n/a (needs --log_samples)"])
    return markdown_table(["Model", "Category", "Instructions", "n", "mean ± std", "pooled", "median", "min (worst)",
                   "max (best)", "spread", "CPS", "PSS"], rows)


def _trained_on_text(m: dict) -> str:
    t = m.get("trained_on") or {}
    if t.get("collections") is None:
        return "no known instruction collection (no observed instructions, no Δ)"
    return f"observed = {collections_label(t['collections'])} ({t['reason']})"


def _test_description(rows: list[dict]) -> str:
    tests = list(dict.fromkeys(r["test"]["test"] for r in rows if r.get("test")))
    return "; ".join(tests) if tests else "no test (see the table)"


def render_markdown(report: dict) -> str:
    cfg = report["config"]
    pooled = cfg["aggregation"] == "pooled"
    key = "pooled_mean" if pooled else "mean"
    lines = ["# Instruction robustness report", ""]
    lines += ["Generated by `instrobust report` from "
              + ", ".join(f"`{i['path']}`" for i in report["inputs"]) + "." if report["inputs"] else "", ""]
    lines += ["Models: " + ", ".join(m["label"] + (f" ({params(m['size'])} parameters)" if m["size"] else "")
                                     for m in report["models"]) + ".", ""]
    lines += ["**Observed means observed by this model** (paper section 4.1): a model's observed instructions are "
              "those of the collection it was trained on; instructions of the other collections are reported as "
              "their own rows. " + " ".join(
                  f"{m['label']}: {_trained_on_text(m)}." for m in report["models"]), ""]
    lines += [
        "**How accuracy is aggregated.** Each lm-eval task is one benchmark task under one instruction; its "
        "accuracy pools the task's examples. " + (
            "Headline means here pool examples over all instructions of a group (`--pooled`): "
            "sum of correct answers / sum of items, so larger tasks weigh more. " if pooled else
            "Headline means average those accuracies over instructions (each task-instruction pair counts once). "
            "The pooled alternative (sum of correct / sum of items) is in the robustness table and report.json; "
            "rerun with `--pooled` to make it the headline. ")
        + f"± is the population standard deviation across task-instruction pairs (ddof={cfg['std_ddof']}). "
        "Δ = unobserved − observed, in accuracy points (↓ = worse on unobserved instructions). "
        "All numbers are percentages.", ""]
    for n_shot in sorted({r["n_shot"] for r in report["table3"]}):
        lines += [f"## Observed vs unobserved instructions, {setting_label(n_shot)} (paper Table 3)", ""]
        lines += _table3(report, n_shot, key)
    for n_shot in sorted({r["n_shot"] for r in report["collections"]}):
        lines += [f"## Per instruction collection, {setting_label(n_shot)}", ""]
        rows = [[r["label"], r["category"], collection_label(r["collection"]),
                 {"other": "not trained on"}.get(r["role"], r["role"]),
                 mean_std(r["summary"], key), pct(r["summary"]["min"]), pct(r["summary"]["max"])]
                for r in report["collections"] if r["n_shot"] == n_shot]
        lines += markdown_table(["Model", "Category", "Collection", "Kind", "mean ± std", "min", "max"], rows)
        lines += [f"## Per task, {setting_label(n_shot)}", ""]
        rows = [[r["label"], r["category"], r["benchmark"], mean_std(r["observed"], key),
                 mean_std(r["unobserved"], key), arrow(r["delta"]),
                 pct(r["designer"]["mean"]) if r["designer"] else "—"]
                for r in report["tasks"] if r["n_shot"] == n_shot]
        lines += markdown_table(["Model", "Category", "Task", "Observed", "Unobserved", "Δ", "Task designer"], rows)
    if report["variants"]:
        lines += ["## Instruction variants (paper Figure 3)", "",
                  "Mean accuracy per variant, averaged over benchmark tasks (each task: mean over its "
                  "instructions of that variant). Closest and incorrect are instructions observed in training "
                  "(the closest task's, and an inappropriate task's, from Flan 2022); negated, task designer, newly "
                  "collected and nonsensical are not. Observed = from a collection this model was trained on (so for "
                  "a model not trained on Flan 2022, closest and incorrect are not observed either).", ""]
        rows = [[r["label"], setting_label(r["n_shot"]), VARIANT_LABELS.get(r["variant"], r["variant"]),
                 "yes" if r["observed"] else "no", pct(r["mean"]), pct(r["std_over_benchmarks"]),
                 str(r["n_benchmarks"]) + (f" (missing: {', '.join(r['missing_benchmarks'])})"
                                           if r["missing_benchmarks"] else ""), str(r["n_instructions"])]
                for r in report["variants"]]
        lines += markdown_table(["Model", "Setting", "Variant", "Observed", "mean", "std over tasks", "tasks",
                         "instructions"], rows)
    lines += ["## Robustness statistics (beyond the paper)", "",
              "Per model, category and instruction group: worst and best instruction, spread = max − min, "
              "CPS = (1 − (max − mean)) · max (Mizrahi et al. 2024; higher is better), and PSS = mean over items "
              "of the mean |score difference| over instruction pairs (ProSA; 0 = the instruction never changes "
              "an answer's correctness). For a category of several benchmark tasks (BBL), min, max, spread and CPS "
              "are computed within each task and averaged over its tasks (task difficulty is not instruction "
              "sensitivity), and the worst / best instruction is the one furthest below / above its tasks' means "
              "on average.", ""]
    for n_shot in sorted({r["n_shot"] for r in report["table3"]}):
        lines += [f"### {setting_label(n_shot)}", ""] + _robustness(report, n_shot)
    if report["comparisons"]:
        level = int(round(100 * cfg["confidence_level"]))
        lines += ["## Before vs after alignment (adapter vs base model)", "",
                  "Paired over the same tasks and items. Δ change < 0 means the gap grew; > 0 means it shrank "
                  "(or reversed). p: " + _test_description(report["comparisons"]) + ".", ""]
        rows = []
        for r in report["comparisons"]:
            t = r.get("test")
            rows.append([f"{r['adapter_label']} vs {r['base_label']}", setting_label(r["n_shot"]), r["category"],
                         str(r["n_instructions"]), pct(r["base_mean"]), pct(r["adapter_mean"]),
                         f"{100 * r['acc_change']:+.1f}" + interval(r["acc_change_ci"]),
                         (f"{100 * r['delta_change']:+.1f}" + interval(r["delta_change_ci"]))
                         if r["delta_change"] is not None else "n/a",
                         f"{t['p_value']:.3g}" if t else (r.get("test_note") or "n/a"), r["method"]])
        lines += markdown_table(["Comparison", "Setting", "Category", "Instructions", "base", "adapter", "change",
                         "Δ change", "p (sign-flip)", "resampled"], rows)
        lines += interval_lines([r.get(k) for r in report["comparisons"] for k in ("acc_change_ci", "delta_change_ci")],
                                cfg["confidence_level"])
    if report["rankings"]:
        lines += ["## Do model rankings depend on the instruction? (Kendall τ-b)", "",
                  "τ between the rankings of the models under each pair of instructions (1 = same order), "
                  "and of each instruction's ranking against the ranking by mean accuracy.", ""]
        rows = [[setting_label(r["n_shot"]), r["category"], ", ".join(r["labels"]), str(r["n_instructions"]),
                 f"{r['mean_tau']:.2f}" if r["mean_tau"] is not None else "n/a",
                 (f"{r['min_tau']:.2f} ({' vs '.join(r['min_pair'])})" if r["min_pair"] else "n/a"),
                 f"{r['mean_tau_vs_mean_ranking']:.2f}" if r["mean_tau_vs_mean_ranking"] is not None else "n/a",
                 str(r["n_pairs_undefined"]), r["note"] or ""] for r in report["rankings"]]
        lines += markdown_table(["Setting", "Category", "Models", "Instructions", "mean τ", "min τ (pair)",
                         "mean τ vs mean ranking", "undefined pairs", "note"], rows)
    if report["figures"]:
        lines += ["## Figures", ""]
        for f in report["figures"]:
            lines += [f"**{f['title']}** ([data]({f['csv']}))", "", f"![{f['title']}]({f['png']})", ""]
    if report["notes"]:
        lines += ["## Notes", ""] + [f"- {n}" for n in dict.fromkeys(report["notes"])] + [""]
    return "\n".join(lines).rstrip() + "\n"
