"""Which items each instruction of a group evaluates in a budgeted (sparse) run.

Objective: a whole group of ``m`` instructions over ``n`` items should cost ``budget`` (B)
single-instruction runs, i.e. ``n * B`` (instruction, item) evaluations instead of ``n * m``, while

* every item is seen by exactly ``min(B, m)`` different instructions (so item difficulty can be
  learnt and no item is left out),
* every instruction sees ``floor(n*B/m)`` or ``ceil(n*B/m)`` items (balanced cost and precision),
* which instructions share items is random (an expander-like linking graph, not a chain), and
* the same ``seed`` gives the same subsets on every machine.

Construction: lay out ``n * B`` slots; slot ``p`` holds item ``perm[p // B]`` (each item takes B
consecutive slots) and instruction ``sigma_t[p mod m]`` where ``sigma_t`` is a fresh random
permutation of the m instructions for each block ``t = p // m`` of m slots. Within a block no
instruction repeats, so an item's B slots (B <= m) can only collide across a block boundary;
there the next permutation starts with instructions the straddling item has not had yet.
With ``B >= m`` every instruction sees every item (the full design; it costs m <= B runs).
"""
from __future__ import annotations

import functools
import math

import numpy as np

from instrobust.errors import InstrobustError

DEFAULT_BUDGET = 2
FULL = "all"  # sparse_budget: all -> every instruction sees every item (the reference run)


class SparseDesignError(InstrobustError):
    """A budget, pool size or instruction index for which no valid sparse design exists."""


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise SparseDesignError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def parse_budget(budget) -> int | None:
    """An integer budget >= 1, or None for the full design (``"all"``)."""
    if isinstance(budget, str):
        if budget.strip().lower() == FULL:
            return None
        try:
            budget = int(budget)
        except ValueError:
            raise SparseDesignError(f"sparse_budget must be a positive integer or {FULL!r}, got {budget!r}") from None
    return _check_int("sparse_budget", budget, 1)


@functools.lru_cache(maxsize=64)
def sparse_design(n_items: int, n_instructions: int, budget: int | str | None, seed: int = 0) -> tuple[tuple[int, ...], ...]:
    """For each instruction (by index), the sorted item indices (0..n_items-1) it evaluates."""
    n = _check_int("n_items", n_items, 1)
    m = _check_int("n_instructions", n_instructions, 1)
    seed = _check_int("seed", seed, 0)
    b = parse_budget(budget) if budget is not None else None
    if b is None or b >= m:
        full = tuple(range(n))
        return tuple(full for _ in range(m))
    if n * b < m:
        raise SparseDesignError(
            f"budget {b} over {n} items gives {n * b} evaluations for {m} instructions: some instructions "
            f"would see no item (use a larger budget or pool, at least {math.ceil(m / n)})")
    rng = np.random.default_rng([seed, n, m, b])
    perm = rng.permutation(n)
    total = n * b
    slots = np.empty(total, dtype=np.int64)
    for start in range(0, total, m):
        sigma = rng.permutation(m)
        first = (start // b) * b  # first slot of the item that holds slot `start`
        if first < start:  # that item straddles the block boundary: avoid the instructions it already has
            used = slots[first:start]
            k = first + b - start
            allowed = np.setdiff1d(np.arange(m), used)
            head = rng.choice(allowed, size=k, replace=False)
            sigma = np.concatenate([head, rng.permutation(np.setdiff1d(np.arange(m), head))])
        stop = min(start + m, total)
        slots[start:stop] = sigma[: stop - start]
    items_of_slot = perm[np.arange(total) // b]
    order = np.argsort(slots, kind="stable")
    bounds = np.searchsorted(slots[order], np.arange(m + 1))
    return tuple(tuple(sorted(int(i) for i in items_of_slot[order[bounds[j]:bounds[j + 1]]])) for j in range(m))


def sparse_subset(n_items: int, n_instructions: int, index: int, budget: int | str, seed: int = 0) -> list[int]:
    """Sorted item indices (0..n_items-1) that instruction number ``index`` of a group evaluates."""
    m = _check_int("n_instructions", n_instructions, 1)
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < m:
        raise SparseDesignError(f"instruction index must be in 0..{m - 1}, got {index!r}")
    return list(sparse_design(n_items, m, budget, seed)[int(index)])


def pool_items(n_total: int, n_items: int | None = None, pool_seed: int = 0) -> list[int]:
    """The item pool a sparse run draws from: all ``n_total`` items, or a seeded sample of ``n_items``.

    The sample depends only on (n_total, pool_seed, n_items), never on the budget or design seed,
    so runs with different budgets and seeds share the same pool; and pools are nested (the first
    ``n_items`` of one seeded permutation), so a 250-item pool lies inside the 500-item pool.
    """
    return sorted(pool_order(n_total, pool_seed)[: n_total if n_items is None else _check_int("sparse_n_items", n_items, 1)])


def pool_order(n_total: int, pool_seed: int = 0) -> list[int]:
    """The seeded order in which items enter nested pools (see :func:`pool_items`)."""
    n_total = _check_int("pool size", n_total, 1)
    rng = np.random.default_rng([_check_int("sparse_pool_seed", pool_seed, 0), n_total])
    return [int(i) for i in rng.permutation(n_total)]
