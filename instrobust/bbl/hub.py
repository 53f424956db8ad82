"""BIG-bench Lite from the hub copy lm-eval's own ``bigbench`` tasks read (``hails/bigbench``,
config ``<task>_zero_shot``, split ``default``; ``INSTROBUST_BBL_HUB`` names another copy with the
same layout).

Each hub row is BIG-bench's zero-shot formatting of one example (``bigbench.api.json_task``
``default_format_fn`` and ``bbseqio.bigbench_bridge``)::

    inputs = (task_prefix + input_prefix + input [+ choice_prefix + choice_prefix.join(choices)]
              + output_prefix).strip()

with ``multiple_choice_targets`` / ``multiple_choice_scores`` in target_scores order. To get the
example's own input back we cut the known-length head and tail off. Those lengths, and the
sha256 of the cut text, are pinned per task in ``templates/observed/bbl_hub_formats.yaml``
(computed from task.json by ``scripts/pin_observed.py bbl-hub``); a row whose head or tail does
not match is an error, never a silently different prompt. Tasks whose hub config mixes
subtasks we do not use are narrowed to the subtask by its option count (pinned as well).
"""
from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import asdict, dataclass
from typing import Any

import yaml

from instrobust.bbl import BBLTask
from instrobust.bbl.taskjson import RawTask, format_input, read_json, subtask_dirs, task_meta
from instrobust.errors import DataError

HUB_DATASET = os.environ.get("INSTROBUST_BBL_HUB", "hails/bigbench")
HUB_SPLIT = "default"
FORMATS_FILE = "bbl_hub_formats.yaml"
# BIG-bench's defaults when a task.json does not set a prefix
DEFAULT_INPUT_PREFIX = "\nQ: "
DEFAULT_OUTPUT_PREFIX = "\nA: "
DEFAULT_CHOICE_PREFIX = "\n  choice: "


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class HubFormat:
    """Where a BIG-bench example sits inside one hub ``inputs`` string (lengths and hashes only)."""

    head_chars: int          # len((task_prefix + input_prefix).lstrip())
    head_sha256: str
    label_chars: int         # the kept input label ("Sentence: ") at the end of the head; 0: none
    designer_chars: int      # task_prefix.strip() at the start of the head; 0: no task_prefix
    tail_chars: int          # len(output_prefix.rstrip())
    tail_sha256: str
    choice_prefix: str       # a formatting string ("\n  choice: "), kept as text to find the options block
    append_choices: bool
    n_choices: tuple[int, ...] = ()  # the subtask's option counts when the config mixes subtasks


def hub_format(meta: dict[str, Any], n_choices: tuple[int, ...] = ()) -> HubFormat:
    """The pinned facts for one task.json (``meta``: its fields other than examples)."""
    task_prefix = str(meta.get("task_prefix", ""))
    input_prefix = meta.get("example_input_prefix", DEFAULT_INPUT_PREFIX)
    head = (task_prefix + input_prefix).lstrip()
    label = format_input("", meta)  # the label format_input keeps, "" when none
    if label and not head.endswith(label):
        raise DataError(f"input label {label!r} is not at the end of the formatted head")
    tail = meta.get("example_output_prefix", DEFAULT_OUTPUT_PREFIX).rstrip()
    # BIG-bench tests the value's truth: the string 'false' (logic_grid_puzzle) still appends
    append = bool(meta.get("append_choices_to_input", True))
    return HubFormat(
        head_chars=len(head), head_sha256=_sha(head), label_chars=len(label),
        designer_chars=len(task_prefix.strip()), tail_chars=len(tail), tail_sha256=_sha(tail),
        choice_prefix=str(meta.get("choice_prefix", DEFAULT_CHOICE_PREFIX)),
        append_choices=append, n_choices=tuple(n_choices),
    )


def invert(inputs: str, choices: list[str], fmt: HubFormat, where: str) -> tuple[str, str]:
    """(label, example input) from one hub ``inputs`` string; DataError if it does not fit ``fmt``."""
    head = inputs[: fmt.head_chars]
    if _sha(head) != fmt.head_sha256:
        raise DataError(f"{where}: the hub input does not start with the pinned task/input prefix "
                        f"(sha256 mismatch); the hub copy differs from the BIG-bench version pinned")
    end = len(inputs) - fmt.tail_chars
    if fmt.tail_chars and _sha(inputs[end:]) != fmt.tail_sha256:
        raise DataError(f"{where}: the hub input does not end with the pinned output prefix (sha256 mismatch)")
    body = inputs[fmt.head_chars: end]
    if fmt.append_choices:
        # the options block is choice_prefix + choice_prefix.join(options, shuffled): find the
        # one cut whose parts are exactly the options (the hub strips option texts)
        cp, cut, pos = fmt.choice_prefix, None, body.find(fmt.choice_prefix)
        while pos >= 0:
            if sorted(p.strip() for p in body[pos + len(cp):].split(cp)) == sorted(c.strip() for c in choices):
                cut = pos
                break
            pos = body.find(cp, pos + 1)
        if cut is None:
            raise DataError(f"{where}: no appended options block holding exactly the row's options")
        body = body[:cut]
    label = head[len(head) - fmt.label_chars:] if fmt.label_chars else ""
    return label, body


