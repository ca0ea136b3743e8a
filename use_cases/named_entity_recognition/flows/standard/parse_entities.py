"""Turn the model's answer into a clean list of entity names.

Accepts a JSON list (``["A", "B"]``), a comma- or newline-separated list, optionally prefixed with
``Entities:``, and ``None`` / ``[]`` for no entities. Duplicates are dropped, order is kept.
"""

import json
import re

from promptflow.core import tool

_EMPTY = {"", "none", "n/a", "no entities", "[]", "null"}
_TITLE = re.compile(r"^(?:dr|prof|mr|mrs|ms)\.?\s+", re.IGNORECASE)


def _items(answer: str) -> list:
    text = answer.strip()
    text = re.sub(r"^\s*entities\s*:\s*", "", text, flags=re.IGNORECASE)
    text = text.strip().strip("`")
    if text.lower().startswith("json"):
        text = text[4:].strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
            if isinstance(value, list):
                return [str(v) for v in value]
        except json.JSONDecodeError:
            text = text.strip("[]")
    return re.split(r"[,;\n]", text)


@tool
def parse_entities(answer: str) -> list:
    entities = []
    for item in _items(answer or ""):
        name = _TITLE.sub("", item.strip().strip("\"'*-•. ").strip())
        if name.lower() in _EMPTY:
            continue
        if name not in entities:
            entities.append(name)
    return entities
