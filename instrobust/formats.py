"""Prompt formats: the wrapper a model family was trained with, applied to every task alike.

``plain`` (default) leaves prompts as rendered. ``alpaca`` wraps the whole prompt (instruction,
any demonstration and the query) in the Stanford Alpaca prompt the paper's authors used for
Alpaca-style models: its no-input form, whose ``{instruction}`` slot takes our prompt. The wrapper
is read at run time from the authors' pinned file (templates/observed/sources.yaml), parsed with
``ast`` and never executed; it is used as a plain string, never as template source.

Chat models need no format here: lm-eval's ``--apply_chat_template`` (and ``--system_instruction``)
wrap our prompts in the model's own chat template.
"""
from __future__ import annotations

import ast
import functools

from instrobust.errors import DataError

FORMATS = ("plain", "alpaca")
SLOT = "{instruction}"


def _alpaca_wrapper(path) -> str:
    """The string constant of the no-input Alpaca prompt: one ``{instruction}`` slot, no ``{input}``."""
    found = [node.value for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
             if isinstance(node, ast.Constant) and isinstance(node.value, str)
             and SLOT in node.value and "{input}" not in node.value and "### Response:" in node.value]
    if len(set(found)) != 1:
        raise DataError(f"{path}: expected one Alpaca prompt without an input slot, found {len(set(found))}")
    return found[0]


@functools.lru_cache(maxsize=4)
def wrapper(prompt_format: str | None) -> tuple[str, str]:
    """(prefix, suffix) that surround a whole prompt in ``prompt_format``."""
    if prompt_format in (None, "", "plain"):
        return "", ""
    if prompt_format != "alpaca":
        raise DataError(f"metadata prompt_format: unknown format {prompt_format!r} (known: {', '.join(FORMATS)})")
    from instrobust.upstream.references import upstream_files
    from instrobust.upstream.sources import SourceResolver

    copy = SourceResolver().fetch(upstream_files()["instructioneval_alpaca_templates"])
    prefix, suffix = _alpaca_wrapper(copy.path).split(SLOT)
    return prefix, suffix
