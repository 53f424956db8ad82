"""`instrobust report` on hand-written lm-eval output directories with known numbers.

The directories follow lm-eval 0.4's layout exactly (tests/fixtures/report/lmeval_files.py; the
real harness writes the same in tests/test_report_harness.py), so every expected value below is
arithmetic on the accuracies we wrote.
"""
from __future__ import annotations

import json
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

from instrobust.errors import InstrobustError
from instrobust.report import ReportConfig, ReportInputError, build_report, load, main, make_report
from instrobust.report.tasks import BBL_LITE_TYPES, classify

FIXTURES = Path(__file__).parent / "fixtures" / "report"
sys.path.insert(0, str(FIXTURES))
from lmeval_files import write_run  # noqa: E402

OBS = {"mmlu_obs_flan2022_01": 0.48, "mmlu_obs_flan2022_02": 0.50}  # observed by Flan-T5 (trained on Flan 2022)
OTHER = {"mmlu_obs_p3_01": 0.46}  # P3: a collection Flan-T5 was not trained on
UNOBS = {"mmlu_unobs_01": 0.44, "mmlu_unobs_02": 0.47}


def _row(report: dict, label: str, category: str, n_shot: int = 0) -> dict:
    return next(r for r in report["table3"]
                if r["label"] == label and r["category"] == category and r["n_shot"] == n_shot)


def _check_png(path: Path) -> None:
    import matplotlib.image

    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] >= 200 and img.shape[1] >= 300, img.shape
    assert float(np.ptp(img[..., :3])) > 0.2  # not a blank canvas


# --- categorization ------------------------------------------------------------------------------

@pytest.mark.parametrize("task,config,expected", [
    ("mmlu_unobs_07", None, ("mmlu", "MMLU", "unobserved", False)),
    ("mmlu_obs_flan2022_12", None, ("mmlu", "MMLU", "flan2022", True)),
    ("mmlu_cloze_obs_p3_03", None, ("mmlu", "MMLU (cloze)", "p3", True)),
    ("bbl_play_dialog_same_or_different_obs_alpaca_02", None,
     ("play_dialog_same_or_different", "BBL-BC", "alpaca", True)),
    ("bbl_bbq_lite_json_unobs_04", None, ("bbq_lite_json", "BBL-QA", "unobserved", False)),
    ("bbl_vitaminc_fact_verification_flan2022_01_1shot", None,
     ("vitaminc_fact_verification", "BBL-MC", "flan2022", True)),
    # metadata wins over the name
    ("bbl_mytask_x_01", {"metadata": {"collection": "p3", "observed": True, "task_type": "mc", "bbl_task": "mytask"}},
     ("mytask", "BBL-MC", "p3", True)),
    ("bbl_crash_blossom_var_negated_02", None, ("crash_blossom", "BBL", "negated", False)),
    ("bbl_winowhy_designer_01", None, ("winowhy", "BBL-BC", "designer", False)),
    # the variant-study tasks as instrobust.generate writes them
    ("bbl_crash_blossom_var_incorrect_01", {"metadata": {
        "collection": "flan2022", "observed": True, "scoring": "cloze", "task_type": "mc",
        "bbl_task": "crash_blossom", "variant": "incorrect"}}, ("crash_blossom", "BBL-MC", "flan2022", True)),
])
def test_classify(task, config, expected):
    info = classify(task, config)
    assert (info.benchmark, info.category, info.collection, info.observed) == expected
    assert (info.variant is not None) == ("_var_" in task)
    assert info.variant_study == (info.benchmark == "crash_blossom")


def test_classify_rejects_foreign_tasks_and_knows_all_bbl_lite():
    assert classify("arc_easy") is None and classify("mmlu_abstract_algebra") is None
    assert classify("bbl_unknown_task_p3_01") is None
    assert len(BBL_LITE_TYPES) == 14
    assert sorted(BBL_LITE_TYPES.values()).count("qa") == 8 and sorted(BBL_LITE_TYPES.values()).count("bc") == 4
    assert classify("bbl_conceptual_combinations_var_closest_01").variant == "closest"
    assert not classify("bbl_conceptual_combinations_unobs_01").variant_study  # a BBL Lite task: in Table 3
    assert classify("mmlu_unobs_01_1shot").shots_in_name == 1


