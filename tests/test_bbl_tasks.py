"""Generated BBL and MMLU task/group YAMLs: names, metadata, group membership against the bank,
and no file lm-eval would index for nothing (one-shot and budgets are run-time options)."""
from __future__ import annotations

import pytest
import yaml

from instrobust import generate
from instrobust.bbl import BBL14, TASKS, VARIANT_TASKS
from instrobust.bbl.instructions import planned_observed_ids, unobserved_files
from instrobust.bbl.tasks import group_members, task_specs



class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):
    """YAML as lm-eval's index reads it: ``!function utils.f`` left unresolved (as ``!utils.f``)."""


_Loader.add_constructor("!function", lambda loader, node: "!" + loader.construct_scalar(node))


@pytest.fixture(scope="module")
def generated() -> dict[str, dict]:
    """Parsed YAML of every file the generator writes (the committed ones must equal them)."""
    return {rel: yaml.load(text, Loader=_Loader) for rel, text in generate.all_files().items()}


def test_committed_yamls_are_up_to_date():
    assert generate.stale_files() == [], "run `python -m instrobust.generate`"


def test_one_file_per_task_and_group_and_nothing_else(generated):
    tasks = [cfg["task"] for cfg in generated.values() if "task" in cfg and "group" not in cfg]
    groups = [cfg["group"] for cfg in generated.values() if "group" in cfg]
    assert len(tasks) == len(set(tasks)) == len(task_specs()) + len(generate.mmlu_tasks())
    # (observed + unobserved) x (letter, cloze), and the paper's 20 general + 33 Alpaca ones (letters)
    assert len(generate.mmlu_tasks()) == 2 * (83 + 24) + 20 + 33
    assert len(groups) == len(group_members()) + len(generate.mmlu_groups()) == 105 + 10 + 30 + 2  # + paper groups
    assert len(generated) == len(tasks) + len(groups) and all(rel.endswith(".yaml") for rel in generated)
    # one-shot is --num_fewshot 1 and a budget is --metadata, not a twin file per task
    assert not [n for n in tasks + groups if n.endswith(("_1shot", "_b1", "_b2", "_b4", "_b8"))]
    # every key a task needs is in its own file: an include would be parsed again per file at index time
    assert not [rel for rel, cfg in generated.items() if "include" in cfg]


def test_lm_eval_indexes_every_file_as_its_task_or_group(generated):
    """What a bare `lm_eval` sees after `pip install .`: lm-eval's own index over the folder."""
    from lm_eval.tasks._index import Kind, TaskIndex

    index = TaskIndex.build([generate.TASKS_DIR])
    want = {cfg.get("group") or cfg["task"]: Kind.GROUP if "group" in cfg else Kind.TASK for cfg in generated.values()}
    assert {name: entry.kind for name, entry in index.items()} == want  # none skipped, no tag, no duplicate


def test_task_metadata_and_instruction_fit(generated):
    bbl = {rel: cfg for rel, cfg in generated.items() if rel.startswith("bbl/") and "group" not in cfg}
    assert len(bbl) == len(task_specs())
    for rel, cfg in bbl.items():
        meta, name, iid = cfg["metadata"], cfg["task"], cfg["dataset_kwargs"]["instruction"]
        assert set(meta) >= {"collection", "observed", "scoring", "task_type", "bbl_task", "sparse_group"}, rel
        assert rel == f"bbl/{name}.yaml"  # beside the utils.py glue its !function lines name
        assert meta["task_type"] == TASKS[meta["bbl_task"]].task_type
        assert cfg.get("num_fewshot") is None and cfg["fewshot_split"] == "heldout"
        assert cfg["custom_dataset"] == "!utils.load_bbl"  # the glue module beside the YAMLs
        assert not set(meta) & set(cfg["dataset_kwargs"])  # both reach custom_dataset as kwargs
        if "_obs_" in name:  # an observed instruction of the task's own type, same collection and number
            assert iid == name.replace(f"bbl_{meta['bbl_task']}_", f"bbl_{meta['task_type']}_")
            assert meta["observed"] is True and meta["collection"] in ("flan2022", "alpaca", "p3")
            assert meta["sparse_group"] == f"bbl_{meta['bbl_task']}_observed_{meta['collection']}"
        else:
            assert iid == name
    assert "bbl/bbl_winowhy_unobs_03.yaml" in bbl and "bbl/bbl_winowhy_obs_flan2022_02.yaml" in bbl
    assert bbl["bbl/bbl_winowhy_unobs_03.yaml"]["metadata"]["sparse_group"] == "bbl_winowhy_unobserved"
    assert bbl["bbl/bbl_winowhy_designer_01.yaml"]["metadata"]["sparse_group"] == "bbl_winowhy_designer"


