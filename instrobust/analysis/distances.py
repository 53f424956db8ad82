"""How far each unobserved instruction sits from the nearest observed one (paper, Table 4).

For one unobserved instruction u and one example x: d(u, x) = min over observed instructions o on
the same example pool of ||v(u, x) - v(o, x)||_2. The instruction's distance is the mean of d(u, x)
over the sampled examples; a category's distance is the mean over its unobserved instructions.
For scale, the same statistic is reported for each observed instruction against the *other*
observed ones (``observed_reference``): distances are in the model's own units.
"""
from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass

import numpy as np

from instrobust.analysis.errors import AnalysisError
from instrobust.analysis.store import Representations
from instrobust.analysis.tasks import category_key


def nearest_distances(query: np.ndarray, references: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per example, the l2 distance from ``query[x]`` to the closest ``references[k, x]`` and that k.

    ``query``: [n_examples, hidden]; ``references``: [n_refs, n_examples, hidden].
    One reference at a time, so memory stays at one [n_examples, hidden] difference.
    """
    if references.ndim != 3 or query.ndim != 2 or references.shape[1:] != query.shape:
        raise AnalysisError(f"nearest_distances: query {query.shape} does not match references {references.shape}")
    if len(references) == 0:
        raise AnalysisError("nearest_distances: no reference (observed) instructions")
    best = np.full(len(query), np.inf)
    best_k = np.zeros(len(query), dtype=np.int64)
    q = query.astype(np.float64)
    for k, ref in enumerate(references):
        d = np.linalg.norm(q - ref, axis=-1)
        closer = d < best
        best[closer], best_k[closer] = d[closer], k
    return best, best_k


@dataclass
class InstructionDistance:
    """One instruction's mean distance to its nearest observed neighbour over the sampled examples."""

    task: str
    instruction: str
    observed: bool
    collection: str
    category: str
    source: str
    n_examples: int
    mean: float
    std: float
    nearest: str         # the observed task nearest on the most examples
    nearest_share: float  # on what share of the examples it is the nearest

    def to_dict(self) -> dict:
        return asdict(self)


def instruction_distances(reps: Representations) -> list[InstructionDistance]:
    """Unobserved instructions vs. all observed ones, and observed ones vs. the other observed ones."""
    out: list[InstructionDistance] = []
    for source in reps.sources:
        names, doc_ids, grid = reps.grid(source)
        observed = [i for i, n in enumerate(names) if reps.tasks[n].observed]
        if not observed:
            if any(not reps.tasks[n].observed for n in names):
                raise AnalysisError(
                    f"no observed instructions to compare to on {source!r} (tasks: {', '.join(names[:4])}"
                    f"{', ...' if len(names) > 4 else ''})")
            continue
        for i, name in enumerate(names):
            task = reps.tasks[name]
            refs = [k for k in observed if k != i and not _same_prompt(reps, names[k], name)]
            if task.observed and not refs:
                continue  # a lone observed instruction has no reference distance
            d, k = nearest_distances(grid[i], grid[refs])
            (top, count), = Counter(k.tolist()).most_common(1)
            out.append(InstructionDistance(
                task=name, instruction=task.instruction, observed=task.observed, collection=task.collection,
                category=task.category, source=source, n_examples=len(doc_ids), mean=float(d.mean()),
                std=float(d.std()), nearest=names[refs[top]], nearest_share=count / len(doc_ids)))
    return out


def _same_prompt(reps: Representations, a: str, b: str) -> bool:
    # The letter- and cloze-scored tasks of one instruction render the same prompt: for the observed
    # reference statistic an instruction must not count its own twin as its neighbour.
    return reps.tasks[a].instruction == reps.tasks[b].instruction


@dataclass
class CategoryDistance:
    """Table 4 row: mean nearest-observed distance of a category's unobserved instructions."""

    category: str
    n_unobserved: int
    mean: float
    std: float  # over instructions
    observed_reference: float | None  # the same statistic for observed instructions vs the other observed ones
    n_examples: int

    def to_dict(self) -> dict:
        return asdict(self)


def category_distances(distances: list[InstructionDistance]) -> list[CategoryDistance]:
    groups: dict[str, list[InstructionDistance]] = defaultdict(list)
    for d in distances:
        groups[d.category].append(d)
    rows = []
    for category in sorted(groups, key=category_key):
        unobs = [d.mean for d in groups[category] if not d.observed]
        obs = [d.mean for d in groups[category] if d.observed]
        if not unobs:
            continue
        rows.append(CategoryDistance(
            category=category, n_unobserved=len(unobs), mean=float(np.mean(unobs)), std=float(np.std(unobs)),
            observed_reference=float(np.mean(obs)) if obs else None,
            n_examples=max(d.n_examples for d in groups[category])))
    return rows