# --- exact arithmetic ----------------------------------------------------------------------------

def test_table3_numbers_and_paper_reference(tmp_path):
    write_run(tmp_path / "runs", "google/flan-t5-xl", {**OBS, **OTHER, **UNOBS})
    report = make_report([tmp_path / "runs"], tmp_path / "out", ReportConfig(n_boot=500))
    row = _row(report, "google/flan-t5-xl", "MMLU")
    obs, unobs = np.array(list(OBS.values())), np.array(list(UNOBS.values()))
    assert row["observed_collections"] == ["flan2022"]
    assert row["observed"]["mean"] == pytest.approx(obs.mean())
    assert row["observed"]["std"] == pytest.approx(obs.std())
    assert row["unobserved"]["mean"] == pytest.approx(unobs.mean())
    assert row["other"]["p3"]["mean"] == pytest.approx(0.46)  # its own row, never pooled into "observed"
    assert row["delta"] == pytest.approx(unobs.mean() - obs.mean())
    assert row["observed"]["worst_instruction"] == "mmlu_obs_flan2022_01"
    assert row["observed"]["cps"] == pytest.approx((1 - (0.50 - obs.mean())) * 0.50)
    # no samples: CI over instructions only, and the report says so
    assert row["delta_ci"]["method"] == "instructions" and row["delta_ci"]["kind"] == "bootstrap"
    assert "over instructions" in row["delta_ci"]["description"]
    assert row["delta_ci"]["low"] <= row["delta"] <= row["delta_ci"]["high"]
    assert "--log_samples" in row["delta_ci_note"]
    assert row["reference"]["model"] == "Flan-T5-XL"
    assert row["reference"]["observed_mean"] == pytest.approx(0.481)
    md = (tmp_path / "out" / "report.md").read_text()
    assert "Paper (Flan-T5-XL, observed = Flan 2022): obs / unobs / Δ | 48.1 / 47.5 / ↓ 0.6" in md
    assert f"| Observed (Flan 2022) | {100 * obs.mean():.1f} ± {100 * obs.std():.1f} (n=2)" in md
    assert "| P3 (not trained on) | 46.0 (n=1)" in md
    assert "Intervals (95%, bootstrap): percentile bootstrap over instructions" in md
    assert f"↓ {100 * (obs.mean() - unobs.mean()):.1f}" in md
    assert "average those accuracies over instructions" in md


def test_pooled_option_weights_by_items(tmp_path):
    # two BBL-BC tasks of very different size: pooled and instruction-mean differ
    tasks = {"bbl_strategyqa_obs_flan2022_01": [1.0] * 9 + [0.0],  # 0.9 on 10 items
             "bbl_winowhy_obs_flan2022_01": [1.0] * 10 + [0.0] * 30,  # 0.25 on 40 items
             "bbl_strategyqa_unobs_01": [1.0] * 5 + [0.0] * 5,
             "bbl_winowhy_unobs_01": [1.0] * 20 + [0.0] * 20}
    write_run(tmp_path / "runs", "google/flan-t5-base", tasks)
    mean_rep = make_report([tmp_path / "runs"], tmp_path / "a", ReportConfig(n_boot=200), figures=False)
    pooled_rep = make_report([tmp_path / "runs"], tmp_path / "b", ReportConfig(n_boot=200, pooled=True), figures=False)
    m, p = _row(mean_rep, "google/flan-t5-base", "BBL-BC"), _row(pooled_rep, "google/flan-t5-base", "BBL-BC")
    assert m["observed_headline"] == pytest.approx((0.9 + 0.25) / 2)
    assert p["observed_headline"] == pytest.approx(19 / 50)
    assert m["observed"]["pooled_mean"] == pytest.approx(19 / 50)  # always in the JSON
    assert p["delta"] == pytest.approx(25 / 50 - 19 / 50)
    assert p["delta_ci"]["estimate"] == pytest.approx(p["delta"])  # the CI is about the same statistic
    assert m["delta_ci"]["estimate"] == pytest.approx(m["delta"])
    assert m["delta_ci"]["method"] == "items+instructions"
    assert "pool examples over all instructions" in (tmp_path / "b" / "report.md").read_text()


