"""The unit of the report: one cell = one model scored on one benchmark task under one instruction.

Everything downstream (statistics, tables, plots, report.json) is computed from a list of cells
and a list of models, so other producers of accuracies (e.g. a sparse IRT estimator) can build
cells themselves and reuse ``instrobust.report.build_report`` unchanged.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from instrobust.errors import InstrobustError
from instrobust.report.trained_on import TrainedOn


class ReportInputError(InstrobustError):
    """An lm-eval output directory or file we cannot turn into a correct report."""


@dataclass
class ModelInfo:
    """One evaluated model: a base checkpoint, optionally with a PEFT adapter."""

    key: str  # unique: pretrained path/id, plus "+peft=<adapter>"
    label: str  # short display name
    pretrained: str
    peft: str | None = None
    num_parameters: int | None = None  # as lm-eval recorded it (config.model_num_parameters)
    trained_on: TrainedOn | None = None  # its instruction collections; set by build_report (trained_on.py)

    @property
    def size(self) -> float | None:
        """Parameter count: lm-eval's record if present, else parsed from the name (flan-t5-xl, 7b...)."""
        return float(self.num_parameters) if self.num_parameters else size_from_name(self.pretrained)

    @property
    def family(self) -> str:
        """The name with its size token removed: flan-t5-small and flan-t5-xl are both 'flan-t5'."""
        return family_of(self.pretrained)


@dataclass
class Cell:
    """Accuracy of one model on one lm-eval task (benchmark task x instruction)."""

    model: str  # ModelInfo.key
    task: str  # lm-eval task name, e.g. mmlu_obs_p3_03; identifies the instruction within a benchmark
    benchmark: str  # "mmlu" or the BIG-bench task name
    category: str  # MMLU, MMLU (cloze), BBL-QA, BBL-BC, BBL-MC
    collection: str  # flan2022 | alpaca | p3 | unobserved | designer
    observed: bool  # observed by this model: build_report sets it from the model's collections
    acc: float  # in [0, 1]
    n_shot: int = 0
    n_items: int | None = None  # items scored (after --limit)
    n_items_total: int | None = None  # items in the task before --limit
    items: dict[int, float] | None = None  # doc_id -> per-item score, from --log_samples
    variant: str | None = None  # Figure-3 variant task: closest | incorrect | negated | nonsensical
    variant_study: bool = False  # benchmark used only by the variant study (never in Table 3)
    scoring: str | None = None
    metric: str = "acc"
    source: str = ""  # file the number came from
    instruction: str | None = None  # instruction id (dataset_kwargs.instruction): shared by its tasks
    estimated: dict | None = None  # set by estimators, e.g. {"method": "irt", "budget": 200}
    notes: list[str] = field(default_factory=list)


# Flan-T5 / T5 size names; sizes as the paper gives them (small 80M ... XXL 11B).
_NAMED_SIZES = {"small": 80e6, "base": 250e6, "large": 780e6, "xl": 3e9, "xxl": 11e9}
_NAMED_SIZE_RE = re.compile(r"(?<![a-z0-9])(small|base|large|xxl|xl)(?![a-z0-9])")
_COUNT_RE = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?)([kmbt])(?![a-z0-9])")
_SCALE = {"k": 1e3, "m": 1e6, "b": 1e9, "t": 1e12}


def _basename(name: str) -> str:
    return name.rstrip("/").split("/")[-1].lower().replace("_", "-")


def size_from_name(name: str) -> float | None:
    base = _basename(name)
    m = _COUNT_RE.search(base)
    if m:
        return float(m.group(1)) * _SCALE[m.group(2)]
    m = _NAMED_SIZE_RE.search(base)
    return _NAMED_SIZES[m.group(1)] if m else None


def family_of(name: str) -> str:
    base = _COUNT_RE.sub("", _basename(name))
    base = _NAMED_SIZE_RE.sub("", base)
    return re.sub(r"-{2,}", "-", base).strip("-") or _basename(name)
