"""The paper collection: the authors' InstructionEval instructions read with ast at run time.

Fixture tests use configs we wrote in their shape (tests/fixtures/instructioneval); the real-copy
tests compare our prompts with prompts derived independently from their files: the test reads
the template with its own ast walk and applies a hand-written copy of their helper's formatting.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

from instrobust.bank import render
from instrobust.errors import ChecksumError, DataError, UnknownInstructionError
from instrobust.paper import configs, formats, load, planned_groups, planned_ids
from instrobust.upstream.sources import SourceResolver, sha256_file, sha256_text

FIXTURE = Path(__file__).parent / "fixtures" / "instructioneval"
FIX_ROOT = FIXTURE / "observed_sources" / "instructioneval"
GENERAL = "configs/MMLU/general.py"
ALPACA = "configs/processors/Alpaca_templates.py"
STORIES = "configs/BBH/binary_classification/strange_stories.py"
DOC = {"question": "QUIZ: Which planet is red?", "choices": ["Venus", "Mars", "Moon", "Sun"],
       "letters": list("ABCD"), "subject": "astronomy", "answer": 1}


def fixture_reader(**overrides) -> load.Reader:
    pins = {"files": {rel: sha256_file(FIX_ROOT / rel) for rel in (GENERAL, ALPACA, STORIES)}}
    pins["files"].update(overrides)
    return load.Reader(SourceResolver(data_dir=FIXTURE), pins=pins)


def block(rel: str, cls: str, helper: str, method: str) -> tuple[dict, dict]:
    prompt = configs.method_prompt(FIX_ROOT / rel, cls, method)
    helpers = {helper: {"file": rel, "class": cls, "method": helper,
                        "sha256": sha256_text(configs.source_of(FIX_ROOT / rel, cls, helper))}}
    return ({"file": rel, "class": cls, "helpers": helpers},
            {"method": method, "sha256": load.piece_digest(prompt)})


def mmlu(reader, method: str):
    b, entry = block(GENERAL, "MMLUGeneralPreprocessor", "unobserved_template", method)
    return load.template_set(reader, b, f"mmlu_paper_{method[-1]:0>2}", entry, "general",
                             benchmark="mmlu", task_type="qa", question_var="question")


# ---- fixture: reading, translating, refusing -----------------------------------------------

def test_fixture_prompt_matches_their_str_format_and_file_is_never_executed():
    marker = FIX_ROOT / "configs" / "MMLU" / "EXECUTED"
    marker.unlink(missing_ok=True)
    ins = mmlu(fixture_reader(), "unobserved1")
    assert render(ins, DOC) == "Quiz time! QUIZ: Which planet is red?\n(a) Venus | (b) Mars | (c) Moon | (d) Sun\nYour letter:"
    assert ins.collection == "paper" and ins.provenance["answer_space"] == "letters"
    assert not marker.exists(), "the config file was executed"


def test_fixture_braces_stay_text_and_question_edits_apply():
    ins = mmlu(fixture_reader(), "unobserved3")
    # What Python's str.format gives for the same template: "{{" is "{", never a Jinja tag.
    assert render(ins, DOC) == "Curly {kept} and {{ 7 * 7 }} stay text. Which planet is red? = Venus / Mars / Moon / Sun?"
    assert "Curly" not in ins.template and "QUIZ" not in ins.template  # upstream text only as values


@pytest.mark.parametrize("method, says", [
    ("unobserved2", "an f-string"),
    ("unobserved4", "a + concatenation of the item's fields"),
])
def test_fixture_non_literal_prompts_are_refused_naming_the_method(method, says):
    with pytest.raises(configs.Unreadable) as err:
        configs.method_prompt(FIX_ROOT / GENERAL, "MMLUGeneralPreprocessor", method)
    assert f"MMLUGeneralPreprocessor.{method}" in str(err.value) and says in str(err.value)


def test_fixture_template_showing_the_answer_is_refused():
    with pytest.raises(DataError, match=r"\{answer\} is not one unobserved_template fills"):
        mmlu(fixture_reader(), "unobserved5")


def test_fixture_changed_file_or_text_fails_its_checksum():
    with pytest.raises(ChecksumError):
        mmlu(fixture_reader(**{GENERAL: "0" * 64}), "unobserved1")
    b, entry = block(GENERAL, "MMLUGeneralPreprocessor", "unobserved_template", "unobserved1")
    with pytest.raises(ChecksumError, match="unobserved1"):
        load.template_set(fixture_reader(), b, "mmlu_paper_01", {**entry, "sha256": "1" * 64}, "general",
                          benchmark="mmlu", task_type="qa", question_var="question")


def test_fixture_alpaca_list_in_their_wrapper_keeps_implicit_concatenation():
    reader = fixture_reader()
    items = configs.class_str_list(FIX_ROOT / GENERAL, "MMLUGeneralPreprocessor", "_UNOBSERVED_ALPACA_INSTRUCTIONS")
    assert len(items) == 2  # the missing comma joins two strings, as in Python

    def receiver(method, target):
        text = configs.format_receiver(FIX_ROOT / ALPACA, "AlpacaTemplates", method, target)
        return {"file": ALPACA, "class": "AlpacaTemplates", "method": method, "target": target, "sha256": sha256_text(text)}

    b = {"file": GENERAL, "class": "MMLUGeneralPreprocessor", "list": "_UNOBSERVED_ALPACA_INSTRUCTIONS",
         "wrapper": receiver("alpaca_template_with_input", "input_text"), "input": receiver("alpaca_multiple_choice", "inputs")}
    ins = load.alpaca_set(reader, b, "mmlu_paper_alpaca_02", {"index": 1, "sha256": sha256_text(items[1])}, "alpaca",
                          benchmark="mmlu", task_type="qa", question_var="question")
    assert render(ins, DOC) == (
        "A made-up wrapper.\n\n## Task:\nThink like a librarian and choose one option.This line lost its comma, "
        "so it joins the one above.\n\n## Data:\nQ) QUIZ: Which planet is red?\n(A) Venus\n(B) Mars\n(C) Moon\n(D) Sun"
        "\n\n## Reply:")


def test_fixture_bbl_split_helper_and_item_fields():
    plan = formats.read_helper(FIX_ROOT / STORIES, "StrangeStoriesPreprocessor", "unobserved_template")
    assert plan.answer_space == "options" and plan.n_options is None
    prompt = configs.method_prompt(FIX_ROOT / STORIES, "StrangeStoriesPreprocessor", "unobserved1")
    template, values = formats.to_jinja(prompt.template, plan, "input")
    from instrobust.bank import Instruction

    ins = Instruction(id="bbl_strange_stories_paper_01", benchmark="bbl", collection="paper", task_type="bc",
                      template=template, values=values)
    doc = {"input": "Ann lost her cat.\nIs Ann sad?", "choices": ["yes", "no"], "letters": ["A", "B"], "answer": 0, "task": "t"}
    assert render(ins, doc) == "First line only: Ann lost her cat.\nWhole story: Ann lost her cat.\nIs Ann sad?\nyes or no?"
    bad = configs.method_prompt(FIX_ROOT / STORIES, "StrangeStoriesPreprocessor", "unobserved2")
    with pytest.raises(DataError, match="raw option list"):
        formats.to_jinja(bad.template, plan, "input")


def test_fixture_method_with_its_own_literal_and_answer_words():
    prompt, plan = load.inline_prompt(FIX_ROOT / STORIES, "StrangeStoriesPreprocessor", "unobserved3")
    ins = load.build(prompt, plan, "bbl_strange_stories_paper_03", benchmark="bbl", task_type="bc",
                     question_var="input", provenance={}, bbl_task="strange_stories", classes=("yes", "no"))
    doc = {"input": "Ann lost her cat.\nIs Ann sad?", "choices": ["yes", "no"], "letters": ["A", "B"], "answer": 0, "task": "t"}
    assert render(ins, doc) == "Story: A person lost her cat.\nAsked: Is Ann sad?\nSay Sure or Nope."
    assert ins.answer_space.describe() == "labels (yes -> Sure, no -> Nope)"
    with pytest.raises(DataError, match="do not map onto the task's classes"):
        load.build(prompt, plan, "x", benchmark="bbl", task_type="bc", question_var="input", provenance={},
                   bbl_task="strange_stories", classes=("true", "false"))


def test_fixture_method_that_rebuilds_the_item_for_its_helper():
    from instrobust.paper.rebuild import rebuilt_prompt

    prompt = rebuilt_prompt(FIX_ROOT / STORIES, "StrangeStoriesPreprocessor", "unobserved4")
    plan = formats.read_helper(FIX_ROOT / STORIES, "StrangeStoriesPreprocessor", prompt.helper)
    ins = load.build(prompt, plan, "bbl_strange_stories_paper_04", benchmark="bbl", task_type="bc",
                     question_var="input", provenance={}, bbl_task="strange_stories", classes=("yes", "no"))
    doc = {"input": "Ann lost her cat.\nIs 'Ann' sad?", "choices": ["yes", "no"], "letters": ["A", "B"], "answer": 0, "task": "t"}
    assert render(ins, doc) == "About Ann: Ann lost her cat. Y/N?"
    assert ins.answer_space.describe() == "labels (yes -> Y, no -> N)"


def test_fixture_alpaca_method_reads_fstrings_of_plain_names_only():
    from instrobust.paper.alpaca import read_alpaca_method

    text = configs.format_receiver(FIX_ROOT / ALPACA, "AlpacaTemplates", "alpaca_template_with_input", "input_text")
    block = {"file": STORIES, "class": "StrangeStoriesPreprocessor", "classes": ["yes", "no"],
             "wrappers": {"alpaca_template_with_input": {
                 "file": ALPACA, "class": "AlpacaTemplates", "method": "alpaca_template_with_input",
                 "target": "input_text", "sha256": sha256_text(text)}}}
    entry = {"method": "alpaca_unobserved1", "sha256": sha256_text(
        configs.source_of(FIX_ROOT / STORIES, "StrangeStoriesPreprocessor", "alpaca_unobserved1"))}
    ins = load.alpaca_method_set(fixture_reader(), block, "bbl_strange_stories_paper_alpaca_01", entry, "alpaca",
                                 benchmark="bbl", task_type="bc", question_var="input", bbl_task="strange_stories")
    doc = {"input": "Ann lost her cat.\nIs Ann sad?", "choices": ["yes", "no"], "letters": ["A", "B"], "answer": 0, "task": "t"}
    assert render(ins, doc) == ("A made-up wrapper.\n\n## Task:\nRead and reply.\n\n## Data:\n"
                                "Ann lost her cat. -- Is Ann sad? {braces}\n\n## Reply:")
    assert ins.answer_space.kind == "options"
    with pytest.raises(configs.Unreadable, match="alpaca_unobserved2.*f-string field that is not a plain name"):
        read_alpaca_method(FIX_ROOT / STORIES, "StrangeStoriesPreprocessor", "alpaca_unobserved2")


def test_planned_ids_need_no_upstream_file():
    ids = planned_ids("mmlu")
    assert [i for i in ids if i.count("_") == 2] == [f"mmlu_paper_{n:02d}" for n in range(1, 21)]
    groups = planned_groups("mmlu")
    assert len(groups["mmlu_paper"]) == 20 and "mmlu_paper_alpaca" in groups
    assert all(len(v) <= 10 for k, v in planned_groups("bbl").items() if k.endswith("_paper"))


def test_unknown_and_refused_ids_get_one_line_errors():
    from instrobust.paper import get

    with pytest.raises(UnknownInstructionError, match="mmlu_paper_01 .. mmlu_paper_20"):
        get("mmlu_paper_21")
    with pytest.raises(UnknownInstructionError, match="not available: .*unobserved10"):
        get("bbl_winowhy_paper_10")


def test_subset_filter_keeps_items_under_the_token_limit(tmp_path):
    import datasets

    from instrobust.paper.subset import paper_subset, subset_text
    from tiny_models import build_tokenizer

    tokenizer = build_tokenizer(tmp_path)  # a real tokenizer, saved where AutoTokenizer finds it
    long = dict(DOC, choices=["Jupiter " * 200, "x", "y", "z"], answer=0)
    assert subset_text(DOC) == "Mars Venus Mars Moon Sun"  # their "{answer} {A} {B} {C} {D}"
    assert len(tokenizer(subset_text(long))["input_ids"]) >= 150 > len(tokenizer(subset_text(DOC))["input_ids"])
    kept = paper_subset(datasets.Dataset.from_list([DOC, long, DOC]), str(tmp_path))
    assert len(kept) == 2 and kept[1]["question"] == DOC["question"]
    with pytest.raises(DataError, match="paper_subset"):
        paper_subset(datasets.Dataset.from_list([DOC]), {"max_tokens": 3})


# ---- the real InstructionEval copy ------------------------------------------------------------

def _their_template(path: Path, method: str) -> str:
    """Independent of instrobust: the literal their method assigns to input_template."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.FunctionDef) and node.name == method:
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and ast.unparse(stmt.targets[0]) == "input_template":
                    return ast.literal_eval(stmt.value)
    raise AssertionError(f"{method} not found")