def test_samples_give_pss_and_two_way_ci(tmp_path):
    a = [1, 0, 1, 1, 0, 1, 0, 1]
    b = [1, 1, 1, 0, 0, 1, 0, 1]
    c = [0, 0, 1, 0, 0, 1, 0, 0]
    d = [0, 1, 1, 0, 0, 0, 0, 1]
    write_run(tmp_path / "runs", "bigscience/T0_3B", {"mmlu_obs_p3_01": a, "mmlu_obs_p3_02": b,
                                                     "mmlu_unobs_01": c, "mmlu_unobs_02": d})
    report = make_report([tmp_path / "runs"], tmp_path / "out", ReportConfig(n_boot=1000), figures=False)
    row = _row(report, "bigscience/T0_3B", "MMLU")
    assert row["observed_collections"] == ["p3"] and row["reference"]["observed_n"] == 13
    assert row["observed"]["pss"] == pytest.approx(np.mean(np.abs(np.array(a) - np.array(b))))
    assert row["unobserved"]["pss"] == pytest.approx(np.mean(np.abs(np.array(c) - np.array(d))))
    assert row["delta_ci"]["method"] == "items+instructions" and row["delta_ci_note"] is None
    assert row["delta_ci"]["low"] < row["delta"] < row["delta_ci"]["high"]
    # the generated task YAMLs plan more instructions than these two per side
    assert all(re.fullmatch(r"(un)?observed: 2 of \d+ planned task-instruction pairs", p) for p in row["partial"])


def test_adapter_vs_base_cluster_test_and_changes(tmp_path):
    base = {"mmlu_obs_flan2022_01": [1, 1, 0, 0, 1, 0], "mmlu_unobs_01": [0, 1, 0, 0, 1, 0]}
    adapted = {"mmlu_obs_flan2022_01": [1, 1, 1, 0, 1, 0], "mmlu_unobs_01": [1, 1, 1, 0, 0, 1]}
    write_run(tmp_path / "base", "google/flan-t5-xl", base)
    write_run(tmp_path / "peft", "google/flan-t5-xl", adapted, peft="/ckpt/prefix-kl", stamp="2026-01-02T00-00-00.1")
    report = make_report([tmp_path / "base", tmp_path / "peft"], tmp_path / "out", ReportConfig(n_boot=500),
                         figures=False)
    (cmp,) = report["comparisons"]
    assert cmp["base_label"] == "google/flan-t5-xl" and cmp["adapter_label"] == "google/flan-t5-xl + prefix-kl"
    # per item, adapter - base averaged over the 2 instructions: [.5, 0, 1, 0, -.5, .5]; items flip as clusters
    test = cmp["test"]
    assert "sign-flip" in test["test"] and test["n_items"] == 6
    assert test["statistic"] == pytest.approx(1.5 / 6)
    # exact p: sign patterns of the nonzero |d| = (.5, 1, .5, .5) with |sum| >= 1.5: 8 of 16
    assert test["p_value"] == pytest.approx(8 / 16, abs=0.015)
    assert cmp["acc_change"] == pytest.approx((4 / 6 + 4 / 6) / 2 - (3 / 6 + 2 / 6) / 2)
    assert cmp["delta_change"] == pytest.approx((4 / 6 - 4 / 6) - (2 / 6 - 3 / 6))
    assert cmp["delta_change_ci"]["low"] <= cmp["delta_change"] <= cmp["delta_change_ci"]["high"]
    # the adapter has no paper reference; the base model has one
    assert _row(report, "google/flan-t5-xl + prefix-kl", "MMLU")["reference"] is None
    assert _row(report, "google/flan-t5-xl", "MMLU")["reference"] is not None


