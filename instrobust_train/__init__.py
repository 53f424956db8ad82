"""instrobust training add-on: soft prompt alignment of equivalent instructions (seed paper, section 5).

``instrobust-paraphrase`` writes k paraphrases per reference instruction; ``instrobust-train``
trains one method of the paper's Table 5 (``ft``, ``ft+kl``, ``pt``, ``pt+kl``) and saves a PEFT
adapter that ``lm_eval --model hf --model_args pretrained=BASE,peft=OUT`` loads.
"""
from __future__ import annotations

import importlib

_EXPORTS = {
    "AlignmentConfig": "instrobust_train.config",
    "DataConfig": "instrobust_train.config",
    "ModelConfig": "instrobust_train.config",
    "SoftPromptConfig": "instrobust_train.config",
    "AlignmentTrainer": "instrobust_train.trainer",
    "GroupCollator": "instrobust_train.collate",
    "kl_consistency_loss": "instrobust_train.loss",
    "train": "instrobust_train.train",
    "ParaphraseConfig": "instrobust_train.paraphrase",
}

__all__ = list(_EXPORTS)


def __getattr__(name: str):  # lazy: the CLIs should not pay for torch/transformers imports they skip
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'instrobust_train' has no attribute {name!r}")
