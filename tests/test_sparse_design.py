"""Sparse designs: deterministic, balanced, every item covered, the budget respected; the design groups
and the loader (a budget is run-time metadata on the ordinary tasks)."""
from __future__ import annotations

from collections import Counter

import pytest

from instrobust.sparse.design import SparseDesignError, pool_items, pool_order, sparse_design, sparse_subset

CASES = [(500, 63, 2), (500, 24, 1), (14042, 24, 2), (97, 13, 4), (40, 24, 8), (7, 3, 2), (30, 30, 1)]


@pytest.mark.parametrize("n, m, b", CASES)
def test_balanced_and_covering(n, m, b):
    design = sparse_design(n, m, b, seed=3)
    assert len(design) == m
    sizes = [len(s) for s in design]
    # the group costs exactly b single-instruction runs, spread as evenly as possible
    assert sum(sizes) == n * b
    assert max(sizes) - min(sizes) <= 1
    for s in design:
        assert list(s) == sorted(set(s)) and all(0 <= i < n for i in s)  # sorted, no repeats
    # every item is seen by exactly b different instructions
    seen = Counter(i for s in design for i in s)
    assert set(seen) == set(range(n)) and set(seen.values()) == {b}
    # subsets differ across instructions (at most a few coincidences in tiny designs)
    assert len(set(design)) >= m - 1


def test_same_seed_same_subsets_other_seed_other_subsets():
    a = [sparse_subset(500, 63, k, 2, seed=7) for k in range(63)]
    assert a == [sparse_subset(500, 63, k, 2, seed=7) for k in range(63)]
    assert a == [list(s) for s in sparse_design(500, 63, 2, 7)]
    b = [sparse_subset(500, 63, k, 2, seed=8) for k in range(63)]
    assert sum(x != y for x, y in zip(a, b)) >= 60
    # pinned values: the design must not drift across versions (runs with the same seed stay comparable)
    assert sparse_subset(20, 4, 0, 2, seed=0) == sparse_subset(20, 4, 0, "2", seed=0) == [
        0, 4, 7, 8, 10, 12, 15, 17, 18, 19]
    assert sparse_subset(20, 4, 3, 2, seed=0) == [1, 2, 3, 4, 6, 7, 8, 10, 12, 18]
    assert pool_items(14042, 5) == [8761, 9142, 9217, 11031, 13917]


def test_linking_is_not_a_chain():
    """Instructions share items with many others (random linking), not only with neighbours."""
    design = sparse_design(2000, 40, 2, seed=0)
    partners = {k: set() for k in range(40)}
    owners: dict[int, list[int]] = {}
    for k, s in enumerate(design):
        for i in s:
            owners.setdefault(i, []).append(k)
    for a, b in owners.values():
        partners[a].add(b)
        partners[b].add(a)
    assert min(len(p) for p in partners.values()) >= 20


def test_full_design_when_budget_reaches_the_group_size():
    assert sparse_design(10, 3, 4, 0) == tuple(tuple(range(10)) for _ in range(3))
    assert sparse_design(10, 3, "all", 0) == tuple(tuple(range(10)) for _ in range(3))


@pytest.mark.parametrize("args, message", [
    ((10, 63, 2, 0), "some instructions\nwould see no item"),
    ((10, 3, 0, 0), "sparse_budget must be an integer >= 1"),
    ((10, 3, "two", 0), "sparse_budget must be a positive integer"),
    ((0, 3, 2, 0), "n_items must be an integer >= 1"),
    ((10, 3, 2, -1), "seed must be an integer >= 0"),
])
def test_bad_designs_are_refused(args, message):
    with pytest.raises(SparseDesignError) as err:
        sparse_design(*args)
    assert message.split("\n")[0] in str(err.value)


def test_index_out_of_range():
    with pytest.raises(SparseDesignError, match="instruction index must be in 0..2"):
        sparse_subset(10, 3, 3, 2)


def test_pools_are_seeded_sorted_and_nested():
    small, big = pool_items(14042, 100), pool_items(14042, 500)
    assert small == sorted(small) and len(set(big)) == 500
    assert set(small) <= set(big)
    assert small == pool_items(14042, 100, pool_seed=0) != pool_items(14042, 100, pool_seed=1)
    assert pool_items(50, None) == list(range(50)) == pool_items(50, 80)
    assert sorted(pool_order(14042)[:500]) == big


def test_every_task_names_its_collection_group_as_design_group():
    from instrobust.bbl.tasks import task_specs
    from instrobust.generate import mmlu_tasks
    from instrobust.sparse.tasks import design_groups, design_members

    groups = design_groups()
    for t in [*mmlu_tasks(), *task_specs()]:
        assert t.instruction in groups[t.design_group], t.name
    # one collection per design group: P3 no longer shares Flan's design (issue 13)
    assert design_members("mmlu_observed_p3") == [f"mmlu_obs_p3_{i:02d}" for i in range(1, 14)]
    assert design_members("mmlu_cloze_observed_p3") == design_members("mmlu_observed_p3")
    assert len(design_members("mmlu_observed_flan2022")) == 50 and len(design_members("mmlu_unobserved")) == 24
    assert all(i.startswith("bbl_bc_obs_p3_") for i in design_members("bbl_winowhy_observed_p3"))
    assert design_members("bbl_winowhy_designer") == ["bbl_winowhy_designer_01"]
    assert not [g for g in groups if g.endswith(("_observed", "_observed_all"))]
    # an explicit sparse_group override may still name a pooled group
    assert len(design_members("mmlu_observed_all")) == 83


