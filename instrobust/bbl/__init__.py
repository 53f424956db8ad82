"""BIG-bench Lite (BBL): the paper's 14 tasks, typed QA / BC / MC, plus the Figure-3 tasks.

Everything BBL-specific lives in this package: ``data`` (sources, documents, held-out
demonstrations), ``hub`` (reading the hub's BIG-bench copy), ``instructions`` (the BBL part of the
instruction bank) and ``tasks`` (the lm-eval task/group names the generator writes); user docs in
docs/bigbench.md. Rendering goes through
:func:`instrobust.bank.render` like every other benchmark.
"""
from __future__ import annotations

from dataclasses import dataclass

BBL_TYPES = ("qa", "bc", "mc")


@dataclass(frozen=True)
class BBLTask:
    """One evaluated BIG-bench task: where its examples are and what kind of task it is.

    ``subtask`` selects one subtask folder; ``pool_subtasks`` pools every subtask folder (in
    name order) when the top-level task.json holds no examples of its own.
    """

    name: str
    task_type: str
    options: tuple[int, int]  # fewest and most options an example has (templates are checked at both)
    subtask: str | None = None
    pool_subtasks: bool = False
    in_bbl14: bool = True  # one of the paper's 14 (Table 3); False: Figure-3 only


TASKS: dict[str, BBLTask] = {t.name: t for t in [
    # multiple-choice QA
    BBLTask("bbq_lite_json", "qa", (3, 3), pool_subtasks=True),
    BBLTask("code_line_description", "qa", (4, 5)),
    BBLTask("conceptual_combinations", "qa", (4, 4), pool_subtasks=True),
    BBLTask("hindu_knowledge", "qa", (4, 6)),
    BBLTask("known_unknowns", "qa", (2, 2)),
    BBLTask("logic_grid_puzzle", "qa", (2, 5)),
    BBLTask("logical_deduction", "qa", (5, 5), subtask="five_objects"),
    BBLTask("novel_concepts", "qa", (5, 5)),
    # binary classification
    BBLTask("play_dialog_same_or_different", "bc", (2, 2)),
    BBLTask("strange_stories", "bc", (2, 2), subtask="boolean"),
    BBLTask("strategyqa", "bc", (2, 2)),
    BBLTask("winowhy", "bc", (2, 2)),
    # multi-class classification
    BBLTask("language_identification", "mc", (11, 11)),
    BBLTask("vitaminc_fact_verification", "mc", (3, 3)),
    # Figure 3 only (instruction variants); conceptual_combinations and language_identification
    # are in both sets.
    BBLTask("crash_blossom", "mc", (4, 4), in_bbl14=False),
    BBLTask("empirical_judgments", "mc", (3, 3), in_bbl14=False),
    BBLTask("epistemic_reasoning", "bc", (2, 2), in_bbl14=False),
    BBLTask("intent_recognition", "mc", (7, 7), in_bbl14=False),
    BBLTask("logical_sequence", "qa", (3, 4), in_bbl14=False),
]}

BBL14 = tuple(n for n, t in TASKS.items() if t.in_bbl14)

# Figure 3 of the paper: six instruction variants over seven tasks.
VARIANT_TASKS = (
    "conceptual_combinations", "crash_blossom", "empirical_judgments", "epistemic_reasoning",
    "intent_recognition", "language_identification", "logical_sequence",
)
# closest / incorrect / negated are built from upstream text (templates/observed/bbl_variants.yaml);
# designer and newly_collected reuse the designer and unobserved instructions; nonsensical is
# templates/variants/bbl/<task>/nonsensical.jinja.
VARIANTS = ("closest", "incorrect", "negated", "designer", "newly_collected", "nonsensical")


def option_counts(task_type: str) -> tuple[int, int]:
    """Fewest and most options over the tasks of one type (shared templates are checked at both)."""
    ranges = [t.options for t in TASKS.values() if t.task_type == task_type]
    return min(r[0] for r in ranges), max(r[1] for r in ranges)


def task_info(name: str) -> BBLTask:
    from instrobust.errors import DataError

    if name not in TASKS:
        import difflib

        close = difflib.get_close_matches(name, TASKS, n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise DataError(f"unknown BIG-bench Lite task {name!r} (known: {', '.join(TASKS)}).{hint}")
    return TASKS[name]