def _their_mmlu_prompt(template: str, doc: dict) -> str:
    """A hand-written copy of their MMLU `unobserved_template` formatting."""
    a, b, c, d = doc["choices"]
    return template.format(question=doc["question"], choiceA=a, choiceB=b, choiceC=c, choiceD=d)


@pytest.fixture(scope="module")
def real(data_dir):
    root = data_dir / "observed_sources" / "instructioneval"
    if not (root / GENERAL).is_file():
        pytest.skip("no InstructionEval copy under observed_sources/instructioneval")
    return root


def test_render_cli_prints_their_prompt_for_mmlu_paper_03(real, data_dir):
    from instrobust.mmlu.data import mmlu_split

    expected = _their_mmlu_prompt(_their_template(real / GENERAL, "unobserved3"), mmlu_split("test")[0])
    out = subprocess.run([sys.executable, "-m", "instrobust.cli", "render", "mmlu_paper_03", "--index", "0"],
                         capture_output=True, text=True, env={**__import__("os").environ, "INSTROBUST_DATA_DIR": str(data_dir)})
    assert out.returncode == 0, out.stderr
    assert out.stdout == expected + "\n"


def test_all_20_general_instructions_match_their_formatting(real):
    from instrobust.mmlu.data import mmlu_split
    from instrobust.paper import get

    docs = [mmlu_split("test")[i] for i in (0, 5000, 14041)]
    for n in range(1, 21):
        template = _their_template(real / GENERAL, f"unobserved{n}")
        ins = get(f"mmlu_paper_{n:02d}")
        assert [render(ins, d) for d in docs] == [_their_mmlu_prompt(template, d) for d in docs], n
        assert ins.provenance["answer_space"] == "letters"