def test_full_report_sections_figures_and_schema(tmp_path):
    runs = tmp_path / "runs"
    for model, base in (("google/flan-t5-small", 0.30), ("google/flan-t5-base", 0.35), ("google/flan-t5-xl", 0.48)):
        tasks = {t: base + 0.01 * i for i, t in enumerate(OBS)} | {t: base - 0.02 for t in UNOBS}
        tasks |= {"bbl_strategyqa_obs_flan2022_01": base + 0.2, "bbl_strategyqa_obs_alpaca_01": base + 0.18,
                  "bbl_strategyqa_unobs_01": base + 0.1, "bbl_strategyqa_unobs_02": base + 0.12}
        write_run(runs / "zero", model, tasks, stamp=model[-3:])
    write_run(runs / "one", "google/flan-t5-xl", {"mmlu_obs_flan2022_01_1shot": 0.5, "mmlu_unobs_01_1shot": 0.45},
              n_shot=1, stamp="one")
    variants = {f"bbl_{task}_{v}_01": acc + shift for v, acc in
                (("var_closest", 0.7), ("var_incorrect", 0.6), ("var_negated", 0.55), ("designer", 0.5),
                 ("unobs", 0.45), ("var_nonsensical", 0.3))
                for task, shift in (("crash_blossom", 0.0), ("conceptual_combinations", 0.1))}
    variants["bbl_conceptual_combinations_obs_flan2022_01"] = 0.65  # a BBL Lite task: its regular cells are Table 3's
    write_run(runs / "variants", "google/flan-t5-xl", variants, stamp="var")
    out = tmp_path / "out"
    assert main([str(runs), "--out", str(out), "--bootstrap", "300", "--seed", "1"]) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["schema_version"] == "1.0"
    assert set(report) >= {"config", "inputs", "models", "instructions", "table3", "collections", "tasks",
                           "variants", "comparisons", "rankings", "figures", "notes"}
    assert report["config"]["seed"] == 1 and report["config"]["n_boot"] == 300
    # one-shot runs are a separate table; variant tasks never enter Table 3
    assert {(r["n_shot"], r["category"]) for r in report["table3"]} == {
        (0, "MMLU"), (0, "BBL-QA"), (0, "BBL-BC"), (1, "MMLU")}
    assert _row(report, "google/flan-t5-xl", "MMLU", 1)["delta"] == pytest.approx(-0.05)
    qa = _row(report, "google/flan-t5-xl", "BBL-QA")  # conceptual_combinations: obs, unobs and designer
    assert qa["observed"]["mean"] == pytest.approx(0.65) and qa["unobserved"]["mean"] == pytest.approx(0.55)
    assert qa["designer"]["mean"] == pytest.approx(0.6) and qa["delta"] == pytest.approx(-0.10)
    assert [v["variant"] for v in report["variants"]] == ["closest", "incorrect", "negated", "designer",
                                                          "unobserved", "nonsensical"]
    assert report["variants"][0]["mean"] == pytest.approx(0.75)  # (0.7 + 0.8) / 2 over the two benchmarks
    assert report["variants"][0]["n_benchmarks"] == 2 and report["variants"][0]["observed"]
    assert not report["variants"][2]["observed"]  # negated
    colls = {(r["label"], r["category"], r["collection"]): r for r in report["collections"] if r["n_shot"] == 0}
    assert colls[("google/flan-t5-xl", "MMLU", "flan2022")]["summary"]["mean"] == pytest.approx(0.485)
    tasks = {(r["label"], r["benchmark"]): r for r in report["tasks"] if r["n_shot"] == 0}
    # Flan-T5 observed Flan 2022 only: the Alpaca instruction is not part of its observed mean
    assert tasks[("google/flan-t5-small", "strategyqa")]["delta"] == pytest.approx(0.11 - 0.20)
    (rank_mmlu,) = [r for r in report["rankings"] if r["category"] == "MMLU" and r["n_shot"] == 0]
    assert rank_mmlu["mean_tau"] == pytest.approx(1.0)  # every instruction ranks small < base < xl
    sizes = [m["size"] for m in report["models"]]
    assert sizes == sorted(sizes) and sizes[0] == pytest.approx(80e6)
    md = (out / "report.md").read_text()
    for heading in ("(paper Table 3)", "zero-shot", "1-shot", "Per instruction collection", "Per task",
                    "Instruction variants (paper Figure 3)", "Robustness statistics", "Kendall",
                    "| Task designer |", "newly collected (unobserved)"):
        assert heading in md
    figures = {Path(f["png"]).name for f in report["figures"]}
    assert {"delta_vs_size_flan-t5_0shot.png", "obs_vs_unobs_by_model_0shot.png",
            "per_instruction_google_flan-t5-xl_1shot.png", "variants_google_flan-t5-xl_0shot.png",
            "degradation_by_setting_google_flan-t5-xl.png"} <= figures
    for f in report["figures"]:
        _check_png(out / f["png"])
        assert (out / f["csv"]).stat().st_size > 0
    size_csv = (out / "figures" / "delta_vs_size_flan-t5_0shot.csv").read_text().splitlines()
    assert size_csv[0].startswith("family,model,size")
    small_mmlu = next(line for line in size_csv if "flan-t5-small" in line and ",MMLU," in line)
    assert float(small_mmlu.split(",")[-1]) == pytest.approx(_row(report, "google/flan-t5-small", "MMLU")["delta"])


