"""Per-instruction accuracies from lm-eval output, the degradation of each unobserved instruction,
and the linear fit of degradation on distance (paper, Figure 5).

Accuracies come from lm-eval ``results_*.json`` files (``results[task]["acc,none"]``) found under
the given folders, or from a ``report.json`` written by ``instrobust report`` (its
``instructions`` rows, zero-shot only). Degradation of an unobserved instruction u on pool P:
``100 * (acc(u) - mean acc of the observed instructions on P with the same scoring)``, in
accuracy points (negative = worse than observed).
"""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from instrobust.analysis.errors import AnalysisError
from instrobust.analysis.tasks import AnalysisTask

ACC_KEY = "acc,none"


@dataclass
class Accuracies:
    """Task name -> accuracy in [0, 1], for one model, and where the numbers came from."""

    acc: dict[str, float]
    model: str | None
    files: list[str]
    notes: list[str] = field(default_factory=list)


def _model_key(data: dict) -> str | None:
    config = data.get("config") or {}
    args = config.get("model_args") or {}
    if isinstance(args, str):
        args = dict(kv.split("=", 1) for kv in args.split(",") if "=" in kv)
    pretrained = args.get("pretrained") or data.get("model_name") or config.get("model")
    if not pretrained:
        return None
    return str(pretrained) + (f" + peft={args['peft']}" if args.get("peft") else "")


def _from_report(path: Path) -> Accuracies:
    try:
        report = json.loads(path.read_text())
        rows = [r for r in report["instructions"] if int(r.get("n_shot", 0)) == 0]
    except (ValueError, KeyError, TypeError) as exc:
        raise AnalysisError(f"{path}: not an instrobust report.json ({type(exc).__name__}: {exc})") from None
    models = sorted({str(r.get("model")) for r in rows})
    if len(models) > 1:
        raise AnalysisError(f"{path}: holds several models ({', '.join(models)}); pass the lm-eval output "
                            f"folder of the analysed model instead")
    return Accuracies({str(r["task"]): float(r["acc"]) for r in rows if r.get("acc") is not None},
                      models[0] if models else None, [str(path)])


def load_accuracies(paths: Sequence[str | Path]) -> Accuracies:
    """Zero-shot task accuracies of one model from lm-eval output folders/files or a report.json."""
    acc: dict[str, float] = {}
    origin: dict[str, str] = {}
    models: dict[str, list[str]] = defaultdict(list)
    files: list[str] = []
    notes: list[str] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise AnalysisError(f"--results {path}: no such file or directory")
        report = path if path.is_file() and path.name == "report.json" else path / "report.json"
        if report.is_file():
            got = _from_report(report)
            models[str(got.model)].append(str(report))
            files += got.files
            acc.update(got.acc)
            continue
        found = [path] if path.is_file() else sorted(path.rglob("results*.json"))
        if not found:
            raise AnalysisError(f"--results {path}: no lm-eval results_*.json or report.json in it or below it")
        # Oldest first, so that a rerun (a later time stamp in the name) replaces an earlier number.
        for f in sorted(found, key=lambda p: p.name):
            try:
                data = json.loads(f.read_text())
                results = data["results"]
            except (ValueError, KeyError, TypeError) as exc:
                raise AnalysisError(f"{f}: not an lm-eval results file ({type(exc).__name__}: {exc})") from None
            models[str(_model_key(data))].append(str(f))
            files.append(str(f))
            shots = data.get("n-shot") or {}
            few_shot = sorted(t for t in results if isinstance(shots.get(t), int) and shots[t] > 0)
            if few_shot:  # one-shot runs use --num_fewshot on the same task names: not the analysed prompt
                notes.append(f"{f}: ignored {len(few_shot)} few-shot result(s) (n-shot > 0), e.g. {few_shot[0]}")
            for task, metrics in results.items():
                if task in few_shot:
                    continue
                if isinstance(metrics, dict) and isinstance(metrics.get(ACC_KEY), (int, float)):
                    if task in acc and acc[task] != metrics[ACC_KEY]:
                        notes.append(f"{task}: {f} replaces the accuracy from {origin[task]}")
                    acc[task], origin[task] = float(metrics[ACC_KEY]), str(f)
    if len(models) > 1:
        listed = "; ".join(f"{m} ({len(fs)} file(s), e.g. {fs[0]})" for m, fs in models.items())
        raise AnalysisError(f"--results mixes several models: {listed}. Pass the folders of one model "
                            f"(use --peft-results for the adapter's)")
    return Accuracies(acc, next(iter(models), None), files, notes)


@dataclass
class LinearFit:
    """Least-squares line y = slope * x + intercept (scipy.stats.linregress)."""

    slope: float
    intercept: float
    r: float
    p: float
    stderr: float
    n: int

    def to_dict(self) -> dict:
        return asdict(self)


def linear_fit(x: Sequence[float], y: Sequence[float]) -> LinearFit | None:
    """The fit, or None when it is undefined (fewer than 3 points, or all x equal)."""
    from scipy.stats import linregress

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if len(x) < 3 or np.ptp(x) == 0:
        return None
    res = linregress(x, y)
    return LinearFit(float(res.slope), float(res.intercept), float(res.rvalue), float(res.pvalue),
                     float(res.stderr), len(x))


def observed_baselines(tasks: Sequence[AnalysisTask], acc: Mapping[str, float]) -> dict[tuple[str, str], float]:
    """(pool, scoring) -> mean accuracy of the observed instructions with an accuracy."""
    groups: dict[tuple[str, str], list[float]] = defaultdict(list)
    for t in tasks:
        if t.observed and t.name in acc:
            groups[(t.source, t.scoring)].append(acc[t.name])
    return {k: float(np.mean(v)) for k, v in groups.items()}


def degradations(tasks: Sequence[AnalysisTask], acc: Mapping[str, float]) -> tuple[dict[str, float], list[str]]:
    """Unobserved task -> degradation in accuracy points, and notes on tasks left out."""
    base = observed_baselines(tasks, acc)
    out: dict[str, float] = {}
    missing_acc: list[str] = []
    no_base: list[str] = []
    for t in tasks:
        if t.observed:
            continue
        if t.name not in acc:
            missing_acc.append(t.name)
        elif (t.source, t.scoring) not in base:
            no_base.append(t.name)
        else:
            out[t.name] = 100.0 * (acc[t.name] - base[(t.source, t.scoring)])
    notes = []
    if missing_acc:
        notes.append(f"no accuracy in the results for {len(missing_acc)} unobserved task(s): {', '.join(missing_acc[:5])}")
    if no_base:
        notes.append(f"no observed accuracy on the same pool and scoring for: {', '.join(no_base[:5])}")
    return out, notes