def test_loaded_collection_matches_the_pins_and_stores_no_upstream_text(real):
    from instrobust.paper import load_paper

    mmlu_ins, skipped = load_paper("mmlu")
    bbl_ins, bbl_skipped = load_paper("bbl")
    assert not skipped and not bbl_skipped
    assert [i.id for i in mmlu_ins] == planned_ids("mmlu") and [i.id for i in bbl_ins] == planned_ids("bbl")
    assert len([i for i in mmlu_ins if i.provenance["set"] == "general"]) == 20
    pins = load.SPEC_PATH.read_text()
    pieces = {v for i in mmlu_ins + bbl_ins for v in i.values.values() if len(v) >= 25}
    assert pieces and not [p for p in pieces if p in pins]


def test_bbl_strange_stories_matches_their_helper(real):
    from instrobust.bbl.data import bbl_pool
    from instrobust.paper import get

    doc = bbl_pool("strange_stories").test[0]
    rel = "configs/BBH/binary_classification/strange_stories.py"
    template = _their_template(real / rel, "unobserved2")
    context = doc["input"].split("\n", 1)[0]  # their helper: context, question = q.split("\n", maxsplit=1)
    assert render(get("bbl_strange_stories_paper_02"), doc) == template.format(question=doc["input"], context=context)


