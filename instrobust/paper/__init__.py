"""The paper's own instruction set: collection ``paper``, read at run time from the authors' code.

Sun, Shaib & Wallace released their unobserved instructions and Figure-3 variants inside their
evaluation code, InstructionEval (github jiudingsun01/InstructionEval, pinned commit). That
repository states no licence, so none of its text is stored here: ``templates/observed/paper.yaml``
pins which methods and list entries we read (sha256 per file and per text piece), and this
package reads them from the pinned files with ``ast`` (see :mod:`instrobust.paper.configs`),
through the same resolver as the observed collections (offline directory, cache, pinned URL).

Each instruction renders the prompt their code builds for an item (their template, their
option lettering and separators), as our Jinja over an instrobust document with every piece
of their text passed as a value. The collection is unobserved for every model. Ids, sets and
groups: :mod:`instrobust.paper.ids`; user docs: docs/paper-collection.md.
"""
from __future__ import annotations

import functools
import re
from typing import NamedTuple

from instrobust.instruction import Instruction
from instrobust.errors import DataError, SourceUnavailable, UnknownInstructionError
from instrobust.paper.ids import is_paper_id, make_id, parse_id

__all__ = ["get", "load_paper", "planned", "planned_ids", "planned_groups", "is_paper_id"]


# Figure-3 variant (the report's names) of each BBL set; None: their 10 per task.
VARIANT_OF_SET = {"unobserved": None, "alpaca": None, "newly": "unobserved", "nonsensical": "nonsensical"}


class Planned(NamedTuple):
    """One paper id and what a task YAML says about it (no upstream file needed)."""

    id: str
    set: str                 # general / specific / alpaca (MMLU); unobserved / newly / nonsensical (BBL)
    bbl_task: str | None
    variant: str | None      # Figure 3: "unobserved" (newly collected) or "nonsensical"
    group: str               # mmlu_paper, mmlu_paper_alpaca, bbl_<task>_paper, bbl_<task>_paper_newly, ...


def _entries(block: dict) -> list[dict]:
    return block.get("methods", block.get("entries", []))


def _number(entry: dict) -> int:
    if "n" in entry:  # their own number (Alpaca/Unobserved/N of a BBL task)
        return entry["n"]
    if "index" in entry:
        return entry["index"] + 1
    return int(re.sub(r"\D", "", entry["method"]))


def _sets(benchmark: str, task: str | None = None):
    """(set name, block, task) for every pinned set of ``benchmark`` (one task if given)."""
    from instrobust.paper.load import spec

    pins = spec().get(benchmark, {})
    if benchmark == "mmlu":
        for name, block in pins.items():
            yield name, block, None
        return
    for t, sets in pins.items():
        if task is None or t == task:
            for name, block in sets.items():
                yield name, block, t


def planned(benchmark: str) -> list[Planned]:
    """Every paper id of ``benchmark`` ("mmlu" or "bbl") with its set, task, variant and group,
    from the pins alone: what the task generator writes."""
    out = []
    for name, block, task in _sets(benchmark):
        scope = f"bbl_{task}" if task else benchmark
        group = f"{scope}_paper" + (f"_{name}" if name not in ("general", "unobserved") else "")
        out += [Planned(make_id(benchmark, name, _number(e), task), name, task, VARIANT_OF_SET.get(name), group)
                for e in _entries(block)]
    return out


def planned_ids(benchmark: str) -> list[str]:
    return [p.id for p in planned(benchmark)]


def planned_groups(benchmark: str) -> dict[str, list[str]]:
    """Group name -> ids: ``mmlu_paper`` (their 20 general ones), ``mmlu_paper_specific``,
    ``mmlu_paper_alpaca``; ``bbl_<task>_paper``, ``bbl_<task>_paper_newly`` and
    ``bbl_<task>_paper_nonsensical`` (Figure 3). Empty sets have no group."""
    out: dict[str, list[str]] = {}
    for p in planned(benchmark):
        out.setdefault(p.group, []).append(p.id)
    return out


