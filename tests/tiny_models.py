"""Tiny, randomly initialised models built from a config, for tests and benchmarks (benchmarks/
put this folder on sys.path); kept out of the installed package.

No hub access is needed: the tokenizer is a byte-level BPE trained on a few hundred MMLU-like
strings, the weights are random. Real transformers classes, real save/load.
"""
from __future__ import annotations

from pathlib import Path

_CORPUS = [
    "Question: Which of the following is correct? Answer: A B C D",
    "The correct option is (A) (B) (C) (D). Choose the best answer.",
    "Options: A. one B. two C. three D. four. Reply with the letter only.",
    "Instructions: read the question and pick an option. Output: Yes No True False",
]


def build_tokenizer(path: Path, extra_text: list[str] | None = None, vocab_size: int = 512):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>", "<s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator((_CORPUS + list(extra_text or [])) * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>", bos_token="<s>"
    )
    fast.save_pretrained(path)
    return fast


def _save_random(path: str | Path, model_class, config_for, seed: int, extra_text=None, vocab_size: int = 512) -> Path:
    """Train the tokenizer, build ``model_class(config_for(tok))`` with seeded random weights, save both."""
    import torch

    path = Path(path)
    tok = build_tokenizer(path, extra_text=extra_text, vocab_size=vocab_size)
    torch.manual_seed(seed)
    model_class(config_for(tok)).save_pretrained(path)
    return path


def build_tiny_t5(path: str | Path, d_model: int = 32, layers: int = 2, heads: int = 2, seed: int = 0,
                  ff_mult: int = 2, extra_text: list[str] | None = None, vocab_size: int = 512) -> Path:
    from transformers import T5Config, T5ForConditionalGeneration

    return _save_random(path, T5ForConditionalGeneration, lambda tok: T5Config(
        vocab_size=len(tok), d_model=d_model, d_kv=d_model // heads, d_ff=d_model * ff_mult, num_layers=layers,
        num_decoder_layers=layers, num_heads=heads, pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id, decoder_start_token_id=tok.pad_token_id, dropout_rate=0.0,
    ), seed, extra_text, vocab_size)


def build_tiny_llama(path: str | Path, hidden: int = 32, layers: int = 2, heads: int = 2, seed: int = 0) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM

    return _save_random(path, LlamaForCausalLM, lambda tok: LlamaConfig(
        vocab_size=len(tok), hidden_size=hidden, intermediate_size=hidden * 2, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=heads, max_position_embeddings=2048,
        pad_token_id=tok.pad_token_id, eos_token_id=tok.eos_token_id, bos_token_id=tok.bos_token_id,
    ), seed)