def test_bbl_nonsensical_variant_is_their_random_instruction_then_the_input(real):
    from instrobust.bbl.data import bbl_pool
    from instrobust.paper import get

    tree = ast.parse((real / "configs/preprocessor.py").read_text(encoding="utf-8"))
    randoms = next(ast.literal_eval(n.value) for n in ast.walk(tree)
                   if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "RANDOM_INSTRUCTIONS")
    doc = bbl_pool("intent_recognition").test[0]
    ins = get("bbl_intent_recognition_paper_nonsensical_03")
    assert render(ins, doc) == randoms[2] + "\n" + doc["input"]  # their: RANDOM[2] + '\n' + question
    assert ins.answer_space.kind == "options"


def test_harness_keeps_only_items_their_helper_can_format(real):
    from instrobust import harness
    from instrobust.bbl.data import bbl_pool

    pool = bbl_pool("hindu_knowledge").test
    test = harness.load_bbl(instruction="bbl_hindu_knowledge_paper_01", bbl_task="hindu_knowledge")["test"]
    assert len(test) == sum(len(d["choices"]) == 4 for d in pool) < len(pool)


def test_bbl_epistemic_newly_matches_their_method(real):
    from instrobust.bbl.data import bbl_pool
    from instrobust.paper import get

    tree = ast.parse((real / "configs/Adv/epistemic_reasoning.py").read_text(encoding="utf-8"))
    method = next(n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == "unobserved4")
    template = next(ast.literal_eval(c.func.value) for c in ast.walk(method)
                    if isinstance(c, ast.Call) and isinstance(c.func, ast.Attribute) and c.func.attr == "format")
    doc = bbl_pool("epistemic_reasoning").test[3]
    sentence1, sentence2 = doc["input"].split(" Hypothesis: ")  # their method, by hand
    expected = template.format(sentence1=sentence1.replace("Premise: ", ""), sentence2=sentence2)
    ins = get("bbl_epistemic_reasoning_paper_newly_04")
    assert render(ins, doc) == expected
    assert ins.answer_space.kind == "labels" and dict(ins.answer_space.by_class)["entailment"] in ("Yes", "yes")


