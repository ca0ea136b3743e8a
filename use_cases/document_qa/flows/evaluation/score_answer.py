"""Per-line scores of an answer against the expected answer, after normalisation (lower case, no
punctuation, no articles): token-overlap F1, exact match, and whether the expected answer is
contained in the given one."""

import re
from collections import Counter

from promptflow.core import tool


def normalise(text) -> str:
    text = str(text or "").lower()
    text = re.sub(r"(?<=\d)[,](?=\d)", "", text)  # 1,500 -> 1500
    text = re.sub(r"[^\w\s:]", " ", text)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


@tool
def score_answer(answer: str, ground_truth: str) -> dict:
    got, want = normalise(answer), normalise(ground_truth)
    got_tokens, want_tokens = got.split(), want.split()
    common = sum((Counter(got_tokens) & Counter(want_tokens)).values())
    if not got_tokens or not want_tokens:
        f1 = float(got_tokens == want_tokens)
    elif common == 0:
        f1 = 0.0
    else:
        precision, recall = common / len(got_tokens), common / len(want_tokens)
        f1 = 2 * precision * recall / (precision + recall)
    contains = int(bool(want) and re.search(rf"(?<!\w){re.escape(want)}(?!\w)", got) is not None)
    return {"f1": round(f1, 4), "exact_match": int(got == want), "contains": contains}
