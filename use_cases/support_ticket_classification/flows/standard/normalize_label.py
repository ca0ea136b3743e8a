"""Reduce the model's answer to one bare label.

Understands ``{"category": "billing"}``, ``Category: billing``, ``billing`` and a label mentioned in
a sentence; anything that names no known label becomes ``other``.
"""

import json
import re

from promptflow.core import tool

LABELS = ("billing", "technical", "account", "shipping", "other")


@tool
def normalize_label(answer: str) -> str:
    text = (answer or "").strip().strip("`")
    if text.lower().startswith("json"):
        text = text[4:].strip()
    if text.startswith("{"):
        try:
            value = json.loads(text)
            if isinstance(value, dict):
                text = str(value.get("category") or value.get("label") or "")
        except json.JSONDecodeError:
            pass
    text = re.sub(r"^\s*(?:category|label)\s*:\s*", "", text, flags=re.IGNORECASE)
    word = text.strip().strip("\"'<>.* ").lower()
    if word in LABELS:
        return word
    for label in LABELS:
        if re.search(rf"\b{label}\b", word):
            return label
    return "other"
