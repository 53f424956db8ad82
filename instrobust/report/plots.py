"""Figures of the report, drawn from the report dict: a PNG and the CSV of the numbers behind it.

Uses matplotlib's object API with the Agg canvas (no pyplot, no display, no global backend change).
"""
from __future__ import annotations

import csv
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

OBS_COLOR, UNOBS_COLOR, DESIGNER_COLOR, OTHER_COLOR = "#1f77b4", "#d62728", "#2ca02c", "#7f7f7f"
ROLE_LABELS = {"observed": "observed (trained on)", "other": "other collections (not trained on)",
               "unobserved": "unobserved (ours)"}


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    FigureCanvasAgg(fig)
    return fig


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


def _save(fig, rows: list[dict], outdir: Path, stem: str, title: str) -> dict:
    outdir.mkdir(parents=True, exist_ok=True)
    png, csv_path = outdir / f"{stem}.png", outdir / f"{stem}.csv"
    fig.tight_layout()
    fig.savefig(png)
    with open(csv_path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return {"title": title, "png": f"figures/{png.name}", "csv": f"figures/{csv_path.name}"}


def per_instruction(report: dict, outdir: Path) -> list[dict]:
    """Each instruction's accuracy, observed / other collections / ours, per category (one per model and setting)."""
    cells = [c for c in report["instructions"] if c["role"]]
    out = []
    for (model, label, n_shot) in dict.fromkeys((c["model"], c["label"], c["n_shot"]) for c in cells):
        mine = [c for c in cells if c["model"] == model and c["n_shot"] == n_shot]
        cats = list(dict.fromkeys(c["category"] for c in mine))
        fig = _figure(max(4.0, 1.9 * len(cats) + 1.5), 4.0)
        ax = fig.add_subplot(111)
        rng = np.random.default_rng(0)  # jitter only; fixed so the PNG is reproducible
        labelled = set()
        for i, cat in enumerate(cats):
            # other = collections this model was not trained on (all of them for a model with none known)
            for offset, role, color in ((-0.24, "observed", OBS_COLOR), (0.0, "other", OTHER_COLOR),
                                        (0.24, "unobserved", UNOBS_COLOR)):
                vals = [100 * c["acc"] for c in mine if c["category"] == cat and c["role"] == role]
                if not vals:
                    continue
                ax.boxplot([vals], positions=[i + offset], widths=0.2, showfliers=False,
                           medianprops={"color": color})
                ax.scatter(i + offset + rng.uniform(-0.06, 0.06, len(vals)), vals, s=12, color=color, alpha=0.7,
                           label=None if role in labelled else ROLE_LABELS[role], zorder=3)
                labelled.add(role)
            designer = [100 * c["acc"] for c in mine if c["category"] == cat and c["role"] == "designer"]
            if designer:  # the benchmark's own prompt: a reference point, not a distribution
                ax.scatter([i] * len(designer), designer, marker="D", s=22, color=DESIGNER_COLOR, zorder=4,
                           label=None if "designer" in labelled else "task designer")
                labelled.add("designer")
        ax.set_xticks(range(len(cats)), cats)
        ax.set_xlim(-0.6, len(cats) - 0.4)
        ax.set_ylabel("accuracy per instruction (%)")
        ax.set_title(f"{label}, {n_shot}-shot: accuracy of each instruction", fontsize=9)
        ax.legend(loc="best", fontsize=8)
        rows = [{"model": label, "n_shot": n_shot, "category": c["category"], "task": c["task"],
                 "collection": c["collection"], "role": c["role"], "acc": c["acc"]} for c in mine]
        out.append(_save(fig, rows, outdir, f"per_instruction_{_slug(label)}_{n_shot}shot",
                         f"Per-instruction accuracy, {label}, {n_shot}-shot (cf. paper Figure 6)"))
    return out


def _averages(report: dict, n_shot: int, model: str, categories: list[str]) -> tuple[float, float] | None:
    rows = {r["category"]: r for r in report["table3"] if r["model"] == model and r["n_shot"] == n_shot}
    picked = [rows[c] for c in categories if c in rows and rows[c].get("delta") is not None]
    if len(picked) != len(categories) or not picked:
        return None
    return (float(np.mean([r["observed_headline"] for r in picked])),
            float(np.mean([r["unobserved_headline"] for r in picked])))


def _complete_categories(report: dict, n_shot: int, models: list[str]) -> list[str]:
    """Categories with both observed and unobserved numbers for every one of ``models``."""
    ok = defaultdict(set)
    for r in report["table3"]:
        if r["n_shot"] == n_shot and r.get("delta") is not None:
            ok[r["category"]].add(r["model"])
    return [c for c, ms in ok.items() if set(models) <= ms]


def model_bars(report: dict, outdir: Path) -> list[dict]:
    """Figure-2a style: observed vs unobserved accuracy per model, averaged over the categories all models have."""
    out = []
    for n_shot in sorted({r["n_shot"] for r in report["table3"]}):
        models = list(dict.fromkeys(r["model"] for r in report["table3"] if r["n_shot"] == n_shot))
        cats = _complete_categories(report, n_shot, models)
        if not cats:
            continue
        labels = {r["model"]: r["label"] for r in report["table3"]}
        vals = [(labels[m], *_averages(report, n_shot, m, cats)) for m in models]
        fig = _figure(max(4.0, 1.3 * len(vals) + 2), 4.0)
        ax = fig.add_subplot(111)
        x = np.arange(len(vals))
        ax.bar(x - 0.2, [100 * v[1] for v in vals], 0.4, color=OBS_COLOR, label="observed")
        ax.bar(x + 0.2, [100 * v[2] for v in vals], 0.4, color=UNOBS_COLOR, label="unobserved")
        ax.set_xticks(x, [v[0] for v in vals], rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("mean accuracy (%)")
        ax.set_title(f"Observed vs unobserved, {n_shot}-shot\n(mean over {', '.join(cats)})", fontsize=9)
        ax.legend(fontsize=8)
        rows = [{"model": v[0], "n_shot": n_shot, "categories": "+".join(cats), "observed": v[1],
                 "unobserved": v[2], "delta": v[2] - v[1]} for v in vals]
        out.append(_save(fig, rows, outdir, f"obs_vs_unobs_by_model_{n_shot}shot",
                         f"Observed vs unobserved per model, {n_shot}-shot (cf. paper Figure 2a)"))
    return out


def delta_vs_size(report: dict, outdir: Path) -> list[dict]:
    """Figure-2b style: accuracy and Δ against model size, for each family with two or more sizes."""
    out = []
    families: dict[str, list[dict]] = defaultdict(list)
    for m in report["models"]:
        if not m["peft"] and m["size"]:
            families[m["family"]].append(m)
    for family, members in families.items():
        if len({m["size"] for m in members}) < 2:
            continue
        members.sort(key=lambda m: m["size"])
        for n_shot in sorted({r["n_shot"] for r in report["table3"]}):
            present = [m for m in members if any(r["model"] == m["key"] and r["n_shot"] == n_shot
                                                 for r in report["table3"])]
            if len({m["size"] for m in present}) < 2:
                continue
            cats = _complete_categories(report, n_shot, [m["key"] for m in present])
            if not cats:
                continue
            fig = _figure(9.0, 3.8)
            left, right = fig.add_subplot(121), fig.add_subplot(122)
            sizes = [m["size"] for m in present]
            avgs = [_averages(report, n_shot, m["key"], cats) for m in present]
            left.plot(sizes, [100 * a[0] for a in avgs], "o-", color=OBS_COLOR, label="observed")
            left.plot(sizes, [100 * a[1] for a in avgs], "s--", color=UNOBS_COLOR, label="unobserved")
            left.set_title(f"mean over {', '.join(cats)}", fontsize=9)
            left.set_ylabel("accuracy (%)")
            rows = []
            for cat in cats:
                deltas = []
                for m in present:
                    r = next(r for r in report["table3"]
                             if r["model"] == m["key"] and r["n_shot"] == n_shot and r["category"] == cat)
                    deltas.append(100 * r["delta"])
                    rows.append({"family": family, "model": m["label"], "size": m["size"], "n_shot": n_shot,
                                 "category": cat, "observed": r["observed_headline"],
                                 "unobserved": r["unobserved_headline"], "delta": r["delta"]})
                right.plot(sizes, deltas, "o-", label=cat)
            right.axhline(0, color="grey", lw=0.8)
            right.set_title("Δ = unobserved − observed", fontsize=9)
            right.set_ylabel("Δ accuracy (points)")
            for ax in (left, right):
                ax.set_xscale("log")
                ax.set_xlabel("parameters")
                ax.legend(fontsize=7)
            fig.suptitle(f"{family}, {n_shot}-shot", fontsize=10)
            out.append(_save(fig, rows, outdir, f"delta_vs_size_{_slug(family)}_{n_shot}shot",
                             f"Δ vs model size, {family}, {n_shot}-shot (cf. paper Figure 2b)"))
    return out


def variants(report: dict, outdir: Path) -> list[dict]:
    """Figure-3 style: accuracy per instruction variant, averaged over benchmarks."""
    out = []
    for key in dict.fromkeys((r["model"], r["label"], r["n_shot"]) for r in report["variants"]):
        rows = [r for r in report["variants"] if (r["model"], r["label"], r["n_shot"]) == key]
        fig = _figure(max(4.0, 0.9 * len(rows) + 2), 3.8)
        ax = fig.add_subplot(111)
        ax.bar(range(len(rows)), [100 * r["mean"] for r in rows],
               color=[OBS_COLOR if r["observed"] else UNOBS_COLOR for r in rows])
        ax.set_xticks(range(len(rows)), [r["variant"] for r in rows], rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("mean accuracy over benchmarks (%)")
        ax.set_title(f"{key[1]}, {key[2]}-shot: instruction variants (blue = observed)", fontsize=9)
        csv_rows = [{"model": key[1], "n_shot": key[2], "variant": r["variant"], "observed": r["observed"],
                     "mean": r["mean"], "n_benchmarks": r["n_benchmarks"]} for r in rows]
        out.append(_save(fig, csv_rows, outdir, f"variants_{_slug(key[1])}_{key[2]}shot",
                         f"Instruction variants, {key[1]}, {key[2]}-shot (cf. paper Figure 3)"))
    return out


def degradation_by_setting(report: dict, outdir: Path) -> list[dict]:
    """Figure 6: each unobserved instruction's accuracy minus the observed mean, zero-shot vs k-shot."""
    out = []
    cells = [c for c in report["instructions"] if c["role"] == "unobserved"]
    obs_mean = {(r["model"], r["n_shot"], r["category"]): r["observed_headline"] for r in report["table3"]
                if r.get("observed_headline") is not None}
    for model, label in dict.fromkeys((c["model"], c["label"]) for c in cells):
        mine = [c for c in cells if c["model"] == model and (model, c["n_shot"], c["category"]) in obs_mean]
        shots = sorted({c["n_shot"] for c in mine})
        if len(shots) < 2:
            continue
        cats = list(dict.fromkeys(c["category"] for c in mine))
        fig = _figure(max(4.0, 1.9 * len(cats) + 1.5), 4.0)
        ax = fig.add_subplot(111)
        rng = np.random.default_rng(0)
        width = 0.7 / len(shots)
        rows = []
        for j, shot in enumerate(shots):
            xs, ys = [], []
            for i, cat in enumerate(cats):
                for c in mine:
                    if c["category"] == cat and c["n_shot"] == shot:
                        drop = c["acc"] - obs_mean[(model, shot, cat)]
                        xs.append(i - 0.35 + width * (j + 0.5) + rng.uniform(-width / 4, width / 4))
                        ys.append(100 * drop)
                        rows.append({"model": label, "n_shot": shot, "category": cat, "task": c["task"],
                                     "acc": c["acc"], "observed_mean": obs_mean[(model, shot, cat)],
                                     "degradation": drop})
            ax.scatter(xs, ys, s=14, alpha=0.75, label=f"{shot}-shot")
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xticks(range(len(cats)), cats)
        ax.set_ylabel("unobserved − observed mean (points)")
        ax.set_title(f"{label}: degradation of each unobserved instruction", fontsize=9)
        ax.legend(fontsize=8)
        out.append(_save(fig, rows, outdir, f"degradation_by_setting_{_slug(label)}",
                         f"Degradation per unobserved instruction by setting, {label} (cf. paper Figure 6)"))
    return out


def make_figures(report: dict, outdir: Path) -> list[dict]:
    """Draw every figure the report's content supports; returns their titles and relative paths."""
    outdir = Path(outdir)
    return [*per_instruction(report, outdir), *degradation_by_setting(report, outdir), *model_bars(report, outdir),
            *delta_vs_size(report, outdir), *variants(report, outdir)]
