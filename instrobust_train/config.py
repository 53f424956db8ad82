"""Typed configuration of a soft prompt alignment run (section 5 of the seed paper).

Four small dataclasses, each parsed from the command line by ``HfArgumentParser``:

* :class:`ModelConfig` -- which base model, in which dtype.
* :class:`DataConfig` -- where the alignment examples and their paraphrases come from.
* :class:`SoftPromptConfig` -- the PEFT soft prompt trained under ``pt``/``pt+kl``.
* :class:`AlignmentConfig` -- ``transformers.TrainingArguments`` plus the method and its
  objective (a TRL-style config: every Trainer option such as ``--report_to`` or
  ``--save_steps`` works unchanged).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from transformers import TrainingArguments

from instrobust_train.errors import TrainConfigError

METHODS = ("ft", "ft+kl", "pt", "pt+kl")
SOFT_PROMPT_TYPES = ("auto", "p_tuning", "prefix", "prompt")
KL_REDUCTIONS = ("sum", "mean")
PROMPT_FORMATS = ("plain", "alpaca")
DTYPES = ("float32", "bfloat16", "float16", "auto")

# Starting points, not tuned: full fine-tuning needs a small step, a soft prompt a large one.
DEFAULT_LEARNING_RATE = {"ft": 1e-5, "ft+kl": 1e-5, "pt": 1e-3, "pt+kl": 1e-3}


def _choice(value: str, allowed: tuple[str, ...], option: str) -> str:
    if value not in allowed:
        raise TrainConfigError(f"--{option} {value!r} is not one of {', '.join(allowed)}")
    return value


@dataclass
class ModelConfig:
    """The instruction-tuned model to align (seq2seq such as Flan-T5, or a causal LM such as Alpaca)."""

    base: str = field(metadata={"help": "Hub id or local path of the base model (e.g. google/flan-t5-xl)."})
    dtype: str = field(default="float32", metadata={"help": f"Weights dtype: {', '.join(DTYPES)}."})
    disable_dropout: bool = field(
        default=True,
        metadata={"help": "Set dropout to 0 while training (Flan-T5 ships 0.1, which adds noise to the KL term)."},
    )

    def __post_init__(self) -> None:
        _choice(self.dtype, DTYPES, "dtype")


@dataclass
class DataConfig:
    """Alignment examples: N rows sampled (with a seed) from an instruction-tuning source."""

    source: str = field(
        metadata={"help": "A local .jsonl/.json file with instruction/input/output fields, or a hub dataset "
                          "(tatsu-lab/alpaca, a Flan mixture) read with datasets.load_dataset."}
    )
    paraphrases: str | None = field(
        default=None,
        metadata={"help": "JSONL written by instrobust-paraphrase: k paraphrases per reference instruction."},
    )
    split: str = field(default="train", metadata={"help": "Split of a hub dataset."})
    n_examples: int = field(default=1000, metadata={"help": "How many examples to sample for alignment."})
    sample_seed: int = field(default=0, metadata={"help": "Seed of the example sample."})
    instruction_field: str = field(default="instruction")
    input_field: str = field(default="input", metadata={"help": "Optional field: a row may omit it."})
    output_field: str = field(default="output")
    max_paraphrases: int = field(default=3, metadata={"help": "Use at most this many paraphrases per example."})
    prompt_format: str = field(
        default="plain",
        metadata={"help": "plain: instruction, blank line, input. alpaca: the Alpaca (Stanford) prompt."},
    )
    max_source_length: int = field(default=512, metadata={"help": "Truncate prompts to this many tokens."})
    max_target_length: int = field(default=256, metadata={"help": "Truncate targets to this many tokens."})

    def __post_init__(self) -> None:
        _choice(self.prompt_format, PROMPT_FORMATS, "prompt_format")
        for name in ("n_examples", "max_source_length", "max_target_length"):
            if getattr(self, name) < 1:
                raise TrainConfigError(f"--{name} must be >= 1, got {getattr(self, name)}")
        if self.max_paraphrases < 0:
            raise TrainConfigError(f"--max_paraphrases must be >= 0, got {self.max_paraphrases}")


@dataclass
class SoftPromptConfig:
    """The soft prompt of ``pt``/``pt+kl``: n trained vectors, reparametrised by an MLP while training.

    Which activations each ``peft_type`` touches (PEFT 0.21):

    * ``p_tuning`` (PEFT P-tuning, MLP reparametrisation): n virtual token embeddings, the output
      of an MLP, are prepended to the input embeddings. On T5 they are encoder input positions:
      every encoder layer processes them, the instruction's tokens attend to them, and the decoder
      reads them through cross-attention. On a causal LM they precede the prompt in every layer.
    * ``prefix`` (PEFT prefix tuning): n trained key/value pairs added to self-attention. On a
      causal LM, in every layer. On T5, in the decoder's self-attention only: the encoder output is
      unchanged, and cross-attention reads the plain encoder output (PEFT empties that cache).
    * ``prompt`` (PEFT prompt tuning): the positions of ``p_tuning``, without the MLP.
    * ``auto`` (default): ``p_tuning`` for encoder-decoder models, where the soft prompt must reach
      the encoding of the instruction (the paper prepends it to the input); ``prefix`` for causal LMs.
    """

    peft_type: str = field(
        default="auto",
        metadata={"help": "Soft prompt kind: auto (p_tuning for encoder-decoder models, prefix for causal LMs); "
                          "p_tuning (MLP-made virtual tokens before the input embeddings: on T5 every encoder layer "
                          "and, via cross-attention, the decoder); prefix (key/value prefixes in self-attention: "
                          "every layer of a causal LM, only the decoder's self-attention on T5); prompt (the "
                          "positions of p_tuning, no MLP)."},
    )
    num_virtual_tokens: int = field(default=20, metadata={"help": "Soft prompt length (virtual tokens)."})
    prefix_projection: bool = field(
        default=True,
        metadata={"help": "prefix only: train the prefix through a 2-layer MLP (p_tuning always has its MLP)."},
    )
    encoder_hidden_size: int = field(
        default=512,
        metadata={"help": "Hidden size of the soft prompt's MLP (PEFT defaults to the model width: 205M params "
                          "for a prefix on flan-t5-xl)."},
    )

    def __post_init__(self) -> None:
        _choice(self.peft_type, SOFT_PROMPT_TYPES, "peft_type")
        if self.num_virtual_tokens < 1:
            raise TrainConfigError(f"--num_virtual_tokens must be >= 1, got {self.num_virtual_tokens}")
        if self.encoder_hidden_size < 1:
            raise TrainConfigError(f"--encoder_hidden_size must be >= 1, got {self.encoder_hidden_size}")

    def resolved_type(self, is_encoder_decoder: bool) -> str:
        """The concrete type: ``auto`` becomes ``p_tuning`` (encoder-decoder) or ``prefix`` (causal)."""
        kind = self.peft_type
        if kind == "auto":
            kind = "p_tuning" if is_encoder_decoder else "prefix"
        if kind == "p_tuning" and not self.prefix_projection:
            raise TrainConfigError(f"--peft_type {self.peft_type} trains p_tuning here, whose MLP cannot be turned off "
                                   "(--prefix_projection False); use --peft_type prompt for virtual tokens without one")
        return kind


@dataclass
class AlignmentConfig(TrainingArguments):
    """Trainer options plus the alignment objective L = (1-kl_weight)*CE + kl_weight*L_KL.

    ``method`` picks a row of the paper's Table 5: ``ft`` (all parameters, CE on the paraphrase
    data), ``ft+kl``, ``pt`` (soft prompt only, base frozen, CE) and ``pt+kl`` (the proposal).
    Methods without ``+kl`` train on CE alone whatever ``kl_weight`` says.
    """

    method: str = field(default="pt+kl", metadata={"help": f"One of {', '.join(METHODS)} (paper Table 5)."})
    kl_weight: float = field(default=0.5, metadata={"help": "lambda in L = (1-lambda)*CE + lambda*L_KL, in [0, 1]."})
    kl_reduction: str = field(
        default="sum",
        metadata={"help": "Over target positions j: 'sum' (the paper's formula) or 'mean' (length-independent)."},
    )
    kl_detach_reference: bool = field(
        default=False, metadata={"help": "Treat the reference distribution as a constant in the KL term."}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Clear an --output_dir that holds an earlier run's files (without it, such a folder is "
                          "refused unless that run is resumed with --resume_from_checkpoint)."},
    )
    # Overridden Trainer defaults.
    learning_rate: float | None = field(
        default=None, metadata={"help": "Peak learning rate (default: 1e-3 for pt/pt+kl, 1e-5 for ft/ft+kl)."}
    )
    per_device_train_batch_size: int = field(
        default=2, metadata={"help": "Examples per device and step; each brings its reference and paraphrase rows."}
    )
    logging_steps: float = field(default=10, metadata={"help": "Log loss, ce and kl every this many steps."})
    save_steps: float = field(default=200, metadata={"help": "Save a checkpoint every this many steps."})
    remove_unused_columns: bool = field(
        default=False, metadata={"help": "Must stay False: the group collator needs its own columns."}
    )

    def __post_init__(self) -> None:
        _choice(self.method, METHODS, "method")
        _choice(self.kl_reduction, KL_REDUCTIONS, "kl_reduction")
        if not isinstance(self.kl_weight, (int, float)) or not 0.0 <= float(self.kl_weight) <= 1.0:
            raise TrainConfigError(f"--kl_weight (lambda) must lie in [0, 1], got {self.kl_weight}")
        if self.remove_unused_columns:
            raise TrainConfigError(
                "--remove_unused_columns must be False: the group collator reads columns the model does not take"
            )
        if self.learning_rate is None:
            self.learning_rate = DEFAULT_LEARNING_RATE[self.method]
        super().__post_init__()

    @property
    def uses_kl(self) -> bool:
        return self.method.endswith("+kl")

    @property
    def trains_soft_prompt(self) -> bool:
        return self.method.startswith("pt")

    @property
    def effective_kl_weight(self) -> float:
        """The lambda actually used: 0 for the CE-only methods."""
        return float(self.kl_weight) if self.uses_kl else 0.0
