"""The sandbox's task heuristics, tested as pure functions (no server)."""

from __future__ import annotations

import json

import pytest

from llmops_tui.sandbox import tasks


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


NEWS = (
    "Dr. Ada Lovelace met Alan Turing in London. The Bank of England and Acme Corp. hired Grace Hopper "
    "from Paris. Yesterday Microsoft Labs opened near Seattle."
)


@pytest.mark.parametrize(
    ("entity_type", "expected"),
    [
        ("person", ["Ada Lovelace", "Alan Turing", "Grace Hopper"]),
        ("Persons", ["Ada Lovelace", "Alan Turing", "Grace Hopper"]),
        ("locations", ["London", "Paris", "Seattle"]),
        ("Organization", ["Bank of England", "Acme Corp", "Microsoft Labs"]),
    ],
)
def test_extract_entities_by_type(entity_type, expected):
    assert tasks.extract_entities(NEWS, entity_type) == expected


def test_extraction_output_formats_and_none():
    plain = "Extract the entities of the requested type.\nEntity type: person\nText: " + NEWS
    assert tasks.answer(user(plain), degrade=False) == "Ada Lovelace, Alan Turing, Grace Hopper"
    as_json = plain + "\n\nRespond with a JSON list of strings."
    assert json.loads(tasks.answer(user(as_json), degrade=False)) == [
        "Ada Lovelace",
        "Alan Turing",
        "Grace Hopper",
    ]
    nobody = "Extract the entities.\nEntity type: person\nText: the weather was mild all week."
    assert tasks.answer(user(nobody), degrade=False) == "None"
    assert tasks.answer(user(nobody + "\nAnswer in JSON."), degrade=False) == "[]"


def test_extraction_few_shot_uses_the_last_text_block():
    prompt = (
        "Extract entities. Examples:\n\nEntity type: location\nText: The tour moves from Ashgrove to Pellham.\n"
        'Entities: ["Ashgrove", "Pellham"]\n\nNow the task.\n\nEntity type: person\nText: Kenji Ward spoke in Oslo.'
    )
    assert tasks.answer(user(prompt), degrade=False) == "Kenji Ward"


def test_extraction_degraded_differs():
    prompt = "Extract the entities.\nEntity type: person\nText: " + NEWS
    assert tasks.answer(user(prompt), degrade=True) != tasks.answer(user(prompt), degrade=False)


LABELS_INLINE = "Classify the support ticket.\nCategories: billing, technical, account, shipping, other\n"
LABELS_DESCRIBED = (
    "Categorize the support ticket.\nLabels:\n- billing: money taken, invoices, refunds\n"
    "- technical: the app misbehaves, screen, crash\n- account: login, password, merge accounts\n"
    "- shipping: parcels and delivery\n- other: anything else\n\n"
)


@pytest.mark.parametrize(
    ("ticket", "expected"),
    [
        ("I was charged twice on my card, please refund me", "billing"),
        ("The app crashes with an error after the update", "technical"),
        ("I forgot my password and my login is locked", "account"),
        ("My package never arrived and tracking shows nothing", "shipping"),
        ("Do you sponsor local football teams?", "other"),
    ],
)
def test_classification_keyword_overlap(ticket, expected):
    assert tasks.answer(user(LABELS_INLINE + "Ticket: " + ticket), degrade=False) == expected


def test_classification_descriptions_help_and_formats():
    ticket = "Ticket: Forty dollars were taken from me and I never ordered anything."
    assert tasks.answer(user(LABELS_DESCRIBED + ticket), degrade=False) == "billing"
    labels, descriptions = tasks.parse_labels(LABELS_DESCRIBED)
    assert labels == ["billing", "technical", "account", "shipping", "other"]
    assert descriptions["account"].startswith("login")
    fmt = LABELS_INLINE + "Answer with Category: <label>\nTicket: my invoice is wrong"
    assert tasks.answer(user(fmt), degrade=False) == "Category: billing"
    js = LABELS_INLINE + "Reply in JSON.\nTicket: my invoice is wrong"
    assert json.loads(tasks.answer(user(js), degrade=False)) == {"category": "billing"}
    degraded = tasks.answer(user(LABELS_INLINE + "Ticket: my invoice is wrong"), degrade=True)
    assert degraded != "billing" and degraded in labels


