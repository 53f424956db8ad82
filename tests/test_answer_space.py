"""Answer spaces: every (instruction, task) pair is scored on what its prompt asks for."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from instrobust import harness
from instrobust.answers import AnswerSpace, AnswerSpaceError, check_fits, shows_letters, sidecar_space
from instrobust.bank import Instruction, render
from instrobust.bbl import TASKS
from instrobust.bbl.data import bbl_pool

# A prompt that names a pair of answer words asks for those words.
_ASKED_PAIR = re.compile(r"\b(yes|true)\b[\"'\u201d]?\s*(?:or|and|/)\s*[\"'\u201c]?\b(no|false)\b", re.IGNORECASE)


# the collections this project evaluates BBL tasks with (observed, ours, designer, Figure-3 variants)
COLLECTIONS = ("flan2022", "alpaca", "p3", "unobserved", "designer", "negated", "nonsensical")


def _bbl_pairs():
    from instrobust.bbl.instructions import load_bbl_bank

    bank = load_bbl_bank()
    for ins in bank:
        if ins.collection not in COLLECTIONS:
            continue
        own = ins.provenance.get("bbl_task")
        for task, info in TASKS.items():
            if ins.task_type != info.task_type or (own and own != task) or (not own and not info.in_bbl14):
                continue
            yield ins, task


def _agreement_problems(ins: Instruction, space: AnswerSpace, doc: dict) -> list[str]:
    prompt = render(ins, doc)
    choices = space.choices(doc)
    low = prompt.lower()
    problems = []
    if space.kind == "letters" and not (shows_letters(prompt, doc) or "letter" in low):
        problems.append("scored on letters but the prompt neither shows lettered options nor asks for a letter")
    if space.kind == "options" and not all(c.lower() in low for c in doc["choices"]):
        problems.append("scored on option texts the prompt does not show")
    upstream_words = "promptsource" in space.rule or "definition" in space.rule
    if space.kind == "labels" and not upstream_words and not all(w.lower() in low for w in choices):
        problems.append(f"scored on {choices} but the prompt does not name them all")
    asked = _ASKED_PAIR.search(prompt)
    if asked and not shows_letters(prompt, doc) and {c.lower() for c in choices} != {asked[1].lower(), asked[2].lower()}:
        problems.append(f"asks for {asked[0]!r} but is scored on {choices}")
    return problems


def test_every_bbl_instruction_is_scored_on_what_its_prompt_asks_for(data_dir):
    problems, pairs = [], 0
    for ins, task in _bbl_pairs():
        pool = bbl_pool(task)
        space = ins.answer_space
        check_fits(ins, space, task, list(pool.test) + list(pool.heldout))  # refuses what cannot map
        for doc in (pool.test[0], pool.heldout[0]):
            pairs += 1
            problems += [f"{ins.id} on {task}: {p}" for p in _agreement_problems(ins, space, doc)]
    assert pairs > 1500, pairs
    assert not problems, "\n".join(problems[:40])


def test_every_mmlu_instruction_is_scored_on_letters_it_shows(data_dir):
    from instrobust.mmlu.data import mmlu_split

    bank = harness.bank_for("mmlu", True)
    docs = [mmlu_split("test")[0], mmlu_split("dev")[0]]
    assert len(bank) >= 70
    for ins in (i for i in bank if i.collection in COLLECTIONS):
        assert ins.answer_space.kind == "letters", ins.id
        for doc in docs:
            assert not _agreement_problems(ins, ins.answer_space, doc), ins.id


def test_observed_rules_take_the_upstream_answer_words(data_dir):
    """P3's multirc answer_choices "No ||| Yes" (label 1 = the judged option A is right), the
    NIV2 task056 definition's "Yes"/"No", Flan's OPTIONS list, the NIV2 QA definitions' letters."""
    expect = {
        "bbl_bc_obs_p3_01": ("labels", ["Yes", "No"]),
        "bbl_bc_obs_flan2022_09": ("labels", ["Yes", "No"]),
        "bbl_bc_obs_flan2022_01": ("options", ["correct", "incorrect"]),
        "bbl_qa_obs_flan2022_01": ("letters", ["A", "B"]),
    }
    doc = {**bbl_pool("winowhy").test[0]}
    for iid, (kind, choices) in expect.items():
        space = harness.instruction(iid).answer_space
        if iid.startswith("bbl_qa"):
            assert space.kind == kind
            continue
        assert (space.kind, space.choices(doc)) == (kind, choices), iid


def test_sidecar_entries_are_required_and_checked(tmp_path):
    folder = tmp_path / "winowhy"
    folder.mkdir()
    (folder / "01.jinja").write_text("{{ input }}\n")
    (folder / "02.jinja").write_text("{{ input }}\n")
    # no answers.yaml at all: the benchmark's default
    assert sidecar_space(folder / "01.jinja", AnswerSpace("options")).kind == "options"
    (folder / "answers.yaml").write_text('"01": {labels: {correct: "yes", incorrect: "no"}}\n')
    space = sidecar_space(folder / "01.jinja", AnswerSpace("options"))
    assert space.choices({"choices": ["incorrect", "correct"]}) == ["no", "yes"]
    with pytest.raises(AnswerSpaceError, match=r"answers\.yaml: no entry '02' for 02\.jinja"):
        sidecar_space(folder / "02.jinja", AnswerSpace("options"))
    (folder / "answers.yaml").write_text('"01": letter\n"02": letters\n')
    with pytest.raises(AnswerSpaceError, match=r"answers\.yaml entry '01': answer space must be letters, options"):
        sidecar_space(folder / "01.jinja", AnswerSpace("options"))


def test_labels_that_do_not_cover_the_task_classes_are_refused(data_dir):
    ins = Instruction(id="bbl_winowhy_unobs_99", benchmark="bbl", collection="unobserved", task_type="bc",
                      template="{{ input }}", provenance={"file": "templates/unobserved/bbl/winowhy/99.jinja"})
    docs = list(bbl_pool("winowhy").test)
    with pytest.raises(AnswerSpaceError, match=r"'bbl_winowhy_unobs_99' \(templates/unobserved/bbl/winowhy/99\.jinja\)"
                       r".*do not cover the class\(es\) \['incorrect'\] of task 'winowhy'"):
        check_fits(ins, AnswerSpace("labels", by_class=(("correct", "yes"),)), "winowhy", docs)
    with pytest.raises(AnswerSpaceError, match=r"its 2 answer words \['Yes', 'No'\] cannot answer task 'bbq_lite_json'"):
        check_fits(ins, AnswerSpace("labels", by_position=("Yes", "No")), "bbq_lite_json", list(bbl_pool("bbq_lite_json").test[:5]))


def test_render_prints_the_scored_choices(data_dir):
    out = subprocess.run([sys.executable, "-m", "instrobust.cli", "render", "bbl_bc_obs_p3_01", "--task", "strategyqa",
                          "--choices"], capture_output=True, text=True, check=True).stdout
    assert out.rstrip().endswith("Yes | No")
    assert "Yes or no?" in out and "# scored choices (labels (option A -> Yes, option B -> No)" in out
