"""Statistics over per-instruction accuracies, on plain arrays and dicts.

Objectives: describe how much accuracy depends on the instruction (spread, worst case, CPS, PSS),
and put honest intervals on the observed-vs-unobserved gap, resampling both sources of noise we
have: the items (which questions were asked) and the instructions (which phrasings were sampled).
"""
from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence
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
    n_tasks: int = 1  # benchmark tasks; with several, min/max/spread/CPS/worst are per task, then averaged
    std_within: float | None = None  # mean over tasks of the std across a task's instructions

    def to_dict(self) -> dict:
        return asdict(self)


def cps(accs: Sequence[float]) -> float:
    """Combined Performance Score (Mizrahi et al. 2024): rewards a high best case and a small drop to the average."""
    a = np.asarray(accs, dtype=float)
    best = float(a.max())
    return (1.0 - (best - float(a.mean()))) * best


def summarize(per_instruction_acc: Mapping[str, float], n_items: Mapping[str, int] | None = None,
              pss: float | None = None, task_of: Mapping[str, str] | None = None,
              instruction_of: Mapping[str, str] | None = None) -> Summary:
    """Mean, std, median, worst/best instruction, spread and CPS of accuracies keyed by task-instruction pair.

    With ``task_of`` naming more than one benchmark task, min, max, spread, CPS and the worst/best
    instruction are computed within each task and averaged over tasks: pooling pairs of different
    tasks would call task difficulty "instruction sensitivity". The worst instruction is then the one
    furthest below its tasks' means on average (``instruction_of`` joins one instruction's pairs
    across tasks). Mean, median and std stay over all pairs, as in the paper's Table 3.
    """
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
    out = Summary(
        n_instructions=n, mean=float(a.mean()), std=float(a.std(ddof=STD_DDOF)) if n > 1 else None,
        median=float(np.median(a)), min=float(a.min()), max=float(a.max()),
        spread=float(a.max() - a.min()) if n > 1 else None, cps=cps(a),
        worst_instruction=names[int(a.argmin())], best_instruction=names[int(a.argmax())],
        pooled_mean=pooled, n_items=total, pss=pss, std_within=float(a.std(ddof=STD_DDOF)) if n > 1 else None,
    )
    tasks = [task_of.get(k, "") for k in names] if task_of else [""] * n
    if len(set(tasks)) > 1:
        _per_task(out, names, a, tasks, instruction_of or {})
    return out


def _per_task(out: Summary, names: list[str], a: np.ndarray, tasks: list[str],
              instruction_of: Mapping[str, str]) -> None:
    """Overwrite the instruction-sensitivity statistics of ``out`` by per-task values averaged over tasks."""
    task_ids = list(dict.fromkeys(tasks))
    members = [np.flatnonzero(np.array(tasks) == t) for t in task_ids]
    accs = [a[m] for m in members]
    multi = [x for x in accs if len(x) > 1]
    out.n_tasks = len(task_ids)
    out.min = float(np.mean([x.min() for x in accs]))
    out.max = float(np.mean([x.max() for x in accs]))
    out.cps = float(np.mean([cps(x) for x in accs]))
    out.spread = float(np.mean([x.max() - x.min() for x in multi])) if multi else None
    out.std_within = float(np.mean([x.std(ddof=STD_DDOF) for x in multi])) if multi else None
    deviation: dict[str, list[float]] = {}
    for m, x in zip(members, accs):
        for j, v in zip(m, x - x.mean()):
            deviation.setdefault(instruction_of.get(names[j], names[j]), []).append(float(v))
    keys = list(deviation)
    mean_dev = np.array([np.mean(deviation[k]) for k in keys])
    out.worst_instruction = keys[int(mean_dev.argmin())]
    out.best_instruction = keys[int(mean_dev.argmax())]


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


# How each kind of interval is obtained (report.md and report.json say it next to every interval).
INTERVAL_KINDS = {
    "items+instructions": "two-way percentile bootstrap: items resampled within each benchmark task, "
                          "instructions resampled as units (one unit per instruction, across the tasks it is used on)",
    "instructions": "percentile bootstrap over instructions (no per-item scores: items not resampled)",
}


