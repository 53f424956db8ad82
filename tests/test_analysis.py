"""`instrobust analyze`: task resolution, distances, the accuracy join and fit, figures, the CLI end to
end on a tiny real model with a real PEFT adapter, and clear errors on bad input."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from instrobust.analysis import (AnalysisError, AnalysisTask, Representations, Row, check_comparable,
                                 instruction_distances, linear_fit, load_accuracies, main, nearest_distances,
                                 resolve_tasks)
from instrobust.analysis.run import summarize
from instrobust.cli import main as cli_main
from instrobust.errors import InstrobustError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _task(name: str, observed: bool, source: str = "mmlu", category: str = "MMLU") -> AnalysisTask:
    return AnalysisTask(name=name, instruction=name, observed=observed, collection="p3" if observed else "unobserved",
                        benchmark="mmlu" if source == "mmlu" else "bbl", source=source, category=category,
                        scoring="letter")


# --- task resolution -------------------------------------------------------------------------

def test_groups_resolve_to_instruction_tasks():
    tasks = resolve_tasks(["mmlu_observed_p3", "mmlu_unobs_07", "mmlu_unobserved"])
    names = [t.name for t in tasks]
    assert names[:13] == [f"mmlu_obs_p3_{i:02d}" for i in range(1, 14)]
    assert names.count("mmlu_unobs_07") == 1  # named twice, listed once
    assert len(tasks) == 13 + 24
    t = tasks[0]
    assert (t.instruction, t.observed, t.collection, t.source, t.category) == (
        "mmlu_obs_p3_01", True, "p3", "mmlu", "MMLU")
    assert {t.observed for t in tasks[13:]} == {False}
    cloze = resolve_tasks(["mmlu_cloze_unobs_07"])[0]
    assert (cloze.instruction, cloze.category, cloze.scoring) == ("mmlu_unobs_07", "MMLU (cloze)", "cloze")


def test_bbl_tasks_carry_their_pool_and_category():
    tasks = resolve_tasks(["bbl_hindu_knowledge_obs_p3_01", "bbl_winowhy_unobserved"])
    assert (tasks[0].instruction, tasks[0].source, tasks[0].category) == ("bbl_qa_obs_p3_01", "hindu_knowledge", "BBL-QA")
    assert {(t.source, t.category, t.observed) for t in tasks[1:]} == {("winowhy", "BBL-BC", False)}


def test_unknown_task_name_is_a_clear_error():
    with pytest.raises(AnalysisError, match=r"unknown lm-eval task or group 'mmlu_unobs_7'.*Did you mean .*mmlu_unobs_07"):
        resolve_tasks(["mmlu_observed_p3", "mmlu_unobs_7"])


def test_few_shot_is_never_analysed(tmp_path):
    # one-shot runs are `--num_fewshot 1` on the zero-shot task names: there is no _1shot task to analyse
    with pytest.raises(AnalysisError, match="unknown lm-eval task or group 'mmlu_unobs_07_1shot'.*mmlu_unobs_07"):
        resolve_tasks(["mmlu_unobs_07_1shot"])
    # and their accuracies are not joined to the zero-shot prompt's representation
    path = _lm_eval_results(tmp_path, {"u": 0.9})
    data = json.loads(path.read_text())
    data["n-shot"] = {"u": 1}
    path.write_text(json.dumps(data))
    _lm_eval_results(tmp_path, {"v": 0.4}, stamp="2026-02-01T00-00-00.000001")
    acc = load_accuracies([tmp_path])
    assert acc.acc == {"v": 0.4} and any("few-shot" in n for n in acc.notes)


def test_task_set_without_observed_instructions_is_a_clear_error():
    with pytest.raises(AnalysisError, match="no observed instructions to compare to on 'mmlu'.*mmlu_observed_flan2022"):
        check_comparable(resolve_tasks(["mmlu_unobs_01", "mmlu_unobs_02"]))
    # Observed MMLU does not help a BBL pool: comparisons are on the same examples.
    with pytest.raises(AnalysisError, match="on 'winowhy'.*bbl_winowhy_observed_flan2022"):
        check_comparable(resolve_tasks(["mmlu_observed_p3", "mmlu_unobs_01", "bbl_winowhy_unobs_01"]))
    with pytest.raises(AnalysisError, match="no unobserved instructions"):
        check_comparable(resolve_tasks(["mmlu_observed_p3"]))


# --- distances -------------------------------------------------------------------------------

def test_distance_of_an_instruction_to_itself_is_zero():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(3, 5, 8))  # 3 instructions x 5 examples
    d, k = nearest_distances(vectors[1], vectors)
    assert np.array_equal(d, np.zeros(5)) and np.array_equal(k, np.ones(5))
    d, _ = nearest_distances(vectors[1], vectors[[0, 2]])
    assert (d > 0).all()


def test_known_geometry_gives_known_neighbour_and_mean():
    # Two examples in the plane. Observed o1 at the origin, o2 at (10, 0) on both.
    # Unobserved u: (3, 4) on example 0 (nearest o1, distance 5), (9, 0) on example 1 (nearest o2, distance 1).
    tasks = {n: _task(n, obs) for n, obs in (("o1", True), ("o2", True), ("u", False))}
    points = {("o1", 0): (0, 0), ("o1", 1): (0, 0), ("o2", 0): (10, 0), ("o2", 1): (10, 0),
              ("u", 0): (3, 4), ("u", 1): (9, 0)}
    rows = [Row(t, t, "mmlu", d) for (t, d) in points]
    reps = Representations(np.array(list(points.values()), dtype=np.float32), rows, tasks)
    by_task = {d.task: d for d in instruction_distances(reps)}
    u = by_task["u"]
    assert u.mean == pytest.approx(3.0) and u.std == pytest.approx(2.0)
    assert u.nearest in ("o1", "o2") and u.nearest_share == pytest.approx(0.5)
    # Observed reference: each observed instruction against the other one, 10 apart on both examples.
    assert by_task["o1"].mean == pytest.approx(10.0) and by_task["o1"].nearest == "o2"
    summary = summarize(reps, None)
    (cat,) = summary["categories"]
    assert (cat["category"], cat["n_unobserved"], cat["mean"], cat["observed_reference"]) == ("MMLU", 1, 3.0, 10.0)


def test_rows_missing_an_example_are_refused():
    tasks = {"o": _task("o", True), "u": _task("u", False)}
    rows = [Row("o", "o", "mmlu", 0), Row("o", "o", "mmlu", 1), Row("u", "u", "mmlu", 0), Row("u", "u", "mmlu", 2)]
    reps = Representations(np.zeros((4, 2), dtype=np.float32), rows, tasks)
    with pytest.raises(AnalysisError, match="task 'u' has vectors for other examples"):
        instruction_distances(reps)


# --- accuracies, degradation, fit ------------------------------------------------------------

def test_linear_fit_matches_scipy():
    from scipy.stats import linregress

    x, y = [1.0, 2.0, 3.5, 4.0, 6.0], [-0.5, -1.8, -2.9, -4.4, -5.2]
    fit, ref = linear_fit(x, y), linregress(x, y)
    assert (fit.slope, fit.intercept, fit.r, fit.p, fit.n) == pytest.approx(
        (ref.slope, ref.intercept, ref.rvalue, ref.pvalue, 5))
    exact = linear_fit([0, 1, 2], [5, 3, 1])
    assert (exact.slope, exact.intercept, exact.r) == pytest.approx((-2.0, 5.0, -1.0))
    assert linear_fit([1, 2], [1, 2]) is None and linear_fit([1, 1, 1], [1, 2, 3]) is None


def _lm_eval_results(folder: Path, accs: dict[str, float], pretrained: str = "/m/tiny",
                     stamp: str = "2026-01-01T00-00-00.000001") -> Path:
    """An lm-eval output folder as lm-eval 0.4 lays it out (known numbers for exact arithmetic)."""
    sub = folder / pretrained.strip("/").replace("/", "__")
    sub.mkdir(parents=True, exist_ok=True)
    data = {"results": {t: {"alias": t, "acc,none": a, "acc_stderr,none": 0.01} for t, a in accs.items()},
            "config": {"model": "hf", "model_args": {"pretrained": pretrained}}}
    path = sub / f"results_{stamp}.json"
    path.write_text(json.dumps(data))
    return path


def test_accuracies_and_degradation_from_lm_eval_folders(tmp_path):
    _lm_eval_results(tmp_path / "r", {"o1": 0.5, "o2": 0.7, "u": 0.45, "mmlu_observed_p3": 0.6})
    # A later rerun of one task replaces the earlier number.
    _lm_eval_results(tmp_path / "r", {"u": 0.40}, stamp="2026-02-01T00-00-00.000001")
    acc = load_accuracies([tmp_path / "r"])
    assert acc.acc["u"] == 0.40 and acc.model == "/m/tiny" and len(acc.files) == 2
    tasks = {n: _task(n, obs) for n, obs in (("o1", True), ("o2", True), ("u", False))}
    rows = [Row(t, t, "mmlu", d) for t in tasks for d in (0, 1)]
    vecs = np.array([[0, 0], [0, 0], [10, 0], [10, 0], [3, 4], [9, 0]], dtype=np.float32)
    run = summarize(Representations(vecs, rows, tasks), acc)
    (u,) = [r for r in run["instructions"] if r["task"] == "u"]
    assert u["degradation"] == pytest.approx(100 * (0.40 - 0.6))  # minus the mean observed accuracy
    assert run["categories"][0]["degradation"] == pytest.approx(-20.0)
    assert run["points"] == [{"task": "u", "category": "MMLU", "distance": pytest.approx(3.0),
                              "degradation": pytest.approx(-20.0)}]


def test_equal_degradations_give_an_undefined_r_not_a_crash(tmp_path):
    from instrobust.analysis.plots import degradation_plot
    from instrobust.analysis.render import render_markdown
    from instrobust.report.build import json_safe as _clean

    tasks = {n: _task(n, n.startswith("o")) for n in ("o1", "o2", "u1", "u2", "u3")}
    rows = [Row(t, t, "mmlu", d) for t in tasks for d in (0, 1)]
    vecs = np.arange(20, dtype=np.float32).reshape(10, 2)
    acc = load_accuracies([_lm_eval_results(tmp_path, {"o1": 0.5, "o2": 0.5, "u1": 0.4, "u2": 0.4, "u3": 0.4})])
    run = summarize(Representations(vecs, rows, tasks), acc)
    assert run["fit"]["slope"] == pytest.approx(0.0) and np.isnan(run["fit"]["r"])
    fig = degradation_plot(run["points"], linear_fit([p["distance"] for p in run["points"]], [-10.0] * 3),
                           tmp_path / "f.png", "t")
    assert (tmp_path / fig["file"]).read_bytes().startswith(PNG_MAGIC)
    report = _clean({"definition": {"distance": "d", "degradation": "g"}, "runs": {"base": run}})
    assert "r = –" in render_markdown(report)


def test_results_of_several_models_are_refused(tmp_path):
    _lm_eval_results(tmp_path, {"u": 0.4}, pretrained="/m/a")
    _lm_eval_results(tmp_path, {"u": 0.5}, pretrained="/m/b")
    with pytest.raises(AnalysisError, match="mixes several models: /m/a .*/m/b"):
        load_accuracies([tmp_path])
    (tmp_path / "empty").mkdir()
    with pytest.raises(AnalysisError, match="empty: no lm-eval results_"):
        load_accuracies([tmp_path / "empty"])


def test_report_json_is_read(tmp_path):
    report = {"instructions": [{"model": "m", "task": "u", "acc": 0.25, "n_shot": 0},
                               {"model": "m", "task": "u_1shot", "acc": 0.9, "n_shot": 1}]}
    (tmp_path / "report.json").write_text(json.dumps(report))
    acc = load_accuracies([tmp_path])
    assert acc.acc == {"u": 0.25}


# --- figures ---------------------------------------------------------------------------------

def test_tsne_plot_is_a_real_png(tmp_path):
    import matplotlib.image

    from instrobust.analysis.plots import tsne_plot

    rng = np.random.default_rng(0)
    tasks = {n: _task(n, obs) for n, obs in (("o1", True), ("o2", True), ("u", False))}
    rows = [Row(t, t, "mmlu", d) for t in tasks for d in range(4)]
    vectors = rng.normal(size=(12, 16)).astype(np.float32)
    vectors[8:] += 5.0  # the unobserved instruction sits apart
    fig = tsne_plot(Representations(vectors, rows, tasks), "mmlu", tmp_path / "t.png", perplexity=3)
    data = (tmp_path / "t.png").read_bytes()
    assert data.startswith(PNG_MAGIC) and fig["n_points"] == 12
    assert matplotlib.image.imread(tmp_path / "t.png").shape[:2] == (600, 660)


# --- the command, end to end -----------------------------------------------------------------

TASKS = "mmlu_obs_p3_01,mmlu_obs_p3_03,mmlu_unobs_01,mmlu_unobs_07,mmlu_unobs_12"
# Few examples, and only the last 96 prompt tokens (the tiny byte-level tokenizer makes prompts long).
# The tiny T5 was trained on no collection: treat it as a P3 model (T0's collection), so P3 is observed.
FAST = ["--n-examples", "3", "--max-length", "96", "--observed", "tiny_t5*=p3"]


@pytest.fixture(scope="module")
def adapter(tiny_t5, tmp_path_factory) -> Path:
    import torch
    from peft import PrefixTuningConfig, TaskType, get_peft_model
    from transformers import AutoModelForSeq2SeqLM

    model = AutoModelForSeq2SeqLM.from_pretrained(tiny_t5)
    cfg = PrefixTuningConfig(task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=4,
                             token_dim=model.config.num_heads * model.config.d_kv)
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("prefix")
    get_peft_model(model, cfg).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def analysed(tiny_t5, adapter, data_dir, tmp_path_factory) -> Path:
    """One run of the command with an adapter and results for both models."""
    root = tmp_path_factory.mktemp("analysis")
    accs = {"mmlu_obs_p3_01": 0.30, "mmlu_obs_p3_03": 0.40, "mmlu_unobs_01": 0.20, "mmlu_unobs_07": 0.35,
            "mmlu_unobs_12": 0.25}
    _lm_eval_results(root / "res_base", accs, pretrained=str(tiny_t5))
    _lm_eval_results(root / "res_peft", {**accs, "mmlu_unobs_01": 0.32}, pretrained=str(tiny_t5))
    out = root / "out"
    rc = main(["--model", str(tiny_t5), "--peft", str(adapter), "--tasks", TASKS, *FAST,
               "--seed", "0", "--out", str(out), "--device", "cpu", "--batch-size", "8", "--no-progress",
               "--results", str(root / "res_base"), "--peft-results", str(root / "res_peft")])
    assert rc == 0
    return out


def test_command_writes_tables_figures_and_vectors(analysed):
    report = json.loads((analysed / "analysis.json").read_text())
    assert set(report["runs"]) == {"base", "peft"}
    base = report["runs"]["base"]
    assert base["meta"]["layer"] == -2 and base["n_rows"] == 5 * 3
    unobs = [r for r in base["instructions"] if not r["observed"]]
    assert [r["task"] for r in unobs] == ["mmlu_unobs_01", "mmlu_unobs_07", "mmlu_unobs_12"]
    assert all(r["mean"] > 0 and r["nearest"] in ("mmlu_obs_p3_01", "mmlu_obs_p3_03") for r in unobs)
    # Degradation = accuracy - mean observed accuracy (0.35), in points.
    assert [r["degradation"] for r in unobs] == pytest.approx([-15.0, 0.0, -10.0])
    assert base["fit"]["n"] == 3
    (cat,) = base["categories"]
    assert cat["mean"] == pytest.approx(np.mean([r["mean"] for r in unobs]))
    # Table 6: distances of both runs, and the accuracy change on the same tasks.
    (row,) = report["before_after"]
    peft = report["runs"]["peft"]["categories"][0]
    assert row["distance_before"] == cat["mean"] and row["distance_after"] == peft["mean"]
    assert row["distance_before"] != row["distance_after"]
    assert row["acc_unobserved_change"] == pytest.approx(0.04)
    assert row["acc_observed_change"] == pytest.approx(0.0)
    files = {f["file"] for f in report["figures"]}
    assert files == {"figures/tsne_mmlu_base.png", "figures/tsne_mmlu_peft.png",
                     "figures/degradation_vs_distance_base.png", "figures/degradation_vs_distance_peft.png"}
    for f in files:
        assert (analysed / f).read_bytes().startswith(PNG_MAGIC)
    md = (analysed / "analysis.md").read_text()
    assert "Table 4" in md and "Table 6" in md and "mmlu_unobs_07" in md
    index = [json.loads(line) for line in (analysed / "representations/base/rows.jsonl").read_text().splitlines()]
    assert len(index) == 15 and index[0]["task"] == "mmlu_obs_p3_01" and {"instruction", "doc_id"} <= set(index[0])
    assert np.load(analysed / "representations/base/vectors.npy").shape == (15, 32)


def test_adapter_run_differs_and_base_run_is_the_plain_model(analysed, tiny_t5, tmp_path):
    base = np.load(analysed / "representations/base/vectors.npy")
    peft = np.load(analysed / "representations/peft/vectors.npy")
    assert np.linalg.norm(peft - base, axis=1).min() > 1e-3
    rc = main(["--model", str(tiny_t5), "--tasks", TASKS, *FAST, "--out", str(tmp_path),
               "--device", "cpu", "--no-progress", "--no-tsne"])
    assert rc == 0
    np.testing.assert_allclose(np.load(tmp_path / "representations/base/vectors.npy"), base, atol=1e-6)


def test_from_saved_recomputes_without_the_model(analysed, tmp_path):
    rc = cli_main(["analyze", "--from-saved", str(analysed), "--out", str(tmp_path), "--no-tsne"])
    assert rc == 0
    again = json.loads((tmp_path / "analysis.json").read_text())
    first = json.loads((analysed / "analysis.json").read_text())
    for label in ("base", "peft"):
        assert again["runs"][label]["categories"][0]["mean"] == first["runs"][label]["categories"][0]["mean"]
        assert again["runs"][label]["fit"] is None  # no --results this time


def test_command_errors_are_one_clear_line(capsys, tmp_path, tiny_t5):
    rc = main(["--model", str(tiny_t5), "--tasks", "mmlu_unobs_01,mmlu_unobs_02", "--out", str(tmp_path), *FAST])
    err = capsys.readouterr().err
    assert rc == 2 and "error: no observed instructions to compare to on 'mmlu'" in err and "Traceback" not in err
    # without --observed the tiny model has no known collection: nothing is observed by it
    rc = main(["--model", str(tiny_t5), "--tasks", TASKS, "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert rc == 2 and "no known instruction collection" in err and "--observed" in err and err.count("\n") == 1
    rc = main(["--model", str(tiny_t5), "--tasks", "mmlu_nonsense", "--out", str(tmp_path)])
    assert rc == 2 and "unknown lm-eval task or group 'mmlu_nonsense'" in capsys.readouterr().err
    rc = main(["--from-saved", str(tmp_path / "nothing"), "--out", str(tmp_path)])
    assert rc == 2 and "no vectors.npy there" in capsys.readouterr().err
    rc = main(["--model", str(tiny_t5), "--tasks", TASKS, "--out", str(tmp_path), "--results", str(tmp_path / "nope")])
    assert rc == 2 and "--results" in capsys.readouterr().err
    rc = main(["--from-saved", str(tmp_path), "--tasks", TASKS, "--out", str(tmp_path)])
    assert rc == 2 and "drop --model, --peft and --tasks" in capsys.readouterr().err
    assert issubclass(AnalysisError, InstrobustError)


def test_collection_that_cannot_load_is_a_clear_error(data_dir):
    from instrobust.analysis.extract import build_rows
    from instrobust.harness import bank_for

    if "alpaca" not in bank_for("mmlu", True).skipped:
        pytest.skip("the Alpaca instructions load here")
    with pytest.raises(AnalysisError, match="task 'mmlu_obs_alpaca_01'.*'alpaca'.*not (be )?loaded.*mmlu_observed_p3"):
        build_rows(resolve_tasks(["mmlu_observed_alpaca", "mmlu_unobs_01"]), 1, 0)


def test_nearest_observed_and_degradation_use_the_models_own_collection(tmp_path):
    """Flan-T5 observed Flan 2022 only: Alpaca is a collection it was not trained on, never a reference."""
    from dataclasses import replace

    from instrobust.analysis.run import own_collections, relabel

    assert own_collections("google/flan-t5-xl", None, ()) == ("flan2022",)
    assert own_collections("/x/tiny", None, ("*tiny=alpaca",)) == ("alpaca",)
    with pytest.raises(AnalysisError, match="no known instruction collection for .*SmolLM2.*--observed"):
        own_collections("HuggingFaceTB/SmolLM2-135M-Instruct", None, ())
    colls = {"f1": "flan2022", "f2": "flan2022", "a1": "alpaca", "u1": "unobserved"}
    tasks = relabel([replace(_task(n, True), collection=c) for n, c in colls.items()], ("flan2022",))
    assert {t.name: t.observed for t in tasks} == {"f1": True, "f2": True, "a1": False, "u1": False}
    rows = [Row(t.name, t.name, "mmlu", d) for t in tasks for d in (0, 1)]
    # f1, f2 at x = 0 and 10; a1 at x = 1 (nearest f1: 1); u1 at x = 7 (nearest f2: 3)
    vecs = np.array([[0, 0], [0, 0], [10, 0], [10, 0], [1, 0], [1, 0], [7, 0], [7, 0]], dtype=np.float32)
    acc = load_accuracies([_lm_eval_results(tmp_path, {"f1": 0.5, "f2": 0.5, "a1": 0.3, "u1": 0.45})])
    run = summarize(Representations(vecs, rows, {t.name: t for t in tasks}), acc)
    (cat,) = run["categories"]
    assert (cat["n_unobserved"], cat["mean"], cat["degradation"]) == (1, pytest.approx(3.0), pytest.approx(-5.0))
    (other,) = run["other_collections"]
    assert (other["collection"], other["mean"], other["degradation"]) == ("alpaca", pytest.approx(1.0),
                                                                          pytest.approx(-20.0))
    assert [p["task"] for p in run["points"]] == ["u1"]  # the Figure-5 fit is about ours