def test_group_membership_matches_the_bank(generated):
    groups = {cfg["group"]: cfg["task"] for cfg in generated.values() if "group" in cfg}
    obs = {t: {c: len(ids) for c, ids in planned_observed_ids(t).items()} for t in ("qa", "bc", "mc")}
    n_tasks = {t: len([n for n in BBL14 if TASKS[n].task_type == t]) for t in ("qa", "bc", "mc")}
    for t in ("qa", "bc", "mc"):
        assert len(groups[f"bbl_{t}_observed_all"]) == n_tasks[t] * sum(obs[t].values())
        for c in ("flan2022", "alpaca", "p3"):
            assert len(groups[f"bbl_{t}_observed_{c}"]) == n_tasks[t] * obs[t][c]
        assert len(groups[f"bbl_{t}_unobserved"]) == sum(len(unobserved_files(n)) for n in BBL14 if TASKS[n].task_type == t)
        assert len(groups[f"bbl_{t}_designer"]) == n_tasks[t]
    assert (8 * 83, 4 * 36, 2 * 63) == tuple(len(groups[f"bbl_{t}_observed_all"]) for t in ("qa", "bc", "mc"))
    assert sorted(groups["bbl_observed_all"]) == sorted(sum((groups[f"bbl_{t}_observed_all"] for t in ("qa", "bc", "mc")), []))
    assert len(groups["bbl_unobserved"]) == sum(len(unobserved_files(n)) for n in BBL14)
    # per BBL task: one group per collection (the model's own), and the pooled one named as such
    assert [len(groups[f"bbl_winowhy_observed_{c}"]) for c in ("flan2022", "alpaca", "p3")] == [18, 11, 7]
    assert len(groups["bbl_winowhy_observed_all"]) == 36 and groups["bbl_winowhy_observed_all"][0] == "bbl_winowhy_obs_flan2022_01"
    assert all(m.startswith("bbl_winowhy_obs_p3_") for m in groups["bbl_winowhy_observed_p3"])
    for variant in ("closest", "incorrect", "negated", "designer", "nonsensical"):
        members = groups[f"bbl_variant_{variant}"]
        assert len(members) == 7 and {m.split("_var_")[0].split("_designer")[0] for m in members} == {f"bbl_{t}" for t in VARIANT_TASKS}
    assert len(groups["bbl_variant_newly_collected"]) == sum(len(unobserved_files(t)) for t in VARIANT_TASKS)
    task_names = {cfg["task"] for cfg in generated.values() if "task" in cfg and "group" not in cfg}
    for group, members in groups.items():
        assert set(members) <= task_names, group
    assert group_members().keys() == {g for g in groups if g.startswith("bbl_")}


def test_pooled_groups_say_so_in_their_name(generated):
    groups = {cfg["group"]: cfg["task"] for cfg in generated.values() if "group" in cfg}
    meta = {cfg["task"]: cfg["metadata"] for cfg in generated.values() if "group" not in cfg}
    for old in ("mmlu_observed", "mmlu_cloze_observed", "bbl_observed", "bbl_qa_observed", "bbl_winowhy_observed"):
        assert old not in groups and f"{old}_all" in groups
    for group, members in groups.items():
        collections = {meta[m]["collection"] for m in members}
        if "_observed" in group:  # one collection per observed group, unless the name says "all"
            assert (len(collections) > 1) == group.endswith("_observed_all"), group