@dataclass
class Interval:
    estimate: float
    low: float
    high: float
    level: float
    method: str  # "items+instructions" | "instructions" (what was resampled)
    n_boot: int
    kind: str = "bootstrap"  # how the interval was obtained: bootstrap | irt-posterior
    description: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Stratum:
    """One benchmark task for the bootstrap: scores, and how columns map to instructions and groups.

    ``scores`` is (items x columns) when per-item scores are known, else (1 x columns) holding the
    columns' accuracies (then items are not resampled). A column belongs to one instruction
    ``unit``, an index into the units shared by all strata, so an instruction used on several tasks
    is one resampling unit; columns add into the statistic's ``group`` with ``weight`` (1 = mean
    over instructions, n_items = pooled).
    """

    scores: np.ndarray
    unit: np.ndarray  # (columns,) int, global unit index
    group: np.ndarray  # (columns,) int
    weight: np.ndarray  # (columns,) float
    has_items: bool


def unit_index(strata_keys: Sequence[Sequence[Hashable]], side: Mapping[Hashable, int]
               ) -> tuple[list[np.ndarray], np.ndarray]:
    """Global unit indices of each stratum's columns, and each unit's resampling class.

    Units are resampled within their class = (side, the set of tasks the instruction is used on):
    the number of observed and unobserved instructions, and which tasks they cover, is fixed by
    design, so only which instructions were drawn varies.
    """
    ids: dict[Hashable, int] = {}
    footprint: dict[Hashable, set[int]] = {}
    for s, keys in enumerate(strata_keys):
        for k in keys:
            ids.setdefault(k, len(ids))
            footprint.setdefault(k, set()).add(s)
    classes: dict[tuple, int] = {}
    unit_class = np.array([classes.setdefault((side[k], frozenset(footprint[k])), len(classes)) for k in ids],
                          dtype=int)
    return [np.array([ids[k] for k in keys], dtype=int) for keys in strata_keys], unit_class


def _resample_counts(rng: np.random.Generator, n_rep: int, k: int) -> np.ndarray:
    """(n_rep x k) multiplicities of k things drawn k times with replacement, per replicate."""
    draws = rng.integers(0, k, size=(n_rep, k)) + (np.arange(n_rep) * k)[:, None]
    return np.bincount(draws.ravel(), minlength=n_rep * k).reshape(n_rep, k).astype(float)


def _group_means(strata: Sequence[Stratum], unit_class: np.ndarray, n_groups: int,
                 rng: np.random.Generator | None, n_rep: int) -> np.ndarray:
    """(n_rep x n_groups) weighted means; rng None = no resampling (the point estimate)."""
    sums = np.zeros((n_rep, n_groups))
    weights = np.zeros((n_rep, n_groups))
    unit_counts = np.ones((n_rep, len(unit_class)))
    if rng is not None:
        for cls in np.unique(unit_class):
            members = np.flatnonzero(unit_class == cls)
            unit_counts[:, members] = _resample_counts(rng, n_rep, len(members))
    for s in strata:
        y = np.asarray(s.scores, dtype=float)
        n_items = y.shape[0]
        if rng is not None and s.has_items and n_items > 1:
            col_acc = _resample_counts(rng, n_rep, n_items) @ y / n_items
        else:
            col_acc = np.broadcast_to(y.mean(axis=0), (n_rep, y.shape[1]))
        col_w = unit_counts[:, s.unit] * s.weight[None, :]
        for g in range(n_groups):
            cols = s.group == g
            if cols.any():
                sums[:, g] += (col_w[:, cols] * col_acc[:, cols]).sum(axis=1)
                weights[:, g] += col_w[:, cols].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / weights


def bootstrap(strata: Sequence[Stratum], unit_class: np.ndarray, n_groups: int, statistic, n_boot: int = 2000,
              seed: int = 0, level: float = 0.95, chunk: int = 250) -> Interval:
    """Percentile interval of ``statistic(group_means)`` (vectorized over rows) under the two-way resampling."""
    estimate = float(statistic(_group_means(strata, unit_class, n_groups, None, 1))[0])
    rng = np.random.default_rng(seed)
    reps = []
    for start in range(0, n_boot, chunk):
        reps.append(statistic(_group_means(strata, unit_class, n_groups, rng, min(chunk, n_boot - start))))
    reps = np.concatenate(reps)
    reps = reps[np.isfinite(reps)]
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(reps, [alpha, 1.0 - alpha]) if len(reps) else (math.nan, math.nan)
    method = "items+instructions" if all(s.has_items for s in strata) else "instructions"
    return Interval(estimate, float(low), float(high), level, method, n_boot, "bootstrap",
                    f"{INTERVAL_KINDS[method]}; {n_boot} replicates, seed {seed}")