@pytest.mark.parametrize("group, n_members", [("mmlu_observed_p3", 13), ("mmlu_cloze_observed_flan2022", 50)])
def test_a_collection_group_costs_exactly_its_budget(data_dir, group, n_members):
    """Running the group with sparse_budget 2 over 200 items evaluates 2 x 200 documents in all."""
    from instrobust.generate import mmlu_tasks
    from instrobust.harness import load_mmlu
    from instrobust.sparse.loader import available_members

    tasks = [t for t in mmlu_tasks() if t.design_group == group]
    assert len(tasks) == n_members == len(available_members(group))
    seen = Counter()
    for t in tasks:  # the task YAML's metadata, plus what `--metadata` adds at run time
        meta = {"collection": t.collection, "scoring": t.scoring, "sparse_group": t.design_group, "sparse_seed": 0,
                "sparse_budget": 2, "sparse_n_items": 200}
        seen.update(load_mmlu(instruction=t.instruction, **meta)["test"]["item"])
    assert sum(seen.values()) == 400 and len(seen) == 200 and set(seen.values()) == {2}


def test_a_bbl_task_collection_group_costs_exactly_its_budget(data_dir):
    from instrobust.bbl.tasks import task_specs
    from instrobust.harness import load_bbl

    specs = [s for s in task_specs() if s.design_group == "bbl_winowhy_observed_flan2022"]
    assert len(specs) == 18 and {s.collection for s in specs} == {"flan2022"}
    seen = Counter()
    for s in specs:
        test = load_bbl(instruction=s.instruction, bbl_task="winowhy", sparse_group=s.design_group, sparse_seed=0,
                        sparse_budget=2, sparse_n_items=50)["test"]
        seen.update(test["item"])
    assert sum(seen.values()) == 2 * 50 and len(seen) == 50 and set(seen.values()) == {2}


def test_loader_keeps_the_design_share_with_pool_indices(data_dir):
    from instrobust.harness import load_mmlu
    from instrobust.sparse.loader import available_members

    members = available_members("mmlu_unobserved")
    assert len(members) == 24
    meta = {"sparse_group": "mmlu_unobserved", "sparse_budget": 2, "sparse_seed": 5, "sparse_n_items": 60,
            "collection": "unobserved", "observed": False, "scoring": "letter"}
    pool = pool_items(14042, 60)
    seen = Counter()
    for k, iid in enumerate(members):
        test = load_mmlu(instruction=iid, **meta)["test"]
        want = [pool[i] for i in sparse_subset(60, 24, k, 2, seed=5)]
        assert test["item"] == want and set(test["instruction"]) == {iid}
        seen.update(want)
    assert set(seen) == set(pool) and set(seen.values()) == {2}
    # the row content is the pool's row: the item index is an index into the full test split
    from instrobust.mmlu.data import mmlu_split

    row = load_mmlu(instruction=members[0], **meta)["test"][0]
    assert row["question"] == mmlu_split("test")[row["item"]]["question"]


def test_loader_errors_name_the_problem(data_dir):
    from instrobust.harness import load_mmlu

    with pytest.raises(SparseDesignError, match="not one of the available instructions of sparse_members"):
        load_mmlu(instruction="mmlu_unobs_01", sparse_group="mmlu_unobserved", sparse_budget=2,
                  sparse_members=["mmlu_unobs_02", "mmlu_unobs_03"])
    with pytest.raises(SparseDesignError, match="would see no item"):
        load_mmlu(instruction="mmlu_unobs_01", sparse_group="mmlu_unobserved", sparse_budget=1, sparse_n_items=5)
    with pytest.raises(Exception, match="unknown sparse design group 'mmlu_everything'"):
        load_mmlu(instruction="mmlu_unobs_01", sparse_group="mmlu_everything", sparse_budget=1)


def test_bbl_loader_splits_a_task_pool(data_dir):
    from instrobust.harness import load_bbl
    from instrobust.sparse.loader import available_members

    members = available_members("bbl_strategyqa_unobserved")
    assert len(members) >= 2 and all(m.startswith("bbl_strategyqa_unobs_") for m in members)
    sizes, seen = [], Counter()
    for iid in members:
        test = load_bbl(instruction=iid, bbl_task="strategyqa", sparse_group="bbl_strategyqa_unobserved",
                        sparse_budget=1, sparse_n_items=50)["test"]
        sizes.append(test.num_rows)
        seen.update(test["item"])
    assert sum(sizes) == 50 and max(sizes) - min(sizes) <= 1 and set(seen.values()) == {1}