def _build(reader, benchmark: str, name: str, block: dict, entry: dict, task: str | None) -> Instruction:
    """One pinned entry as a checked Instruction (the prompt shows the question and every option)."""
    from instrobust.bbl import task_info
    from instrobust.paper import load

    iid = make_id(benchmark, name, _number(entry), task)
    if benchmark == "mmlu":
        kw = dict(benchmark="mmlu", task_type="qa", question_var="question")
        if name == "alpaca":
            return load.alpaca_set(reader, block, iid, entry, name, **kw)
        return load.template_set(reader, block, iid, entry, name, **kw)
    if name == "alpaca":  # a list (QA / MC tasks) or methods (BC tasks) of their Alpaca instructions
        build = load.alpaca_set if "list" in block else load.alpaca_method_set
        return build(reader, block, iid, entry, name, benchmark="bbl", task_type=task_info(task).task_type,
                     question_var="input", bbl_task=task)
    if name == "nonsensical":
        return load.random_set(reader, block, iid, entry, name, benchmark="bbl", task_type=task_info(task).task_type,
                               question_var="input", bbl_task=task)
    return load.template_set(reader, block, iid, entry, name, benchmark="bbl", task_type=task_info(task).task_type,
                             question_var="input", bbl_task=task)


def _refusal(block: dict, number: int) -> str | None:
    for r in block.get("refused", []):
        if int(re.sub(r"\D", "", r["method"])) == number:
            return r["reason"]
    return None


def _locate(instruction_id: str) -> tuple:
    """(benchmark, set name, block, entry, task) of a pinned paper id; a clear error otherwise."""
    parsed = parse_id(instruction_id)
    if parsed is None:
        raise UnknownInstructionError(f"unknown instruction id {instruction_id!r}: not a paper id "
                                      f"(mmlu_paper_NN, bbl_<task>_paper_NN; see docs/paper-collection.md)")
    benchmark, set_name, number, task = parsed
    if task is not None:
        from instrobust.bbl import task_info

        try:
            task_info(task)
        except DataError as exc:
            raise UnknownInstructionError(f"unknown instruction id {instruction_id!r}: {exc}") from None
    for name, block, t in _sets(benchmark, task):
        if name != set_name:
            continue
        for entry in _entries(block):
            if _number(entry) == number:
                return benchmark, name, block, entry, t
        why = _refusal(block, number)
        if why:
            raise UnknownInstructionError(f"instruction {instruction_id!r} is not available: {why}")
    known = [make_id(benchmark, name, _number(e), t) for name, block, t in _sets(benchmark, task)
             if name == set_name for e in _entries(block)]
    hint = f" (this set has {known[0]} .. {known[-1]})" if known else ""
    raise UnknownInstructionError(f"unknown instruction id {instruction_id!r}{hint}")


def get(instruction_id: str, resolver=None) -> Instruction:
    """One paper instruction by id, reading only the file it lives in."""
    if resolver is None:
        return _get_cached(instruction_id)
    from instrobust.paper.load import Reader

    return _build(Reader(resolver), *_locate(instruction_id))


@functools.lru_cache(maxsize=1024)
def _get_cached(instruction_id: str) -> Instruction:
    return _build(_reader(), *_locate(instruction_id))


@functools.lru_cache(maxsize=1)
def _reader():
    from instrobust.paper.load import Reader

    return Reader()


def load_paper(benchmark: str, resolver=None) -> tuple[list[Instruction], dict[str, str]]:
    """Every paper instruction of ``benchmark`` and, when the files cannot be had, why not
    (``{"paper": reason}``; the collection is then skipped, never faked)."""
    from instrobust.paper.load import Reader

    reader = Reader(resolver) if resolver is not None else _reader()
    out = []
    try:
        for name, block, task in _sets(benchmark):
            for entry in _entries(block):
                out.append(_build(reader, benchmark, name, block, entry, task))
    except SourceUnavailable as exc:
        return [], {"paper": str(exc)}
    return out, {}
