"""The instruction bank: every instruction phrasing, observed or not, loaded by benchmark.

``InstructionBank.load`` is the one loader that dispatches by benchmark: it sits above the
collections (instrobust.mmlu.instructions, instrobust.bbl.instructions, instrobust.paper),
which all build on the leaf instrobust.instruction (Instruction, the template checks) and
instrobust.rendering (render).
Those names are re-exported here so ``from instrobust.bank import render`` keeps working.

Benchmark prompts have one path, :func:`render`: the harness tasks, the analysis and `instrobust
render` call it. instrobust_train does not render benchmark prompts (it trains on Alpaca-style
examples, instrobust_train.data.format_prompt); the models it trains are evaluated through render.
"""
from __future__ import annotations

from instrobust.instruction import (BBL_FIELDS, COLLECTIONS, OBSERVED_COLLECTIONS, QA_FIELDS, TASK_TYPES,
                                    Instruction, InstructionSet, check_bbl_template, check_qa_template)
from instrobust.rendering import JINJA_ENV, bbl_sentinel_doc, render, split_question, where

__all__ = ["BBL_FIELDS", "COLLECTIONS", "JINJA_ENV", "OBSERVED_COLLECTIONS", "QA_FIELDS", "TASK_TYPES",
           "Instruction", "InstructionBank", "InstructionSet", "bbl_sentinel_doc", "check_bbl_template",
           "check_qa_template", "render", "split_question", "where"]


class InstructionBank(InstructionSet):
    """All instructions for one benchmark (see :class:`InstructionSet`), loaded by :meth:`load`."""

    @classmethod
    def load(cls, benchmark: str = "mmlu", *, resolver=None, observed: bool = True) -> "InstructionBank":
        """Load our unobserved templates and (optionally) the observed ones from upstream."""
        if benchmark == "bbl":
            from instrobust.bbl.instructions import load_bbl_bank

            bbl = load_bbl_bank(resolver=resolver, observed=observed)
            return cls(bbl, bbl.skipped)
        from instrobust.mmlu.instructions import load_observed, load_unobserved

        instructions = list(load_unobserved(benchmark))
        skipped: dict[str, str] = {}
        if observed:
            obs, skipped = load_observed(benchmark, resolver=resolver)
            instructions += obs
            from instrobust.paper import load_paper  # the authors' own set, read from their code

            paper, why = load_paper(benchmark, resolver)
            instructions += paper
            skipped.update(why)
        return cls(instructions, skipped)

    def _known_groups(self) -> frozenset[str] | None:
        import instrobust.catalog as catalog  # above the collections, like the loaders

        return catalog.names()
