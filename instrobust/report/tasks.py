"""Which benchmark, category, collection and setting an lm-eval task of ours belongs to.

The task YAMLs carry ``metadata: {collection, observed, scoring}`` (BBL tasks add ``task_type:
qa|bc|mc`` and ``bbl_task``) and lm-eval copies it into the ``configs`` section of results_*.json.
Metadata wins; the task name is the fallback (documented in docs/report.md):

    mmlu_unobs_07, mmlu_obs_flan2022_12, mmlu_cloze_obs_p3_03      -> MMLU / MMLU (cloze)
    bbl_<bbl task>_[obs_]<collection>_<nn>                         -> BBL-QA / BBL-BC / BBL-MC
    bbl_<bbl task>_var_<variant>_<nn>                              -> Figure-3 instruction variant
    any name ending in _<k>shot                                    -> k-shot setting

BBL tasks also carry ``variant: closest|incorrect|negated|nonsensical`` for the Figure-3 study,
whose "task designer" and "newly collected" variants are the ``designer`` and ``unobserved``
collections of the same benchmark tasks.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from instrobust.bbl import TASKS
from instrobust.names import OBSERVED_COLLECTIONS, parse_mmlu_task, split_shots

# BIG-bench Lite as grouped by the paper (Table 3): question answering, binary and multi-class
# classification; read from the one task table (instrobust.bbl.TASKS).
BBL_LITE_TYPES: dict[str, str] = {name: t.task_type for name, t in TASKS.items() if t.in_bbl14}
# Extra BIG-bench tasks used only for the instruction-variant study (paper, Figure 3): never in Table 3.
# (The study also uses two BBL Lite tasks, conceptual_combinations and language_identification.)
VARIANT_STUDY_TASKS = frozenset(name for name, t in TASKS.items() if not t.in_bbl14)
# Figure 3 order; `unobserved` there means "newly collected".
VARIANT_COLLECTIONS = ("closest", "incorrect", "negated", "designer", "unobserved", "nonsensical")
# Name fallback only (metadata wins): a negated instruction was never seen verbatim in training.
VARIANT_OBSERVED = {"closest": True, "incorrect": True, "negated": False,
                    "designer": False, "unobserved": False, "nonsensical": False}
# Variants that only exist as variant tasks (designer and newly collected are ordinary collections).
VARIANT_ONLY = frozenset(["closest", "incorrect", "negated", "nonsensical"])
_COLLECTION_ALIASES = {"unobs": "unobserved", "flan": "flan2022", "flan_2022": "flan2022"}
CATEGORY_ORDER = ("MMLU", "MMLU (cloze)", "BBL-QA", "BBL-BC", "BBL-MC")

_VARIANT_NAME = re.compile(r"^var_([a-z]+)$")


@dataclass(frozen=True)
class TaskInfo:
    """What one lm-eval task (= one benchmark task under one instruction) is."""

    benchmark: str  # "mmlu" or the BIG-bench task name
    category: str  # MMLU, MMLU (cloze), BBL-QA, BBL-BC, BBL-MC (BBL + " (<scoring>)" if not cloze/rank)
    collection: str  # flan2022 | alpaca | p3 | unobserved | designer (| the variant name, by name only)
    observed: bool
    scoring: str | None
    variant: str | None  # Figure-3 variant of a variant task: closest | incorrect | negated | nonsensical
    variant_study: bool  # benchmark used only in the variant study: never in Table 3
    shots_in_name: int | None  # k from a trailing _<k>shot, if any


def _normalize_collection(value: str) -> str:
    value = str(value).strip().lower()
    return _COLLECTION_ALIASES.get(value, value)


def _bbl_from_name(rest: str) -> tuple[str, str, str | None] | None:
    """Split '<bbl task>_[obs_|var_]<collection>_<nn>' into (bbl task, collection, variant)."""
    known = sorted([*BBL_LITE_TYPES, *VARIANT_STUDY_TASKS], key=len, reverse=True)  # longest name wins
    for task in known:
        if rest.startswith(task + "_"):
            tokens = rest[len(task) + 1:].split("_")
            if tokens and tokens[-1].isdigit():
                tokens = tokens[:-1]
            if tokens and tokens[0] == "obs":
                tokens = tokens[1:]
            if not tokens:
                return None
            name = "_".join(tokens)
            m = _VARIANT_NAME.match(name)
            if m:
                return task, m.group(1), m.group(1)
            collection = _normalize_collection(name)
            return task, collection, collection if collection in VARIANT_ONLY else None
    return None


def _paper_split(base: str, meta: dict) -> tuple[str, str | None]:
    """The paper authors' own instructions (collection ``paper``, docs/paper-collection.md) come in
    sets that are not one population: their unobserved ones, the ones for Alpaca models (in their
    Alpaca prompt), MMLU's subject-specific ones, and the Figure-3 newly collected / nonsensical
    variants. Each is its own collection row, and the variant sets are variants (never Table 3)."""
    paper_set = str(meta.get("paper_set") or "").lower()
    if paper_set in ("newly", "nonsensical"):
        return "paper", f"paper_{paper_set}"
    for part in ("alpaca", "specific"):
        if paper_set == part or f"_paper_{part}_" in base + "_":
            return f"paper_{part}", None
    return "paper", None


def classify(task: str, config: dict | None = None) -> TaskInfo | None:
    """The TaskInfo of an lm-eval task, or None when it is not one of ours (e.g. lm-eval's arc_easy)."""
    meta = dict((config or {}).get("metadata") or {})
    base, shots_in_name = split_shots(task)

    if meta.get("benchmark") and meta.get("category") and meta.get("collection"):
        # a task of the user's own instructions (instrobust tasks, docs/user-instructions.md): metadata says all
        return TaskInfo(str(meta["benchmark"]), str(meta["category"]), _normalize_collection(meta["collection"]),
                        bool(meta.get("observed", False)), meta.get("scoring"), None, False, shots_in_name)

    if base.startswith("mmlu"):
        m = parse_mmlu_task(base)
        if m is None and "collection" not in meta:
            return None
        collection = _normalize_collection(meta.get("collection") or (m and m["collection"]) or "unobserved")
        if collection == "paper":
            collection = _paper_split(base, meta)[0]
        scoring = meta.get("scoring") or ("cloze" if (m and m["cloze"]) else "letter")
        observed = bool(meta["observed"]) if "observed" in meta else collection != "unobserved"
        category = "MMLU" if scoring == "letter" else f"MMLU ({scoring})"
        return TaskInfo("mmlu", category, collection, observed, scoring, None, False, shots_in_name)

    if base.startswith("bbl_"):
        parsed = _bbl_from_name(base[4:])
        bbl_task = meta.get("bbl_task") or (parsed and parsed[0])
        collection = meta.get("collection") or (parsed and parsed[1])
        if not bbl_task or not collection:
            return None
        collection = _normalize_collection(collection)
        paper_variant = None
        if collection == "paper":
            collection, paper_variant = _paper_split(base, meta)
        variant = meta.get("variant") or paper_variant or (parsed[2] if parsed else None)
        variant = str(variant).lower() if variant else None
        variant_study = bbl_task in VARIANT_STUDY_TASKS
        task_type = str(meta.get("task_type") or BBL_LITE_TYPES.get(bbl_task) or "").lower()
        if task_type not in ("qa", "bc", "mc") and not (variant or variant_study):
            return None
        if "observed" in meta:
            observed = bool(meta["observed"])
        else:
            observed = VARIANT_OBSERVED.get(variant or collection, collection in OBSERVED_COLLECTIONS)
        scoring = meta.get("scoring")
        category = f"BBL-{task_type.upper()}" if task_type else "BBL"
        if scoring and scoring not in ("cloze", "rank"):
            category += f" ({scoring})"
        return TaskInfo(bbl_task, category, collection, observed, scoring, variant, variant_study, shots_in_name)
    return None


def setting_label(n_shot: int) -> str:
    return "zero-shot" if n_shot == 0 else f"{n_shot}-shot"
