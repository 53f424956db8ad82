"""Alignment data, paraphrase files and bad input: sampling, field checks, clear errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from instrobust.errors import InstrobustError
from instrobust_train.cli import main as train_main
from instrobust_train.config import AlignmentConfig, DataConfig
from instrobust_train.data import GroupDataset, attach_paraphrases, format_prompt, load_examples
from instrobust_train.errors import AlignmentDataError, ParaphraseError, TrainConfigError
from instrobust_train.paraphrase_cache import instruction_key

FIXTURES = Path(__file__).parent / "fixtures" / "train"
EXAMPLES = FIXTURES / "alignment_examples.jsonl"
PARAPHRASES = FIXTURES / "alignment_paraphrases.jsonl"


def test_sample_is_seeded_and_keeps_the_reference_instruction():
    a = load_examples(DataConfig(source=str(EXAMPLES), n_examples=10, sample_seed=3))
    b = load_examples(DataConfig(source=str(EXAMPLES), n_examples=10, sample_seed=3))
    c = load_examples(DataConfig(source=str(EXAMPLES), n_examples=10, sample_seed=4))
    assert [e.id for e in a] == [e.id for e in b] != [e.id for e in c]
    rows = [json.loads(line) for line in EXAMPLES.read_text().splitlines()]
    for ex in a:
        row = rows[int(ex.id.rsplit(":", 1)[1])]
        assert (ex.instruction, ex.input, ex.output) == (row["instruction"], row["input"], row["output"])
    assert len(load_examples(DataConfig(source=str(EXAMPLES), n_examples=1000))) == len(rows)


def test_paraphrases_attach_by_instruction_hash():
    examples = attach_paraphrases(load_examples(DataConfig(source=str(EXAMPLES), n_examples=24)), PARAPHRASES, 2)
    capital = next(e for e in examples if e.instruction == "Give the capital city of the country.")
    assert capital.instructions == (
        "Give the capital city of the country.", "What is the capital of this country?", "Name the country's capital.")
    assert all(len(e.paraphrases) == 2 for e in examples)


def test_prompt_formats():
    assert format_prompt("Translate to French.", "The cat sleeps.") == "Translate to French.\n\nThe cat sleeps."
    assert format_prompt("List three fruits.", "") == "List three fruits."
    alpaca = format_prompt("Translate to French.", "The cat sleeps.", "alpaca")
    assert "### Instruction:\nTranslate to French.\n\n### Input:\nThe cat sleeps.\n\n### Response:\n" in alpaca


def test_group_dataset_shares_the_target_across_variants(tiny_t5):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_t5)
    cfg = DataConfig(source=str(EXAMPLES), n_examples=4, max_source_length=12)
    examples = attach_paraphrases(load_examples(cfg), PARAPHRASES, 3)
    ds = GroupDataset(examples, tok, cfg, is_encoder_decoder=True)
    item = ds[0]
    assert len(item["prompt_ids"]) == 4 and all(len(p) <= 12 for p in item["prompt_ids"])
    assert tok.decode(item["target_ids"], skip_special_tokens=True) == examples[0].output


def test_missing_output_field_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"instruction": "Add the numbers.", "input": "2 3", "output": "5"}) + "\n"
                   + json.dumps({"instruction": "Add the numbers.", "input": "4 4", "response": "8"}) + "\n")
    with pytest.raises(AlignmentDataError, match=r"bad\.jsonl:2: row has no 'output' field .*--output_field"):
        load_examples(DataConfig(source=str(bad), n_examples=1))
    # The same file works once the field is named.
    with pytest.raises(AlignmentDataError, match=r"bad\.jsonl:1: row has no 'response' field"):
        load_examples(DataConfig(source=str(bad), output_field="response"))
    with pytest.raises(AlignmentDataError, match="not found"):
        load_examples(DataConfig(source=str(tmp_path / "nope.jsonl")))


def test_paraphrases_for_other_instructions_are_rejected(tmp_path):
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"key": instruction_key("Sort the list."), "instruction": "Sort the list.",
                                 "paraphrases": ["Order the list."]}) + "\n")
    examples = load_examples(DataConfig(source=str(EXAMPLES), n_examples=5))
    with pytest.raises(ParaphraseError, match=r"other\.jsonl: no paraphrases for 5 of the 5 sampled instructions"):
        attach_paraphrases(examples, other, 3)
    edited = tmp_path / "edited.jsonl"
    edited.write_text(json.dumps({"key": "0" * 16, "instruction": "Sort the list.", "paraphrases": []}) + "\n")
    with pytest.raises(ParaphraseError, match=r"edited\.jsonl:1: key .* does not match"):
        attach_paraphrases(examples, edited, 3)


@pytest.mark.parametrize("value", ["-0.1", "1.5"])
def test_lambda_outside_unit_interval(value, tmp_path):
    with pytest.raises(TrainConfigError, match=rf"--kl_weight \(lambda\) must lie in \[0, 1\], got {value}"):
        AlignmentConfig(output_dir=str(tmp_path), kl_weight=float(value))


def test_cli_reports_bad_input_without_a_traceback(tmp_path, capsys, tiny_t5):
    common = ["--base", str(tiny_t5), "--source", str(EXAMPLES), "--output_dir", str(tmp_path / "out"),
              "--use_cpu", "--max_steps", "1"]
    assert train_main(common + ["--paraphrases", str(PARAPHRASES), "--kl_weight", "2"]) == 2
    assert "instrobust-train: error: --kl_weight (lambda) must lie in [0, 1], got 2.0" in capsys.readouterr().err
    assert train_main(common + ["--paraphrases", str(PARAPHRASES), "--method", "lora"]) == 2
    assert "--method 'lora' is not one of ft, ft+kl, pt, pt+kl" in capsys.readouterr().err
    assert train_main(common) == 2
    assert "--paraphrases is required" in capsys.readouterr().err
    assert train_main(common + ["--paraphrases", str(PARAPHRASES), "--activation_checkpointing"]) == 2
    assert "--activation_checkpointing (--gradient_checkpointing) does not work with a soft prompt" in capsys.readouterr().err
    assert train_main(common + ["--paraphrases", str(tmp_path / "missing.jsonl")]) == 2
    assert "missing.jsonl: paraphrase file not found" in capsys.readouterr().err
    assert issubclass(ParaphraseError, InstrobustError) and issubclass(AlignmentDataError, InstrobustError)
