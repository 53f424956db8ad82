"""``instrobust-lm-eval``: lm-eval's own CLI, with instrobust's model backends registered.

lm-eval 0.4.13 has no plugin entry point for models, so a bare ``lm_eval`` only knows the models
its own package registers. This entry imports :mod:`instrobust.models` (registering
``instrobust-hf``) and then hands over to the function lm-eval's ``lm_eval``/``lm-eval`` console
scripts call (``lm_eval.__main__:cli_evaluate``), so every lm-eval flag and subcommand works:

    instrobust-lm-eval --model instrobust-hf --model_args pretrained=google/flan-t5-large \
        --tasks mmlu_unobserved --batch_size 8

``instrobust-hf`` scores each multiple-choice context once, for causal and seq2seq models alike
(docs/fast-backend.md); ``instrobust demo`` runs through this entry point.
"""
from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> None:
    import instrobust.models  # noqa: F401  (registers instrobust-hf)
    from lm_eval.__main__ import cli_evaluate

    if argv is not None:  # lm-eval's parser reads sys.argv itself
        sys.argv = [sys.argv[0] if sys.argv else "instrobust-lm-eval", *argv]
    cli_evaluate()


if __name__ == "__main__":
    main()
