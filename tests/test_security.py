"""Templates are data: no template file and no upstream or data text can run code.

Each test plants a payload that would create a marker file if Jinja ever reached Python objects
(a template rendered outside the sandbox, or data text compiled as template source), then
checks the payload is refused with a clear error or renders as plain text, and that the marker
was never created.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from instrobust.upstream import parsers
from instrobust.bank import Instruction, check_bbl_template, check_qa_template, render
from instrobust.bbl import instructions as bbl
from instrobust.errors import TemplateRenderError
from instrobust.upstream.collections import p3_template

REPO = Path(__file__).resolve().parents[1]


def _payload(marker: Path) -> str:
    return "{{ cycler.__init__.__globals__.os.popen('touch " + str(marker) + "').read() }}"


def _breakout(marker: Path) -> str:
    """Data text that escapes the old {% raw %} wrapping if it were compiled as template source."""
    return "Answer the question. {% endraw %}" + _payload(marker) + "{% raw %}"


def test_a_template_reaching_python_is_refused_naming_its_file(tmp_path):
    marker = tmp_path / "pwned.txt"
    ins = Instruction(id="mmlu_unobs_99", benchmark="mmlu", collection="unobserved", task_type="qa",
                      template="{{ question }}\n" + _payload(marker),
                      provenance={"file": "templates/unobserved/mmlu/99.jinja"})
    with pytest.raises(TemplateRenderError, match=r"'mmlu_unobs_99' \(templates/unobserved/mmlu/99\.jinja\) was refused"):
        check_qa_template(ins)
    assert not marker.exists()


def test_other_escapes_are_refused_too(tmp_path):
    marker = tmp_path / "pwned.txt"
    doc = {"question": "q", "choices": ["a", "b"], "letters": ["A", "B"], "subject": "s"}
    for source in ("{{ ''.__class__.__mro__[1].__subclasses__() }}",
                   "{{ lipsum.__globals__['os'].system('touch " + str(marker) + "') }}",
                   "{% set x = choices.append('z') %}{{ choices }}",  # the immutable sandbox: no mutation
                   "{{ self._TemplateReference__context }}"):
        ins = Instruction(id="mmlu_unobs_98", benchmark="mmlu", collection="unobserved", task_type="qa",
                          template=source, provenance={"file": "98.jinja"})
        with pytest.raises(TemplateRenderError, match=r"'mmlu_unobs_98' \(98\.jinja\)"):
            render(ins, doc)
    assert not marker.exists() and doc["choices"] == ["a", "b"]


def test_a_bbl_template_file_with_a_payload_fails_at_load(tmp_path):
    marker = tmp_path / "pwned.txt"
    task_dir = tmp_path / "winowhy"
    task_dir.mkdir()
    (task_dir / "01.jinja").write_text("{{ input }}\n" + _payload(marker) + "\nAnswer:\n")
    with pytest.raises(TemplateRenderError, match=r"bbl_winowhy_unobs_01.*01\.jinja.*was refused"):
        bbl.load_unobserved("winowhy", root=tmp_path)
    assert not marker.exists()


def test_a_promptsource_template_with_a_payload_is_refused(tmp_path):
    """promptsource Jinja is template source by nature; it renders in the same sandbox."""
    marker = tmp_path / "pwned.txt"
    yaml_path = tmp_path / "templates.yaml"
    yaml_path.write_text(
        "dataset: toy\ntemplates:\n"
        "  t1: !Template\n"
        "    answer_choices: yes ||| no\n"
        "    id: t1\n"
        "    jinja: " + json.dumps("{{ question }} " + _payload(marker) + " ||| {{ answer_choices[0] }}") + "\n"
        "    name: toy\n"
    )
    from instrobust.upstream.sources import LocalCopy

    def fetch(name):
        return type("Src", (), {"repo": "toy/repo", "archive_member": None, "path": "templates.yaml"})(), \
            LocalCopy(yaml_path, "upstream", "test")

    template, prov = p3_template({"source": "toy", "id": "t1", "adapter": "cos_e"}, fetch, bbl.VIEWS)
    ins = Instruction(id="bbl_bc_obs_p3_99", benchmark="bbl", collection="p3", task_type="bc",
                      template=template, provenance={**prov, "file": str(yaml_path)}, prompt_separator="|||")
    with pytest.raises(TemplateRenderError, match=r"bbl_bc_obs_p3_99.*templates\.yaml\) was refused"):
        check_bbl_template(ins, "bc")
    assert not marker.exists()


def test_upstream_text_is_a_value_never_template_source(tmp_path):
    """A Flan pattern, an NIV2 definition, an Alpaca instruction and a task.json prefix holding
    Jinja syntax render verbatim: the text reaches the template only as a value."""
    marker = tmp_path / "pwned.txt"
    evil = _breakout(marker)
    # Flan: the pattern's literal pieces become values; the placeholders our Jinja
    source, values = parsers.flan_placeholders_to_jinja(evil + "\n\n{Definition}\n\n{input}", {
        "Definition": "{{ niv2_definition }}", "input": "{{ input }}"})
    assert evil not in source and "endraw" not in source and values["flan_0"] == evil + "\n\n"
    ins = Instruction(id="bbl_bc_obs_flan2022_99", benchmark="bbl", collection="flan2022", task_type="bc",
                      template=source, values={**values, "niv2_definition": evil})
    text = render(ins, {"input": "INPUT"})
    assert text == f"{evil}\n\n{evil}\n\nINPUT"
    # the designer prefix (BIG-bench task.json)
    ins = bbl.designer_instruction("winowhy", text=evil)
    assert evil not in ins.template
    doc = {"input": "It fell.", "choices": ["correct", "incorrect"], "letters": ["A", "B"], "answer": 0, "task": "winowhy"}
    assert render(ins, doc).startswith(evil + "\n\nIt fell.\n(A) correct")
    assert not marker.exists()


def test_alpaca_instruction_is_a_value(tmp_path):
    from instrobust.mmlu.instructions import MMLULoader as _Loader

    marker = tmp_path / "pwned.txt"
    entries = [{"instruction": f"Choose the correct answer. {_breakout(marker)}", "input": "x", "output": "y"}]
    path = tmp_path / "alpaca_data.json"
    path.write_text(json.dumps(entries))
    from instrobust.upstream.sources import LocalCopy

    loader = _Loader.__new__(_Loader)
    loader.benchmark, loader.task_type = "mmlu", "qa"
    loader.fetch = lambda name: (type("Src", (), {"repo": "r", "commit": "c" * 40, "path": "alpaca_data.json"})(),
                                 LocalCopy(path, "upstream", "test"))
    [ins] = loader.alpaca({"source": "alpaca_data", "rule": "qa_v1", "count": 1})
    doc = {"question": "Q?", "choices": ["a", "b"], "letters": ["A", "B"], "subject": "s"}
    assert render(ins, doc) == f"{entries[0]['instruction']}\n\nQ?\n(A) a\n(B) b\nAnswer:"
    assert not marker.exists()


def _poisoned_bigbench(root: Path, prefix: str) -> Path:
    """A data dir with a winowhy task.json (our own toy examples) whose task_prefix is ``prefix``."""
    task_dir = root / "bigbench" / "winowhy"
    task_dir.mkdir(parents=True)
    examples = [{"input": f"Toy sentence {i}. The 'it' refers to the toy because toys are small.",
                 "target_scores": {"correct": int(i % 2 == 0), "incorrect": int(i % 2 == 1)}} for i in range(8)]
    (task_dir / "task.json").write_text(json.dumps({
        "name": "winowhy", "description": "toy", "task_prefix": prefix, "example_input_prefix": "\n",
        "append_choices_to_input": False, "examples": examples}))
    return root


def test_a_poisoned_task_json_runs_nothing_through_lm_eval(tmp_path, tiny_t5):
    """`lm_eval --tasks bbl_winowhy_designer_01` over a task.json whose prefix breaks out of {% raw %}."""
    marker = tmp_path / "pwned.txt"
    prefix = _breakout(marker) + "\n"
    data = _poisoned_bigbench(tmp_path / "data", prefix)
    out = tmp_path / "out"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "INSTROBUST_DATA_DIR": str(data),
           "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={tiny_t5}",
           "--include_path", str(REPO / "lm_eval_tasks"), "--tasks", "bbl_winowhy_designer_01", "--limit", "1",
           "--device", "cpu", "--output_path", str(out), "--log_samples"]
    proc = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not marker.exists() and not (tmp_path / "pwned.txt").exists()
    [samples] = out.rglob("samples_bbl_winowhy_designer_01_*.jsonl")
    prompt = json.loads(samples.read_text().splitlines()[0])["arguments"]["gen_args_0"]["arg_0"]
    assert prompt.startswith(prefix.strip() + "\n\n")
