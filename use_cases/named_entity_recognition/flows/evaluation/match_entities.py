"""Per-line score: the predicted entities against the ground truth, as case-insensitive sets.

Both sides may be a list or a string (a JSON list or a comma-separated list); "None" and "" mean no
entities. Two empty sets are a perfect match.
"""

import json
import re

from promptflow.core import tool


def as_set(value) -> set:
    if value is None:
        return set()
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                value = text.strip("[]").split(",")
        else:
            value = text.split(",")
    items = set()
    for item in value:
        name = " ".join(str(item).split()).strip("\"'. ").lower()
        name = re.sub(r"^(?:dr|prof|mr|mrs|ms)\.?\s+", "", name)
        if name and name not in ("none", "null", "n/a"):
            items.add(name)
    return items


@tool
def match_entities(entities, ground_truth) -> dict:
    predicted, expected = as_set(entities), as_set(ground_truth)
    true_positives = len(predicted & expected)
    if not predicted and not expected:
        precision = recall = f1 = 1.0
    else:
        precision = true_positives / len(predicted) if predicted else 0.0
        recall = true_positives / len(expected) if expected else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "exact_match": int(predicted == expected),
        "precision": round(precision, 4),
        "recall": round(recall, 4),
        "f1": round(f1, 4),
    }