@functools.lru_cache(maxsize=1)
def pinned_formats() -> dict[str, HubFormat]:
    from instrobust.upstream.references import references_dir

    path = references_dir() / FORMATS_FILE
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    return {task: HubFormat(**{**spec, "n_choices": tuple(spec.get("n_choices", ()))}) for task, spec in data.items()}


def rows_to_examples(task: BBLTask, rows: list[dict], fmt: HubFormat):
    """Hub rows -> (examples as task.json dicts, meta for format_input, designer or None)."""
    if fmt.n_choices:
        rows = [r for r in rows if len(r["multiple_choice_targets"]) in fmt.n_choices]
    if not rows:
        raise DataError(f"BBL task {task.name!r}: no hub rows with {fmt.n_choices} options")
    examples, label, designer = [], "", None
    for i, row in enumerate(rows):
        where = f"{HUB_DATASET} {task.name} row {i}"
        choices = [str(c) for c in row["multiple_choice_targets"]]
        label, text = invert(str(row["inputs"]), choices, fmt, where)
        scores = dict(zip(choices, row["multiple_choice_scores"]))
        if len(scores) != len(choices):
            raise DataError(f"{where}: repeated option texts")
        examples.append((f"hub row {i}", {"input": text, "target_scores": scores}))
        if fmt.designer_chars:
            designer = str(row["inputs"])[: fmt.designer_chars]
    meta = {"example_input_prefix": label} if label else {}
    return tuple(examples), meta, designer


def raw_task(task: BBLTask):
    """The task from the hub, or None when the hub cannot be reached (the caller tries the next source)."""
    fmt = pinned_formats().get(task.name)
    if fmt is None:
        return None
    try:
        import datasets

        ds = datasets.load_dataset(HUB_DATASET, f"{task.name}_zero_shot", split=HUB_SPLIT)
    except Exception:  # offline, gated, renamed: all mean "not here"
        return None
    examples, meta, designer = rows_to_examples(task, list(ds), fmt)
    return RawTask(examples, meta, designer, f"{HUB_DATASET}:{task.name}_zero_shot[{HUB_SPLIT}]")


def compute_formats(root) -> dict[str, HubFormat]:
    """Pinned facts for every BBL task from a benchmark_tasks-style folder of task.json files."""
    from pathlib import Path

    from instrobust.bbl import TASKS

    out = {}
    for name, task in TASKS.items():
        task_dir = Path(root) / name
        subs = {p.name: read_json(p / "task.json") for p in subtask_dirs(task_dir)}
        if task.subtask:
            mine = {len(e["target_scores"]) for e in subs[task.subtask]["examples"]}
            others = {len(e["target_scores"]) for n, d in subs.items() if n != task.subtask for e in d["examples"]}
            if mine & others:
                raise DataError(f"{name}: subtask {task.subtask} cannot be told apart by option count ({mine & others})")
            out[name] = hub_format(task_meta(subs[task.subtask]), tuple(sorted(mine)))
        elif subs and task.pool_subtasks:
            formats = {hub_format(task_meta(d)) for d in subs.values()}
            if len(formats) != 1:
                raise DataError(f"{name}: pooled subtasks are formatted differently")
            out[name] = formats.pop()
        else:
            out[name] = hub_format(task_meta(read_json(task_dir / "task.json")))
    return out


def formats_yaml(formats: dict[str, HubFormat]) -> str:
    """The text of bbl_hub_formats.yaml (written by scripts/pin_observed.py bbl-hub)."""
    head = ("# Pinned BIG-bench formatting facts for reading BBL tasks from the hub copy (instrobust/bbl/hub.py):\n"
            "# lengths and sha256 only, computed from task.json by `scripts/pin_observed.py bbl-hub`.\n")
    body = {t: {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(f).items()} for t, f in formats.items()}
    return head + yaml.safe_dump(body, sort_keys=False)
