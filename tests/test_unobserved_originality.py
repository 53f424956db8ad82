"""Originality check for the *unobserved* instruction templates.

The unobserved instructions are our own text. None of them may share a word
12-gram with any instruction a model could have seen during instruction tuning:
the Flan 2022 patterns (PATTERNS and FEWSHOT_PATTERNS, input and output sides),
the ``jinja`` field of every promptsource (P3) template, and every
Super-NaturalInstructions task Definition.

Normalisation (instrobust.originality, shared with ``instrobust tasks``), applied identically to both sides:
  * Jinja comments, statements and expressions (``{# #}``, ``{% %}``, ``{{ }}``)
    and Python ``str.format`` placeholders (``{premise}``, as in Flan) are
    replaced by a space, so text on either side of a placeholder still joins up
    into n-grams (the strict reading: a copied sentence cannot hide behind a
    variable);
  * the text is lower-cased, punctuation is stripped and the result is split on
    whitespace.  Punctuation is stripped two ways -- deleted ("multiple-choice"
    -> "multiplechoice") and replaced by a space ("multiple choice") -- and the
    n-grams of both are used, so a hyphen or apostrophe cannot hide an overlap.

Data location: ``<repo>/../shared/data/observed_sources`` or, when the
``INSTROBUST_DATA_DIR`` environment variable is set,
``$INSTROBUST_DATA_DIR/observed_sources``.  The test is skipped (with the path
it looked in) when that folder is absent.
"""

from __future__ import annotations

import json
import os
import re
from functools import lru_cache
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

from instrobust.originality import N, shared_ngrams, tokenize_variants, word_ngrams  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
UNOBSERVED_DIR = REPO_ROOT / "templates" / "unobserved"


# --------------------------------------------------------------------------- sources


def observed_dir() -> Path:
    env = os.environ.get("INSTROBUST_DATA_DIR")
    if env:
        return Path(env) / "observed_sources"
    return Path(__file__).resolve().parents[2] / "shared" / "data" / "observed_sources"


class _TaggedSafeLoader(yaml.SafeLoader):
    """SafeLoader that turns any ``!Tag`` node (promptsource's ``!Template``,
    ``!TemplateMetadata``) into a plain dict / list / scalar."""


def _construct_tagged(loader, tag_suffix, node):
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    return loader.construct_scalar(node)


_TaggedSafeLoader.add_multi_constructor("!", _construct_tagged)


def _all_strings(obj):
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for value in obj.values():
            yield from _all_strings(value)
    elif isinstance(obj, (list, tuple)):
        for value in obj:
            yield from _all_strings(value)


def flan_texts(root: Path) -> list[str]:
    data = json.loads((root / "flan_v2_templates_PATTERNS.json").read_text(encoding="utf-8"))
    texts: list[str] = []
    for key in ("PATTERNS", "FEWSHOT_PATTERNS"):
        # Every string in the section: (input, output) pairs and any other literal.
        texts.extend(_all_strings(data.get(key, {})))
    return texts


def promptsource_texts(root: Path) -> list[str]:
    texts: list[str] = []
    for path in sorted((root / "promptsource").rglob("templates.yaml")):
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_TaggedSafeLoader) or {}
        for template in (doc.get("templates") or {}).values():
            if isinstance(template, dict) and isinstance(template.get("jinja"), str):
                texts.append(template["jinja"])
    return texts


def niv2_texts(root: Path) -> list[str]:
    data = json.loads(
        (root / "natural_instructions" / "niv2_definitions.json").read_text(encoding="utf-8")
    )
    tasks = data.values() if isinstance(data, dict) else data
    texts: list[str] = []
    for task in tasks:
        definition = task.get("Definition") if isinstance(task, dict) else None
        if isinstance(definition, str):
            texts.append(definition)
        elif isinstance(definition, list):
            texts.extend(d for d in definition if isinstance(d, str))
    return texts


