"""Load the base model and wrap it for a method: full fine-tuning or a PEFT soft prompt."""
from __future__ import annotations


from pathlib import Path

import torch
from peft import PeftConfig, PrefixTuningConfig, PromptEncoderConfig, PromptTuningConfig, TaskType

from instrobust_train.config import ModelConfig, SoftPromptConfig
from instrobust_train.errors import TrainConfigError

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16, "auto": "auto"}


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def load_base_config(base: str):
    """The base model's ``transformers`` config; a bad ``--base`` gives one line naming it."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id
    from transformers import AutoConfig

    path = Path(base)
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise TrainConfigError(f"--base {base!r}: this folder has no config.json (not a saved transformers model)")
        where = "cannot load the config in this folder"
    elif path.exists():
        raise TrainConfigError(f"--base {base!r} is a file: give a model folder or a hub id (owner/name)")
    else:
        try:
            validate_repo_id(base)
        except HFValidationError:
            raise TrainConfigError(f"--base {base!r}: no such folder, and not a hub id (owner/name)") from None
        where = "no such folder, and the hub has no such model or cannot be reached"
    try:
        return AutoConfig.from_pretrained(base)
    except Exception as exc:  # hub, network and parsing errors are many-lined: keep the first line
        raise TrainConfigError(f"--base {base!r}: {where} ({_first_line(exc)})") from None


def load_base(cfg: ModelConfig):
    """``(model, tokenizer)``: a seq2seq or causal LM picked from the checkpoint's config."""
    from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

    config = load_base_config(cfg.base)
    auto = AutoModelForSeq2SeqLM if config.is_encoder_decoder else AutoModelForCausalLM
    try:
        model = auto.from_pretrained(cfg.base, dtype=_DTYPES[cfg.dtype])
        tokenizer = AutoTokenizer.from_pretrained(cfg.base)
    except Exception as exc:
        raise TrainConfigError(f"--base {cfg.base!r}: cannot load the model or its tokenizer ({_first_line(exc)})") from None
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
    """The PEFT config of the soft prompt for ``model`` (``auto`` resolved; see :class:`SoftPromptConfig`).

    Prefix tuning on T5 needs ``token_dim = num_heads * d_kv`` (the width of its keys and
    values), which differs from ``d_model`` on e.g. flan-t5-small; PEFT would take ``d_model``.
    """
    config = model.config
    task_type = TaskType.SEQ_2_SEQ_LM if config.is_encoder_decoder else TaskType.CAUSAL_LM
    kind = cfg.resolved_type(bool(config.is_encoder_decoder))
    # One set of virtual tokens before the (encoder) input: PEFT's seq2seq default of two
    # submodules would allocate a second set that only the decoder-side variants use.
    if kind == "prompt":
        return PromptTuningConfig(task_type=task_type, num_virtual_tokens=cfg.num_virtual_tokens,
                                  num_transformer_submodules=1)
    if kind == "p_tuning":
        return PromptEncoderConfig(task_type=task_type, num_virtual_tokens=cfg.num_virtual_tokens,
                                   num_transformer_submodules=1, encoder_reparameterization_type="MLP",
                                   encoder_hidden_size=cfg.encoder_hidden_size)
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
