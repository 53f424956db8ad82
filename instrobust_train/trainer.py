"""``AlignmentTrainer``: a ``transformers.Trainer`` whose loss is the paper's alignment objective.

Why not ``trl.SFTTrainer``: it fails on encoder-decoder models such as T5 and its fused loss
head yields no full-vocabulary distributions, which the KL term needs. The surface stays
TRL-like: ``peft_config=``, ``processing_class=``, and logged ``ce``/``kl`` metrics.
"""
from __future__ import annotations

import os

import safetensors.torch
import torch
from peft import PeftModel, get_peft_model
from transformers import Trainer, set_seed

from instrobust_train.collate import GroupCollator
from instrobust_train.config import AlignmentConfig
from instrobust_train.errors import CheckpointError, TrainConfigError
from instrobust_train.loss import cross_entropy, kl_consistency_loss, target_log_probs
from instrobust_train.runs import write_run_config

# PEFT saves a soft prompt trained through an MLP (prefix projection, P-tuning) as the MLP's output
# only (inference-ready, but the MLP is gone); checkpoints also keep the whole prompt encoder.
PROMPT_ENCODER_STATE = "prompt_encoder_state.safetensors"


def reject_activation_checkpointing(args: AlignmentConfig) -> None:
    """Soft prompts and activation (gradient) checkpointing fail together at the first step: say so up front."""
    if args.activation_checkpointing:
        raise TrainConfigError(
            "--activation_checkpointing (--gradient_checkpointing) does not work with a soft prompt (prefix "
            "tuning fails at the first step): drop it, and lower --per_device_train_batch_size or raise "
            "--gradient_accumulation_steps to save memory"
        )


class AlignmentTrainer(Trainer):
    """Train with L = (1 - lambda) * CE + lambda * L_KL (seed paper, section 5).

    ``L_KL = 1/(N-1) * sum_{i != r} sum_j KL(y_i^(j) || y_r^(j))``: for each example, the
    model's distribution at target position j under paraphrased instruction i is pulled towards
    its distribution under the reference instruction r (see :mod:`instrobust_train.loss`).
    Batches come from :class:`~instrobust_train.collate.GroupCollator`: every example brings its
    reference row and its paraphrase rows. CE is the token mean over all rows. ``ft``/``pt`` use
    lambda = 0 (CE on the paraphrase data); ``pt``/``pt+kl`` train only the soft prompt.

    The loss is a per-micro-batch mean, so ``loss_is_scaled_for_ga = False`` lets the Trainer
    divide it by the gradient accumulation steps (otherwise accumulation would scale it up).
    ``run_config`` (see :func:`instrobust_train.runs.run_identity`), when given, is saved with every
    checkpoint so that resuming can check it.
    """

    loss_is_scaled_for_ga = False

    def __init__(self, model, args: AlignmentConfig, train_dataset=None, processing_class=None,
                 peft_config=None, data_collator=None, run_config: dict | None = None, **kwargs):
        if not isinstance(args, AlignmentConfig):
            raise TrainConfigError("AlignmentTrainer needs an AlignmentConfig as args")
        if peft_config is not None and not isinstance(model, PeftModel):
            if peft_config.is_prompt_learning:
                reject_activation_checkpointing(args)
            set_seed(args.seed)  # the soft prompt's random init must not depend on what ran before
            model = get_peft_model(model, peft_config)
        if args.trains_soft_prompt and not isinstance(model, PeftModel):
            raise TrainConfigError(f"--method {args.method} trains a soft prompt: pass peft_config")
        self.is_encoder_decoder = bool(getattr(model.config, "is_encoder_decoder", False))
        if data_collator is None:
            if processing_class is None:
                raise TrainConfigError("pass processing_class (the tokenizer) or a data_collator")
            data_collator = GroupCollator(
                pad_token_id=processing_class.pad_token_id, is_encoder_decoder=self.is_encoder_decoder,
                decoder_start_token_id=getattr(model.config, "decoder_start_token_id", None),
            )
        super().__init__(model=model, args=args, train_dataset=train_dataset, data_collator=data_collator,
                         processing_class=processing_class, **kwargs)
        self._metrics: dict[str, list[torch.Tensor]] = {"ce": [], "kl": []}
        self.run_config = run_config

    # ---- objective -------------------------------------------------------------------------
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """L = (1 - lambda) * CE + lambda * L_KL on one micro-batch of instruction groups."""
        inputs = dict(inputs)
        labels = inputs.pop("labels")
        group_index = inputs.pop("group_index")
        is_reference = inputs.pop("is_reference")
        # No labels to the model: it would compute a second full-vocabulary CE we do not use.
        outputs = model(**inputs)
        log_probs, targets, valid = target_log_probs(outputs.logits, labels, causal=not self.is_encoder_decoder)
        ce = cross_entropy(log_probs, targets, valid)
        self._metrics["ce"].append(ce.detach())
        loss = ce
        if self.args.uses_kl:
            kl = kl_consistency_loss(
                log_probs, valid, group_index, is_reference,
                reduction=self.args.kl_reduction, detach_reference=self.args.kl_detach_reference,
            )
            self._metrics["kl"].append(kl.detach())
            weight = self.args.effective_kl_weight
            loss = (1.0 - weight) * ce + weight * kl
        return (loss, outputs) if return_outputs else loss

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the mean ``ce``/``kl`` since the last log (averaged over processes) to the Trainer's logs."""
        for name, values in self._metrics.items():
            if values:
                mean = torch.stack(values).mean()
                if self.args.world_size > 1:
                    mean = self.accelerator.gather(mean.reshape(1)).mean()
                logs[name] = round(mean.item(), 6)
                values.clear()
        super().log(logs, start_time)

    # ---- checkpoints: keep the full prompt encoder so resuming is exact ----------------------
    def _soft_prompt_model(self) -> PeftModel | None:
        model = self.accelerator.unwrap_model(self.model)
        if isinstance(model, PeftModel) and model.active_peft_config.is_prompt_learning:
            return model
        return None

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict)
        folder = output_dir or self.args.output_dir
        peft_model = self._soft_prompt_model()
        if peft_model is not None and self.args.should_save:
            encoder = peft_model.prompt_encoder[peft_model.active_adapter]
            state = {k: v.detach().cpu().contiguous() for k, v in encoder.state_dict().items()}
            safetensors.torch.save_file(state, os.path.join(folder, PROMPT_ENCODER_STATE))
        if self.run_config is not None and self.args.should_save:
            write_run_config(folder, self.run_config)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        peft_model = self._soft_prompt_model()
        if peft_model is None:
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        path = os.path.join(resume_from_checkpoint, PROMPT_ENCODER_STATE)
        if not os.path.isfile(path):
            raise CheckpointError(
                f"{resume_from_checkpoint}: no {PROMPT_ENCODER_STATE}. PEFT's adapter file of a soft prompt with "
                "an MLP holds only the MLP's output; resume from a checkpoint written by instrobust-train."
            )
        encoder = peft_model.prompt_encoder[peft_model.active_adapter]
        state = safetensors.torch.load_file(path, device="cpu")
        try:
            encoder.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            raise CheckpointError(
                f"{path}: does not fit this soft prompt ({exc}). Resume with the same --num_virtual_tokens, "
                "--encoder_hidden_size and --peft_type as the interrupted run."
            ) from None
