"""BIG-bench Lite examples as instrobust documents.

A BBL document (the fixed contract every BBL template is written against)::

    {"input": str,          # the example's input text (see ``format_input``)
     "choices": list[str],  # option texts, from target_scores, in file order
     "letters": ["A", ...], # same length as choices
     "answer": int,         # index of the option scoring 1
     "task": str}           # BBL task name

Sources, in order: ``INSTROBUST_DATA_DIR/bigbench/<task>/task.json`` (the original layout; when
that variable is set nothing else is tried); the hub copy lm-eval's own ``bigbench`` tasks read
(``hails/bigbench``; skipped when ``HF_HUB_OFFLINE=1``; see ``instrobust.bbl.hub``); the task.json
files of an installed ``bigbench`` package (``pip install --no-deps bigbench==1.0.0``).

Each task's pool is split once, deterministically: ``HELDOUT_SIZE`` examples chosen by a seeded
RNG (seed named after the task) are held out for one-shot demonstrations; the rest, in file
order, is the test pool.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from instrobust.bbl import BBLTask, task_info
from instrobust.bbl.taskjson import RawTask, format_input, read_json, subtask_dirs, task_meta
from instrobust.errors import DataError
from instrobust.upstream.sources import data_dir_from_env, hub_unreachable

LETTERS = tuple("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
HELDOUT_SIZE = 5
SPLIT_SEED = "instrobust-bbl-heldout-v1"

# Real examples with several options scoring 1, by sha256 of their stripped input (the same in
# every source). A document has one gold index, and picking the first would score the other
# correct option as wrong, so these are left out of the pool. Any other example with no or
# several gold options is an error.
MULTI_GOLD_EXCLUDED = {
    "hindu_knowledge": {  # example 86, Vaishya: 'Merchants' and 'Artisans' both score 1
        "cf84eccda0cb1ce166ed83b855ecbfc4fb9d12e21abb0c141acf1e36ad0ec626"},
    "novel_concepts": {  # examples 0 and 5: two equally correct common concepts each
        "124e02a1e8b829e6a17122b483a870eb4eeb13bde6d97e842bde906cf92af960",
        "abb23f2ad5c7bd716e230ac6c5e3f8d7c636c45530685ff32722f1fbd74281a0"},
}

# An example_input_prefix this short that ends in ":" is a field label ("Sentence:", "Passage:",
# "Python code:"): it is kept in front of the input, with its own separator. Longer prefixes
# are task instructions (novel_concepts) and are dropped: the instruction under test supplies those.


@dataclass(frozen=True)
class BBLPool:
    task: str
    test: tuple[dict, ...]
    heldout: tuple[dict, ...]
    designer: str | None
    origin: str


def example_to_doc(task: str, where: str, example: dict, meta: dict[str, Any]) -> dict:
    if not isinstance(example, dict) or "input" not in example:
        raise DataError(f"BBL task {task!r}, example {where}: no 'input' field")
    scores = example.get("target_scores")
    if not isinstance(scores, dict) or not scores:
        raise DataError(
            f"BBL task {task!r}, example {where}: no 'target_scores' (a dict option -> score); "
            f"only multiple-choice examples can be scored by rank classification"
        )
    if len(scores) > len(LETTERS):
        raise DataError(f"BBL task {task!r}, example {where}: {len(scores)} options, at most {len(LETTERS)} supported")
    gold = [i for i, v in enumerate(scores.values()) if v == 1]
    if len(gold) != 1:
        what = "no option" if not gold else f"{len(gold)} options ({', '.join(repr(list(scores)[i]) for i in gold)})"
        raise DataError(f"BBL task {task!r}, example {where}: {what} score 1; exactly one must")
    return {
        "input": format_input(str(example["input"]), meta),
        # option texts stripped, as in the hub copy (a few bbq_lite_json options end in a space)
        "choices": [str(c).strip() for c in scores],
        "letters": list(LETTERS[: len(scores)]),
        "answer": gold[0],
        "task": task,
    }


# ---- task.json layout ---------------------------------------------------------------------

def _designer_text(*jsons: dict) -> str | None:
    """The task designer's instruction: the first task_prefix, else the first description."""
    for key in ("task_prefix", "description"):
        for data in jsons:
            value = data.get(key)
            if isinstance(value, str) and value.strip():
                return value.strip()
    return None


