"""Observed is relative to the model (paper section 4.1), on synthetic results with known truth.

Every collection scores the same for every model: Flan 2022 0.50, Alpaca 0.30, P3 0.40, ours
(unobserved) 0.45. Only which collection a model was trained on changes Δ = unobserved - observed.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from instrobust.report import ReportConfig, main, make_report
from instrobust.report.load import load_results_file
from instrobust.report.cells import ReportInputError
from instrobust.report.trained_on import parse_rule, trained_on

FIXTURES = Path(__file__).parent / "fixtures" / "report"
sys.path.insert(0, str(FIXTURES))
from lmeval_files import write_run  # noqa: E402

TRUTH = {"flan2022": 0.50, "alpaca": 0.30, "p3": 0.40, "unobserved": 0.45}
COUNTS = {"flan2022": 5, "alpaca": 4, "p3": 3, "unobserved": 4}


def _tasks() -> dict[str, float]:
    out = {}
    for coll, n in COUNTS.items():
        for i in range(1, n + 1):
            name = f"mmlu_unobs_{i:02d}" if coll == "unobserved" else f"mmlu_obs_{coll}_{i:02d}"
            out[name] = TRUTH[coll]
    return out


def _mmlu_row(report: dict, label: str) -> dict:
    return next(r for r in report["table3"] if r["label"] == label and r["category"] == "MMLU")


@pytest.fixture
def runs(tmp_path) -> Path:
    for i, model in enumerate(["google/flan-t5-xl", "bigscience/T0_3B", "chavinlo/alpaca-7b",
                               "HuggingFaceTB/SmolLM2-135M-Instruct"]):
        write_run(tmp_path / "runs", model, _tasks(), stamp=f"s{i}")
    return tmp_path / "runs"


def test_delta_uses_the_collection_each_model_was_trained_on(runs, tmp_path):
    report = make_report([runs], tmp_path / "out", ReportConfig(n_boot=200), figures=False)
    expected = {"google/flan-t5-xl": (["flan2022"], -0.05), "bigscience/T0_3B": (["p3"], +0.05),
                "chavinlo/alpaca-7b": (["alpaca"], +0.15)}
    for label, (colls, delta) in expected.items():
        row = _mmlu_row(report, label)
        assert row["observed_collections"] == colls
        assert row["delta"] == pytest.approx(delta)
        assert row["observed"]["n_instructions"] == COUNTS[colls[0]]
        # every other collection is its own row, with its own mean
        assert {k: v["mean"] for k, v in row["other"].items()} == pytest.approx(
            {k: TRUTH[k] for k in ("flan2022", "alpaca", "p3") if k not in colls})
    # the paper reference column sits next to the model with the same rule (n = 50 / 20 / 13 there)
    assert _mmlu_row(report, "google/flan-t5-xl")["reference"]["observed_n"] == 50
    assert _mmlu_row(report, "bigscience/T0_3B")["reference"]["observed_n"] == 13
    assert _mmlu_row(report, "chavinlo/alpaca-7b")["reference"]["observed_n"] == 20
    # the model with no known collection: no observed headline, no Δ, each collection a row
    smol = _mmlu_row(report, "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert smol["observed_collections"] is None and smol["observed"] is None and smol["delta"] is None
    assert set(smol["other"]) == {"flan2022", "alpaca", "p3"} and smol["unobserved"]["mean"] == pytest.approx(0.45)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "| **google/flan-t5-xl** | Observed (Flan 2022) | 50.0 ± 0.0 (n=5)" in md
    assert "|  | Alpaca (not trained on) | 30.0 ± 0.0 (n=4) |" in md
    assert "| **HuggingFaceTB/SmolLM2-135M-Instruct** | Unobserved (ours) | 45.0" in md
    assert "|  | Flan 2022 | 50.0 ± 0.0 (n=5) |" in md
    assert "SmolLM2-135M-Instruct: no known instruction collection" in md and "--observed 'NAME=COLLECTION'" in md
    assert md.count("Observed (") == 3  # never for SmolLM2
    # the per-task table, plots and Figure 6 share the rule: SmolLM2 has no observed mean anywhere
    assert all(r["observed"] is None for r in report["tasks"] if "SmolLM2" in r["label"])
    smol_cells = [c for c in report["instructions"] if "SmolLM2" in c["label"]]
    assert {c["role"] for c in smol_cells} == {"other", "unobserved"} and not any(c["observed"] for c in smol_cells)


def test_override_changes_the_rule_everywhere(runs, tmp_path):
    out = tmp_path / "out"
    assert main([str(runs), "--out", str(out), "--bootstrap", "0", "--no-figures",
                 "--observed", "flan-t5*=p3", "--observed", "*smollm2*=p3,flan2022"]) == 0
    report = json.loads((out / "report.json").read_text())
    flan = _mmlu_row(report, "google/flan-t5-xl")
    assert flan["observed_collections"] == ["p3"] and flan["delta"] == pytest.approx(0.05)
    assert flan["reference"] is None  # the paper's Flan-T5 column is Flan 2022: not comparable
    smol = _mmlu_row(report, "HuggingFaceTB/SmolLM2-135M-Instruct")
    assert smol["observed_collections"] == ["p3", "flan2022"]
    assert smol["observed"]["mean"] == pytest.approx((3 * 0.40 + 5 * 0.50) / 8)
    assert report["config"]["observed_overrides"] == ["flan-t5*=p3", "*smollm2*=p3,flan2022"]


def test_model_matched_on_local_config_and_adapter_base(tmp_path):
    ckpt = tmp_path / "checkpoint-500"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"_name_or_path": "google/flan-t5-base"}))
    assert trained_on(str(ckpt)).collections == ("flan2022",)
    adapter = tmp_path / "my-adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "bigscience/T0pp"}))
    assert trained_on(str(adapter)).collections == ("p3",)  # an adapter folder given as the model
    assert trained_on("/somewhere/tiny", peft=str(adapter)).collections == ("p3",)
    assert trained_on("HuggingFaceTB/SmolLM2-135M-Instruct").collections is None
    assert trained_on("x", rules=(parse_rule("X=alpaca"),)).collections == ("alpaca",)  # case-insensitive


@pytest.mark.parametrize("spec,message", [
    ("flan-t5*", "expected PATTERN=COLLECTION"), ("=p3", "expected PATTERN=COLLECTION"),
    ("m=flan", "unknown collection"), ("m=unobserved", "unknown collection")])
def test_bad_override_is_one_clear_line(runs, tmp_path, capsys, spec, message):
    assert main([str(runs), "--out", str(tmp_path / "out"), "--observed", spec]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_out_naming_a_file_and_rerun_removing_old_figures(tmp_path, capsys):
    a_file = tmp_path / "report.txt"
    a_file.write_text("keep me")
    write_run(tmp_path / "runs", "google/flan-t5-xl", _tasks())
    assert main([str(tmp_path / "runs"), "--out", str(a_file)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(a_file) in err and "existing file" in err and "Traceback" not in err
    assert a_file.read_text() == "keep me"
    # first report: a one-shot run too, so it draws per-setting figures; the rerun has only zero-shot
    write_run(tmp_path / "runs1", "google/flan-t5-xl", {"mmlu_obs_flan2022_01_1shot": 0.5,
                                                        "mmlu_unobs_01_1shot": 0.4}, n_shot=1, stamp="one")
    out = tmp_path / "out"
    (out / "figures").mkdir(parents=True)
    (out / "figures" / "mine.png").write_bytes(b"not ours")
    assert main([str(tmp_path / "runs"), str(tmp_path / "runs1"), "--out", str(out), "--bootstrap", "0"]) == 0
    first = {f["png"] for f in json.loads((out / "report.json").read_text())["figures"]}
    assert "figures/per_instruction_google_flan-t5-xl_1shot.png" in first
    assert main([str(tmp_path / "runs"), "--out", str(out), "--bootstrap", "0"]) == 0
    second = {f["png"] for f in json.loads((out / "report.json").read_text())["figures"]}
    on_disk = {f"figures/{p.name}" for p in (out / "figures").glob("*.png")}
    assert on_disk == second | {"figures/mine.png"}  # stale figures gone, a file we did not write kept
    assert not (out / "figures" / "per_instruction_google_flan-t5-xl_1shot.csv").exists()


def test_budgeted_results_are_refused_by_metadata_or_old_name(tmp_path):
    def results(task: str, meta: dict) -> Path:
        path = tmp_path / task / "results_2026-01-01T00-00-00.json"
        path.parent.mkdir()
        path.write_text(json.dumps({
            "results": {task: {"acc,none": 0.5, "alias": task}},
            "configs": {task: {"task": task, "metadata": meta}},
            "config": {"model": "hf", "model_args": "pretrained=/tmp/tiny"}}))
        return path

    meta = {"collection": "unobserved", "observed": False, "scoring": "letter"}
    with pytest.raises(ReportInputError, match=r"mmlu_unobs_01 is a sparse \(budget 3\).*instrobust estimate"):
        load_results_file(results("mmlu_unobs_01", {**meta, "sparse_budget": 3}))
    with pytest.raises(ReportInputError, match=r"mmlu_unobs_02_b2 is a sparse \(budget 2\)"):
        load_results_file(results("mmlu_unobs_02_b2", meta))
    _, cells, _, _ = load_results_file(results("mmlu_unobs_03", {**meta, "sparse_budget": "all"}))
    assert [c.task for c in cells] == ["mmlu_unobs_03"]


def test_bbl_spread_is_per_task_then_averaged(tmp_path):
    """No instruction sensitivity at all: every instruction scores its task's accuracy."""
    tasks = {f"bbl_strategyqa_obs_flan2022_{i:02d}": 0.8 for i in range(1, 5)}
    tasks |= {f"bbl_winowhy_obs_flan2022_{i:02d}": 0.2 for i in range(1, 5)}
    tasks |= {"bbl_strategyqa_unobs_01": 0.7, "bbl_strategyqa_unobs_02": 0.9,
              "bbl_winowhy_unobs_01": 0.1, "bbl_winowhy_unobs_02": 0.3}
    write_run(tmp_path / "runs", "google/flan-t5-xl", tasks)
    report = make_report([tmp_path / "runs"], tmp_path / "out", ReportConfig(n_boot=0), figures=False)
    row = next(r for r in report["table3"] if r["category"] == "BBL-BC")
    obs, unobs = row["observed"], row["unobserved"]
    assert obs["n_tasks"] == 2 and obs["spread"] == pytest.approx(0.0) and obs["std_within"] == pytest.approx(0.0)
    assert obs["std"] == pytest.approx(0.3)  # over all pairs, as the paper's ±: task difficulty included
    assert obs["cps"] == pytest.approx((0.8 + 0.2) / 2) and obs["min"] == pytest.approx(0.5)
    assert unobs["spread"] == pytest.approx(0.2) and unobs["min"] == pytest.approx((0.7 + 0.1) / 2)
    assert unobs["cps"] == pytest.approx(((1 - 0.1) * 0.9 + (1 - 0.1) * 0.3) / 2)
    # worst instruction: furthest below its task's mean on average (both are 0.1 below: the first wins)
    assert unobs["worst_instruction"] in ("bbl_strategyqa_unobs_01", "bbl_winowhy_unobs_01")
    assert unobs["best_instruction"] in ("bbl_strategyqa_unobs_02", "bbl_winowhy_unobs_02")