def test_mmlu_task_names_groups_and_metadata(generated):
    mmlu = {cfg["task"]: cfg for rel, cfg in generated.items() if rel.startswith("mmlu/") and "group" not in cfg}
    assert {"mmlu_unobs_07", "mmlu_obs_flan2022_12", "mmlu_cloze_obs_p3_03", "mmlu_obs_alpaca_05"} <= mmlu.keys()
    cfg = mmlu["mmlu_cloze_obs_p3_03"]
    assert cfg["dataset_kwargs"] == {"instruction": "mmlu_obs_p3_03"}
    assert cfg["metadata"]["scoring"] == "cloze" and cfg["metadata"]["sparse_group"] == "mmlu_cloze_observed_p3"
    # option texts: lm-eval's default multiple_choice metrics (acc, acc_norm); letters: acc alone
    assert "metric_list" not in cfg and [m["metric"] for m in mmlu["mmlu_unobs_07"]["metric_list"]] == ["acc"]
    assert mmlu["mmlu_unobs_07"]["metadata"]["sparse_group"] == "mmlu_unobserved"
    groups = {cfg["group"]: cfg["task"] for rel, cfg in generated.items() if rel.startswith("mmlu/") and "group" in cfg}
    for prefix in ("mmlu", "mmlu_cloze"):
        sizes = [len(groups[f"{prefix}_{g}"]) for g in ("observed_flan2022", "observed_alpaca", "observed_p3",
                                                        "unobserved", "observed_all")]
        assert sizes == [50, 20, 13, 24, 83]
    assert groups["mmlu_observed_p3"] == [f"mmlu_obs_p3_{i:02d}" for i in range(1, 14)]


@pytest.mark.slow
def test_a_wheel_install_serves_every_kind_of_run_to_a_bare_lm_eval(tiny_t5, data_dir, tmp_path):
    """`pip install .` (a wheel, not editable) puts the YAMLs inside lm_eval/tasks/instrobust/, where a
    bare `lm_eval` finds a task, a one-shot run and a budgeted group."""
    import json
    import os
    import shutil
    import subprocess
    import sys
    import zipfile
    from pathlib import Path

    import lm_eval

    repo = Path(generate.__file__).resolve().parents[1]
    src = tmp_path / "src"  # build from a copy: an in-tree build would write build/ into the checkout
    shutil.copytree(repo, src, ignore=shutil.ignore_patterns(".git", "*.egg-info", "__pycache__", "build", "out"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path / "whl"), str(src)], check=True, timeout=900)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    site = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    # lm-eval only scans its own tasks folder: give the venv its own lm-eval to install next to
    shutil.copytree(Path(lm_eval.__file__).parent, Path(site) / "lm_eval", ignore=shutil.ignore_patterns("__pycache__"))
    wheel = next((tmp_path / "whl").glob("instrobust-*.whl"))
    zipfile.ZipFile(wheel).extractall(site)  # what installing a pure-Python wheel does with its files
    assert sum(1 for _ in (Path(site) / "lm_eval" / "tasks" / "instrobust").rglob("*.yaml")) == len(generate.all_files())
    env = {**os.environ, "PYTHONPATH": ""}
    runs = {"one": ["--tasks", "mmlu_unobs_07", "--limit", "2"],
            "shot": ["--tasks", "bbl_winowhy_unobs_01", "--num_fewshot", "1", "--limit", "1"],
            "budget": ["--tasks", "mmlu_observed_p3", "--metadata", '{"sparse_budget": 2, "sparse_n_items": 20}']}
    for name, args in runs.items():
        proc = subprocess.run([python, "-m", "lm_eval", "run", "--model", "hf", "--model_args", f"pretrained={tiny_t5}",
                               "--device", "cpu", "--output_path", str(tmp_path / name), *args],
                              capture_output=True, text=True, env=env, cwd=tmp_path, timeout=900)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert "overrides existing task" not in proc.stderr
        out = json.loads(next((tmp_path / name).rglob("results_*.json")).read_text())
        assert all(cfg["metadata"]["config_source"].startswith(site) for cfg in out["configs"].values())
        if name == "shot":
            assert out["n-shot"]["bbl_winowhy_unobs_01"] == 1
        if name == "budget":  # 13 P3 instructions share 20 items twice over: 2 x 20 documents
            assert sum(n["effective"] for n in out["n-samples"].values()) == 40
            assert {cfg["metadata"]["sparse_budget"] for cfg in out["configs"].values()} == {2}