def gap_strata(tasks: Mapping[str, tuple[np.ndarray, Sequence[bool]]],
               weights: Mapping[str, Sequence[float]] | None = None, has_items: bool = True,
               units: Mapping[str, Sequence[Hashable]] | None = None) -> tuple[list[Stratum], np.ndarray]:
    """Strata for the observed/unobserved gap: per benchmark, a matrix and which columns are observed.

    Group 0 = observed, group 1 = unobserved. ``units`` names each column's instruction (default:
    every column its own instruction); columns of one instruction on several tasks share a unit.
    """
    names = list(tasks)
    flags = {n: np.asarray(tasks[n][1], dtype=bool) for n in names}
    keys = [list(units[n]) if units else [(n, j) for j in range(len(flags[n]))] for n in names]
    side = {k: int(not f) for n, ks in zip(names, keys) for k, f in zip(ks, flags[n])}
    unit_of, unit_class = unit_index(keys, side)
    strata = []
    for n, unit in zip(names, unit_of):
        y = np.asarray(tasks[n][0], dtype=float)
        if y.ndim == 1:
            y = y[None, :]
        group = np.where(flags[n], 0, 1)
        w = np.asarray(weights[n], dtype=float) if weights else np.ones(len(group))
        strata.append(Stratum(y, unit, group, w, has_items and y.shape[0] > 1))
    return strata, unit_class


def gap_interval(tasks: Mapping[str, tuple[np.ndarray, Sequence[bool]]], n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95, weights: Mapping[str, Sequence[float]] | None = None,
                 has_items: bool = True, units: Mapping[str, Sequence[Hashable]] | None = None) -> Interval:
    """CI of Δ = mean(unobserved) - mean(observed), resampling items and instructions (paired over items)."""
    strata, unit_class = gap_strata(tasks, weights, has_items, units)
    return bootstrap(strata, unit_class, 2, lambda m: m[:, 1] - m[:, 0], n_boot, seed, level)


def instruction_gap_interval(observed: Sequence[float], unobserved: Sequence[float], n_boot: int = 2000,
                             seed: int = 0, level: float = 0.95) -> Interval:
    """CI of Δ from per-instruction accuracies alone (no per-item scores): resamples instructions only."""
    acc = np.concatenate([np.asarray(observed, float), np.asarray(unobserved, float)])
    flags = [True] * len(observed) + [False] * len(unobserved)
    return gap_interval({"all": (acc[None, :], flags)}, n_boot, seed, level, has_items=False)


SIGN_FLIP_TEST = ("paired sign-flip permutation test over items: per item, the adapter-minus-base score "
                  "averaged over the instructions; an item's instructions flip together (items are clusters)")


SIGN_FLIP_TEST_INSTRUCTIONS = ("paired sign-flip permutation test over instructions: per instruction, the "
                               "adapter-minus-base accuracy (instructions are clusters)")


def sign_flip_test(diffs: Sequence[np.ndarray], weights: Sequence[float], n_perm: int = 10000,
                   seed: int = 0, chunk: int = 2000) -> dict:
    """Two-sided p-value of T = sum_s weights[s] * mean(diffs[s]) under random sign flips per item.

    ``diffs[s]`` holds, per item of benchmark task s, the adapter-minus-base score averaged over
    the instructions. Under H0 (base and adapter exchangeable on every item) each item's
    difference is symmetric about 0 whatever it shares with the other instructions on that item,
    so flipping whole items keeps the test's level where pooling (instruction x item) pairs does not.
    """
    d = np.concatenate([w * np.asarray(x, float) / len(x) for x, w in zip(diffs, weights) if len(x)])
    observed = float(d.sum())
    rng = np.random.default_rng(seed)
    hits = 0
    chunk = max(1, min(chunk, 4_000_000 // max(1, len(d))))  # bounded memory on 14k-item MMLU
    for start in range(0, n_perm, chunk):
        # random bits b, signs 1 - 2b: sum(signs * d) = sum(d) - 2 b.d (bits from bytes: ~3x faster)
        raw = rng.integers(0, 256, size=(min(chunk, n_perm - start), (len(d) + 7) // 8), dtype=np.uint8)
        flipped = observed - 2.0 * (np.unpackbits(raw, axis=1, count=len(d)) @ d)
        hits += int((np.abs(flipped) >= abs(observed) - 1e-12).sum())
    return {"statistic": observed, "p_value": (hits + 1) / (n_perm + 1), "n_items": int(len(d)),
            "n_perm": n_perm, "test": SIGN_FLIP_TEST}


def mcnemar(base: Sequence[float], other: Sequence[float]) -> dict:
    """Exact McNemar test on paired 0/1 scores: is ``other`` right where ``base`` is wrong more often than not?

    Valid for independent pairs only. The report no longer uses it for adapter vs base: pooled
    (instruction x item) pairs share their item (see ``sign_flip_test``); kept for comparison."""
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
