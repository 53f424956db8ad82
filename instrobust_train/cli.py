"""``instrobust-train``: soft prompt alignment (seed paper, section 5) and its ablations.

    instrobust-train --base google/flan-t5-xl --source tatsu-lab/alpaca \\
        --paraphrases paraphrases.jsonl --method pt+kl --output_dir OUT

Every ``transformers.TrainingArguments`` option works too (``--report_to``, ``--save_steps``,
``--resume_from_checkpoint last``, ``--bf16``, ...). Several GPUs: ``accelerate launch -m
instrobust_train.cli ...`` or ``torchrun --nproc_per_node 4 -m instrobust_train.cli ...``.
"""
from __future__ import annotations

import sys

from transformers import HfArgumentParser

from instrobust_train.config import AlignmentConfig, DataConfig, ModelConfig, SoftPromptConfig
from instrobust_train.errors import exit_status


def parse(argv: list[str] | None = None) -> tuple[ModelConfig, DataConfig, SoftPromptConfig, AlignmentConfig]:
    parser = HfArgumentParser((ModelConfig, DataConfig, SoftPromptConfig, AlignmentConfig))
    parser.prog = "instrobust-train"
    return parser.parse_args_into_dataclasses(args=argv)


def main(argv: list[str] | None = None) -> int:
    def command():
        model_cfg, data_cfg, prompt_cfg, args = parse(sys.argv[1:] if argv is None else argv)
        from instrobust_train.train import train

        train(model_cfg, data_cfg, prompt_cfg, args)

    return exit_status("instrobust-train", command)


if __name__ == "__main__":
    sys.exit(main())
