"""AlignmentTrainer on tiny real T5 / Llama models: what trains, the KL term, alignment, outputs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import TrainerCallback

from instrobust_train.collate import GroupCollator
from instrobust_train.config import AlignmentConfig, DataConfig, ModelConfig, SoftPromptConfig
from instrobust_train.loss import target_log_probs
from instrobust_train.model import load_base, soft_prompt_peft_config
from instrobust_train.train import train
from instrobust_train.trainer import AlignmentTrainer

FIXTURES = Path(__file__).parent / "fixtures" / "train"
EXAMPLES = str(FIXTURES / "alignment_examples.jsonl")
PARAPHRASES = str(FIXTURES / "alignment_paraphrases.jsonl")


def _configs(base, out, *, method="pt+kl", steps=3, peft_type="prefix", **args):
    data = DataConfig(source=EXAMPLES, paraphrases=PARAPHRASES, n_examples=24, max_source_length=48,
                      max_target_length=24)
    prompt = SoftPromptConfig(peft_type=peft_type, num_virtual_tokens=4, encoder_hidden_size=16)
    defaults = dict(output_dir=str(out), method=method, max_steps=steps, use_cpu=True, logging_steps=1,
                    save_strategy="no", disable_tqdm=True, seed=0)
    return ModelConfig(base=str(base)), data, prompt, AlignmentConfig(**{**defaults, **args})


class _Snapshot(TrainerCallback):
    """Copies every parameter when training starts."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.params = {n: p.detach().clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("method,which,peft_type", [
    ("pt", "t5", "prefix"), ("pt+kl", "t5", "prefix"), ("pt+kl", "t5", "prompt"), ("pt+kl", "t5", "p_tuning"),
    ("pt+kl", "llama", "prefix"),
])
def test_soft_prompt_methods_change_only_the_soft_prompt(method, which, peft_type, tiny_t5, tiny_llama, tmp_path):
    base = tiny_t5 if which == "t5" else tiny_llama
    snap = _Snapshot()
    result = train(*_configs(base, tmp_path, method=method, peft_type=peft_type, learning_rate=1e-2),
                   callbacks=[snap])
    changed = {n for n, p in result.model.named_parameters() if not torch.equal(p.detach(), snap.params[n])}
    assert changed and all(n.startswith("prompt_encoder.") for n in changed), changed
    frozen = {n: p for n, p in result.model.get_base_model().named_parameters()}
    original, _ = load_base(ModelConfig(base=str(base)))
    for name, param in original.named_parameters():
        assert torch.equal(param, frozen[name]), f"base weight {name} changed"
    assert (tmp_path / "adapter_config.json").is_file() and (tmp_path / "adapter_model.safetensors").is_file()


def test_ft_trains_the_base_weights(tiny_t5, tmp_path):
    snap = _Snapshot()
    result = train(*_configs(tiny_t5, tmp_path, method="ft+kl", steps=2, learning_rate=1e-3), callbacks=[snap])
    changed = [n for n, p in result.model.named_parameters() if not torch.equal(p.detach(), snap.params[n])]
    assert len(changed) > 10 and (tmp_path / "config.json").is_file()  # a full model, not an adapter


def _trainer(base, tmp_path, method="pt+kl"):
    model_cfg, data_cfg, prompt_cfg, args = _configs(base, tmp_path, method=method)
    model, tok = load_base(model_cfg)
    return AlignmentTrainer(model, args, processing_class=tok, peft_config=soft_prompt_peft_config(model, prompt_cfg)), tok