def read_task_dir(root: Path, task: BBLTask) -> RawTask:
    """Examples of ``task`` from a directory laid out like BIG-bench's benchmark_tasks/."""
    task_dir = Path(root) / task.name
    top_path = task_dir / "task.json"
    if not top_path.is_file():
        raise DataError(f"BBL task {task.name!r}: {top_path} not found")
    top = read_json(top_path)
    subs = subtask_dirs(task_dir)
    if task.subtask is not None:
        sub_path = task_dir / task.subtask / "task.json"
        if not sub_path.is_file():
            known = ", ".join(p.name for p in subs) or "none"
            raise DataError(
                f"BBL task {task.name!r}: subtask {task.subtask!r} not found ({sub_path} missing; "
                f"subtasks here: {known})"
            )
        sub = read_json(sub_path)
        examples = _examples_of(sub, sub_path, task.name, f"{task.subtask}#")
        return RawTask(examples, task_meta(sub), _designer_text(sub, top), str(sub_path))
    if top.get("examples"):
        return RawTask(_examples_of(top, top_path, task.name, ""), task_meta(top), _designer_text(top), str(top_path))
    if not subs:
        raise DataError(f"BBL task {task.name!r}: {top_path} has no examples and there are no subtask folders")
    if not task.pool_subtasks:
        raise DataError(
            f"BBL task {task.name!r}: {top_path} only lists subtasks ({', '.join(p.name for p in subs)}); "
            f"name one (BBLTask.subtask) or pool them"
        )
    examples: list[tuple[str, dict]] = []
    metas = []
    for sub_dir in subs:
        sub = read_json(sub_dir / "task.json")
        examples += _examples_of(sub, sub_dir / "task.json", task.name, f"{sub_dir.name}#")
        metas.append(task_meta(sub))
    # Pooled subtasks share one input convention; if they disagree the top-level one applies.
    meta = metas[0] if all(m.get("example_input_prefix") == metas[0].get("example_input_prefix") for m in metas) else task_meta(top)
    return RawTask(tuple(examples), meta, _designer_text(top), str(task_dir))


def _examples_of(data: dict, path: Path, task: str, tag: str) -> tuple[tuple[str, dict], ...]:
    """(location, example) in file order; exact duplicates dropped, as BIG-bench's JsonTask does
    (strategyqa has 1, winowhy 3), so every source yields the same examples."""
    ex = data.get("examples")
    if not isinstance(ex, list) or not ex:
        raise DataError(f"BBL task {task!r}: {path} has no 'examples' list")
    seen, out = set(), []
    for i, e in enumerate(ex):
        key = json.dumps(e)
        if key not in seen:
            seen.add(key)
            out.append((f"{tag}{i}", e))
    return tuple(out)


def input_digest(example: dict) -> str:
    return hashlib.sha256(str(example.get("input", "")).strip().encode("utf-8")).hexdigest()


# ---- sources --------------------------------------------------------------------------------

def _bigbench_package_root() -> Path | None:
    import importlib.util

    spec = importlib.util.find_spec("bigbench")
    if spec is None or not spec.submodule_search_locations:
        return None
    root = Path(list(spec.submodule_search_locations)[0]) / "benchmark_tasks"
    return root if root.is_dir() else None


def raw_task(name: str) -> RawTask:
    """Find ``name``'s examples in the first available source (see module docstring)."""
    task = task_info(name)
    data_dir = data_dir_from_env()
    if data_dir is not None:
        root = data_dir / "bigbench"
        if not root.is_dir():
            raise DataError(f"{root}: missing (INSTROBUST_DATA_DIR is set, so nothing is downloaded)")
        return read_task_dir(root, task)
    from instrobust.bbl import hub

    tried = []
    why = hub_unreachable()
    if why is None:
        raw = hub.raw_task(task)
        if raw is not None:
            return raw
        tried.append(f"the hub ({hub.HUB_DATASET}: could not be loaded)")
    else:
        tried.append(f"the hub ({hub.HUB_DATASET}; skipped: {why})")
    root = _bigbench_package_root()
    if root is not None:
        logging.getLogger("instrobust").warning(
            f"BBL task {name!r}: from the installed bigbench package ({root}); tried first: {'; '.join(tried)}")
        return read_task_dir(root, task)
    tried.append("an installed bigbench package (none)")
    raise DataError(
        f"BBL task {name!r} not found; tried {', '.join(tried)}. Set INSTROBUST_DATA_DIR to a folder "
        f"with bigbench/<task>/task.json, allow hub access, or `pip install --no-deps bigbench==1.0.0`."
    )


def split_indices(task: str, n: int, k: int = HELDOUT_SIZE) -> tuple[list[int], list[int]]:
    """(test, held-out) positions: k held out by an RNG seeded with the task name (stable)."""
    if n <= k:
        raise DataError(f"BBL task {task!r}: {n} examples, need more than {k} (held out for demonstrations)")
    held = random.Random(f"{SPLIT_SEED}:{task}").sample(range(n), k)
    held_set = set(held)
    return [i for i in range(n) if i not in held_set], held


def documents(name: str, raw: RawTask) -> list[dict]:
    """Every document of one task from one source, in source order (known multi-gold left out)."""
    excluded = MULTI_GOLD_EXCLUDED.get(name, set())
    return [example_to_doc(name, where, ex, raw.meta) for where, ex in raw.examples if input_digest(ex) not in excluded]


@functools.lru_cache(maxsize=32)
def bbl_pool(name: str) -> BBLPool:
    """All documents of one task: the test pool and the held-out demonstrations."""
    raw = raw_task(name)
    docs = documents(name, raw)
    test, held = split_indices(name, len(docs))
    return BBLPool(name, tuple(docs[i] for i in test), tuple(docs[i] for i in held), raw.designer, raw.origin)
