"""Task heuristics of the sandbox model: read the prompt, do a simple version of the task.

Everything here is a pure function of its arguments (no clock, no global random state), so the
sandbox answers the same way for the same ``(messages, model, temperature, seed)``.

The sandbox is a stand-in, not a model. It recognises the prompt conventions of the bundled use
cases (entity extraction, classification, question answering from a passage, arithmetic) and
degrades its answers with a probability that depends on the prompt's quality and the temperature,
so that sweeps over variants show realistic, *different* metrics. Those metrics say nothing about a
real model.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "answer",
    "detect_task",
    "error_probability",
    "prompt_text",
    "extract_entities",
    "classify",
    "answer_question",
    "solve_arithmetic",
    "count_tokens",
]

# --------------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------------

STOPWORDS = frozenset(
    """a an the and or but if then so of to in on at by for from with without about into onto over under
    is are was were be been being am do does did has have had will would shall should can could may might must
    what which who whom whose when where why how this that these those it its it's he she they them his her their
    we us our you your i me my not no yes as than too very just also only there here all any each some such
    please answer question text context following given use using based one""".split()
)

# Capitalised words that start sentences without being names.
_COMMON_CAPITALISED = frozenset(
    """The A An This That These Those In On At From To After Before When While Yesterday Today Tomorrow Last
    Next Our We He She They It Its His Her Their I But And However Meanwhile During According With For Since
    If As Although Though Then Also Both Each Every Many Some Most Several Later Earlier Recently Today's
    There Here Where Why How What Who Which Please Note Born Despite Under Over Between Among Because Once
    Monday Tuesday Wednesday Thursday Friday Saturday Sunday January February March April May June July
    August September October November December Mr Ms Mrs Dr Prof Sir Madam My Your Yes No Not Only""".split()
)

_TITLES = frozenset({"mr", "ms", "mrs", "dr", "prof", "sir", "dame", "professor", "doctor"})
_CONNECTORS = frozenset({"of", "de", "van", "&", "der", "von", "la", "du", "del", "da"})
_ORG_CUES = frozenset(
    """inc corp corporation ltd llc group bank university institute foundation labs systems airlines motors
    partners agency council ministry company co plc gmbh ag sa technologies industries association
    society college school hospital trust chamber commerce""".split()
)
_LOCATION_CUES = frozenset(
    """lake mount mountain river market harbour harbor street road avenue bay valley island park heights
    ridge square bridge hill hills falls coast beach port""".split()
)
_LOCATION_PREPOSITIONS = frozenset({"in", "at", "from", "to", "near", "across"})
_KNOWN_PLACES = frozenset(
    s.lower()
    for s in """Paris London Berlin Madrid Rome Tokyo Beijing Moscow Lisbon Dublin Vienna Prague Warsaw Athens
    Amsterdam Brussels Oslo Stockholm Helsinki Copenhagen Zurich Geneva Seattle Boston Chicago Toronto Sydney
    Melbourne Mumbai Delhi Cairo Nairobi Lagos Singapore Dubai Istanbul Seoul Shanghai Bangkok Jakarta Lima
    France Germany Spain Italy Japan China Russia Portugal Ireland Austria Poland Greece Canada Australia India
    Egypt Kenya Nigeria Brazil Mexico Argentina Chile Peru Norway Sweden Finland Denmark Switzerland Belgium
    Netherlands England Scotland Wales Europe Asia Africa America Antarctica California Texas Florida Bavaria
    Manchester Edinburgh Cambridge Oxford""".split()
) | frozenset(
    {
        "new york",
        "los angeles",
        "san francisco",
        "hong kong",
        "united states",
        "united kingdom",
        "south africa",
        "new zealand",
        "rio de janeiro",
        "buenos aires",
        "mexico city",
        "cape town",
        "new delhi",
        "north america",
        "south america",
    }
)

_SYNONYMS: dict[str, tuple[str, ...]] = {
    "billing": ("invoice", "charge", "charged", "refund", "payment", "card", "price", "subscription", "bill"),
    "technical": ("error", "crash", "bug", "broken", "fails", "install", "update", "slow"),
    "account": ("password", "login", "sign", "locked", "email", "username", "profile"),
    "shipping": ("delivery", "package", "tracking", "shipped", "arrived", "courier"),
    "other": (),
}

_WORD_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9'’\-]*")


def _stable_hash(*parts: Any) -> int:
    data = json.dumps(parts, sort_keys=True, ensure_ascii=True, default=str).encode("utf-8")
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big")


def unit(*parts: Any) -> float:
    """A deterministic draw in [0, 1) from the parts."""
    return _stable_hash(*parts) / float(1 << 64)


def _stem(word: str) -> str:
    w = word.lower().strip("'’-")
    for suffix in ("ing", "ed", "es", "s", "e"):
        if w.endswith(suffix) and len(w) - len(suffix) >= 3:
            return w[: -len(suffix)]
    return w


def _content_words(text: str) -> list[str]:
    return [_stem(w) for w in _WORD_RE.findall(text) if w.lower() not in STOPWORDS]


def count_tokens(text: str) -> int:
    """Rough token count: about 4/3 of the number of words (what OpenAI's tokenizers do for English)."""
    words = len(text.split())
    return (words * 4 + 2) // 3 if words else 0


def _content_to_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # multi-part content: keep the text parts
        parts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
            elif isinstance(part, str):
                parts.append(part)
        return "\n".join(parts)
    return str(content)


def prompt_text(messages: Sequence[dict[str, Any]]) -> str:
    """The prompt as the heuristics read it: system and user messages, concatenated in order."""
    texts = []
    for message in messages:
        if message.get("role", "user") in ("system", "user", "developer"):
            texts.append(_content_to_text(message.get("content")))
    return "\n\n".join(t for t in texts if t)


def _last_user_text(messages: Sequence[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role", "user") == "user":
            return _content_to_text(message.get("content"))
    return prompt_text(messages)


_HEADER_RE = re.compile(r"^\s*[A-Z][A-Za-z _\-]{0,24}:\s*")


def _block_after(prompt: str, labels: Iterable[str], *, stop: Iterable[str] = ()) -> str | None:
    """Text of the *last* ``Label:`` block: the rest of that line and the following lines up to a blank
    line or the next ``Header:`` line (few-shot prompts repeat the labels; the last one is the task)."""
    names = "|".join(re.escape(label) for label in labels)
    matches = list(
        re.finditer(rf"^[ \t]*(?:{names})[ \t]*:[ \t]*(.*)$", prompt, re.IGNORECASE | re.MULTILINE)
    )
    if not matches:
        return None
    match = matches[-1]
    lines = [match.group(1)]
    stops = tuple(s.lower() for s in stop)
    for line in prompt[match.end() :].splitlines()[1:]:
        if not line.strip():
            if lines and any(x.strip() for x in lines):
                break
            continue
        lowered = line.strip().lower()
        if stops and any(lowered.startswith(s.lower() + ":") for s in stops):
            break
        if _HEADER_RE.match(line):
            break
        lines.append(line)
    return "\n".join(lines).strip()


def _asks_json(prompt: str) -> bool:
    return "json" in prompt.lower()


# --------------------------------------------------------------------------------------------------
# Prompt quality -> error probability
# --------------------------------------------------------------------------------------------------


def _has_label_descriptions(prompt: str) -> bool:
    return bool(re.search(r"^\s*[-*•]\s*[\w\- ]{1,40}:\s*\S+", prompt, re.MULTILINE))


def error_probability(messages: Sequence[dict[str, Any]], model: str = "", temperature: float = 0.0) -> float:
    """Probability that the sandbox degrades its answer: better prompts and lower temperature score better."""
    prompt = prompt_text(messages)
    lowered = prompt.lower()
    p = 0.30
    if re.search(r"\bexamples?\b", lowered) or "e.g." in lowered:
        p -= 0.10
    if "json" in lowered or "format:" in lowered or "answer with" in lowered or "respond with" in lowered:
        p -= 0.08
    if _has_label_descriptions(prompt) or "step by step" in lowered or "carefully" in lowered:
        p -= 0.07
    p += 0.35 * float(temperature)
    name = (model or "").lower()
    if "gpt-4" in name or "gpt4" in name:
        p -= 0.05
    elif "gpt-35" in name or "gpt-3.5" in name:
        p += 0.03
    return min(max(p, 0.02), 0.9)


# --------------------------------------------------------------------------------------------------
# Entity extraction
# --------------------------------------------------------------------------------------------------

_TOKEN_RE = re.compile(r"[A-Za-z][A-Za-z'’\-]*|\d+(?:[.,]\d+)*|&|[^\sA-Za-z\d]")
_SENTENCE_END = frozenset({".", "!", "?", "\n"})
_ABBREVIATIONS = _TITLES | {"inc", "corp", "co", "ltd", "st", "jr", "sr", "mt", "no", "vs"}


def _normalise_entity_type(raw: str) -> str:
    t = raw.strip().strip("\"'`*.").lower()
    t = t.split()[0] if t.split() else t
    if t in ("people", "persons", "person", "per", "names", "name", "people's"):
        return "person"
    if t.startswith("person"):
        return "person"
    if t.startswith("location") or t in ("loc", "place", "places", "city", "cities", "country", "countries"):
        return "location"
    if t.startswith("organi") or t in ("org", "orgs", "company", "companies"):
        return "organization"
    return t.rstrip("s")


def _candidate_spans(text: str) -> list[tuple[list[str], str, bool]]:
    """Maximal runs of capitalised words: (words, previous word lower-cased, has title)."""
    tokens = _TOKEN_RE.findall(text.replace("\n", " \n "))
    spans: list[tuple[list[str], str, bool]] = []
    i = 0
    sentence_start = True
    prev_word = ""
    while i < len(tokens):
        tok = tokens[i]
        if tok in _SENTENCE_END:
            # "Dr." and "Inc." do not end a sentence.
            if not (tok == "." and prev_word.lower() in _ABBREVIATIONS):
                sentence_start = True
            i += 1
            continue
        if not tok[0].isalpha() or not tok[0].isupper():
            if tok[0].isalpha() or tok[0].isdigit():
                prev_word = tok
                sentence_start = False
            i += 1
            continue
        # A run of capitalised words starts here.
        title = False
        words: list[str] = []
        before = prev_word.lower()
        j = i
        first = True
        while j < len(tokens):
            t = tokens[j]
            if t[0].isalpha() and t[0].isupper():
                bare = t.rstrip(".")
                if bare.lower() in _TITLES and not words:
                    title = True
                elif first and sentence_start and bare in _COMMON_CAPITALISED:
                    pass  # a common word opening a sentence is not part of a name
                elif bare in _COMMON_CAPITALISED and bare not in ("Co",) and words:
                    break
                elif bare in _COMMON_CAPITALISED and not words:
                    pass
                else:
                    words.append(t)
                first = False
                j += 1
                # "Dr." / "Inc." : swallow the period
                if j < len(tokens) and tokens[j] == "." and t.lower() in _ABBREVIATIONS:
                    j += 1
                continue
            if (
                t.lower() in _CONNECTORS
                and words
                and j + 1 < len(tokens)
                and tokens[j + 1][0].isalpha()
                and tokens[j + 1][0].isupper()
            ):
                words.append(t)
                j += 1
                continue
            break
        if words:
            spans.append((words, before, title))
        prev_word = tokens[j - 1] if j > i else tok
        sentence_start = False
        i = j
    return spans


def _classify_span(words: list[str], before: str, title: bool) -> str | None:
    lowered = [w.lower().rstrip(".") for w in words]
    name = " ".join(lowered)
    if any(w in _ORG_CUES for w in lowered):
        return "organization"
    if title:
        return "person"
    if name in _KNOWN_PLACES or any(w in _LOCATION_CUES for w in lowered):
        return "location"
    # "from"/"to" precede people too ("a letter from Nadia Petrova"): only trust them for one word.
    if before in _LOCATION_PREPOSITIONS and (before not in ("to", "from") or len(words) == 1):
        return "location"
    capitalised = [w for w in words if w[0].isupper()]
    if 2 <= len(capitalised) <= 3 and len(words) == len(capitalised):
        return "person"
    return None


def extract_entities(text: str, entity_type: str) -> list[str]:
    """Entities of one type (person, location, organization) found in the text, in order, deduplicated."""
    wanted = _normalise_entity_type(entity_type)
    found: list[str] = []
    for words, before, title in _candidate_spans(text):
        words = [re.sub(r"['’]s$", "", w) for w in words]
        if _classify_span(words, before, title) == wanted:
            entity = " ".join(words)
            # Keep the period of "Inc." / "Corp."; drop a sentence's full stop.
            if entity.endswith(".") and words[-1].lower().rstrip(".") not in _ABBREVIATIONS:
                entity = entity[:-1]
            if entity not in found:
                found.append(entity)
    return found


def _format_list(items: list[str], as_json: bool) -> str:
    if as_json:
        return json.dumps(items, ensure_ascii=False)
    return ", ".join(items) if items else "None"


def _answer_extraction(prompt: str, degrade: bool, key: int) -> str:
    type_match = re.findall(r"^\s*(?:entity[ _]type)\s*:\s*(.+)$", prompt, re.IGNORECASE | re.MULTILINE)
    entity_type = type_match[-1] if type_match else "person"
    text = _block_after(prompt, ["Text"], stop=["Label", "Entities", "Answer", "Output"]) or ""
    entities = extract_entities(text, entity_type)
    if degrade:
        if entities and (len(entities) >= 2 or key % 2 == 0):
            entities.pop(key % len(entities))
        else:
            # Add a wrong capitalised word: some capitalised word of the text that is not an answer.
            extras = [w for w in re.findall(r"\b[A-Z][a-z]+\b", text) if w not in " ".join(entities)]
            entities.append(extras[key % len(extras)] if extras else "Sandbox")
    return _format_list(entities, _asks_json(prompt))


# --------------------------------------------------------------------------------------------------
# Classification
# --------------------------------------------------------------------------------------------------

_LABEL_HEADINGS = (
    r"(?:categories|labels|classes|allowed labels|allowed categories|possible categories|options)"
)


def parse_labels(prompt: str) -> tuple[list[str], dict[str, str]]:
    """Allowed labels and their descriptions (empty when none are given)."""
    inline = re.search(rf"^\s*{_LABEL_HEADINGS}\s*:[ \t]*(\S.*)$", prompt, re.IGNORECASE | re.MULTILINE)
    if inline:
        labels = [x.strip().strip("\"'`*.") for x in re.split(r"[,|/;]", inline.group(1))]
        labels = [x for x in labels if x]
        if labels:
            return labels, {}
    heading = re.search(rf"^\s*{_LABEL_HEADINGS}\s*:?\s*$", prompt, re.IGNORECASE | re.MULTILINE)
    if heading:
        labels, descriptions = [], {}
        for line in prompt[heading.end() :].splitlines():
            if not line.strip():
                if labels:
                    break
                continue
            bullet = re.match(r"^\s*(?:[-*•]|\d+[.)])\s*([^:]+?)\s*(?::\s*(.*))?$", line)
            if not bullet:
                break
            label = bullet.group(1).strip().strip("\"'`*")
            labels.append(label)
            if bullet.group(2):
                descriptions[label] = bullet.group(2).strip()
        if labels:
            return labels, descriptions
    return [], {}


def _label_scores(text: str, labels: list[str], descriptions: dict[str, str]) -> list[tuple[float, int, str]]:
    words = _content_words(text)
    scored = []
    for index, label in enumerate(labels):
        keywords: dict[str, float] = {}
        for w in _content_words(descriptions.get(label, "")):
            keywords[w] = 1.0
        for w in _SYNONYMS.get(label.lower(), ()):
            keywords[_stem(w)] = 1.0
        for w in _content_words(label.replace("_", " ")):
            keywords[w] = 2.0
        score = sum(keywords.get(w, 0.0) for w in words)
        scored.append((score, index, label))
    scored.sort(key=lambda item: (-item[0], item[1]))
    return scored


def classify(text: str, labels: list[str], descriptions: dict[str, str] | None = None) -> list[str]:
    """Labels ranked best first by keyword overlap; "other" (when allowed) wins when nothing matches."""
    scored = _label_scores(text, labels, descriptions or {})
    if scored and scored[0][0] == 0:
        others = [label for label in labels if label.lower() in ("other", "others", "misc", "general")]
        if others:
            return others + [label for _, _, label in scored if label not in others]
    return [label for _, _, label in scored]


def _answer_classification(prompt: str, degrade: bool, key: int) -> str:
    labels, descriptions = parse_labels(prompt)
    text = _block_after(prompt, ["Ticket", "Text"], stop=["Category", "Label", "Answer"]) or ""
    if not labels:
        labels = list(_SYNONYMS)
    ranked = classify(text, labels, descriptions)
    choice = ranked[0]
    if degrade and len(ranked) > 1:
        choice = ranked[1] if key % 3 else ranked[1 + key % (len(ranked) - 1)]
    if _asks_json(prompt):
        return json.dumps({"category": choice})
    if re.search(
        r"(?:format|answer|respond|reply|output|return)[^\n]*\bCategory:", prompt, re.IGNORECASE
    ) or re.search(r"\bCategory:\s*(?:<[^>\n]*>|\{[^}\n]*\}|\[[^\]\n]*\]|X\b|LABEL\b|label\b)", prompt):
        return f"Category: {choice}"
    return choice


# --------------------------------------------------------------------------------------------------
# Question answering from a passage
# --------------------------------------------------------------------------------------------------

_SENTENCE_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'])")


def _sentences(passage: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_SPLIT.split(" ".join(passage.split())) if s.strip()]


def _short_part(sentence: str, question_words: set[str]) -> str:
    words = sentence.rstrip(".!?").split()
    stems = [_stem(w.strip(",;:\"'()")) for w in words]
    hits = [i for i, s in enumerate(stems) if s in question_words and words[i].lower() not in STOPWORDS]
    part: list[str] = []
    if hits and hits[-1] + 1 < len(words):
        part = words[hits[-1] + 1 :]
        while part and part[0].lower().strip(",;:") in STOPWORDS:
            part = part[1:]
    if not part and hits:
        part = words[: hits[0]]
        while part and part[-1].lower().strip(",;:") in STOPWORDS:
            part = part[:-1]
    if not part:
        part = words
    return " ".join(part[:8]).strip(" ,;:")


def answer_question(context: str, question: str, *, short: bool = False, rank: int = 0) -> str:
    """The context sentence that best overlaps the question (or its short answer part)."""
    sentences = _sentences(context)
    if not sentences:
        return "I don't know."
    question_words = set(_content_words(question))
    scored = sorted(
        ((len(question_words & set(_content_words(s))), -i, s) for i, s in enumerate(sentences)),
        reverse=True,
    )
    sentence = scored[min(rank, len(scored) - 1)][2]
    return _short_part(sentence, question_words) if short else sentence


def _answer_qa(prompt: str, degrade: bool, key: int) -> str:
    context = _block_after(prompt, ["Context"], stop=["Question"]) or ""
    # The context may run over several paragraphs: take everything up to the last "Question:".
    ctx_match = list(re.finditer(r"^[ \t]*Context[ \t]*:", prompt, re.IGNORECASE | re.MULTILINE))
    q_match = list(re.finditer(r"^[ \t]*Question[ \t]*:", prompt, re.IGNORECASE | re.MULTILINE))
    if ctx_match and q_match and q_match[-1].start() > ctx_match[-1].end():
        context = prompt[ctx_match[-1].end() : q_match[-1].start()].strip()
    question = _block_after(prompt, ["Question"], stop=["Answer"]) or ""
    lowered = prompt.lower()
    short = any(w in lowered for w in ("concise", "short", "few words"))
    if not context.strip():
        return "I don't know."
    rank = 0
    if degrade:
        n = len(_sentences(context))
        if n <= 1:
            return "I don't know."
        rank = 1 + key % (n - 1)
    return answer_question(context, question, short=short, rank=rank)


# --------------------------------------------------------------------------------------------------
# Arithmetic
# --------------------------------------------------------------------------------------------------

_WORD_OPERATORS = [
    (r"\bmultiplied\s+by\b", "*"),
    (r"\bdivided\s+by\b", "/"),
    (r"\bplus\b", "+"),
    (r"\bminus\b", "-"),
    (r"\btimes\b", "*"),
    (r"\bover\b", "/"),
    (r"×", "*"),
    (r"÷", "/"),
    (r"(?<=\d)\s*[xX]\s*(?=\d)", "*"),
]
_EXPRESSION_RE = re.compile(r"[-(]*\s*\d+(?:\.\d+)?(?:\s*[-+*/]\s*[(]*\s*-?\d+(?:\.\d+)?\s*[)]*)+")


class _Parser:
    """Recursive-descent parser for + - * / and parentheses over numbers (no eval)."""

    def __init__(self, expression: str):
        self.tokens = re.findall(r"\d+(?:\.\d+)?|[-+*/()]", expression)
        self.pos = 0

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self) -> str:
        tok = self.tokens[self.pos]
        self.pos += 1
        return tok

    def parse(self) -> float:
        value = self._expr()
        if self.pos != len(self.tokens):
            raise ValueError("trailing tokens")
        return value

    def _expr(self) -> float:
        value = self._term()
        while self._peek() in ("+", "-"):
            op = self._take()
            rhs = self._term()
            value = value + rhs if op == "+" else value - rhs
        return value

    def _term(self) -> float:
        value = self._factor()
        while self._peek() in ("*", "/"):
            op = self._take()
            rhs = self._factor()
            if op == "*":
                value *= rhs
            else:
                if rhs == 0:
                    raise ZeroDivisionError
                value /= rhs
        return value

    def _factor(self) -> float:
        tok = self._peek()
        if tok == "-":
            self._take()
            return -self._factor()
        if tok == "(":
            self._take()
            value = self._expr()
            if self._peek() != ")":
                raise ValueError("unbalanced parenthesis")
            self._take()
            return value
        if tok is None or not tok[0].isdigit():
            raise ValueError("number expected")
        return float(self._take())


def find_expression(text: str) -> str | None:
    """The last simple arithmetic expression in the text (word operators normalised), if any."""
    normalised = text
    for pattern, op in _WORD_OPERATORS:
        normalised = re.sub(pattern, f" {op} ", normalised, flags=re.IGNORECASE)
    matches = _EXPRESSION_RE.findall(normalised)
    return matches[-1].strip() if matches else None


def _format_number(value: float) -> str:
    if abs(value - round(value)) < 1e-9:
        return str(int(round(value)))
    return f"{value:.6f}".rstrip("0").rstrip(".")


def solve_arithmetic(text: str) -> str | None:
    """The value of the last expression in the text, formatted; None when there is none."""
    expression = find_expression(text)
    if expression is None:
        return None
    try:
        return _format_number(_Parser(expression).parse())
    except ZeroDivisionError:
        return "undefined"
    except (ValueError, IndexError):
        return None


def _answer_arithmetic(text: str, degrade: bool, key: int) -> str | None:
    result = solve_arithmetic(text)
    if result is None or not degrade or result == "undefined":
        return result
    value = float(result) + (1 if key % 2 else -1)
    return _format_number(value)


# --------------------------------------------------------------------------------------------------
# Dispatch
# --------------------------------------------------------------------------------------------------


def detect_task(messages: Sequence[dict[str, Any]]) -> str:
    """One of "extraction", "classification", "qa", "arithmetic", "unknown"."""
    prompt = prompt_text(messages)
    lowered = prompt.lower()
    if "extract" in lowered and "entit" in lowered:
        return "extraction"
    if ("classif" in lowered or "categor" in lowered) and re.search(
        r"^\s*(ticket|text)\s*:", prompt, re.I | re.M
    ):
        return "classification"
    if re.search(r"^\s*context\s*:", prompt, re.I | re.M) and re.search(
        r"^\s*question\s*:", prompt, re.I | re.M
    ):
        return "qa"
    if solve_arithmetic(_last_user_text(messages)) is not None:
        return "arithmetic"
    return "unknown"


def _generic_answer(messages: Sequence[dict[str, Any]], key: int) -> str:
    words = [w for w in _WORD_RE.findall(_last_user_text(messages)) if w.lower() not in STOPWORDS]
    topic = " ".join(words[:6]) if words else "your request"
    closers = (
        "It is deterministic and carries no real knowledge.",
        "A real model would give a more useful reply.",
        "The offline sandbox cannot say more than this.",
        "Point the app at a real model for a real answer.",
    )
    return f"This is a sandbox answer about {topic}. {closers[key % len(closers)]}"


def answer(
    messages: Sequence[dict[str, Any]],
    model: str = "",
    temperature: float = 0.0,
    seed: int = 0,
    *,
    degrade: bool | None = None,
) -> str:
    """The sandbox's answer: task-aware, deterministic for (messages, model, temperature, seed).

    ``degrade`` forces (True) or prevents (False) the prompt-quality error draw; None draws it.
    """
    messages = [m if isinstance(m, dict) else {"role": "user", "content": str(m)} for m in messages]
    temperature = float(temperature or 0.0)
    canonical = [[m.get("role", ""), _content_to_text(m.get("content"))] for m in messages]
    draw = unit("degrade", seed, model, round(temperature, 4), canonical)
    key = _stable_hash("key", seed, model, round(temperature, 4), canonical)
    if degrade is None:
        degrade = draw < error_probability(messages, model, temperature)
    prompt = prompt_text(messages)
    task = detect_task(messages)
    if task == "extraction":
        return _answer_extraction(prompt, degrade, key)
    if task == "classification":
        return _answer_classification(prompt, degrade, key)
    if task == "qa":
        return _answer_qa(prompt, degrade, key)
    if task == "arithmetic":
        result = _answer_arithmetic(_last_user_text(messages), degrade, key)
        if result is not None:
            return result
    return _generic_answer(messages, key)
