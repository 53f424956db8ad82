"""The loader side of sparse tasks: keep one instruction's share of a task's item pool.

``instrobust.harness.load_mmlu`` / ``load_bbl`` call :func:`sparse_split` on the test split when
the task's metadata holds ``sparse_budget`` (lm-eval passes ``metadata`` and ``dataset_kwargs`` to a
``custom_dataset`` as keyword arguments). The kept rows carry an ``item`` column, the row's index
in the full pool, so ``--log_samples`` output can be joined across instructions.
"""
from __future__ import annotations

import functools
import hashlib
from collections.abc import Mapping

import datasets

from instrobust.errors import UnknownInstructionError
from instrobust.sparse.design import SparseDesignError, parse_budget, pool_items, sparse_subset

ITEM_COLUMN = "item"
SPARSE_KEYS = ("sparse_group", "sparse_budget", "sparse_seed", "sparse_n_items", "sparse_pool_seed", "sparse_members")


@functools.lru_cache(maxsize=64)
def available_members(group: str, members: tuple[str, ...] | None = None) -> tuple[str, ...]:
    """The design group's instructions (or ``members``, an explicit list) that can be had here
    (e.g. without Alpaca when it is skipped), in order: they split the item pool between them."""
    from instrobust.lookup import instruction
    from instrobust.sparse.tasks import design_members

    out = []
    for iid in (members if members is not None else design_members(group)):
        try:
            instruction(iid)
        except UnknownInstructionError:
            continue
        out.append(iid)
    return tuple(out)


def _optional_int(meta: Mapping, key: str, default: int | None) -> int | None:
    value = meta.get(key, default)
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none", "null", "all")):
        return default if key != "sparse_n_items" else None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise SparseDesignError(f"metadata {key} must be an integer, got {value!r}") from None


def sparse_split(pool: datasets.Dataset, instruction: str, metadata: Mapping) -> datasets.Dataset:
    """The rows of ``pool`` that ``instruction`` evaluates under the task's sparse metadata."""
    group = metadata.get("sparse_group")
    if not group:
        raise SparseDesignError(f"sparse task for {instruction!r}: metadata sets sparse_budget but no sparse_group")
    budget = parse_budget(metadata["sparse_budget"])
    seed = _optional_int(metadata, "sparse_seed", 0)
    n_items = _optional_int(metadata, "sparse_n_items", None)
    pool_seed = _optional_int(metadata, "sparse_pool_seed", 0)
    explicit = metadata.get("sparse_members")
    if explicit is not None and (isinstance(explicit, str) or not all(isinstance(i, str) for i in explicit)):
        raise SparseDesignError(f"metadata sparse_members must be a list of instruction ids, got {explicit!r}")
    members = available_members(str(group), tuple(explicit) if explicit is not None else None)
    if instruction not in members:
        where = "sparse_members" if explicit is not None else f"sparse group {group!r}"
        raise SparseDesignError(f"instruction {instruction!r} is not one of the available instructions of {where}")
    pool_idx = pool_items(len(pool), n_items, pool_seed)
    chosen = [pool_idx[k] for k in sparse_subset(len(pool_idx), len(members), members.index(instruction),
                                                 budget if budget is not None else "all", seed)]
    # Explicit fingerprints: otherwise `datasets` hashes the whole column (slow, see harness.load_mmlu);
    # hashed because datasets caps fingerprints at 64 characters.
    tag = f"{pool._fingerprint}|{group}|{','.join(members)}|{budget}|{seed}|{n_items}|{pool_seed}|{instruction}"
    tagged = pool.add_column(ITEM_COLUMN, list(range(len(pool))), new_fingerprint=_fingerprint(pool._fingerprint, "item"))
    return tagged.select(chosen, new_fingerprint=_fingerprint(tag))


def _fingerprint(*parts: str) -> str:
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:32]
