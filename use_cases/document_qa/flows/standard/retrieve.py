"""Retrieval over the handbook in ``docs/``: plain-Python BM25 over paragraphs, no network, no model.

Each paragraph of each document is one passage (markdown headings are dropped: they are titles, not
content). The index is built once per process and reused across lines.
"""

import math
import re
from collections import Counter
from functools import lru_cache
from pathlib import Path

from promptflow.core import tool

DOCS_DIR = Path(__file__).resolve().parent / "docs"
K1, B = 1.2, 0.75
STOPWORDS = frozenset(
    """a an the and or but of to in on at by for from with about into over is are was were be been
    being am do does did has have had will would shall should can could may might must what which who
    whom whose when where why how this that these those it its i me my we our you your they them their
    he she his her not no as than so if then there here any each all some such""".split()
)


def tokens(text: str) -> list:
    words = re.findall(r"[a-z0-9]+(?:[.,:'-][a-z0-9]+)*", text.lower())
    out = []
    for word in words:
        if word in STOPWORDS:
            continue
        for suffix in ("ing", "ed", "es", "s"):
            if word.endswith(suffix) and len(word) - len(suffix) >= 3:
                word = word[: -len(suffix)]
                break
        out.append(word)
    return out


@lru_cache(maxsize=4)
def _index(docs_dir: str):
    passages = []
    for path in sorted(Path(docs_dir).glob("*.md")) + sorted(Path(docs_dir).glob("*.txt")):
        for block in re.split(r"\n\s*\n", path.read_text(encoding="utf-8")):
            lines = [ln for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
            text = " ".join(" ".join(lines).split())
            if text:
                passages.append((path.name, text))
    counts = [Counter(tokens(text)) for _, text in passages]
    lengths = [sum(c.values()) for c in counts]
    avg = sum(lengths) / len(lengths) if lengths else 1.0
    df = Counter(term for c in counts for term in c)
    n = len(passages)
    idf = {t: math.log(1 + (n - d + 0.5) / (d + 0.5)) for t, d in df.items()}
    return passages, counts, lengths, avg, idf


def search(question: str, top_k: int = 2, docs_dir: Path = DOCS_DIR) -> list:
    """(score, source file, passage) for the best ``top_k`` passages, best first."""
    passages, counts, lengths, avg, idf = _index(str(docs_dir))
    terms = tokens(question)
    scored = []
    for i, (source, text) in enumerate(passages):
        score = 0.0
        for term in terms:
            tf = counts[i].get(term, 0)
            if tf:
                score += idf[term] * tf * (K1 + 1) / (tf + K1 * (1 - B + B * lengths[i] / avg))
        scored.append((score, -i, source, text))
    scored.sort(reverse=True)
    return [(round(s, 4), src, text) for s, _, src, text in scored[: max(int(top_k), 1)]]


@tool
def retrieve(question: str, top_k: int = 2) -> list:
    return [text for _, _, text in search(question, top_k)]
