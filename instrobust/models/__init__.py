"""lm-eval model backends shipped with instrobust.

Importing this package registers them with lm-eval's model registry:

* ``instrobust-hf`` (:class:`FastHFLM`): the ``hf`` model, paying for each multiple-choice
  context once - one encoder pass per question for seq2seq models, one pass over the shared
  context and its key/value cache for causal models (see docs/fast-backend.md).
"""
from instrobust.models.fast_hf import FastHFLM, FastSeq2SeqHFLM

__all__ = ["FastHFLM", "FastSeq2SeqHFLM"]
