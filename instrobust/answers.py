"""Answer spaces: what an instruction asks the model to answer with, hence what lm-eval scores.

Every instruction has one (``Instruction.answer_space``):

* ``letters`` - it shows lettered options or asks for a letter: scored on the document's letters;
* ``options`` - scored on the option texts (the task's own class names for BBL classification);
* ``labels``  - its own words for the task's classes (yes/no, true/false, ...): scored on those
  words. Our templates map each class (an exact option text of the task's BIG-bench
  ``target_scores``) to a word; a shared observed instruction gives one word per option position.

Where each space comes from (the rule of every collection) is in docs/answer-spaces.md. The gold
index never changes: only the strings scored for each option do.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import yaml

from instrobust.errors import DataError

# An instruction (instrobust.instruction.Instruction) is not imported here: Instruction.answer_space
# reads this module, so it names the type only as a string.

KINDS = ("letters", "options", "labels")


class AnswerSpaceError(DataError):
    """An instruction's answer space is missing, malformed or does not fit the task's classes."""


@dataclass(frozen=True)
class AnswerSpace:
    kind: str
    # labels declared per class (our templates): ((task class, word), ...)
    by_class: tuple[tuple[str, str], ...] = ()
    # labels of a shared observed instruction: the word that answers option i (A, B, ...)
    by_position: tuple[str, ...] = ()
    rule: str = ""  # why this space (shown by `instrobust render --choices`)

    def choices(self, doc: Mapping[str, Any]) -> list[str]:
        """The strings scored for ``doc``'s options, in option order."""
        if self.kind == "letters":
            return list(doc["letters"])
        if self.kind == "options":
            return list(doc["choices"])
        if self.by_class:
            words = dict(self.by_class)
            return [words[c] for c in doc["choices"]]
        return list(self.by_position)

    def describe(self) -> str:
        if self.kind != "labels":
            return self.kind
        pairs = self.by_class or tuple((f"option {chr(65 + i)}", w) for i, w in enumerate(self.by_position))
        return "labels (" + ", ".join(f"{c} -> {w}" for c, w in pairs) + ")"


LETTERS = AnswerSpace("letters")
OPTIONS = AnswerSpace("options")


# ---- our templates: answers.yaml beside them ---------------------------------------------------

def parse_entry(value: Any, where: str) -> AnswerSpace:
    """One sidecar entry: ``letters``, ``options`` or ``{labels: {class: word, ...}}``."""
    if value in ("letters", "options"):
        return AnswerSpace(value, rule=where)
    if isinstance(value, dict) and set(value) == {"labels"} and isinstance(value["labels"], dict) and value["labels"]:
        pairs = tuple((str(k), str(v)) for k, v in value["labels"].items())
        if len({w for _, w in pairs}) != len(pairs):
            raise AnswerSpaceError(f"{where}: two classes share one answer word in {value!r}")
        return AnswerSpace("labels", by_class=pairs, rule=where)
    raise AnswerSpaceError(f"{where}: answer space must be letters, options or {{labels: {{class: word}}}}, got {value!r}")


@functools.lru_cache(maxsize=64)
def _sidecar(path: Path, mtime: float) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise AnswerSpaceError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise AnswerSpaceError(f"{path}: must map template numbers (\"01\") to answer spaces")
    return {str(k): v for k, v in data.items()}


def sidecar_space(template_file: Path, default: AnswerSpace) -> AnswerSpace:
    """The answer space ``answers.yaml`` (beside ``template_file``) declares for it; ``default``
    only when the folder has no answers.yaml at all."""
    sidecar = template_file.parent / "answers.yaml"
    if not sidecar.is_file():
        return AnswerSpace(default.kind, rule=f"default for {template_file.parent.name} (no answers.yaml)")
    entries = _sidecar(sidecar, sidecar.stat().st_mtime)
    key = template_file.stem
    if key not in entries:
        raise AnswerSpaceError(f"{sidecar}: no entry {key!r} for {template_file.name}: every template needs "
                               f"its answer space (letters, options or {{labels: {{class: word}}}})")
    return parse_entry(entries[key], f"{sidecar} entry {key!r}")


# ---- observed instructions: from upstream where it says, else the collection's rule ------------

def _qa_sentinel() -> dict:
    return {"question": "QSENTINEL what is asked", "choices": [f"OPTSENTINEL{i}" for i in range(4)],
            "letters": list("ABCD"), "subject": "SUBJSENTINEL"}


def _sentinel(ins: "Instruction") -> dict:
    from instrobust.rendering import bbl_sentinel_doc

    return bbl_sentinel_doc(ins.task_type) if ins.benchmark == "bbl" else _qa_sentinel()


def shows_letters(prompt: str, doc: Mapping[str, Any]) -> bool:
    """The prompt lists every option next to its letter ("(A) x", "A. x", "A: x", "[A] x", "A - x", "A -> x")."""
    return all(re.search(rf"(?<![A-Za-z]){re.escape(l)}\s?(?:->|[).:\]-])\s*{re.escape(c)}", prompt)
               for l, c in zip(doc["letters"], doc["choices"]))


_LETTER_NAMES = re.compile(r"""["'\u201c\u2018]([A-Ea-e])["'\u201d\u2019,]|\b[A-E] or [A-E]\b|option index""")
_QUOTED = re.compile(r"""["\u201c]([^"\u201d\n]{1,20})["\u201d]""")


