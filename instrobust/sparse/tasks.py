"""Sparse design groups: which instructions split an item pool between them in a budgeted run.

A budgeted run is an ordinary run of our tasks or groups with a budget in lm-eval's metadata::

    lm_eval --tasks mmlu_observed_p3,mmlu_unobserved --metadata '{"sparse_budget": 2}' ...

Every task names its design group in its YAML metadata (``sparse_group``): the collection group
it belongs to, per benchmark and scoring (``mmlu_observed_p3``, ``mmlu_cloze_unobserved``) and per
BIG-bench Lite task (``bbl_strategyqa_observed_flan2022``, ``bbl_strategyqa_unobserved``,
``bbl_strategyqa_designer``, ``bbl_<task>_variant_<variant>``). The loader
(:mod:`instrobust.sparse.loader`) keeps the task's share of the items, so each design group the
user runs costs B single-instruction runs: ``mmlu_observed_p3`` with ``sparse_budget: 2`` and
``sparse_n_items: 200`` evaluates 2 x 200 documents in all. A pooled group (``*_observed_all``)
holds several design groups, and each costs B runs.
"""
from __future__ import annotations

import instrobust.catalog as catalog
from instrobust.errors import UnknownInstructionError


def design_groups() -> dict[str, tuple[str, ...]]:
    """Design group -> its planned instruction ids, in a fixed order (no download needed)."""
    return catalog.design_groups()


def design_members(group: str) -> list[str]:
    """Planned instruction ids of a design group (or, for an explicit ``sparse_group`` override,
    of any of our lm-eval groups, e.g. ``mmlu_observed_all``), in a fixed order.

    At run time the loader keeps those that can be had (e.g. Alpaca may be skipped) and splits the
    pool among them, so the tasks that can actually run always cost B runs in total.
    """
    ids = catalog.design_groups().get(group) or catalog.group_instructions().get(group)
    if ids:
        return list(ids)
    raise UnknownInstructionError(
        f"unknown sparse design group {group!r} (known: the collection groups such as mmlu_observed_p3, "
        "mmlu_cloze_unobserved, bbl_<task>_observed_<collection>, bbl_<task>_unobserved; or any instrobust group)")
