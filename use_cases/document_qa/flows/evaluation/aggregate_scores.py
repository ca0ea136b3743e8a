"""Aggregation: mean F1, exact-match rate and exact-or-contained rate, logged as run metrics."""

from promptflow.core import log_metric, tool


@tool
def aggregate_scores(scores: list) -> dict:
    lines = [s for s in scores if isinstance(s, dict)]
    n = len(lines) or 1
    results = {
        "f1": round(sum(float(s.get("f1", 0.0)) for s in lines) / n, 4),
        "exact_match": round(sum(int(s.get("exact_match", 0)) for s in lines) / n, 4),
        "exact_or_contained": round(
            sum(max(int(s.get("exact_match", 0)), int(s.get("contains", 0))) for s in lines) / n, 4
        ),
    }
    for name, value in results.items():
        log_metric(name, value)
    return results
