"""One real lm-eval run saved as the CLI saves it (results_*.json + samples_*.jsonl), for tests."""
from __future__ import annotations

from pathlib import Path


def evaluate_to(out: Path, **kwargs) -> Path:
    """``lm_eval.simple_evaluate(**kwargs, log_samples=True)``, written under ``out`` like ``--output_path``."""
    import lm_eval
    from lm_eval.loggers import EvaluationTracker

    tracker = EvaluationTracker(output_path=str(out))
    results = lm_eval.simple_evaluate(log_samples=True, evaluation_tracker=tracker, **kwargs)
    samples = results.pop("samples")
    tracker.save_results_aggregated(results=results, samples=samples)
    for task in results["configs"]:
        tracker.save_results_samples(task_name=task, samples=samples[task])
    return out