def test_figure3_variants_are_observed_only_by_models_trained_on_their_collection(tmp_path):
    variants = {"bbl_crash_blossom_var_closest_01": 0.7, "bbl_crash_blossom_var_negated_01": 0.5,
                "bbl_crash_blossom_unobs_01": 0.4}
    for i, model in enumerate(["google/flan-t5-xl", "HuggingFaceTB/SmolLM2-135M-Instruct"]):
        write_run(tmp_path / "runs", model, variants, stamp=f"v{i}")
    report = make_report([tmp_path / "runs"], tmp_path / "out", ReportConfig(n_boot=0), figures=False)
    observed = {(v["label"], v["variant"]): v["observed"] for v in report["variants"]}
    assert observed[("google/flan-t5-xl", "closest")] is True  # a Flan 2022 instruction, Flan-T5's collection
    assert observed[("HuggingFaceTB/SmolLM2-135M-Instruct", "closest")] is False
    assert not observed[("google/flan-t5-xl", "negated")]


def test_the_papers_own_instructions_are_rows_of_their_own(tmp_path):
    """Collection `paper` (the authors' unobserved sets): never observed, never pooled with ours, its
    Alpaca-prompt set apart, and its Figure-3 variant sets outside Table 3."""
    tasks = {"mmlu_obs_flan2022_01": 0.5, "mmlu_unobs_01": 0.45, "mmlu_paper_01": 0.42, "mmlu_paper_02": 0.44,
             "mmlu_paper_alpaca_01": 0.2, "bbl_conceptual_combinations_obs_flan2022_01": 0.6,
             "bbl_conceptual_combinations_unobs_01": 0.5, "bbl_conceptual_combinations_paper_01": 0.55,
             "bbl_conceptual_combinations_paper_newly_01": 0.3}
    write_run(tmp_path / "runs", "google/flan-t5-xl", tasks)
    report = make_report([tmp_path / "runs"], tmp_path / "out", ReportConfig(n_boot=0), figures=False)
    mmlu = _mmlu_row(report, "google/flan-t5-xl")
    assert mmlu["delta"] == pytest.approx(-0.05)  # ours vs Flan 2022 only
    assert mmlu["other"]["paper"]["mean"] == pytest.approx(0.43) and mmlu["other"]["paper_alpaca"]["mean"] == 0.2
    qa = next(r for r in report["table3"] if r["category"] == "BBL-QA")
    assert qa["other"]["paper"]["n_instructions"] == 1  # the newly-collected variant is not in Table 3
    assert "paper_newly" in {v["variant"] for v in report["variants"]}
    md = (tmp_path / "out" / "report.md").read_text()
    assert "|  | the paper's unobserved | 43.0 ± 1.0 (n=2) |" in md
