"""Where the analysed examples come from: one document source per benchmark, and a seeded sample.

A source is a function ``(pool) -> sequence of documents`` keyed by benchmark; the position of a
document in that sequence is its ``doc_id`` (the same id lm-eval gives it in the test split, so
rows can be matched with ``--log_samples`` output). A new benchmark plugs in by adding an entry
to ``DOC_SOURCES``.
"""
from __future__ import annotations

import zlib
from typing import Callable, Mapping, Sequence

import numpy as np

from instrobust.analysis.errors import AnalysisError


def mmlu_docs(pool: str) -> Sequence[Mapping]:
    """The MMLU test pool (all subjects as one pool, as the harness tasks evaluate it)."""
    from instrobust.mmlu.data import mmlu_split

    return mmlu_split("test")


def bbl_docs(pool: str) -> Sequence[Mapping]:
    """One BIG-bench Lite task's test pool (held-out demonstrations excluded, as in the harness)."""
    from instrobust.bbl.data import bbl_pool

    return bbl_pool(pool).test


DOC_SOURCES: dict[str, Callable[[str], Sequence[Mapping]]] = {"mmlu": mmlu_docs, "bbl": bbl_docs}


def docs_for(benchmark: str, pool: str) -> Sequence[Mapping]:
    if benchmark not in DOC_SOURCES:
        raise AnalysisError(f"no document source for benchmark {benchmark!r} (known: {', '.join(DOC_SOURCES)})")
    docs = DOC_SOURCES[benchmark](pool)
    if not docs:
        raise AnalysisError(f"the {benchmark} pool {pool!r} has no documents")
    return docs


def sample_doc_ids(n_docs: int, n: int, seed: int, pool: str) -> list[int]:
    """``n`` document ids of one pool (all of them if it is smaller), seeded by ``seed`` and the pool name.

    The same ids serve every instruction on the pool: distances compare instructions on the same example.
    """
    if n <= 0:
        raise AnalysisError(f"--n-examples must be positive, got {n}")
    if n >= n_docs:
        return list(range(n_docs))
    rng = np.random.default_rng([seed, zlib.crc32(pool.encode())])
    return sorted(int(i) for i in rng.choice(n_docs, size=n, replace=False))