def test_summary_functions_take_plain_dicts():
    """The group summary and the whole report work from plain numbers (for estimators that are not lm-eval)."""
    from instrobust.report import Cell, ModelInfo, summarize

    s = summarize({"i1": 0.2, "i2": 0.4})
    assert s.mean == pytest.approx(0.3) and s.spread == pytest.approx(0.2)
    models = {"m": ModelInfo(key="m", label="m", pretrained="bigscience/T0_3B")}  # trained on P3
    cells = [Cell(model="m", task=f"mmlu_unobs_0{i}", benchmark="mmlu", category="MMLU", collection="unobserved",
                  observed=False, acc=a, estimated={"method": "irt", "budget": 50}) for i, a in ((1, 0.3), (2, 0.5))]
    cells.append(Cell(model="m", task="mmlu_obs_p3_01", benchmark="mmlu", category="MMLU", collection="p3",
                      observed=True, acc=0.45))
    report = build_report(cells, models, ReportConfig(n_boot=0))
    row = report["table3"][0]
    assert row["delta"] == pytest.approx(0.4 - 0.45) and row["delta_ci"] is None
    assert report["instructions"][1]["estimated"] == {"method": "irt", "budget": 50}


# --- bad input -----------------------------------------------------------------------------------

def test_empty_directory_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ReportInputError, match="no lm-eval results_.*json found"):
        load([tmp_path / "empty"])
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "instrobust report: error:" in err and str(tmp_path / "empty") in err and "Traceback" not in err
    assert issubclass(ReportInputError, InstrobustError)
    with pytest.raises(ReportInputError, match="no such file"):
        load([tmp_path / "nope"])


def test_foreign_task_set_is_rejected_or_listed(tmp_path):
    arc = FIXTURES / "arc_easy"
    with pytest.raises(ReportInputError, match="arc_easy"):
        load([arc])
    write_run(tmp_path / "ours", "google/flan-t5-xl", {**OBS, **UNOBS})
    copied = tmp_path / "mixed"
    shutil.copytree(arc, copied / "arc")
    shutil.copytree(tmp_path / "ours", copied / "ours")
    report = make_report([copied], tmp_path / "out", ReportConfig(n_boot=0), figures=False)
    assert any("arc_easy" in n and "not instrobust tasks" in n for n in report["notes"])
    assert "arc_easy" in (tmp_path / "out" / "report.md").read_text()


def test_missing_categories_are_marked_partial_never_zero(tmp_path):
    write_run(tmp_path / "runs", "google/flan-t5-xl", {**OBS, **UNOBS, "bbl_strategyqa_obs_flan2022_01": 0.6,
                                                      "bbl_strategyqa_unobs_01": 0.5})
    write_run(tmp_path / "runs", "google/flan-t5-base", {**OBS}, stamp="base")  # no unobserved, no BBL
    report = make_report([tmp_path / "runs"], tmp_path / "out", ReportConfig(n_boot=100), figures=False)
    missing = _row(report, "google/flan-t5-base", "BBL-BC")
    assert missing["missing"] and missing["observed"] is None and missing["delta"] is None
    assert any("no BBL-BC tasks" in p for p in missing["partial"])
    half = _row(report, "google/flan-t5-base", "MMLU")
    assert half["delta"] is None and half["unobserved"] is None and "no unobserved instructions" in half["partial"]
    md = (tmp_path / "out" / "report.md").read_text()
    assert "— (missing) †" in md and "no unobserved instructions" in md
    base_rows = [line for line in md.splitlines() if "flan-t5-base" in line and "| Observed (Flan 2022) |" in line]
    assert base_rows and " 0.0 " not in base_rows[0]


