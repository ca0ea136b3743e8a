"""Per-line score: 1 when the predicted category equals the expected one (case and spaces ignored)."""

from promptflow.core import tool


def _norm(value) -> str:
    return " ".join(str(value or "").split()).strip("\"'. ").lower()


@tool
def grade(category: str, ground_truth: str) -> dict:
    predicted, expected = _norm(category), _norm(ground_truth)
    return {"correct": int(predicted == expected), "predicted": predicted, "expected": expected}