def _group(tok, instructions, target, enc_dec):
    prompts = [tok(i)["input_ids"] for i in instructions]
    target_ids = tok(text_target=target)["input_ids"] if enc_dec else tok(target, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    return {"prompt_ids": prompts, "target_ids": target_ids}


@pytest.mark.parametrize("which", ["t5", "llama"])
def test_kl_is_zero_for_identical_paraphrases_and_positive_otherwise(which, tiny_t5, tiny_llama, tmp_path):
    trainer, tok = _trainer(tiny_t5 if which == "t5" else tiny_llama, tmp_path)
    collate, enc_dec = trainer.data_collator, trainer.is_encoder_decoder
    ref = "Give the capital city of the country.\n\nJapan"
    same = collate([_group(tok, [ref, ref, ref], "Tokyo", enc_dec),
                    _group(tok, ["Name the opposite.\n\nhot"] * 2, "cold", enc_dec)])
    trainer.compute_loss(trainer.model, same)
    assert trainer._metrics["kl"][-1].item() < 1e-6
    other = collate([_group(tok, [ref, "What is the capital of this country?\n\nJapan"], "Tokyo", enc_dec)])
    trainer.compute_loss(trainer.model, other)
    assert trainer._metrics["kl"][-1].item() > 1e-4


def test_causal_rows_align_with_unpadded_forward(tiny_llama, tmp_path):
    """Per-row target log-likelihood in a padded group batch = the same row run alone."""
    trainer, tok = _trainer(tiny_llama, tmp_path)
    model = trainer.model.eval()
    group = _group(tok, ["Solve it.\n\n9 * 6", "Work out the product and answer with the number only.\n\n9 * 6"],
                   "54", enc_dec=False)
    batch = trainer.data_collator([group])
    with torch.no_grad():
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        log_probs, targets, valid = target_log_probs(logits, batch["labels"], causal=True)
        batched = log_probs.gather(-1, targets.clamp_min(0).unsqueeze(-1)).squeeze(-1).sum(-1)
        for row, prompt in enumerate(group["prompt_ids"]):
            ids = torch.tensor([prompt + group["target_ids"]])
            alone = model(input_ids=ids).logits[0, len(prompt) - 1:-1].log_softmax(-1)
            expected = alone.gather(-1, torch.tensor(group["target_ids"]).unsqueeze(-1)).sum()
            assert batched[row].item() == pytest.approx(expected.item(), abs=1e-4)


def _dataset_loss(trainer, dataset) -> tuple[float, float]:
    """Mean (loss, ce) over fixed batches of the whole dataset, without dropout or updates."""
    trainer.model.eval()
    losses, ces = [], []
    with torch.no_grad():
        for start in range(0, len(dataset), 2):
            batch = trainer.data_collator([dataset[i] for i in range(start, min(start + 2, len(dataset)))])
            losses.append(trainer.compute_loss(trainer.model, batch).item())
            ces.append(trainer._metrics["ce"][-1].item())
    trainer._metrics = {"ce": [], "kl": []}
    return sum(losses) / len(losses), sum(ces) / len(ces)


def test_loss_decreases_over_a_few_steps(tiny_t5, tmp_path):
    from instrobust_train.data import GroupDataset, attach_paraphrases, load_examples

    model_cfg, data_cfg, prompt_cfg, args = _configs(tiny_t5, tmp_path, steps=12, learning_rate=5e-2)
    data_cfg.n_examples = 8
    model, tok = load_base(model_cfg)
    dataset = GroupDataset(attach_paraphrases(load_examples(data_cfg), PARAPHRASES, 3), tok, data_cfg, True)
    trainer = AlignmentTrainer(model, args, train_dataset=dataset, processing_class=tok,
                               peft_config=soft_prompt_peft_config(model, prompt_cfg))
    loss_before, ce_before = _dataset_loss(trainer, dataset)
    trainer.train()
    loss_after, ce_after = _dataset_loss(trainer, dataset)
    assert loss_after < 0.9 * loss_before and ce_after < 0.95 * ce_before, (loss_before, loss_after, ce_before, ce_after)
    logged = [h for h in trainer.state.log_history if "loss" in h]
    assert len(logged) == 12 and all(h["ce"] > 0 and h["kl"] >= 0 for h in logged)


def test_gradient_accumulation_does_not_scale_the_loss_and_outputs_are_written(tiny_t5, tmp_path):
    one = train(*_configs(tiny_t5, tmp_path / "a", steps=1, per_device_train_batch_size=2))
    two = train(*_configs(tiny_t5, tmp_path / "b", steps=1, per_device_train_batch_size=1,
                          gradient_accumulation_steps=2))
    a, b = one.log_history[0]["loss"], two.log_history[0]["loss"]
    assert 0.8 < b / a < 1.25, (a, b)  # same two examples; a doubled loss would give ~2

    out = tmp_path / "a"
    for name in ("adapter_config.json", "adapter_model.safetensors", "prompt_encoder_state.safetensors",
                 "alignment_config.json", "training_log.jsonl", "train.log"):
        assert (out / name).is_file(), name
    first = json.loads((out / "training_log.jsonl").read_text().splitlines()[0])
    assert first["step"] == 1 and {"loss", "ce", "kl", "learning_rate"} <= set(first)
    config = json.loads((out / "alignment_config.json").read_text())
    assert config["training"]["method"] == "pt+kl" and config["training"]["kl_weight"] == 0.5
    assert config["peft_config"]["encoder_hidden_size"] == 16 and config["rows"] == 24 * 4
    assert config["trainable_parameters"] < config["total_parameters"] / 10
    assert "trainable of" in (out / "train.log").read_text()
    assert SoftPromptConfig().encoder_hidden_size == 512  # not PEFT's default of the model width


def test_t5_whose_heads_are_narrower_than_d_model(tiny_t5, tmp_path):
    """flan-t5-small has d_model 512 but num_heads * d_kv = 384: the prefix must use the latter."""
    from peft import PrefixTuningConfig, TaskType, get_peft_model
    from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

    tok = AutoTokenizer.from_pretrained(tiny_t5)
    cfg = T5Config(vocab_size=len(tok), d_model=32, d_kv=8, num_heads=2, d_ff=64, num_layers=2,
                   pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    T5ForConditionalGeneration(cfg).save_pretrained(tmp_path / "narrow")
    tok.save_pretrained(tmp_path / "narrow")
    batch = GroupCollator(tok.pad_token_id, True, tok.pad_token_id)([_group(tok, ["Name it.", "Say it."], "A", True)])
    inputs = {k: batch[k] for k in ("input_ids", "attention_mask", "decoder_input_ids")}
    naive = get_peft_model(T5ForConditionalGeneration.from_pretrained(tmp_path / "narrow"), PrefixTuningConfig(
        task_type=TaskType.SEQ_2_SEQ_LM, num_virtual_tokens=4, prefix_projection=True, encoder_hidden_size=16))
    with pytest.raises(RuntimeError):  # what PEFT's default token_dim (= d_model) does
        naive(**inputs)
    result = train(*_configs(tmp_path / "narrow", tmp_path / "out", steps=2))
    assert result.model.peft_config["default"].token_dim == 16
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in result.log_history if "loss" in h)
