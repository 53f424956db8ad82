"""lm-eval model backends shipped with instrobust.

Importing this package registers them with lm-eval's model registry:

* ``instrobust-hf`` (:class:`FastSeq2SeqHFLM`): the ``hf`` model with one encoder pass per
  question for seq2seq models (see docs/fast-backend.md).
"""
from instrobust.models.seq2seq_fast import FastSeq2SeqHFLM

__all__ = ["FastSeq2SeqHFLM"]
