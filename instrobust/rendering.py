"""The one way to render an instruction: its template, in a Jinja sandbox, over a document.

The bottom of the instruction layer: imports nothing of ours but errors, so instrobust.answers
(which renders promptsource answer choices) and instrobust.instruction (Instruction and the
template checks) both build on it.
"""
from __future__ import annotations

import functools
import re
from typing import Any, Mapping, Protocol

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment, SecurityError

from instrobust.errors import TemplateRenderError


class Renderable(Protocol):
    """What :func:`render` reads of an instruction (instrobust.instruction.Instruction)."""

    id: str
    collection: str
    template: str
    provenance: Mapping[str, Any]
    prompt_separator: str | None
    values: Mapping[str, str]


_TRAILING_LINE_QUESTION = re.compile(r"\n([^\n]*\?)\s*$")
_TRAILING_SENTENCE_QUESTION = re.compile(r"(?<=[.!?\"'])\s+([^.!?\n]+\?)\s*$")


def split_question(text: str) -> tuple[str, str]:
    """(context, question): the input's closing question and what precedes it.

    Upstream templates written for (passage, question) datasets get a single-text BBL input
    through this split: the question is the last line if that line ends in "?", else the last
    sentence if it ends in "?"; an input with no closing question is all question, no context.
    """
    text = text.strip()
    for pattern in (_TRAILING_LINE_QUESTION, _TRAILING_SENTENCE_QUESTION):
        m = pattern.search(text)
        if m:
            return text[: m.start()].rstrip(), m.group(1).strip()
    return "", text


def _jinja_env() -> jinja2.Environment:
    # Templates are data: a template file (ours, a user's, promptsource's) must not reach
    # Python objects, so every template renders in the immutable sandbox.
    # keep_trailing_newline: upstream templates that end in "\n" must render as they were trained.
    env = ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined, keep_trailing_newline=True, autoescape=False
    )
    # promptsource templates call these as globals; split_question serves BBL adapters.
    env.globals.update(zip=zip, enumerate=enumerate, len=len, str=str, split_question=split_question)
    return env


# The one sandboxed environment: user template checks parse with it too (instrobust.user_checks).
JINJA_ENV = _jinja_env()


@functools.lru_cache(maxsize=4096)
def _compile(source: str) -> jinja2.Template:
    return JINJA_ENV.from_string(source)


def render(instruction: Renderable, doc: Mapping[str, Any]) -> str:
    """Render ``instruction`` over ``doc`` (plus ``instruction.values``) into the prompt the model sees.

    Raises :class:`TemplateRenderError` naming the instruction and its file when the template
    refers to a field the document lacks, tries to reach outside the sandbox, or fails otherwise.
    """
    clash = sorted(set(instruction.values) & set(doc))
    if clash:
        raise TemplateRenderError(
            f"instruction {instruction.id!r} ({where(instruction)}): its upstream values "
            f"{', '.join(clash)} clash with document fields of the same name"
        )
    try:
        text = _compile(instruction.template).render(**doc, **instruction.values)
    except SecurityError as exc:
        raise TemplateRenderError(
            f"instruction {instruction.id!r} ({where(instruction)}) was refused: it tries an "
            f"operation templates may not do ({exc}). Templates only format the document's fields."
        ) from None
    except jinja2.UndefinedError as exc:
        raise TemplateRenderError(
            f"instruction {instruction.id!r} ({where(instruction)}) uses an undefined "
            f"variable: {exc.message}. Documents of this benchmark offer: "
            f"{', '.join(sorted(doc))}."
        ) from None
    except jinja2.TemplateError as exc:
        raise TemplateRenderError(
            f"instruction {instruction.id!r} ({where(instruction)}) failed to render: {exc}"
        ) from None
    if instruction.prompt_separator:
        text = text.split(instruction.prompt_separator)[0].strip()
    return text


def where(instruction: Renderable) -> str:
    """The file (or source) an instruction came from, for error messages."""
    prov = instruction.provenance
    return str(prov.get("file") or prov.get("path") or prov.get("source") or instruction.collection)


def bbl_sentinel_doc(task_type: str, task: str = "SENTINELTASK", input_text: str | None = None,
                     n_choices: int | None = None, answer: int = 0) -> dict:
    n = n_choices or (2 if task_type == "bc" else 4)
    return {
        "input": input_text if input_text is not None else "INPUTSENTINEL text given here",
        "choices": [f"OPTSENTINEL{i}" for i in range(n)],
        "letters": [chr(ord("A") + i) for i in range(n)],
        "answer": answer,
        "task": task,
    }
