"""BIG-bench Lite documents from the real task.json files (shared/data/bigbench)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from instrobust.bbl import BBL14, TASKS, BBLTask
from instrobust.bbl.data import (
    HELDOUT_SIZE, bbl_pool, example_to_doc, format_input, raw_task, read_task_dir, split_indices,
)
from instrobust.errors import DataError


@pytest.fixture(scope="module")
def pools(data_dir):
    return {t: bbl_pool(t) for t in TASKS}


def _all_docs(pool):
    return list(pool.test) + list(pool.heldout)


def _find(pool, prefix: str, suffix: str = "") -> dict:
    hits = [d for d in _all_docs(pool) if d["input"].startswith(prefix) and d["input"].endswith(suffix)]
    assert len(hits) == 1, f"{len(hits)} documents start with {prefix!r} and end with {suffix!r}"
    return hits[0]


def test_the_paper_has_14_bbl_tasks_by_type():
    by_type = {t: sorted(n for n in BBL14 if TASKS[n].task_type == t) for t in ("qa", "bc", "mc")}
    assert [len(by_type[t]) for t in ("qa", "bc", "mc")] == [8, 4, 2]
    assert by_type["mc"] == ["language_identification", "vitaminc_fact_verification"]


def test_known_examples_have_file_order_options_and_gold(pools):
    code = _find(pools["code_line_description"], "Python code:\nfor i in range(23):")
    assert code["input"] == "Python code:\nfor i in range(23):\n    print(i)"
    assert code["choices"] == ["prints values from 0 to 22", "computes first 10 prime numbers",
                               "prints values from 1 to 10", "prints 'hello world' to the terminal"]
    assert code["answer"] == 0 and code["letters"] == ["A", "B", "C", "D"] and code["task"] == "code_line_description"

    hindu = _find(pools["hindu_knowledge"], "Which of the following Hindu deities do not belong")
    assert hindu["choices"] == ["Vishnu", "Shiva", "Indra", "Brahma"] and hindu["answer"] == 2

    vitc = pools["vitaminc_fact_verification"].test[0]  # example 0 of the file (not held out)
    assert vitc["input"].startswith("Passage: Westlife: According to the British Phonographic Industry")
    assert vitc["input"].endswith("\nClaim: Westlife made under 23.5 million sales in the UK .")
    assert vitc["choices"] == ["True", "False", "Neither"] and vitc["answer"] == 2

    # strange_stories/boolean lists its options in either order; the gold follows the option
    sarah = [d for d in _all_docs(pools["strange_stories"]) if d["input"].endswith("Q:Is it false, what Sarah says?")]
    assert sarah and all(d["choices"] == ["no", "yes"] and d["answer"] == 1 for d in sarah)


def test_subtasks_selected_and_pooled(pools, data_dir):
    five = pools["logical_deduction"]
    assert len(_all_docs(five)) == 500 and {len(d["choices"]) for d in _all_docs(five)} == {5}
    bbq_dir = data_dir / "bigbench" / "bbq_lite_json"
    expected = sum(len(json.loads((p / "task.json").read_text())["examples"])
                   for p in bbq_dir.iterdir() if (p / "task.json").is_file())
    assert len(_all_docs(pools["bbq_lite_json"])) == expected == 16076
    # pooled in subtask-name order: the first subtask is age_ambig
    assert raw_task("bbq_lite_json").examples[0][0] == "age_ambig#0"
    assert len(_all_docs(pools["strange_stories"])) == 53  # the boolean subtask only


def test_multi_gold_examples_are_left_out(pools):
    assert len(_all_docs(pools["hindu_knowledge"])) == 175 - 1
    assert len(_all_docs(pools["novel_concepts"])) == 32 - 2
    assert not [d for d in _all_docs(pools["hindu_knowledge"]) if d["input"].startswith("In Hinduism, the Vaishya class")]


def test_heldout_split_is_seeded_disjoint_and_stable(pools):
    assert split_indices("known_unknowns", 46)[1] == [28, 39, 30, 29, 20]
    for name, pool in pools.items():
        n = len(pool.test) + len(pool.heldout)
        test, held = split_indices(name, n)
        assert len(pool.heldout) == len(held) == HELDOUT_SIZE and not set(test) & set(held)
        assert sorted(test + held) == list(range(n)) and split_indices(name, n) == (test, held)
    ku = pools["known_unknowns"]
    raw = [e for _, e in raw_task("known_unknowns").examples]
    assert ku.heldout[0]["input"] == raw[28]["input"]
    assert [d["input"] for d in ku.test[:2]] == [raw[0]["input"], raw[1]["input"]]


def test_option_counts_in_registry_match_the_data(pools):
    for name, pool in pools.items():
        counts = [len(d["choices"]) for d in _all_docs(pool)]
        assert (min(counts), max(counts)) == TASKS[name].options, name
        assert all(d["letters"] == [chr(65 + i) for i in range(len(d["choices"]))] for d in pool.test[:50])


def test_epistemic_inputs_fit_the_premise_hypothesis_adapter(pools):
    docs = _all_docs(pools["epistemic_reasoning"])
    assert all(d["input"].startswith("Premise: ") and d["input"].count(" Hypothesis: ") == 1 for d in docs)


def test_format_input_keeps_short_labels_only():
    assert format_input("hello\n", {"example_input_prefix": "\nSentence: "}) == "Sentence: hello"
    assert format_input("x = 1\n", {"example_input_prefix": "\nPython code:\n"}) == "Python code:\nx = 1"
    long_prefix = "Let's do some problems. In these problems, your goal is to find the theme:\n"
    assert format_input("What do these share?", {"example_input_prefix": long_prefix}) == "What do these share?"
    assert format_input("Q?", {}) == "Q?"
    assert format_input("  indented", {"example_input_prefix": "\n"}) == "  indented"


# ---- bad input ---------------------------------------------------------------------------

def _write(root: Path, rel: str, data) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(data if isinstance(data, str) else json.dumps(data))


def test_example_without_target_scores_names_task_and_index(tmp_path):
    _write(tmp_path, "toy/task.json", {"examples": [
        {"input": "ok?", "target_scores": {"yes": 1, "no": 0}},
        {"input": "no scores", "target": "yes"},
    ]})
    raw = read_task_dir(tmp_path, BBLTask("toy", "bc", (2, 2)))
    example_to_doc("toy", *raw.examples[0], raw.meta)
    with pytest.raises(DataError, match=r"'toy', example 1: no 'target_scores'"):
        example_to_doc("toy", *raw.examples[1], raw.meta)


def test_example_with_several_or_no_gold_options_is_an_error():
    with pytest.raises(DataError, match=r"'toy', example sub#3: 2 options \('a', 'b'\) score 1"):
        example_to_doc("toy", "sub#3", {"input": "x", "target_scores": {"a": 1, "b": 1, "c": 0}}, {})
    with pytest.raises(DataError, match="example 0: no option score 1"):
        example_to_doc("toy", "0", {"input": "x", "target_scores": {"a": 0.5, "b": 0}}, {})


def test_missing_subtask_names_task_and_lists_subtasks(tmp_path):
    _write(tmp_path, "toy/task.json", {"description": "d"})
    _write(tmp_path, "toy/alpha/task.json", {"examples": [{"input": "x", "target_scores": {"a": 1, "b": 0}}]})
    with pytest.raises(DataError, match=r"'toy': subtask 'beta' not found .*subtasks here: alpha"):
        read_task_dir(tmp_path, BBLTask("toy", "bc", (2, 2), subtask="beta"))
    with pytest.raises(DataError, match=r"only lists subtasks \(alpha\)"):
        read_task_dir(tmp_path, BBLTask("toy", "bc", (2, 2)))


def test_broken_json_and_missing_task_name_the_file(tmp_path):
    _write(tmp_path, "toy/task.json", "{not json")
    with pytest.raises(DataError, match=r"toy/task.json: not valid JSON"):
        read_task_dir(tmp_path, BBLTask("toy", "bc", (2, 2)))
    with pytest.raises(DataError, match=r"'other': .*other/task.json not found"):
        read_task_dir(tmp_path, BBLTask("other", "bc", (2, 2)))


def test_unknown_task_and_missing_data_dir_are_clear(tmp_path, monkeypatch):
    with pytest.raises(DataError, match="unknown BIG-bench Lite task 'winowhyy'.*Did you mean winowhy"):
        raw_task("winowhyy")
    monkeypatch.setenv("INSTROBUST_DATA_DIR", str(tmp_path))
    with pytest.raises(DataError, match="bigbench: missing .INSTROBUST_DATA_DIR is set"):
        raw_task("winowhy")


# ---- the hub copy ----------------------------------------------------------------------------

def _hub_rows(root: Path, task) -> list[dict]:
    """Rows as the hub's BIG-bench copy holds them: BIG-bench's zero-shot formatting of each
    (deduplicated) example, stripped, option texts stripped; subtasks in name order."""
    import numpy as np

    from instrobust.bbl.data import _examples_of
    from instrobust.bbl.taskjson import read_json as _read_json, subtask_dirs as _subtask_dirs, task_meta as _meta

    task_dir = root / task.name
    subs = [d / "task.json" for d in _subtask_dirs(task_dir)] or [task_dir / "task.json"]
    rows = []
    for path in subs:
        data = _read_json(path)
        meta = _meta(data)
        ip, op = meta.get("example_input_prefix", "\nQ: "), meta.get("example_output_prefix", "\nA: ")
        cp = meta.get("choice_prefix", "\n  choice: ")
        for _, ex in _examples_of(data, path, task.name, ""):
            text = ex["input"]
            if meta.get("append_choices_to_input", True):
                perm = np.random.RandomState(seed=42).permutation(sorted(ex["target_scores"]))
                text = text + cp + cp.join(perm)
            inputs = (str(meta.get("task_prefix", "")) + ip + text + op).strip()
            rows.append({"inputs": inputs, "multiple_choice_targets": [k.strip() for k in ex["target_scores"]],
                         "multiple_choice_scores": list(ex["target_scores"].values())})
    return rows


def test_hub_rows_give_the_same_documents_as_task_json(pools, data_dir):
    from instrobust.bbl.data import RawTask, documents
    from instrobust.bbl.hub import compute_formats, pinned_formats, rows_to_examples

    assert compute_formats(data_dir / "bigbench") == pinned_formats(), "run scripts/pin_observed.py bbl-hub"
    for name, task in TASKS.items():
        if name in ("vitaminc_fact_verification", "bbq_lite_json", "language_identification"):
            continue  # large; same code path as the others
        examples, meta, designer = rows_to_examples(task, _hub_rows(data_dir / "bigbench", task), pinned_formats()[name])
        hub = documents(name, RawTask(examples, meta, designer, "hub"))
        assert hub == documents(name, raw_task(name)), name
        prefix = raw_task(name).meta.get("task_prefix")
        assert designer == (prefix.strip() if prefix else None), name


def test_hub_row_with_a_foreign_prefix_is_an_error(data_dir):
    from instrobust.bbl.hub import pinned_formats, rows_to_examples

    task = TASKS["winowhy"]
    rows = _hub_rows(data_dir / "bigbench", task)[:2]
    rows[1] = {**rows[1], "inputs": "Answer briefly. " + rows[1]["inputs"]}
    with pytest.raises(DataError, match="winowhy row 1: the hub input does not start with the pinned"):
        rows_to_examples(task, rows, pinned_formats()["winowhy"])


def test_duplicates_are_dropped_like_bigbench(pools):
    assert len(_all_docs(pools["winowhy"])) == 2865 - 3
    assert len(_all_docs(pools["strategyqa"])) == 2290 - 1
