"""One alignment run end to end: data, paraphrases, model, trainer, outputs.

Output directory: the PEFT adapter (``adapter_config.json``, ``adapter_model.safetensors``;
for ``ft``/``ft+kl`` the full model instead), ``prompt_encoder_state.safetensors`` (the
prefix MLP, to continue training), ``alignment_config.json`` (every resolved option),
``training_log.jsonl`` (the Trainer's log history: loss, ce, kl, lr per logging step),
``train.log`` (the run's text log), ``run_config.json`` (what defines the run, see
:mod:`instrobust_train.runs`) and ``checkpoint-*`` folders (each with its ``run_config.json``).
"""
from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from instrobust_train.config import AlignmentConfig, DataConfig, ModelConfig, SoftPromptConfig
from instrobust_train.data import GroupDataset, attach_paraphrases, load_examples
from instrobust_train.errors import TrainConfigError
from instrobust_train.model import count_parameters, load_base, load_base_config, soft_prompt_peft_config
from instrobust_train.runs import check_resume, prepare_output_dir, resolve_resume, run_identity
from instrobust_train.trainer import AlignmentTrainer, reject_activation_checkpointing

log = logging.getLogger("instrobust_train")

CONFIG_FILE = "alignment_config.json"
LOG_HISTORY_FILE = "training_log.jsonl"
TEXT_LOG_FILE = "train.log"


@dataclass
class TrainResult:
    output_dir: Path
    trainer: AlignmentTrainer
    tokenizer: object

    @property
    def model(self):
        return self.trainer.model

    @property
    def log_history(self) -> list[dict]:
        return self.trainer.state.log_history


def _setup_logging(args: AlignmentConfig) -> logging.Handler | None:
    log.setLevel(logging.INFO)
    if not args.should_log:
        return None
    if not any(isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler) for h in log.handlers):
        log.addHandler(logging.StreamHandler())
    Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(Path(args.output_dir) / TEXT_LOG_FILE, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    log.addHandler(handler)
    return handler


def _versions() -> dict[str, str]:
    import peft
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


def train(
    model_cfg: ModelConfig,
    data_cfg: DataConfig,
    prompt_cfg: SoftPromptConfig,
    args: AlignmentConfig,
    callbacks: list | None = None,
) -> TrainResult:
    """Run one method of Table 5 and save what ``lm_eval --model_args ...,peft=OUT`` loads."""
    if not args.output_dir:
        raise TrainConfigError("--output_dir is required")
    if args.trains_soft_prompt:
        reject_activation_checkpointing(args)
    if data_cfg.paraphrases is None:
        raise TrainConfigError(
            "--paraphrases is required: every method trains on the paraphrase-augmented data; "
            "write the file with instrobust-paraphrase first"
        )
    if args.should_save:  # the process that writes files decides; the others write nothing here
        prepare_output_dir(args.output_dir, overwrite=args.overwrite_output_dir, resume=args.resume_from_checkpoint)
    is_encoder_decoder = bool(load_base_config(model_cfg.base).is_encoder_decoder)
    soft_prompt_type = prompt_cfg.resolved_type(is_encoder_decoder) if args.trains_soft_prompt else None
    identity = run_identity(model_cfg, data_cfg, prompt_cfg, args, soft_prompt_type)
    # Before the text log exists: a refused resume must not leave a train.log that marks the folder as a run.
    resume, skipped = resolve_resume(args.resume_from_checkpoint, args.output_dir)
    if resume is not None:
        check_resume(resume, identity)
    handler = _setup_logging(args)
    try:
        for warning in skipped:
            log.warning(warning)
        if resume is not None:
            log.info("resuming from %s (its run_config.json matches this run's options)", resume)
        examples = attach_paraphrases(load_examples(data_cfg), data_cfg.paraphrases, data_cfg.max_paraphrases)
        model, tokenizer = load_base(model_cfg)
        peft_config = soft_prompt_peft_config(model, prompt_cfg) if args.trains_soft_prompt else None
        dataset = GroupDataset(examples, tokenizer, data_cfg, bool(model.config.is_encoder_decoder))
        trainer = AlignmentTrainer(model, args, train_dataset=dataset, processing_class=tokenizer,
                                   peft_config=peft_config, callbacks=callbacks, run_config=identity)
        trainable, total = count_parameters(trainer.model)
        log.info("method %s%s: %d trainable of %d parameters (%.3f%%)", args.method,
                 f" ({soft_prompt_type} soft prompt)" if soft_prompt_type else "", trainable, total,
                 100.0 * trainable / total)
        if args.should_save:
            _write_config(args, model_cfg, data_cfg, prompt_cfg, trainer, examples, trainable, total, identity)
        trainer.train(resume_from_checkpoint=resume)
        trainer.save_model(args.output_dir)
        if args.should_save:
            with open(Path(args.output_dir) / LOG_HISTORY_FILE, "w", encoding="utf-8") as fh:
                for entry in trainer.state.log_history:
                    fh.write(json.dumps(entry) + "\n")
            log.info("saved %s to %s", "adapter" if peft_config else "model", args.output_dir)
        return TrainResult(Path(args.output_dir), trainer, tokenizer)
    finally:
        if handler is not None:
            log.removeHandler(handler)
            handler.close()


def _write_config(args, model_cfg, data_cfg, prompt_cfg, trainer, examples, trainable, total, identity) -> None:
    peft_model_config = getattr(trainer.model, "peft_config", {}).get("default")
    resolved = {
        "model": dataclasses.asdict(model_cfg),
        "data": dataclasses.asdict(data_cfg),
        "soft_prompt": dataclasses.asdict(prompt_cfg) if args.trains_soft_prompt else None,
        "run": identity,
        "training": json.loads(args.to_json_string()),
        "peft_config": peft_model_config.to_dict() if peft_model_config is not None else None,
        "examples": len(examples),
        "rows": sum(len(e.instructions) for e in examples),
        "trainable_parameters": trainable,
        "total_parameters": total,
        "versions": _versions(),
    }
    with open(Path(args.output_dir) / CONFIG_FILE, "w", encoding="utf-8") as fh:
        json.dump(resolved, fh, indent=2, default=str)