def test_corrupt_inputs_name_the_file(tmp_path):
    bad = tmp_path / "bad" / "m"
    bad.mkdir(parents=True)
    (bad / "results_x.json").write_text("{not json")
    with pytest.raises(ReportInputError, match="results_x.json"):
        load([tmp_path / "bad"])
    (bad / "results_x.json").write_text(json.dumps({"config": {}}))
    with pytest.raises(ReportInputError, match="no 'results' section"):
        load([tmp_path / "bad"])
    # accuracy out of range
    path = write_run(tmp_path / "range", "m", {"mmlu_unobs_01": 0.5})
    data = json.loads(path.read_text())
    data["results"]["mmlu_unobs_01"]["acc,none"] = 57.0
    path.write_text(json.dumps(data))
    with pytest.raises(ReportInputError, match=r"mmlu_unobs_01.*expected an accuracy in \[0, 1\]"):
        load([tmp_path / "range"])
    # a samples file that does not belong to the results file
    path = write_run(tmp_path / "mismatch", "m", {"mmlu_unobs_01": [1.0, 0.0, 0.0, 0.0]})
    data = json.loads(path.read_text())
    data["results"]["mmlu_unobs_01"]["acc,none"] = 0.75
    path.write_text(json.dumps(data))
    with pytest.raises(ReportInputError, match="samples_mmlu_unobs_01.*not from this run"):
        load([tmp_path / "mismatch"])


def test_metadata_absent_falls_back_on_names(tmp_path):
    tasks = {"bbl_winowhy_obs_flan2022_01": 0.7, "bbl_winowhy_unobs_01": 0.6,
             "bbl_language_identification_obs_p3_01": 0.3, "bbl_language_identification_unobs_01": 0.2}
    write_run(tmp_path / "runs", "m", tasks, with_metadata=False)
    loaded = load([tmp_path / "runs"])
    cats = {c.task: c.category for c in loaded.cells}
    assert cats["bbl_winowhy_unobs_01"] == "BBL-BC" and cats["bbl_language_identification_obs_p3_01"] == "BBL-MC"
    table3 = build_report(loaded.cells, loaded.models, ReportConfig(n_boot=0, observed=("m=flan2022",)))["table3"]
    assert table3[0]["category"] == "BBL-BC" and table3[0]["delta"] == pytest.approx(-0.1)


def test_newer_run_wins_when_a_task_repeats(tmp_path):
    write_run(tmp_path / "runs" / "old", "m", {"mmlu_unobs_01": 0.2, "mmlu_obs_p3_01": 0.3}, stamp="a", date=1.0)
    write_run(tmp_path / "runs" / "new", "m", {"mmlu_unobs_01": 0.4}, stamp="b", date=2.0)
    loaded = load([tmp_path / "runs"])
    accs = {c.task: c.acc for c in loaded.cells}
    assert accs == {"mmlu_unobs_01": 0.4, "mmlu_obs_p3_01": 0.3}
    assert any("using the newer run" in n for n in loaded.notes)


def test_results_file_path_and_string_model_args(tmp_path):
    path = write_run(tmp_path / "runs", "google/flan-t5-xl", {**OBS, **UNOBS})
    data = json.loads(path.read_text())
    data["config"]["model_args"] = "pretrained=google/flan-t5-xl,peft=/ckpt/kl-prefix,dtype=bfloat16"
    path.write_text(json.dumps(data))
    loaded = load([path])
    (model,) = loaded.models.values()
    assert (model.pretrained, model.peft, model.label) == (
        "google/flan-t5-xl", "/ckpt/kl-prefix", "google/flan-t5-xl + kl-prefix")
    assert len(loaded.cells) == len(OBS) + len(UNOBS)
    other = tmp_path / "runs" / "notes.txt"
    other.write_text("hello")
    with pytest.raises(ReportInputError, match="expected an lm-eval results_"):
        load([other])
