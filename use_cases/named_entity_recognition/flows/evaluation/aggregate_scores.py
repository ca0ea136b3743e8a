"""Aggregation: the mean of each per-line score, logged as a run metric."""

from promptflow.core import log_metric, tool

METRICS = ("exact_match", "precision", "recall", "f1")


@tool
def aggregate_scores(scores: list) -> dict:
    lines = [s for s in scores if isinstance(s, dict)]
    results = {}
    for name in METRICS:
        values = [float(s.get(name, 0.0)) for s in lines]
        results[name] = round(sum(values) / len(values), 4) if values else 0.0
        log_metric(name, results[name])
    return results