@lru_cache(maxsize=None)
def _observed(root_str: str) -> dict[str, tuple[list[str], frozenset]]:
    root = Path(root_str)
    out = {}
    for name, loader in (
        ("flan", flan_texts),
        ("promptsource", promptsource_texts),
        ("niv2", niv2_texts),
    ):
        texts = loader(root)
        grams: set[tuple[str, ...]] = set()
        for text in texts:
            grams |= word_ngrams(text)
        out[name] = (texts, frozenset(grams))
    return out


@pytest.fixture(scope="module")
def observed_sources() -> dict[str, tuple[list[str], frozenset]]:
    root = observed_dir()
    if not root.is_dir():
        pytest.skip(
            f"observed instruction sources not found at {root} "
            "(set INSTROBUST_DATA_DIR to a folder containing observed_sources/)"
        )
    return _observed(str(root))


@pytest.fixture(scope="module")
def observed_ngrams(observed_sources) -> set[tuple[str, ...]]:
    merged: set[tuple[str, ...]] = set()
    for _texts, grams in observed_sources.values():
        merged |= grams
    return merged


# --------------------------------------------------------------------------- tests


def _unobserved_files() -> list[Path]:
    if not UNOBSERVED_DIR.is_dir():
        return []
    return sorted(
        p
        for p in UNOBSERVED_DIR.rglob("*")
        if p.is_file()
        and not p.name.startswith(".")
        and "__pycache__" not in p.parts
    )


UNOBSERVED_FILES = _unobserved_files()


def test_unobserved_templates_exist():
    assert UNOBSERVED_FILES, f"no unobserved templates found under {UNOBSERVED_DIR}"


@pytest.mark.parametrize(
    "path",
    UNOBSERVED_FILES,
    ids=[str(p.relative_to(UNOBSERVED_DIR)) for p in UNOBSERVED_FILES],
)
def test_unobserved_template_shares_no_12gram_with_observed(path, observed_ngrams):
    overlap = shared_ngrams(path.read_text(encoding="utf-8"), observed_ngrams)
    if overlap:
        rel = path.relative_to(REPO_ROOT)
        lines = "\n".join(f"    {g!r}" for g in overlap)
        message = (
            f"{rel} shares {len(overlap)} word {N}-gram(s) with observed "
            f"(Flan / promptsource / NIV2) instructions:\n{lines}"
        )
        print(message)
        pytest.fail(message)


def test_every_observed_source_contributes_ngrams(observed_sources):
    # Guards against a silently empty source making the originality check vacuous.
    for name, (texts, grams) in observed_sources.items():
        assert texts, f"no instruction texts loaded from the {name} source"
        assert grams, f"no {N}-grams extracted from the {name} source"


def test_check_detects_copied_flan_pattern(observed_sources, observed_ngrams):
    """The check can fail: a template built around a real Flan pattern is caught."""
    flan_texts_, flan_grams = observed_sources["flan"]
    # First Flan pattern with at least N words of literal text.
    pattern = next(
        t for t in flan_texts_ if any(len(tok) >= N for tok in tokenize_variants(t))
    )
    # Turn the Flan {placeholders} into Jinja expressions, add our own framing.
    as_jinja = re.sub(r"\{(\w+)\}", r"{{ \1 }}", pattern)
    fake_template = (
        "{# unobserved fake: copied from Flan -#}\n"
        "Please help with this one.\n"
        + as_jinja
        + "\n{% for letter, choice in zip(letters, choices) %}{{ letter }}. {{ choice }}\n"
        "{% endfor %}Answer:"
    )
    overlap = shared_ngrams(fake_template, observed_ngrams)
    assert overlap, f"copied Flan pattern {pattern!r} was not detected"
    assert set(overlap) & {" ".join(g) for g in flan_grams}

    # A light edit (case, punctuation, a hyphen) does not hide the copy either.
    edited_pattern = as_jinja.upper().replace("?", "!").replace(" ", " - ", 1)
    edited = fake_template.replace(as_jinja, edited_pattern)
    assert edited != fake_template
    assert shared_ngrams(edited, observed_ngrams)

    # And a sentence with no copied text is not flagged.
    assert not shared_ngrams(
        "Zebras quietly juggle seventeen luminous teacups beside a frozen "
        "volcano while reciting forgotten sonnets about Tuesday.",
        observed_ngrams,
    )
