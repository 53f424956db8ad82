"""Figures: t-SNE of observed vs. unobserved representations (paper, Figure 4) and degradation vs.
distance with its linear fit (Figure 5). PNG files, drawn with matplotlib's Agg backend."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np

from instrobust.analysis.accuracy import LinearFit
from instrobust.analysis.store import Representations

BENCHMARK_TITLES = {"mmlu": "MMLU", "bbl": "BBL"}
EXACT_TSNE_MAX = 1000


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def tsne_points(vectors: np.ndarray, seed: int = 0, perplexity: float | None = None) -> np.ndarray:
    """2-D t-SNE of ``vectors`` (PCA to 50 dimensions first when wider, as usual for t-SNE)."""
    from sklearn.decomposition import PCA
    from sklearn.manifold import TSNE

    x = np.asarray(vectors, dtype=np.float64)
    if x.shape[1] > 50 and len(x) > 50:
        x = PCA(n_components=50, random_state=seed).fit_transform(x)
    # sklearn needs perplexity < n_samples; 30 is its default for large sets.
    perp = perplexity if perplexity is not None else min(30.0, max(2.0, (len(x) - 1) / 3))
    perp = min(perp, len(x) - 1.0)
    # Exact gradients for small sets: more accurate, and Barnes-Hut's OpenMP start-up dominates there.
    method = "exact" if len(x) <= EXACT_TSNE_MAX else "barnes_hut"
    return TSNE(n_components=2, perplexity=perp, init="pca", method=method, random_state=seed).fit_transform(x)


def tsne_plot(reps: Representations, benchmark: str, path: Path, seed: int = 0, max_points: int = 3000,
              perplexity: float | None = None, title: str | None = None) -> dict | None:
    """Figure 4 panel: one point per (instruction, example) of ``benchmark``, observed vs unobserved.

    At most ``max_points`` points (a seeded sample) keep t-SNE fast. None when there are too few points.
    """
    rows = [i for i, r in enumerate(reps.rows) if reps.tasks[r.task].benchmark == benchmark]
    if len(rows) < 5:
        return None
    if len(rows) > max_points:
        rows = sorted(np.random.default_rng(seed).choice(rows, size=max_points, replace=False).tolist())
    xy = tsne_points(reps.vectors[rows], seed=seed, perplexity=perplexity)
    observed = np.array([reps.tasks[reps.rows[i].task].observed for i in rows])
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    for mask, label, color in ((observed, "observed", "tab:blue"), (~observed, "unobserved", "tab:orange")):
        ax.scatter(xy[mask, 0], xy[mask, 1], s=6, alpha=0.6, c=color, label=f"{label} ({int(mask.sum())})")
    ax.set_title(title or f"{BENCHMARK_TITLES.get(benchmark, benchmark)}: first decoded token, layer -2 (t-SNE)")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.legend(loc="best", fontsize=8, markerscale=2)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return {"file": str(path), "kind": "tsne", "benchmark": benchmark, "n_points": len(rows)}


def degradation_plot(points: Sequence[dict], fit: LinearFit | None, path: Path, title: str) -> dict:
    """Figure 5: one point per unobserved instruction, coloured by category, with the fitted line."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4.5))
    categories = list(dict.fromkeys(p["category"] for p in points))
    for c in categories:
        pts = [p for p in points if p["category"] == c]
        ax.scatter([p["distance"] for p in pts], [p["degradation"] for p in pts], s=18, label=c)
    if fit is not None:
        xs = np.linspace(min(p["distance"] for p in points), max(p["distance"] for p in points), 50)
        ax.plot(xs, fit.slope * xs + fit.intercept, color="black", lw=1,
                label=f"fit: {fit.slope:+.3g}x {fit.intercept:+.3g} (r={fit.r:.2f}, p={fit.p:.2g})"
                if fit.r is not None and np.isfinite(fit.r) else f"fit: {fit.slope:+.3g}x {fit.intercept:+.3g}")
    ax.axhline(0, color="grey", lw=0.5)
    ax.set_xlabel("mean l2 distance to the nearest observed instruction")
    ax.set_ylabel("accuracy - mean observed accuracy (points)")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return {"file": str(path), "kind": "degradation_vs_distance", "n_points": len(points)}
