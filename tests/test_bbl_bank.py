"""The BBL instruction bank: observed (upstream files in shared/data), ours, designer, variants."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from instrobust.bank import Instruction, InstructionBank, check_bbl_template, render
from instrobust.bbl import BBL14, TASKS, VARIANT_TASKS
from instrobust.bbl import instructions as bbl
from instrobust.bbl.data import bbl_pool
from instrobust.errors import ChecksumError, DataError, TemplateRenderError, UnknownInstructionError
from instrobust.upstream.collections import apply_edit, flan_block_units, select_alpaca
from instrobust.upstream.sources import SourceResolver

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def bank(data_dir) -> InstructionBank:
    return InstructionBank.load("bbl")


def test_observed_counts_follow_table_2(bank):
    counts = {(t, c): len([i for i in bank if i.task_type == t and i.collection == c and i.id.startswith(f"bbl_{t}_obs_")])
              for t in ("qa", "bc", "mc") for c in ("flan2022", "p3")}
    assert counts == {("qa", "flan2022"): 50, ("qa", "p3"): 13, ("bc", "flan2022"): 18, ("bc", "p3"): 7,
                      ("mc", "flan2022"): 35, ("mc", "p3"): 8}
    planned = {t: {c: len(ids) for c, ids in bbl.planned_observed_ids(t).items()} for t in ("qa", "bc", "mc")}
    assert planned == {"qa": {"flan2022": 50, "alpaca": 20, "p3": 13}, "bc": {"flan2022": 18, "alpaca": 11, "p3": 7},
                       "mc": {"flan2022": 35, "alpaca": 20, "p3": 8}}
    # the Alpaca file is not in shared/data: reported as skipped, never faked
    if "alpaca" in bank.skipped:
        assert "alpaca_data.json" in bank.skipped["alpaca"]
        with pytest.raises(UnknownInstructionError, match="in collection 'alpaca', which could not be loaded.*Groups that run without it: bbl_qa_observed_flan2022"):
            bank.get("bbl_qa_obs_alpaca_01")
    else:
        assert [len([i for i in bank if i.id.startswith(f"bbl_{t}_obs_alpaca_")]) for t in ("qa", "bc", "mc")] == [20, 11, 20]


def test_every_task_renders_every_instruction(bank):
    """All 14 tasks x their observed/unobserved/designer instructions, on real documents."""
    by_type = {t: [i for i in bank if i.id.startswith(f"bbl_{t}_obs_")] for t in ("qa", "bc", "mc")}
    rendered = 0
    for task in TASKS:
        info = TASKS[task]
        # the paper authors' prompts relabel parts of the input (their own tests: instrobust.paper)
        own = [i for i in bank if i.provenance.get("bbl_task") == task and "_var_" not in i.id
               and i.collection != "paper"]
        assert len([i for i in own if i.collection == "unobserved"]) == len(bbl.unobserved_files(task))
        assert [i.id for i in own if i.collection == "designer"] == [f"bbl_{task}_designer_01"]
        instructions = own + (by_type[info.task_type] if task in BBL14 else [])
        pool = bbl_pool(task)
        for doc in (*pool.test[:2], pool.heldout[0]):
            for ins in instructions:
                text = render(ins, doc)
                # every word of the input reaches the prompt (templates may split it into parts)
                assert all(w in text for w in doc["input"].split()), (ins.id, task)
                rendered += 1
    assert rendered > 2600  # 14 tasks x ~90 instructions + 5 Figure-3 tasks x 11, x 3 documents


def test_variants_render_on_every_document_of_their_task(bank):
    for task in VARIANT_TASKS:
        variants = {i.id.split("_var_")[1].removesuffix("_01"): i for i in bank
                    if i.provenance.get("bbl_task") == task and "_var_" in i.id}
        assert set(variants) == {"closest", "incorrect", "negated", "nonsensical"}, task
        pool = bbl_pool(task)
        for doc in pool.test + pool.heldout:
            prompts = {v: render(ins, doc) for v, ins in variants.items()}
            assert prompts["negated"] != prompts["closest"]
    negated = bank.get("bbl_language_identification_var_negated_01")
    assert "Your task is not to identify the language" in render(negated, bbl_pool("language_identification").test[0])
    assert negated.provenance["edit"]["new"] == "Your task is not to identify"
    assert bank.get("bbl_epistemic_reasoning_var_closest_01").observed


def test_designer_text_comes_from_task_json(bank):
    doc = bbl_pool("winowhy").test[0]
    assert render(bank.get("bbl_winowhy_designer_01"), doc).startswith(
        "Please answer the following questions about which words certain pronouns refer to.\n\n" + doc["input"])
    # no task_prefix: the description
    assert render(bank.get("bbl_hindu_knowledge_designer_01"), bbl_pool("hindu_knowledge").test[0]).startswith(
        "Answer questions about Hindu mythology\n\n")


def test_get_loads_one_instruction_and_names_bad_ids(data_dir):
    assert bbl.get("bbl_mc_obs_p3_04").provenance["template_name"] == "what_category_best_describe"
    assert bbl.get("bbl_strategyqa_unobs_02").collection == "unobserved"
    with pytest.raises(UnknownInstructionError, match="observed BBL ids are per task type"):
        bbl.get("bbl_winowhy_obs_flan2022_01")
    with pytest.raises(DataError, match="unknown BIG-bench Lite task 'winowhi'"):
        bbl.get("bbl_winowhi_unobs_01")
    with pytest.raises(UnknownInstructionError, match="Did you mean bbl_winowhy_unobs_10"):
        bbl.get("bbl_winowhy_unobs_11")
    with pytest.raises(UnknownInstructionError, match="BBL ids look like"):
        bbl.get("bbl_nonsense")


# ---- the template check --------------------------------------------------------------------

def _ins(template: str, iid: str = "bbl_toy_unobs_01") -> Instruction:
    return Instruction(id=iid, benchmark="bbl", collection="unobserved", task_type="qa", template=template,
                       provenance={"file": "tmp/01.jinja"})


def test_check_rejects_templates_that_drop_input_options_or_leak_the_answer():
    good = "Q: {{ input }}\n{% for c in choices %}- {{ c }}\n{% endfor %}Answer:"
    check_bbl_template(_ins(good), "qa", option_counts=(2, 6))
    with pytest.raises(TemplateRenderError, match=r"'bbl_toy_unobs_01' \(tmp/01.jinja\).*misses the input"):
        check_bbl_template(_ins("Pick one: {{ choices | join(', ') }}"), "qa")
    with pytest.raises(TemplateRenderError, match=r"with 4 options: .*misses options OPTSENTINEL3"):
        check_bbl_template(_ins("{{ input }} {{ choices[0] }} {{ choices[1] }} {{ choices[2] }}"), "mc")
    with pytest.raises(TemplateRenderError, match="never the answer|changes with the document's answer"):
        check_bbl_template(_ins("{{ input }} (hint: {{ letters[answer] }})"), "bc")
    # BC templates may name the options in prose without listing all
    check_bbl_template(_ins("{{ input }} Is it {{ choices[0] }}?"), "bc")


def test_template_using_a_field_bbl_documents_lack_names_the_instruction(tmp_path):
    (tmp_path / "winowhy").mkdir()
    (tmp_path / "winowhy" / "01.jinja").write_text("{{ input }}\nQuestion: {{ question }}\n")
    with pytest.raises(TemplateRenderError,
                       match=r"'bbl_winowhy_unobs_01' \(templates/unobserved/bbl/winowhy/01.jinja\) uses an undefined "
                             r"variable: 'question' is undefined.*offer: answer, choices, input, letters, task"):
        bbl.load_unobserved("winowhy", root=tmp_path)
    (tmp_path / "winowhy" / "01.jinja").write_text("{{ input }}\nAnswer with {{ choices | join(' or ') }}:\n")
    [ins] = bbl.load_unobserved("winowhy", root=tmp_path)
    assert render(ins, bbl_pool("winowhy").test[0]).endswith("Answer with correct or incorrect:")


# ---- upstream pieces -----------------------------------------------------------------------

def _fetch(name):
    from instrobust.upstream.references import upstream_files

    files = upstream_files()
    return files[name], SourceResolver().fetch(files[name])


def test_a_changed_upstream_text_fails_its_checksum(data_dir):
    block = {"patterns": {"source": "flan_v2_templates", "key": "arc", "indices": [0], "sha256": ["0" * 64]}}
    with pytest.raises(ChecksumError, match=r"Flan PATTERNS\['arc'\]\[0\].*pinned 0000"):
        [build() for build in flan_block_units(block, _fetch, bbl.VIEWS, "bbl_toy")]


def test_a_flan_family_without_a_bbl_view_is_an_error(data_dir):
    block = {"patterns": {"source": "flan_v2_templates", "key": "bool_q", "indices": [0], "sha256": [None]}}
    with pytest.raises(DataError, match="no BBL view for Flan key 'bool_q'"):
        [build() for build in flan_block_units(block, _fetch, bbl.VIEWS, "bbl_toy")]
    from instrobust.upstream.parsers import flan_placeholders_to_jinja

    with pytest.raises(DataError, match=r"placeholder \{title\} we do not map"):
        flan_placeholders_to_jinja("{title}: {question}", bbl.FLAN_VIEWS["arc"])


def test_edits_must_apply_exactly_once():
    assert apply_edit("do it. do not.", {"old": "do it", "new": "skip it"}, "x") == "skip it. do not."
    with pytest.raises(DataError, match=r"negated: edit text 'do' occurs 2 times"):
        apply_edit("do it. do not.", {"old": "do", "new": "x"}, "negated")
    with pytest.raises(DataError, match="matches 0 times"):
        apply_edit("no literal", {"regex": r'\{\{"[^"]*"\}\}', "new": "y"}, "p3")


def test_dbpedia_inline_category_list_becomes_the_task_options(data_dir):
    ins = bbl.get("bbl_mc_obs_p3_02")
    text = render(ins, bbl_pool("vitaminc_fact_verification").test[0])
    assert text.startswith("Pick one category for the following text. The options are - True, False, Neither.")
    assert "company" not in text


# ---- Alpaca rules (fixture file of our own text) -------------------------------------------

def test_alpaca_rules_per_type_on_fixture():

    entries = json.loads((FIXTURES / "alpaca" / "alpaca_data.json").read_text())
    picked = {r: [i for i, _ in select_alpaca(entries, r, 10)] for r in ("qa_v1", "bc_v1", "mc_v1")}
    # duplicates (4) and entries without input (5) are never picked; 0, 9, 13 match no rule
    assert picked == {"qa_v1": [1, 8, 12], "bc_v1": [2, 7, 10], "mc_v1": [3, 6, 11, 14]}
    made = bbl.BBLLoader("bc").from_alpaca(entries, {"rule": "bc_v1", "count": 2}, {"source": "fixture"})
    assert [i.id for i in made] == ["bbl_bc_obs_alpaca_01", "bbl_bc_obs_alpaca_02"]
    assert made[1].provenance["entry"] == 7
    doc = {"input": "Is it?", "choices": ["Yes", "No"], "letters": ["A", "B"], "answer": 0, "task": "strategyqa"}
    assert render(made[0], doc) == "Decide whether the statement is true or false.\n\nIs it?\n(A) Yes\n(B) No\nAnswer:"
    with pytest.raises(DataError, match="only 4 entries match rule 'mc_v1', need 20"):
        bbl.BBLLoader("mc").from_alpaca(entries, {"rule": "mc_v1", "count": 20}, {})
    with pytest.raises(DataError, match="unknown Alpaca selection rule 'qa_v9'"):
        select_alpaca(entries, "qa_v9", 1)


def test_a_missing_or_changed_file_skips_only_its_instructions(data_dir, tmp_path):
    import shutil

    root = tmp_path / "data"
    shutil.copytree(data_dir / "observed_sources", root / "observed_sources", copy_function=shutil.copyfile)
    (root / "observed_sources" / "promptsource" / "super_glue" / "multirc" / "templates.yaml").unlink()
    niv2 = root / "observed_sources" / "natural_instructions" / "niv2_definitions.json"
    data = json.loads(niv2.read_text())
    data["task056_multirc_classify_correct_answer"]["Definition"] = ["changed"]
    niv2.write_text(json.dumps(data))
    instructions, skipped = bbl.observed_for_type("bc", SourceResolver(data_dir=root))
    # all 7 P3 templates come from the missing file: the collection is reported as a whole
    assert "multirc/templates.yaml" in skipped["p3"]
    # the 10 natinst patterns x task056's changed definition (ids 09-18); MultiRC's own 8 stay
    assert sorted(k for k in skipped if "flan2022" in k) == [f"bbl_bc_obs_flan2022_{n:02d}" for n in range(9, 19)]
    assert "NIV2 task056_multirc_classify_correct_answer Definition" in skipped["bbl_bc_obs_flan2022_09"]
    assert [i.id for i in instructions if i.collection == "flan2022"] == [f"bbl_bc_obs_flan2022_{n:02d}" for n in range(1, 9)]
