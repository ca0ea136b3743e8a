"""Aggregation: accuracy, and precision/recall/F1 macro-averaged over the expected labels."""

from promptflow.core import log_metric, tool


@tool
def aggregate_scores(grades: list) -> dict:
    lines = [g for g in grades if isinstance(g, dict)]
    n = len(lines)
    accuracy = sum(int(g.get("correct", 0)) for g in lines) / n if n else 0.0
    labels = sorted({g.get("expected", "") for g in lines})
    precisions, recalls, f1s = [], [], []
    for label in labels:
        tp = sum(1 for g in lines if g.get("predicted") == label and g.get("expected") == label)
        fp = sum(1 for g in lines if g.get("predicted") == label and g.get("expected") != label)
        fn = sum(1 for g in lines if g.get("predicted") != label and g.get("expected") == label)
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        precisions.append(p)
        recalls.append(r)
        f1s.append(2 * p * r / (p + r) if p + r else 0.0)
    k = len(labels) or 1
    results = {
        "accuracy": round(accuracy, 4),
        "precision": round(sum(precisions) / k, 4),
        "recall": round(sum(recalls) / k, 4),
        "f1": round(sum(f1s) / k, 4),
    }
    for name, value in results.items():
        log_metric(name, value)
    return results
