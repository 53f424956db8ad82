"""Statistics over per-instruction accuracies, on plain arrays and dicts.

Objectives: describe how much accuracy depends on the instruction (spread, worst case, CPS, PSS),
and put honest intervals on the observed-vs-unobserved gap, resampling both sources of noise we
have: the items (which questions were asked) and the instructions (which phrasings were sampled).
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

STD_DDOF = 0  # population std across instructions, as in the paper's reference figures


@dataclass
class Summary:
    """One group of instructions (e.g. observed MMLU instructions of one model)."""

    n_instructions: int
    mean: float  # unweighted mean over instructions (each task-instruction pair counts once)
    std: float | None  # population std across instructions; None with a single instruction
    median: float
    min: float  # the worst instruction
    max: float
    spread: float | None  # max - min
    cps: float  # Combined Performance Score, (1 - (max - mean)) * max (Mizrahi et al. 2024)
    worst_instruction: str
    best_instruction: str
    pooled_mean: float | None = None  # items pooled over instructions: sum(correct) / sum(items)
    n_items: int | None = None  # items over all instructions
    pss: float | None = None  # ProSA prompt sensitivity score, needs per-item scores

    def to_dict(self) -> dict:
        return asdict(self)


def cps(accs: Sequence[float]) -> float:
    """Combined Performance Score (Mizrahi et al. 2024): rewards a high best case and a small drop to the average."""
    a = np.asarray(accs, dtype=float)
    best = float(a.max())
    return (1.0 - (best - float(a.mean()))) * best


def summarize(per_instruction_acc: Mapping[str, float], n_items: Mapping[str, int] | None = None,
              pss: float | None = None) -> Summary:
    """Mean, std, median, worst/best instruction, spread and CPS of accuracies keyed by instruction (task)."""
    if not per_instruction_acc:
        raise ValueError("summarize() needs at least one instruction")
    names = list(per_instruction_acc)
    a = np.array([float(per_instruction_acc[k]) for k in names])
    pooled = total = None
    if n_items and all(n_items.get(k) for k in names):
        weights = np.array([float(n_items[k]) for k in names])
        pooled = float((a * weights).sum() / weights.sum())
        total = int(weights.sum())
    n = len(a)
    return Summary(
        n_instructions=n, mean=float(a.mean()), std=float(a.std(ddof=STD_DDOF)) if n > 1 else None,
        median=float(np.median(a)), min=float(a.min()), max=float(a.max()),
        spread=float(a.max() - a.min()) if n > 1 else None, cps=cps(a),
        worst_instruction=names[int(a.argmin())], best_instruction=names[int(a.argmax())],
        pooled_mean=pooled, n_items=total, pss=pss,
    )


def pss(strata: Sequence[np.ndarray]) -> float | None:
    """ProSA prompt sensitivity: mean over items of the mean |score difference| over instruction pairs.

    Each stratum is an (items x instructions) matrix of one benchmark task; items are pooled over
    strata. Strata with fewer than two instructions carry no pairs and are skipped.
    """
    per_item = []
    for y in strata:
        y = np.asarray(y, dtype=float)
        m = y.shape[1] if y.ndim == 2 else 0
        if m < 2 or y.shape[0] == 0:
            continue
        # sum_{j<k} |x_j - x_k| = sum_k x_(k) * (2k - m - 1) over the sorted row (k = 1..m)
        coef = 2.0 * np.arange(1, m + 1) - m - 1
        per_item.append(np.sort(y, axis=1) @ coef / (m * (m - 1) / 2))
    return float(np.concatenate(per_item).mean()) if per_item else None


@dataclass
class Interval:
    estimate: float
    low: float
    high: float
    level: float
    method: str  # "items+instructions" | "instructions" (what was resampled)
    n_boot: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Stratum:
    """One benchmark task for the bootstrap: scores, and how columns map to instructions and groups.

    ``scores`` is (items x columns) when per-item scores are known, else (1 x columns) holding the
    columns' accuracies (then items are not resampled). A column belongs to one instruction
    ``unit``; units are resampled with replacement within their ``unit_class`` (observed and
    unobserved instructions separately, since their numbers are fixed by design); columns add into
    the statistic's ``group`` with ``weight`` (1 = mean over instructions, n_items = pooled).
    """

    scores: np.ndarray
    unit: np.ndarray  # (columns,) int
    unit_class: np.ndarray  # (units,) int
    group: np.ndarray  # (columns,) int
    weight: np.ndarray  # (columns,) float
    has_items: bool


def _resample_counts(rng: np.random.Generator, n_rep: int, k: int) -> np.ndarray:
    """(n_rep x k) multiplicities of k things drawn k times with replacement, per replicate."""
    draws = rng.integers(0, k, size=(n_rep, k)) + (np.arange(n_rep) * k)[:, None]
    return np.bincount(draws.ravel(), minlength=n_rep * k).reshape(n_rep, k).astype(float)


def _group_means(strata: Sequence[Stratum], n_groups: int, rng: np.random.Generator | None,
                 n_rep: int) -> np.ndarray:
    """(n_rep x n_groups) weighted means; rng None = no resampling (the point estimate)."""
    sums = np.zeros((n_rep, n_groups))
    weights = np.zeros((n_rep, n_groups))
    for s in strata:
        y = np.asarray(s.scores, dtype=float)
        n_items = y.shape[0]
        if rng is not None and s.has_items and n_items > 1:
            col_acc = _resample_counts(rng, n_rep, n_items) @ y / n_items
        else:
            col_acc = np.broadcast_to(y.mean(axis=0), (n_rep, y.shape[1]))
        n_units = len(s.unit_class)
        unit_counts = np.zeros((n_rep, n_units))
        for cls in np.unique(s.unit_class):
            members = np.flatnonzero(s.unit_class == cls)
            if rng is None:
                unit_counts[:, members] = 1.0
            else:
                unit_counts[:, members] = _resample_counts(rng, n_rep, len(members))
        col_w = unit_counts[:, s.unit] * s.weight[None, :]
        for g in range(n_groups):
            cols = s.group == g
            if cols.any():
                sums[:, g] += (col_w[:, cols] * col_acc[:, cols]).sum(axis=1)
                weights[:, g] += col_w[:, cols].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / weights


def bootstrap(strata: Sequence[Stratum], n_groups: int, statistic, n_boot: int = 2000, seed: int = 0,
              level: float = 0.95, chunk: int = 250) -> Interval:
    """Percentile interval of ``statistic(group_means)`` (vectorized over rows) under the two-way resampling."""
    estimate = float(statistic(_group_means(strata, n_groups, None, 1))[0])
    rng = np.random.default_rng(seed)
    reps = []
    for start in range(0, n_boot, chunk):
        reps.append(statistic(_group_means(strata, n_groups, rng, min(chunk, n_boot - start))))
    reps = np.concatenate(reps)
    reps = reps[np.isfinite(reps)]
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(reps, [alpha, 1.0 - alpha]) if len(reps) else (math.nan, math.nan)
    method = "items+instructions" if all(s.has_items for s in strata) else "instructions"
    return Interval(estimate, float(low), float(high), level, method, n_boot)


def gap_strata(tasks: Mapping[str, tuple[np.ndarray, Sequence[bool]]],
               weights: Mapping[str, Sequence[float]] | None = None, has_items: bool = True) -> list[Stratum]:
    """Strata for the observed/unobserved gap: per benchmark, a matrix and which columns are observed.

    Group 0 = observed, group 1 = unobserved; each column is its own instruction unit.
    """
    strata = []
    for name, (y, observed) in tasks.items():
        observed = np.asarray(observed, dtype=bool)
        y = np.asarray(y, dtype=float)
        if y.ndim == 1:
            y = y[None, :]
        cols = np.arange(len(observed))
        group = np.where(observed, 0, 1)
        w = np.asarray(weights[name], dtype=float) if weights else np.ones(len(observed))
        strata.append(Stratum(y, cols, group.copy(), group, w, has_items and y.shape[0] > 1))
    return strata


def gap_interval(tasks: Mapping[str, tuple[np.ndarray, Sequence[bool]]], n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95, weights: Mapping[str, Sequence[float]] | None = None,
                 has_items: bool = True) -> Interval:
    """CI of Δ = mean(unobserved) - mean(observed), resampling items and instructions (paired over items)."""
    strata = gap_strata(tasks, weights, has_items)
    return bootstrap(strata, 2, lambda m: m[:, 1] - m[:, 0], n_boot, seed, level)


def instruction_gap_interval(observed: Sequence[float], unobserved: Sequence[float], n_boot: int = 2000,
                             seed: int = 0, level: float = 0.95) -> Interval:
    """CI of Δ from per-instruction accuracies alone (no per-item scores): resamples instructions only."""
    acc = np.concatenate([np.asarray(observed, float), np.asarray(unobserved, float)])
    flags = [True] * len(observed) + [False] * len(unobserved)
    return gap_interval({"all": (acc[None, :], flags)}, n_boot, seed, level, has_items=False)


def mcnemar(base: Sequence[float], other: Sequence[float]) -> dict:
    """Exact McNemar test on paired 0/1 scores: is ``other`` right where ``base`` is wrong more often than not?"""
    from scipy.stats import binomtest

    a = np.asarray(base, dtype=float)
    b = np.asarray(other, dtype=float)
    if a.shape != b.shape:
        raise ValueError("mcnemar() needs paired scores of equal length")
    if not (np.isin(a, (0.0, 1.0)).all() and np.isin(b, (0.0, 1.0)).all()):
        raise ValueError("mcnemar() needs 0/1 scores")
    only_base = int(((a == 1) & (b == 0)).sum())
    only_other = int(((a == 0) & (b == 1)).sum())
    discordant = only_base + only_other
    p = float(binomtest(only_other, discordant, 0.5).pvalue) if discordant else 1.0
    return {"n_pairs": int(len(a)), "base_only_correct": only_base, "other_only_correct": only_other,
            "p_value": p, "test": "exact binomial (McNemar)"}


def kendall_tau_b_matrix(scores: np.ndarray) -> np.ndarray:
    """Kendall tau-b between every pair of columns of a (models x instructions) score matrix.

    tau-b of columns i, j = sum_pairs s_i s_j / sqrt(sum s_i^2 * sum s_j^2), where s are the signs of
    the score differences of each model pair; NaN where a column ranks all models equal.
    """
    x = np.asarray(scores, dtype=float)
    rows_a, rows_b = np.triu_indices(x.shape[0], k=1)
    signs = np.sign(x[rows_a] - x[rows_b])  # (model pairs x instructions)
    num = signs.T @ signs
    norm = np.sqrt(np.outer((signs ** 2).sum(0), (signs ** 2).sum(0)))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(norm > 0, num / np.where(norm > 0, norm, 1.0), np.nan)


def ranking_agreement(scores: Mapping[str, Mapping[str, float]]) -> dict | None:
    """How stable the ranking of models is across instructions (Kendall tau-b, scipy-equivalent).

    ``scores`` maps model -> instruction -> accuracy; only instructions all models share are used.
    Returns the mean and the worst tau over instruction pairs, and of each instruction's ranking
    against the ranking by mean accuracy.
    """
    models = sorted(scores)
    if len(models) < 2:
        return None
    shared = sorted(set.intersection(*(set(scores[m]) for m in models)))
    if len(shared) < 2:
        return None
    x = np.array([[scores[m][i] for i in shared] for m in models])
    tau = kendall_tau_b_matrix(x)
    iu = np.triu_indices(len(shared), k=1)
    pair_tau = tau[iu]
    defined = np.isfinite(pair_tau)
    vs_mean = kendall_tau_b_matrix(np.column_stack([x, x.mean(axis=1)]))[-1, :-1]
    out = {
        "models": models, "n_instructions": len(shared), "n_pairs": int(len(pair_tau)),
        "n_pairs_undefined": int((~defined).sum()),
        "mean_tau": float(pair_tau[defined].mean()) if defined.any() else None,
        "min_tau": None, "min_pair": None,
        "mean_tau_vs_mean_ranking": float(np.nanmean(vs_mean)) if np.isfinite(vs_mean).any() else None,
        "min_tau_vs_mean_ranking": None, "min_instruction": None,
    }
    if defined.any():
        k = int(np.nanargmin(np.where(defined, pair_tau, np.nan)))
        out["min_tau"] = float(pair_tau[k])
        out["min_pair"] = [shared[iu[0][k]], shared[iu[1][k]]]
    if np.isfinite(vs_mean).any():
        k = int(np.nanargmin(vs_mean))
        out["min_tau_vs_mean_ranking"] = float(vs_mean[k])
        out["min_instruction"] = shared[k]
    return out
