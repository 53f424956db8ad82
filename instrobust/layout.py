"""The prompt layout: instruction once, then any demonstration, then the query (the authors' one-shot
layout), inside the task's prompt format.

lm-eval builds a prompt as ``description + demonstrations + doc_to_text(query)``. We split each
rendered prompt at the start of the line that first shows the document (its input or question):

* the **head** - the instruction text before that line - is the task's ``description``
  (column ``instruction_head``, with the prompt format's prefix), stated once;
* the rest - the document, its options and whatever the template says after them, up to the
  answer cue - is ``doc_to_text`` for the query and, followed by the answer, the demonstration.

Zero-shot, head + rest is exactly the rendered prompt. A template whose text before the document
differs between documents (it lists a QA item's options first, say) has no head: the whole
prompt is repeated for the demonstration, as for templates that put the input first.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

from instrobust.instruction import Instruction
from instrobust.rendering import render, split_question
from instrobust.errors import TemplateRenderError


def _document_start(prompt: str, doc: Mapping[str, Any]) -> int:
    """Offset of the line on which the prompt first shows the document's own text."""
    text = doc.get("input", doc.get("question", ""))
    pieces = [text, *(p for p in split_question(text) if p)] if text else []
    found = [i for i in (prompt.find(p) for p in pieces if len(p) >= 3) if i >= 0]
    if not found:
        return 0
    return prompt.rfind("\n", 0, min(found)) + 1


def head_of(ins: Instruction, docs: Sequence[Mapping[str, Any]]) -> str:
    """The instruction text shared by every document's prompt before the document starts."""
    heads = {(p := render(ins, d))[: _document_start(p, d)] for d in docs}
    return heads.pop() if len(heads) == 1 else ""


def rest_of(ins: Instruction, head: str, doc: Mapping[str, Any]) -> str:
    prompt = render(ins, doc)
    if not prompt.startswith(head):
        raise TemplateRenderError(
            f"instruction {ins.id!r}: its prompt for this document does not start with the instruction "
            f"text {head[:60]!r} its other documents share; the one-shot layout cannot state it once")
    return prompt[len(head):]
