"""Word 12-grams shared between an instruction and the observed collections.

An unobserved instruction (ours, or a user's: instrobust.user_tasks) may share no run of 12 words
with an instruction a model could have seen in instruction tuning. Normalisation, the same on both
sides:

* Jinja comments, statements and expressions (``{# #}``, ``{% %}``, ``{{ }}``) and Python
  ``str.format`` placeholders (``{premise}``, as in Flan) become a space, so text on either side
  of a placeholder still joins up into n-grams (a copied sentence cannot hide behind a variable);
* the text is lower-cased and split on whitespace with punctuation removed two ways - deleted
  ("multiple-choice" -> "multiplechoice") and replaced by a space ("multiple choice") - and the
  n-grams of both are kept, so a hyphen or apostrophe cannot hide an overlap.
"""
from __future__ import annotations

import re
from typing import Iterable

N = 12

_JINJA_RE = re.compile(r"\{#.*?#\}|\{%.*?%\}|\{\{.*?\}\}", re.DOTALL)
_FORMAT_PLACEHOLDER_RE = re.compile(r"\{[^{}\s]*\}")
_PUNCT_RE = re.compile(r"[^\w\s]|_")
_VALUE_RE = re.compile(r"\{\{-?\s*(\w+)\s*-?\}\}")

Grams = set[tuple[str, ...]]


def strip_template_syntax(text: str) -> str:
    """Remove Jinja tags/expressions/comments and ``{name}`` format placeholders."""
    text = _JINJA_RE.sub(" ", text)
    return _FORMAT_PLACEHOLDER_RE.sub(" ", text)


def tokenize_variants(text: str) -> list[list[str]]:
    """Lower-cased word lists: punctuation deleted, and punctuation replaced by a space."""
    lowered = strip_template_syntax(text).lower()
    return [_PUNCT_RE.sub("", lowered).split(), _PUNCT_RE.sub(" ", lowered).split()]


def word_ngrams(text: str, n: int = N) -> Grams:
    """All word n-grams of ``text`` (after normalisation, both variants)."""
    grams: Grams = set()
    for tokens in tokenize_variants(text):
        grams.update(tuple(tokens[i: i + n]) for i in range(len(tokens) - n + 1))
    return grams


def shared_ngrams(text: str, observed: Grams, n: int = N) -> list[str]:
    """The n-grams of ``text`` found in ``observed``, as readable strings, sorted."""
    return sorted(" ".join(g) for g in word_ngrams(text, n) & observed)


def instruction_text(template: str, values: dict[str, str]) -> str:
    """An instruction's words as a model saw them: the template with its upstream values
    (Flan pattern pieces, NIV2 definitions, Alpaca instructions) put back in place."""
    return _VALUE_RE.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def observed_index(instructions: Iterable) -> dict[tuple[str, ...], str]:
    """n-gram -> id of the first observed instruction (of ``instructions``) that has it."""
    index: dict[tuple[str, ...], str] = {}
    for ins in instructions:
        if ins.observed:
            for gram in word_ngrams(instruction_text(ins.template, dict(ins.values))):
                index.setdefault(gram, ins.id)
    return index


def overlaps(text: str, index: dict[tuple[str, ...], str]) -> dict[str, list[str]]:
    """Observed instruction id -> the n-grams ``text`` shares with it."""
    out: dict[str, list[str]] = {}
    for gram in sorted(word_ngrams(text) & index.keys()):
        out.setdefault(index[gram], []).append(" ".join(gram))
    return out
