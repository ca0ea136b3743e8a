"""Tidy the model's answer: drop an "Answer:" prefix, surrounding quotes and extra whitespace."""

import re

from promptflow.core import tool


@tool
def clean_answer(answer: str) -> str:
    text = " ".join((answer or "").split())
    text = re.sub(r"^\s*answer\s*:\s*", "", text, flags=re.IGNORECASE)
    return text.strip().strip("\"'`").strip()
