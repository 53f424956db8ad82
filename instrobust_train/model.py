"""Load the base model and wrap it for a method: full fine-tuning or a PEFT soft prompt."""
from __future__ import annotations


import torch
from peft import PeftConfig, PrefixTuningConfig, PromptTuningConfig, TaskType

from instrobust_train.config import ModelConfig, SoftPromptConfig
from instrobust_train.errors import TrainConfigError

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}


def load_base(cfg: ModelConfig):
    """``(model, tokenizer)``: a seq2seq or causal LM picked from the checkpoint's config."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    try:
        config = AutoConfig.from_pretrained(cfg.base)
    except Exception as exc:
        raise TrainConfigError(f"--base {cfg.base!r}: cannot load its config ({type(exc).__name__}: {exc})") from None
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    model = auto.from_pretrained(cfg.base, dtype=_DTYPES[cfg.dtype])
    tokenizer = AutoTokenizer.from_pretrained(cfg.base)
    if tokenizer.pad_token_id is None:  # Llama-style tokenizers: padding is masked out anyway
        tokenizer.pad_token = tokenizer.eos_token
    if cfg.disable_dropout:
        disable_dropout(model)
    return model, tokenizer


def disable_dropout(model: torch.nn.Module) -> None:
    """Zero every dropout rate in the modules (the config keeps its values, so a saved model is unchanged)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0
        for attr in ("attention_dropout", "dropout"):  # functional dropout inside attention (Llama, ...)
            if isinstance(getattr(module, attr, None), float):
                setattr(module, attr, 0.0)


def soft_prompt_peft_config(model, cfg: SoftPromptConfig) -> PeftConfig:
    """The PEFT config of the soft prompt for ``model``.

    Prefix tuning on T5 needs ``token_dim = num_heads * d_kv`` (the width of its keys and
    values), which differs from ``d_model`` on e.g. flan-t5-small; PEFT would take ``d_model``.
    """
    config = model.config
    task_type = TaskType.SEQ_2_SEQ_LM if config.is_encoder_decoder else TaskType.CAUSAL_LM
    if cfg.peft_type == "prompt":
        # One set of virtual tokens before the (encoder) input; PEFT's seq2seq default of two
        # submodules would allocate a second set that the encoder-only prompt never uses.
        return PromptTuningConfig(task_type=task_type, num_virtual_tokens=cfg.num_virtual_tokens,
                                  num_transformer_submodules=1)
    kwargs = {}
    if hasattr(config, "d_kv") and hasattr(config, "num_heads"):
        kwargs["token_dim"] = config.num_heads * config.d_kv
    return PrefixTuningConfig(
        task_type=task_type, num_virtual_tokens=cfg.num_virtual_tokens, prefix_projection=cfg.prefix_projection,
        encoder_hidden_size=cfg.encoder_hidden_size, **kwargs,
    )


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts."""
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return trainable, sum(p.numel() for p in model.parameters())
