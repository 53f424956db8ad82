"""Generated BBL task/group YAMLs: names, metadata, group membership against the bank."""
from __future__ import annotations

import pytest
import yaml

from instrobust import generate
from instrobust.bbl import BBL14, TASKS, VARIANT_TASKS
from instrobust.bbl.instructions import planned_observed_ids, unobserved_files
from instrobust.bbl.tasks import group_members, task_specs

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@pytest.fixture(scope="module")
def generated() -> dict[str, dict]:
    """Parsed YAML of the BBL and MMLU files the generator writes (the committed ones must equal them)."""
    from instrobust.bbl.tasks import bbl_files

    files = {**generate.mmlu_files(), **bbl_files(generate.HEADER)}
    return {rel: yaml.load(text, Loader=_LOADER) for rel, text in files.items() if rel.endswith(".yaml")}


def test_committed_yamls_are_up_to_date():
    stale = [f for f in generate.stale_files() if f.startswith(("bbl/", "mmlu/"))]
    assert stale == [], "run `python -m instrobust.generate`"


def test_task_metadata_and_instruction_fit(generated):
    bbl = {rel: cfg for rel, cfg in generated.items() if rel.startswith("bbl/") and "task" in cfg and "group" not in cfg}
    assert len(bbl) == 2 * len(task_specs())
    for rel, cfg in bbl.items():
        meta, name, iid = cfg["metadata"], cfg["task"], cfg["dataset_kwargs"]["instruction"]
        assert set(meta) >= {"collection", "observed", "scoring", "task_type", "bbl_task"}, rel
        assert rel == f"bbl/{meta['bbl_task']}/{name}.yaml"
        assert meta["task_type"] == TASKS[meta["bbl_task"]].task_type and meta["scoring"] == "cloze"
        assert cfg.get("num_fewshot") is None and cfg["include"] == ("../_bbl_1shot_yaml" if name.endswith("_1shot") else "../_bbl_yaml")
        if "_obs_" in name:  # an observed instruction of the task's own type, same collection and number
            assert iid == name.replace(f"bbl_{meta['bbl_task']}_", f"bbl_{meta['task_type']}_").removesuffix("_1shot")
            assert meta["observed"] is True and meta["collection"] in ("flan2022", "alpaca", "p3")
        else:
            assert iid == name.removesuffix("_1shot")
    from instrobust.bbl.tasks import bbl_files

    assert yaml.safe_load(bbl_files(generate.HEADER)["bbl/_bbl_1shot_yaml"])["num_fewshot"] == 1
    assert "bbl/winowhy/bbl_winowhy_unobs_03.yaml" in bbl and "bbl/winowhy/bbl_winowhy_obs_flan2022_02_1shot.yaml" in bbl


def test_group_membership_matches_the_bank(generated):
    groups = {cfg["group"]: cfg["task"] for cfg in generated.values() if "group" in cfg}
    obs = {t: {c: len(ids) for c, ids in planned_observed_ids(t).items()} for t in ("qa", "bc", "mc")}
    n_tasks = {t: len([n for n in BBL14 if TASKS[n].task_type == t]) for t in ("qa", "bc", "mc")}
    for t in ("qa", "bc", "mc"):
        assert len(groups[f"bbl_{t}_observed"]) == n_tasks[t] * sum(obs[t].values())
        for c in ("flan2022", "alpaca", "p3"):
            assert len(groups[f"bbl_{t}_observed_{c}"]) == n_tasks[t] * obs[t][c]
        assert len(groups[f"bbl_{t}_unobserved"]) == sum(len(unobserved_files(n)) for n in BBL14 if TASKS[n].task_type == t)
        assert len(groups[f"bbl_{t}_designer"]) == n_tasks[t]
    assert (8 * 83, 4 * 36, 2 * 63) == tuple(len(groups[f"bbl_{t}_observed"]) for t in ("qa", "bc", "mc"))
    assert sorted(groups["bbl_observed"]) == sorted(sum((groups[f"bbl_{t}_observed"] for t in ("qa", "bc", "mc")), []))
    assert len(groups["bbl_unobserved"]) == sum(len(unobserved_files(n)) for n in BBL14)
    assert len(groups["bbl_winowhy_observed"]) == 36 and groups["bbl_winowhy_observed"][0] == "bbl_winowhy_obs_flan2022_01"
    for variant in ("closest", "incorrect", "negated", "designer", "nonsensical"):
        members = groups[f"bbl_variant_{variant}"]
        assert len(members) == 7 and {m.split("_var_")[0].split("_designer")[0] for m in members} == {f"bbl_{t}" for t in VARIANT_TASKS}
    assert len(groups["bbl_variant_newly_collected"]) == sum(len(unobserved_files(t)) for t in VARIANT_TASKS)
    # one-shot twins list the one-shot tasks; every member is a generated task
    task_names = {cfg["task"] for cfg in generated.values() if "task" in cfg and "group" not in cfg}
    for group, members in groups.items():
        if group.endswith("_1shot"):
            assert members == [m + "_1shot" for m in groups[group.removesuffix("_1shot")]]
        assert set(members) <= task_names, group
    assert group_members().keys() == {g for g in groups if g.startswith("bbl_") and not g.endswith("_1shot")}


def test_mmlu_task_names_unchanged_and_have_one_shot_twins(generated):
    mmlu = {cfg["task"] for rel, cfg in generated.items() if rel.startswith("mmlu/") and "task" in cfg and "group" not in cfg}
    zero = {t for t in mmlu if not t.endswith("_1shot")}
    assert {"mmlu_unobs_07", "mmlu_obs_flan2022_12", "mmlu_cloze_obs_p3_03", "mmlu_obs_alpaca_05"} <= zero
    assert {t + "_1shot" for t in zero} == mmlu - zero
    cfg = generated["mmlu/mmlu_unobs_07_1shot.yaml"]
    assert cfg["num_fewshot"] == 1 and cfg["dataset_kwargs"]["instruction"] == "mmlu_unobs_07"
    assert generated["mmlu/mmlu_observed_1shot.yaml"]["task"][0].endswith("_1shot")