def test_lm_eval_runs_mmlu_paper_03_with_their_prompt(real, task_manager, tiny_llama):
    import lm_eval

    from instrobust.mmlu.data import mmlu_split

    if "mmlu_paper_03" not in task_manager.all_tasks:
        pytest.skip("lm_eval_tasks has no paper tasks yet (python -m instrobust.generate adds them)")
    out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={tiny_llama}", tasks=["mmlu_paper_03"],
                                  task_manager=task_manager, limit=2, log_samples=True, device="cpu")
    sample = out["samples"]["mmlu_paper_03"][0]
    expected = _their_mmlu_prompt(_their_template(real / GENERAL, "unobserved3"), mmlu_split("test")[sample["doc_id"]])
    assert sample["arguments"][0][0] == expected
    assert [a[1].strip() for a in sample["arguments"]] == ["A", "B", "C", "D"]  # scored on the letters


def test_bbl_play_dialog_rebuilt_item_matches_their_method(real):
    from instrobust.bbl.data import bbl_pool
    from instrobust.paper import get

    doc = bbl_pool("play_dialog_same_or_different").test[7]
    rel = "configs/BBH/binary_classification/play_dialog_same_or_different.py"
    template = _their_template(real / rel, "unobserved8")
    method = next(n for n in ast.walk(ast.parse((real / rel).read_text(encoding="utf-8")))
                  if isinstance(n, ast.FunctionDef) and n.name == "unobserved8")
    sep, quote = [c.args[0].value for c in ast.walk(method)
                  if isinstance(c, ast.Call) and getattr(c.func, "attr", "") == "split"]
    play, lines = doc["input"].split(sep)  # their method, by hand
    _, line1, _, line2, _ = lines.split(quote)
    assert render(get("bbl_play_dialog_same_or_different_paper_08"), doc) == template.format(
        play=play, line1=line1, line2=line2)


