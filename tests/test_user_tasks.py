"""A user's instruction folder on any benchmark (issue 19): `instrobust tasks` -> real `lm_eval` -> report.

The benchmark is an lm-eval `multiple_choice` task over local JSON files written for this test
(tests/fixtures/user/quiz), wrapped with a field mapping; the instructions are three templates in
tests/fixtures/user/prompts. The model is the tiny random Llama of the `tiny_llama` fixture, run with --limit.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from harness_run import evaluate_to
from instrobust.cli import main as cli

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "user"
QUIZ = "school_quiz"
GROUP = f"{QUIZ}_user"
QUIZ_YAML = """task: school_quiz
dataset_path: json
dataset_kwargs:
  data_files:
    test: {quiz}/test.jsonl
    train: {quiz}/train.jsonl
output_type: multiple_choice
test_split: test
training_split: train
doc_to_text: "{{{{query_text}}}}"
doc_to_choice: "{{{{options}}}}"
doc_to_target: "{{{{['A', 'B', 'C', 'D'].index(gold)}}}}"
metadata:
  version: 1.0
"""


@pytest.fixture(scope="module")
def quiz_def(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("quiz_def")
    (folder / "quiz.yaml").write_text(QUIZ_YAML.format(quiz=FIXTURES / "quiz"))
    return folder


def _tasks(quiz_def: Path, out: Path, prompts: Path = FIXTURES / "prompts", *extra: str) -> int:
    return cli(["tasks", "--instructions", str(prompts), "--benchmark", f"lm-eval:{QUIZ}", "--out", str(out),
                "--lm-eval-include", str(quiz_def), "--field", "question=query_text", *extra])


@pytest.fixture(scope="module")
def task_dir(quiz_def, data_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("user_tasks") / "tasks"
    assert _tasks(quiz_def, out) == 0
    return out


def _run(model: Path, task_dir: Path, out: Path, limit: int | None, metadata: dict | None = None) -> Path:
    from lm_eval.tasks import TaskManager

    tm = TaskManager(include_path=str(task_dir), include_defaults=False, metadata=metadata)
    return evaluate_to(out, model="hf", model_args={"pretrained": str(model)}, tasks=[GROUP], limit=limit,
                       device="cpu", batch_size=16, task_manager=tm)


@pytest.fixture(scope="module")
def run(tiny_llama, task_dir, tmp_path_factory) -> Path:
    return _run(tiny_llama, task_dir, tmp_path_factory.mktemp("user_run") / "run", limit=4)


def _results(run: Path) -> dict:
    return json.loads(next(run.rglob("results_*.json")).read_text())


def _samples(run: Path, task: str) -> list[dict]:
    path = next(run.rglob(f"samples_{task}_*.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_one_task_per_template_and_their_group(task_dir):
    names = sorted(p.stem for p in task_dir.glob("*.yaml"))
    assert names == [GROUP, f"{GROUP}_01", f"{GROUP}_02", f"{GROUP}_03"]
    meta = yaml.safe_load((task_dir / f"{GROUP}_02.yaml").read_text().replace("!function ", ""))["metadata"]
    assert meta["collection"] == "user" and meta["observed"] is False and meta["benchmark"] == QUIZ
    assert meta["sparse_group"] == GROUP and meta["sparse_members"] == [f"{GROUP}_0{i}" for i in (1, 2, 3)]
    assert sorted(p.name for p in (task_dir / "templates").iterdir()) == ["01.jinja", "02.jinja", "03.jinja", "answers.yaml"]


def test_lm_eval_scores_the_users_prompts_over_their_answer_spaces(run):
    docs = [json.loads(line) for line in (FIXTURES / "quiz" / "test.jsonl").read_text().splitlines()]
    first = _samples(run, f"{GROUP}_01")
    assert len(first) == 4
    prompt = first[0]["arguments"]["gen_args_0"]["arg_0"]
    assert prompt == ("Read the quiz question and reply with the letter of the best answer.\n\n"
                      "Which planet is closest to the sun?\nA) Venus\nB) Mercury\nC) Mars\nD) Earth\nLetter:")
    assert [a["arg_1"] for a in first[0]["arguments"].values()] == [" A", " B", " C", " D"]
    # the wrapped task's own doc_to_target decides the gold index
    assert [int(s["target"]) for s in first] == [ord(d["gold"]) - ord("A") for d in docs[:4]]
    options = _samples(run, f"{GROUP}_02")[0]
    assert [a["arg_1"] for a in options["arguments"].values()] == [" Venus", " Mercury", " Mars", " Earth"]
    res = _results(run)["results"]
    accs = [res[f"{GROUP}_0{i}"]["acc,none"] for i in (1, 2, 3)]
    for i, acc in enumerate(accs, 1):
        assert acc == pytest.approx(sum(s["acc"] for s in _samples(run, f"{GROUP}_0{i}")) / 4)
    assert res[GROUP]["acc,none"] == pytest.approx(sum(accs) / 3)


def test_report_reads_the_user_tasks(run, tmp_path):
    from instrobust.report import main as report

    assert report([str(run), "--out", str(tmp_path), "--no-figures", "--bootstrap", "0"]) == 0
    text = (tmp_path / "report.md").read_text()
    accs = [_results(run)["results"][f"{GROUP}_0{i}"]["acc,none"] for i in (1, 2, 3)]
    # the per-collection table: | model | category | collection | kind | mean ± std (n) | min | max |
    row = next(line for line in text.splitlines() if f"| {QUIZ} | user | not trained on |" in line)
    assert f"{100 * sum(accs) / 3:.1f}" in row and "(n=3)" in row


def test_sparse_budget_splits_the_items_and_the_estimate_runs(tiny_llama, task_dir, tmp_path):
    from instrobust.sparse.estimate import main as estimate

    run = _run(tiny_llama, task_dir, tmp_path / "run", limit=None, metadata={"sparse_budget": 2})
    items = [d["doc"]["item"] for i in (1, 2, 3) for d in _samples(run, f"{GROUP}_0{i}")]
    # budget 2 over 3 instructions: every one of the 8 documents is scored by exactly two of them
    assert len(items) == 16 and sorted(set(items)) == list(range(8)) and all(items.count(i) == 2 for i in range(8))
    assert estimate([str(run), "--out", str(tmp_path / "est"), "--draws", "50", "--no-figures"]) == 0
    assert "estimated" in json.loads((tmp_path / "est" / "report.json").read_text())


# ---- bad input: one line naming what is wrong, exit 2 ------------------------------------------

def _broken(tmp_path: Path, name: str, text: str, answers: str | None = None) -> Path:
    folder = tmp_path / "prompts"
    shutil.copytree(FIXTURES / "prompts", folder)
    (folder / name).write_text(text)
    if answers is not None:
        (folder / "answers.yaml").write_text(answers)
    return folder


def _one_error_line(capsys) -> str:
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("instrobust")]
    assert len(err) == 1 and err[0].startswith("instrobust: error:"), err
    return err[0]


def test_a_mapping_that_does_not_fit_fails_on_the_first_document(quiz_def, tmp_path, capsys):
    assert cli(["tasks", "--instructions", str(FIXTURES / "prompts"), "--benchmark", f"lm-eval:{QUIZ}",
                "--out", str(tmp_path / "o"), "--lm-eval-include", str(quiz_def), "--field", "question=question_stem"]) == 2
    line = _one_error_line(capsys)
    assert "test document 0" in line and "--field question=question_stem" in line and "query_text" in line
    assert _tasks(quiz_def, tmp_path / "o", FIXTURES / "prompts", "--field", "choices=gold") == 2
    assert "field choices gives 'B'" in _one_error_line(capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("name, text, answers, wanted", [
    ("04.jinja", "About {{ subject }}: {{ question }} {{ choices | join(', ') }}", '"04": options\n',
     ["04.jinja", "'subject'"]),
    ("04.jinja", "Pick the right one.\n{{ question }}\n{{ choices | join(', ') }}\nAnswer:", None,
     ["answers.yaml", "no entry '04'"]),
    ("04.jinja", "Pick the right one and answer with its letter.\n{{ question }}\n{{ choices | join(', ') }}\nAnswer:",
     '"04": letters\n', ["04.jinja", "letters"]),
    ("04.jinja", "Pick the right one.\n{{ question }}\n{{ choices[0] }}\nAnswer:", '"04": options\n',
     ["OPTSENTINEL1"]),
    ("04.jinja", "Pick one.\n{{ question }}\n{{ choices | join(', ') }}\nAnswer:", '"04": {labels: {"ice": "zorble"}}\n',
     ["04.jinja", "'zorble'", "never names"]),
    ("04.jinja", "Pick one, or say zorble.\n{{ question }}\n{{ choices | join(', ') }}\nAnswer:",
     '"04": {labels: {"ice": "zorble"}}\n', ["04.jinja", "do not cover the class(es)", "Venus"]),
    ("04.jinja", "{{ question.__class__ }} {{ choices | join(', ') }}", '"04": options\n', ["04.jinja", "refused"]),
])
def test_a_bad_template_is_refused_naming_its_file(quiz_def, tmp_path, capsys, name, text, answers, wanted):
    answers_text = None if answers is None else (FIXTURES / "prompts" / "answers.yaml").read_text() + answers
    folder = _broken(tmp_path, name, text, answers_text)
    assert _tasks(quiz_def, tmp_path / "o", folder) == 2
    line = _one_error_line(capsys)
    assert all(w in line for w in wanted), line


def test_rewriting_a_task_folder_drops_removed_templates(quiz_def, tmp_path, capsys):
    folder = tmp_path / "prompts"
    shutil.copytree(FIXTURES / "prompts", folder)
    assert _tasks(quiz_def, tmp_path / "o", folder) == 0
    (folder / "03.jinja").unlink()
    (folder / "answers.yaml").write_text('"01": letters\n"02": options\n')
    assert _tasks(quiz_def, tmp_path / "o", folder) == 0
    assert sorted(p.stem for p in (tmp_path / "o").glob("*.yaml")) == [GROUP, f"{GROUP}_01", f"{GROUP}_02"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    assert _tasks(quiz_def, tmp_path / "other", folder) == 2
    assert "not written by `instrobust tasks`" in _one_error_line(capsys)


def test_observed_collection_names_are_refused(quiz_def, tmp_path, capsys):
    assert _tasks(quiz_def, tmp_path / "o", FIXTURES / "prompts", "--collection", "observed") == 2
    assert "--collection 'observed'" in _one_error_line(capsys)


def test_a_copied_observed_instruction_is_a_warning_naming_both(real_data, tmp_path, capsys):
    from instrobust.bank import InstructionBank
    from instrobust.originality import instruction_text, tokenize_variants

    bank = InstructionBank.load("mmlu", observed=True)
    copied = next((i, v) for i in bank.select(collection="flan2022") for v in i.values.values()
                  if len(tokenize_variants(v)[1]) >= 14 and "{" not in v)
    ins, text = copied
    assert text in instruction_text(ins.template, dict(ins.values))
    folder = _broken(tmp_path, "03.jinja", text.replace("\n", " ") + "\n\n{{ question }}\n"
                     "{% for l, c in zip(letters, choices) %}{{ l }}) {{ c }}\n{% endfor %}Letter:")
    assert cli(["tasks", "--instructions", str(folder), "--benchmark", "mmlu", "--out", str(tmp_path / "o")]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "12-gram" in line]
    assert len(warnings) == 1 and "03.jinja" in warnings[0] and ins.id in warnings[0], warnings
    assert (tmp_path / "o" / "mmlu_user_03.yaml").is_file()


def test_a_bbl_task_gets_the_same_metadata_as_ours(data_dir, tmp_path):
    from instrobust.report.tasks import classify

    ours = Path(__file__).resolve().parents[1] / "templates" / "unobserved" / "bbl" / "strategyqa"
    assert cli(["tasks", "--instructions", str(ours), "--benchmark", "bbl:strategyqa", "--out", str(tmp_path),
                "--collection", "mine"]) == 0
    config = yaml.safe_load((tmp_path / "bbl_strategyqa_mine_03.yaml").read_text().replace("!function ", ""))
    assert config["metadata"]["bbl_task"] == "strategyqa" and config["metadata"]["task_type"] == "bc"
    info = classify("bbl_strategyqa_mine_03", config)
    assert (info.benchmark, info.category, info.collection, info.observed) == ("strategyqa", "BBL-BC", "mine", False)


def test_builtin_mappings_name_a_question_for_every_common_task():
    from instrobust.user_lmeval import BUILTIN_FIELDS, fields_for

    for task in ("arc_easy", "arc_challenge", "hellaswag", "piqa", "boolq", "openbookqa", "winogrande"):
        assert "question" in fields_for(task, {})
    assert fields_for("piqa", {"question": "sol1"})["question"] == "sol1"
    assert BUILTIN_FIELDS["winogrande"]["answer"] == "answer | int - 1"


# One document per built-in mapping, in its dataset's real schema, read through the task's own
# lm-eval config (only the data source swapped for a local file): the mapping gives our fields.
BUILTIN_DOCS = {
    "arc_challenge": ("arc", {"id": "x", "question": "Which is a metal?", "answerKey": "B",
                              "choices": {"text": ["wood", "iron", "glass"], "label": ["A", "B", "C"]}},
                      "Which is a metal?", ["wood", "iron", "glass"], 1),
    "hellaswag": ("hellaswag", {"activity_label": "Baking", "ctx_a": "She mixes the flour.", "ctx_b": "then she",
                                "ctx": "", "endings": ["bakes it.", "sings.", "swims.", "flies."], "label": "0",
                                "split": "val", "split_type": "indomain", "source_id": "s", "ind": 1},
                  "Baking: She mixes the flour. Then she", ["bakes it.", "sings.", "swims.", "flies."], 0),
    "piqa": ("piqa", {"goal": "Open a jar", "sol1": "twist the lid", "sol2": "eat the lid", "label": 0},
             "Open a jar", ["twist the lid", "eat the lid"], 0),
    "boolq": ("super_glue/boolq", {"passage": "Cats are mammals.", "question": "is a cat a mammal", "idx": 0, "label": 1},
              "Cats are mammals.\nis a cat a mammal?", ["no", "yes"], 1),
    "openbookqa": ("openbookqa", {"id": "x", "question_stem": "Plants need", "answerKey": "C",
                                  "choices": {"text": ["salt", "rocks", "light", "noise"], "label": list("ABCD")}},
                   "Plants need", ["salt", "rocks", "light", "noise"], 2),
    "winogrande": ("winogrande", {"sentence": "The cup broke because _ was thin.", "option1": "the cup",
                                  "option2": "the table", "answer": "1"},
                   "The cup broke because _ was thin.", ["the cup", "the table"], 0),
}


@pytest.mark.parametrize("task", sorted(BUILTIN_DOCS))
def test_builtin_mapping_fits_the_tasks_own_documents(task, tmp_path):
    import lm_eval.tasks
    from lm_eval.api.task import ConfigurableTask
    from lm_eval.tasks import TaskManager
    from lm_eval.tasks._yaml_loader import load_yaml

    from instrobust.user_lmeval import BUILTIN_FIELDS, map_doc

    folder, row, question, choices, answer = BUILTIN_DOCS[task]
    tm = TaskManager(include_path=str(Path(lm_eval.tasks.__file__).parent / folder), include_defaults=False)
    config = load_yaml(tm.task_index[task].yaml_path, resolve_func=True)
    (tmp_path / "v.jsonl").write_text(json.dumps(row) + "\n")
    config.update(dataset_path="json", dataset_name=None, dataset_kwargs={"data_files": {"validation": str(tmp_path / "v.jsonl")}},
                  training_split=None, validation_split="validation", test_split=None)
    wrapped = ConfigurableTask(config=config)
    doc = map_doc(wrapped, BUILTIN_FIELDS[task], wrapped.validation_docs()[0], task)
    assert doc == {"question": question, "choices": choices, "letters": list("ABCD")[:len(choices)], "answer": answer}