def definition_space(definition: str, task_type: str) -> AnswerSpace | None:
    """What an NIV2 definition asks to answer with: letters when it names option letters, the two
    quoted words of a yes/no style answer for binary tasks; None when it names neither."""
    if len(_LETTER_NAMES.findall(definition)) >= 2 or "option index" in definition:
        return AnswerSpace("letters", rule="NIV2 definition names the option letters")
    words = list(dict.fromkeys(w.strip() for w in _QUOTED.findall(definition)))
    if task_type == "bc" and len(words) == 2:
        # the first word named is the positive judgement ("Yes": the answer under judgement,
        # option A, is right); see docs/answer-spaces.md
        return AnswerSpace("labels", by_position=tuple(words), rule="NIV2 definition names the two answers")
    return None


# An Alpaca instruction that asks for one of these pairs answers a binary task in its words; the
# first word is the positive judgement (option A).
_PAIRS = re.compile(r"\b(true|yes|correct|agree|valid) or (false|no|incorrect|disagree|invalid)\b", re.IGNORECASE)


def _p3_space(ins: "Instruction") -> AnswerSpace:
    """promptsource's ``answer_choices``, evaluated on a sentinel document."""
    from dataclasses import replace

    from instrobust.rendering import render

    doc = _sentinel(ins)
    probe = replace(ins, template=ins.template + "\x1e{{ answer_choices | join('\x1f') }}", prompt_separator=None)
    choices = render(probe, doc).rsplit("\x1e", 1)[1].split("\x1f")
    if choices == list(doc["choices"]):
        return AnswerSpace("options", rule="promptsource answer_choices: the option texts")
    if choices and all(re.fullmatch(r"[A-Z]", c) for c in choices) and choices[: len(doc["letters"])] == doc["letters"]:
        return AnswerSpace("letters", rule="promptsource answer_choices: the option letters")
    if ins.task_type == "bc" and len(choices) == 2:
        # adapter multirc: the judged answer is option A and label 1 means it is right, so
        # answer_choices[1] answers option A
        return AnswerSpace("labels", by_position=(choices[1], choices[0]),
                           rule="promptsource answer_choices (label 1: option A is right)")
    raise AnswerSpaceError(f"instruction {ins.id!r} ({ins.provenance.get('source')}, template "
                           f"{ins.provenance.get('template_id')}): its answer_choices {choices!r} cannot be "
                           f"mapped onto the task's options")


def observed_space(ins: "Instruction") -> AnswerSpace:
    """The rule of each observed collection (docs/answer-spaces.md)."""
    values = getattr(ins, "values", None) or {}
    if ins.collection == "p3":
        return _p3_space(ins)
    if ins.collection == "alpaca":
        m = _PAIRS.search(values.get("alpaca_instruction", ""))
        if ins.task_type == "bc" and m:
            return AnswerSpace("labels", by_position=(m[1], m[2]), rule="Alpaca instruction names the two answers")
        return AnswerSpace("letters", rule="Alpaca: the input shows lettered options")
    if ins.collection == "designer":
        return AnswerSpace("letters", rule="designer prefix: the input shows lettered options")
    if "niv2_definition" in values:
        space = definition_space(values["niv2_definition"], ins.task_type)
        if space:
            return space
    # Flan patterns: {options_} lists the option texts; natinst's {input} (ours) lists them lettered
    if "letters" in ins.template:
        return AnswerSpace("letters", rule=f"{ins.collection}: the prompt shows lettered options")
    return AnswerSpace("options", rule=f"{ins.collection}: the prompt lists the option texts")


@functools.lru_cache(maxsize=8192)
def answer_space(ins: "Instruction") -> AnswerSpace:
    """The answer space of ``ins``: its sidecar entry (our templates) or its collection's rule."""
    from instrobust.paths import TEMPLATES_DIR

    if ins.collection == "paper":  # the authors' helper's label_space, read with their template
        return parse_entry(ins.provenance["answer_space"], "paper: their label_space")
    file = ins.provenance.get("file")
    if file and ins.collection == "unobserved":
        default = LETTERS if ins.benchmark == "mmlu" else OPTIONS
        return sidecar_space(TEMPLATES_DIR.parent / file, default)
    return observed_space(ins)


# ---- fitting a task ------------------------------------------------------------------------------

def check_fits(ins: "Instruction", space: AnswerSpace, task: str, documents: Sequence[Mapping[str, Any]]) -> None:
    """Refuse an instruction whose answer space cannot be mapped onto ``task``'s classes."""
    if space.kind != "labels":
        return
    where = ins.provenance.get("file") or space.rule
    if space.by_class:
        words = dict(space.by_class)
        for doc in documents:
            missing = [c for c in doc["choices"] if c not in words]
            if missing:
                raise AnswerSpaceError(
                    f"instruction {ins.id!r} ({where}): its labels {sorted(words)} do not cover the "
                    f"class(es) {missing} of task {task!r}: map every option text of the task to a word")
        return
    sizes = {len(doc["choices"]) for doc in documents}
    if sizes != {len(space.by_position)}:
        raise AnswerSpaceError(
            f"instruction {ins.id!r} ({where}): its {len(space.by_position)} answer words "
            f"{list(space.by_position)} cannot answer task {task!r}, whose items have {sorted(sizes)} options")