PASSAGE = "Freedonia is a small country. The capital of Freedonia is Marsh City. Its rivers flow north."


def test_question_answering():
    prompt = f"Context: {PASSAGE}\nQuestion: What is the capital of Freedonia?"
    assert tasks.answer(user(prompt), degrade=False) == "The capital of Freedonia is Marsh City."
    concise = "Answer concisely.\n" + prompt
    assert tasks.answer(user(concise), degrade=False) == "Marsh City"
    assert tasks.answer(user(concise), degrade=True) != "Marsh City"
    assert tasks.answer(user("Context:\n\nQuestion: What is the capital?"), degrade=False) == "I don't know."


def test_question_answering_multiline_context():
    prompt = f"Context:\n{PASSAGE}\n\nMore: the national dish is Grey Soup.\n\nQuestion: What is the national dish?"
    assert tasks.answer(user(prompt), degrade=False) == "More: the national dish is Grey Soup."


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("what is 12 plus 7", "19"),
        ("12 * 7", "84"),
        ("What is (3 + 4) * 2?", "14"),
        ("what is 10 divided by 4?", "2.5"),
        ("What is 9 minus 12?", "-3"),
        ("what is 6 times 7", "42"),
        ("1 / 0", "undefined"),
    ],
)
def test_arithmetic(question, expected):
    assert tasks.answer(user(question), degrade=False) == expected


def test_arithmetic_is_not_eval():
    assert tasks.solve_arithmetic("__import__('os').system('true') + 1") is None
    degraded = tasks.answer(user("what is 12 plus 7"), degrade=True)
    assert degraded in ("18", "20")


def test_unknown_is_generic_and_deterministic():
    text = tasks.answer(user("Tell me about lighthouses"))
    assert text.startswith("This is a sandbox answer about")
    assert text == tasks.answer(user("Tell me about lighthouses"))


def test_answers_are_deterministic_per_seed_and_temperature():
    prompt = user("Extract the entities.\nEntity type: person\nText: " + NEWS)
    runs = {tasks.answer(prompt, "gpt-4o", 0.7, seed) for seed in range(30)}
    assert len(runs) > 1  # the error draw depends on the seed
    assert all(
        tasks.answer(prompt, "gpt-4o", 0.7, s) == tasks.answer(prompt, "gpt-4o", 0.7, s) for s in range(5)
    )


def test_error_probability_rewards_better_prompts_and_lower_temperature():
    bare = user("Classify.\nCategories: a, b\nText: x")
    better = user(
        "Classify carefully. Examples: ...\nRespond with JSON.\nLabels:\n- a: first\n- b: second\nText: x"
    )
    assert tasks.error_probability(bare) == pytest.approx(0.30)
    assert tasks.error_probability(better) == pytest.approx(0.05)
    assert tasks.error_probability(bare, temperature=1.0) == pytest.approx(0.65)
    assert tasks.error_probability(bare, model="gpt-4o") < tasks.error_probability(bare, model="other")
    assert tasks.error_probability(better, model="gpt-4o") == pytest.approx(0.02)  # clamped
    assert tasks.error_probability(bare, temperature=2.0) == pytest.approx(0.9)


def test_temperature_sweep_shows_a_trade_off():
    def accuracy(temperature: float) -> float:
        right = 0
        for i in range(200):
            a, b = 3 + i, 11 + 2 * i
            right += tasks.answer(user(f"what is {a} plus {b}"), "sandbox", temperature, 0) == str(a + b)
        return right / 200

    cold, warm, hot = accuracy(0.0), accuracy(0.7), accuracy(1.5)
    assert cold > warm > hot
    assert 0.6 < cold < 0.8  # p = 0.30 for a bare prompt