def _receiver(path: Path, method: str) -> str:
    """Independent of instrobust: the literal their method calls .format on."""
    fn = next(n for n in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
              if isinstance(n, ast.FunctionDef) and n.name == method)
    return next(ast.literal_eval(c.func.value) for c in ast.walk(fn) if isinstance(c, ast.Call)
                and getattr(c.func, "attr", "") == "format" and isinstance(c.func.value, ast.Constant))


def test_alpaca_lists_in_their_alpaca_prompt(real):
    from instrobust.bbl.data import bbl_pool
    from instrobust.mmlu.data import mmlu_split
    from instrobust.paper import get

    wrapper = _receiver(real / ALPACA, "alpaca_template_with_input")
    inner = _receiver(real / ALPACA, "alpaca_multiple_choice")

    def their(instruction, question, choices):  # alpaca_multiple_choice + alpaca_template_with_input
        options = "".join(f"\n({chr(65 + i)}) {c}" for i, c in enumerate(choices))
        return wrapper.format(instruction=instruction, input=inner.format(question=question, _options=options))

    def class_list(rel):
        return next(ast.literal_eval(n.value) for n in ast.walk(ast.parse((real / rel).read_text(encoding="utf-8")))
                    if isinstance(n, ast.Assign) and ast.unparse(n.targets[0]) == "_UNOBSERVED_ALPACA_INSTRUCTIONS")

    doc = mmlu_split("test")[1]
    assert render(get("mmlu_paper_alpaca_07"), doc) == their(class_list(GENERAL)[6], doc["question"], doc["choices"])
    rel = "configs/BBH/multiple_choice/novel_concepts.py"
    line = next(n for n in ast.walk(ast.parse((real / rel).read_text(encoding="utf-8")))  # their registration
                if isinstance(n, ast.Assign) and isinstance(n.targets[0], ast.Subscript)
                and getattr(n.targets[0].slice, "value", None) == "Alpaca/Unobserved/3")
    index = next(s.slice.value for s in ast.walk(line.value) if isinstance(s, ast.Subscript))
    doc = bbl_pool("novel_concepts").test[2]
    ins = get("bbl_novel_concepts_paper_alpaca_03")
    assert render(ins, doc) == their(class_list(rel)[index], doc["input"], doc["choices"])
    assert ins.answer_space.kind == "letters"


def test_bbl_alpaca_method_with_an_fstring_matches_their_method(real):
    from instrobust.bbl.data import bbl_pool
    from instrobust.paper import get

    rel = "configs/BBH/binary_classification/strange_stories.py"
    method = next(n for n in ast.walk(ast.parse((real / rel).read_text(encoding="utf-8")))
                  if isinstance(n, ast.FunctionDef) and n.name == "alpaca_unobserved2")
    assigned = {ast.unparse(n.targets[0]): n.value for n in method.body if isinstance(n, ast.Assign)}
    doc = bbl_pool("strange_stories").test[5]
    context, question = doc["input"].split("\n", 1)  # their method, by hand
    names = {"context": context, "question": question}
    inputs = "".join(p.value if isinstance(p, ast.Constant) else names[p.value.id] for p in assigned["inputs"].values)
    expected = _receiver(real / ALPACA, "alpaca_template_with_input").format(
        instruction=ast.literal_eval(assigned["instruction"]), input=inputs)
    assert render(get("bbl_strange_stories_paper_alpaca_02"), doc) == expected
