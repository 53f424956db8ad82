"""Training runs never mix (issue 14 section 2) and a bad --base is one clear line (section 3)."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import safetensors.torch
import torch

from instrobust_train.cli import main
from instrobust_train.config import AlignmentConfig, DataConfig, ModelConfig, SoftPromptConfig
from instrobust_train.errors import CheckpointError, TrainConfigError
from instrobust_train.runs import RUN_CONFIG_FILE
from instrobust_train.train import train

FIXTURES = Path(__file__).parent / "fixtures" / "train"
EXAMPLES = str(FIXTURES / "alignment_examples.jsonl")
PARAPHRASES = str(FIXTURES / "alignment_paraphrases.jsonl")


def _configs(base, out, *, steps=2, paraphrases=PARAPHRASES, num_virtual_tokens=4, **args):
    data = DataConfig(source=EXAMPLES, paraphrases=str(paraphrases), n_examples=8, max_source_length=48,
                      max_target_length=24)
    prompt = SoftPromptConfig(num_virtual_tokens=num_virtual_tokens, encoder_hidden_size=16)
    defaults = dict(output_dir=str(out), max_steps=steps, use_cpu=True, logging_steps=1, save_strategy="no",
                    disable_tqdm=True, seed=0, learning_rate=3e-2, report_to="none")
    return ModelConfig(base=str(base)), data, prompt, AlignmentConfig(**{**defaults, **args})


def _adapter(path: Path) -> dict[str, torch.Tensor]:
    return safetensors.torch.load_file(str(path / "adapter_model.safetensors"))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_an_output_dir_holding_another_run_is_refused_unless_overwritten(tiny_t5, tmp_path):
    out = tmp_path / "out"
    train(*_configs(tiny_t5, out, save_strategy="steps", save_steps=1))
    first = _adapter(out)
    with pytest.raises(TrainConfigError, match=r"already holds another run's files .*--overwrite_output_dir"):
        train(*_configs(tiny_t5, out, seed=1))
    assert _same(_adapter(out), first) and (out / "checkpoint-2").is_dir()  # nothing of the first run touched
    train(*_configs(tiny_t5, out, seed=1, overwrite_output_dir=True))
    assert not _same(_adapter(out), first)
    assert not (out / "checkpoint-1").exists() and not (out / "checkpoint-2").exists()  # cleared, not mixed
    with pytest.raises(TrainConfigError, match="pass only one of them"):
        train(*_configs(tiny_t5, out, overwrite_output_dir=True, resume_from_checkpoint="last"))


def test_resuming_a_folder_without_checkpoints_fails_without_writing_there(tiny_t5, tmp_path):
    with pytest.raises(CheckpointError, match=r"--resume_from_checkpoint last: no checkpoint-\* folder in"):
        train(*_configs(tiny_t5, tmp_path / "fresh", resume_from_checkpoint="last"))
    assert not (tmp_path / "fresh").exists()  # no train.log left behind to mark it as a run


def test_a_folder_of_other_files_is_never_cleared(tiny_t5, tmp_path, capsys):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    argv = ["--base", str(tiny_t5), "--source", EXAMPLES, "--paraphrases", PARAPHRASES, "--output_dir", str(foreign),
            "--max_steps", "1", "--use_cpu", "--overwrite_output_dir"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"instrobust-train: error: --output_dir {foreign} holds files that are not an instrobust-train "
                   "run's (notes.txt): choose an empty or new folder")
    assert (foreign / "notes.txt").read_text() == "keep me" and len(list(foreign.iterdir())) == 1


def test_resuming_under_other_options_lists_every_difference(tiny_t5, tmp_path):
    out = tmp_path / "run"
    train(*_configs(tiny_t5, out, save_strategy="steps", save_steps=1))
    assert (out / "checkpoint-2" / RUN_CONFIG_FILE).is_file()
    edited = tmp_path / "paraphrases.jsonl"
    edited.write_text(Path(PARAPHRASES).read_text(encoding="utf-8") + "\n", encoding="utf-8")
    with pytest.raises(CheckpointError) as err:
        train(*_configs(tiny_t5, out, resume_from_checkpoint="last", kl_weight=0.3, seed=1, num_virtual_tokens=8,
                        paraphrases=edited))
    message = str(err.value)
    assert "\n" not in message and "checkpoint-2 belongs to a run with other options" in message
    diffs = message.split("): ", 1)[1].split("; ")
    assert [d.split(":")[0] for d in diffs] == ["data.paraphrases", "kl_weight", "seed", "soft_prompt.num_virtual_tokens"]
    assert "kl_weight: checkpoint 0.5, now 0.3" in diffs
    assert f"now {edited.resolve()} (sha256 " in diffs[0]
    # The same options (the paraphrase file moved, same content) resume; the run was already complete.
    moved = tmp_path / "moved.jsonl"
    shutil.copy(PARAPHRASES, moved)
    train(*_configs(tiny_t5, out, resume_from_checkpoint="last", paraphrases=moved))


@pytest.mark.parametrize("base,expected", [
    ("{tmp}/no/such/model", "--base '{tmp}/no/such/model': no such folder, and not a hub id (owner/name)"),
    ("{tmp}/empty", "--base '{tmp}/empty': this folder has no config.json (not a saved transformers model)"),
    ("nobody-here/no-such-model", "--base 'nobody-here/no-such-model': no such folder, and the hub has no such model "
                                  "or cannot be reached (OSError: "),
])
def test_a_bad_base_is_one_line_and_exit_status_2(base, expected, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    base, expected = base.format(tmp=tmp_path), expected.format(tmp=tmp_path)
    argv = ["--base", base, "--source", EXAMPLES, "--paraphrases", PARAPHRASES,
            "--output_dir", str(tmp_path / "out"), "--max_steps", "1", "--use_cpu"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"instrobust-train: error: {expected}"), err
    assert not (tmp_path / "out").exists()  # refused before anything was written
