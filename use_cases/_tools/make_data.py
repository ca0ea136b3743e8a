"""Generate the bundled use cases' datasets (and the document_qa documents), deterministically.

    python use_cases/_tools/make_data.py

Everything is fictional and written for this project. The output is committed; re-running the script
with the same seed rewrites byte-identical files, so a diff after a re-run means the script changed.

Each dataset mixes easy rows (the usual cues hold: titles before people, cue words in organisation
names, prepositions before places, keywords in tickets, question words that match the documents) with
about 15% hard rows, so that metrics are informative and never all 1.0.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 20240611
ROOT = Path(__file__).resolve().parent.parent


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


# ==================================================================================================
# named_entity_recognition
# ==================================================================================================

PEOPLE = [
    "Amara Okafor", "Lena Marsh", "Tomas Rivera", "Priya Nandakumar", "Jonas Feld", "Mei Tanaka",
    "Elena Vasquez", "Samuel Adeyemi", "Ingrid Holm", "Rafael Costa", "Nadia Petrova", "Owen Callister",
    "Hana Kobayashi", "Marcus Bell", "Sofia Lindqvist", "Daniel Osei", "Clara Whitcombe", "Yusuf Demir",
    "Beatriz Moura", "Aiden Brennan", "Leila Haddad", "Victor Strand",
]
TITLES = ["Dr.", "Prof.", "Ms.", "Mr."]
ORGS = [
    "Kestrel Systems", "Harbor Point Bank", "Northgate University", "Bluefin Airlines", "Solano Motors",
    "Greyline Partners", "Ardent Labs", "Meridian Foundation", "Civic Data Agency", "Tidewater Group",
    "Oakridge Institute", "Vantage Insurance Company", "Copperleaf Corp", "Larkspur Ltd", "Riverside Council",
    "Ministry of Water", "Silverpine Bank", "Aurora Health Foundation",
]
PLACES = [
    "Port Ellery", "Valdora", "Lisbon", "Nairobi", "Kingsbridge", "Marlow Heights", "Oslo", "Santa Lucia",
    "Brennick", "Cape Aldine", "Toronto", "Westhaven", "Quillfield", "Dunmore",
]
ONE_WORD_PLACES = [p for p in PLACES if " " not in p]

# Templates: {P}/{P2} person, {TP} titled person, {O}/{O2} organisation, {L}/{L2}/{L3} place (L2, L3 one
# word: after "from" or "to" only one-word places read as places).
TEMPLATES = [
    "{P} joined {O} as chief financial officer after six years in {L}.",
    "{TP}, who leads research at {O}, will speak at the climate summit in {L} next week.",
    "Shares of {O} rose sharply after the company opened a new plant near {L}.",
    "In a statement on Tuesday, {P} said {O} would double its staff in {L}.",
    "{P} and {P2} flew from {L2} to {L3} to meet investors from {O}.",
    "The board of {O} appointed {TP} as interim chair.",
    "Residents near {L} welcomed the new clinic funded by {O}.",
    "{O} signed a supply agreement with {O2} during a ceremony in {L}.",
    "After meeting {P} in {L}, the delegation toured the offices of {O}.",
    "According to {TP}, demand for electric buses in {L} doubled last year.",
    "{P} thanked volunteers from {L2} for their work with {O}.",
    "Engineers at {O} and {O2} tested the new rail link between the depot and {L2}.",
    "{TP} presented the findings to a small audience at {O}, while {P2} answered questions online.",
    "Flooding across {L} delayed the opening of the new campus, a spokesperson said.",
    "The festival in {L} drew musicians from {L2}, and {P} closed the final night.",
    "{P} will take over the regional office in {L} once {P2} retires in the spring.",
]

# Hard rows: the cues the heuristics rely on do not hold (see the module docstring).
HARD = [
    ("Zentrix reported record profits, and {P} credited the sales team in {L}.", "organization", ["Zentrix"]),
    ("Lake Merrow froze for the first time in a decade, said {P}.", "location", ["Lake Merrow"]),
    ("Lake Merrow froze for the first time in a decade, said {P}.", "person", ["{P}"]),
    ("Okafor scored twice as the home side won the cup final.", "person", ["Okafor"]),
    ("Reporters spoke with Zhou after the vote in {L}.", "person", ["Zhou"]),
    ("{P}'s startup moved its headquarters to {L2} in the autumn.", "person", ["{P}"]),
    ("Northwind and Brightwater agreed to merge their retail arms.", "organization", ["Northwind", "Brightwater"]),
    ("Visitors to Old Harbour Market can now pay by phone, the operator said.", "location", ["Old Harbour Market"]),
    ("Mount Sable Ridge closed after a rock fall injured two hikers.", "location", ["Mount Sable Ridge"]),
    ("Teachers in Glen Orrin welcomed funding from the Halden Trust.", "organization", ["Halden Trust"]),
    ("{TP} sent the draft to Kofi before the meeting.", "person", ["{P}", "Kofi"]),
    ("Delegates from Crestmoor Partners met members of Ashby Chamber of Commerce in {L}.", "organization",
     ["Crestmoor Partners", "Ashby Chamber of Commerce"]),
]


def _ner_rows(rng: random.Random, n_easy: int) -> list[dict]:
    rows: list[dict] = []
    types = ["person", "organization", "location"]
    for i in range(n_easy):
        template = TEMPLATES[i % len(TEMPLATES)]
        people = rng.sample(PEOPLE, 2)
        orgs = rng.sample(ORGS, 2)
        places = rng.sample(PLACES, 1)
        places += rng.sample([p for p in ONE_WORD_PLACES if p != places[0]], 2)
        title = rng.choice(TITLES)
        values = {
            "P": people[0], "P2": people[1], "TP": f"{title} {people[0]}",
            "O": orgs[0], "O2": orgs[1], "L": places[0], "L2": places[1], "L3": places[2],
        }
        text = template.format(**values)
        truth = {"person": [], "organization": [], "location": []}
        for slot, kind, value in (
            ("{P}", "person", people[0]), ("{TP}", "person", people[0]), ("{P2}", "person", people[1]),
            ("{O}", "organization", orgs[0]), ("{O2}", "organization", orgs[1]),
            ("{L}", "location", places[0]), ("{L2}", "location", places[1]), ("{L3}", "location", places[2]),
        ):
            if slot in template and value not in truth[kind]:
                truth[kind].append(value)
        entity_type = types[(i + i // 3) % 3]
        rows.append({"text": text, "entity_type": entity_type, "results": truth[entity_type]})
    for template, entity_type, results in HARD:
        person = rng.choice(PEOPLE)
        values = {
            "P": person, "TP": f"{rng.choice(TITLES)} {person}",
            "L": rng.choice(PLACES), "L2": rng.choice(ONE_WORD_PLACES),
        }
        rows.append(
            {
                "text": template.format(**values),
                "entity_type": entity_type,
                "results": [r.format(**values) for r in results],
            }
        )
    rng.shuffle(rows)
    return rows


def make_ner() -> None:
    rng = random.Random(SEED)
    rows = _ner_rows(rng, 60)
    base = ROOT / "named_entity_recognition" / "data"
    # The experiment dataset has the inputs only; the evaluation dataset adds the ground truth (same order).
    _write_jsonl(base / "data.jsonl", [{"text": r["text"], "entity_type": r["entity_type"]} for r in rows])
    _write_jsonl(base / "eval_data.jsonl", rows)
    dev = _ner_rows(random.Random(SEED + 1), 9)[:10]
    _write_jsonl(base / "dev_data.jsonl", dev)


# ==================================================================================================
# support_ticket_classification
# ==================================================================================================

PRODUCTS = ["Nimbus Notes", "the Pathfinder app", "Ledgerly", "the Orbit speaker", "Trailhead Pro", "the Pebble tracker"]
NAMES = ["Ana", "Ben", "Chloe", "Dev", "Elif", "Farid", "Greta", "Hugo", "Iris", "Jamal", "Kira", "Luis"]

TICKETS: dict[str, list[tuple[str, str]]] = {
    "billing": [
        ("Charged twice this month", "My card was charged twice for the same {product} subscription. Please refund one of the payments."),
        ("Refund not received", "I cancelled {product} ten days ago and the refund still has not reached my bank."),
        ("Wrong amount on invoice", "The invoice for March shows the annual price instead of the monthly plan I picked."),
        ("Update payment card", "How do I replace the expired card used for my {product} subscription payment?"),
        ("Need a VAT invoice", "Our finance team needs an invoice with our company VAT number for last quarter."),
        ("Unexpected charge after trial", "The free trial ended and I was charged even though I cancelled the day before."),
        ("Price went up", "Why did the subscription price change without any notice? I want the old rate back."),
        ("Promo code not applied", "I used a discount code at checkout but the full price was billed to my card."),
        ("Double payment", "The payment went through twice when the checkout page reloaded. Please refund the duplicate."),
        ("Cancel subscription billing", "Please stop billing me for {product}, I no longer use it."),
        ("Receipt missing", "I paid for the yearly plan but never got a receipt or invoice by email."),
        ("Currency question", "Can I be charged in euros instead of dollars? My card adds a conversion fee."),
        ("Overdue payment notice", "I received a notice that my payment is overdue, but my bank shows it was paid."),
    ],
    "technical": [
        ("App crashes on start", "{product} crashes every time I open it since yesterday's update."),
        ("Error 503 when saving", "I get an error 503 whenever I try to save a document in {product}."),
        ("Install fails on Windows", "The installer fails at 80% with a message about a missing library."),
        ("Very slow sync", "Syncing has become extremely slow; a small folder takes twenty minutes."),
        ("Bug in export", "Exporting to PDF produces blank pages. Looks like a bug in the latest version."),
        ("Screen goes black", "The screen goes black after the splash logo and nothing responds on {product}. Looks like a bug."),
        ("Update broke notifications", "After the update, notifications stopped working on my phone."),
        ("Bluetooth pairing broken", "{product} no longer pairs over Bluetooth, the pairing mode seems broken."),
        ("Search returns nothing", "Search returns no results even for notes I created today. Reinstalling did not help."),
        ("Crash when uploading photos", "Uploading more than three photos at once crashes the app."),
        ("Firmware update stuck", "The firmware update has been stuck at 45% for two hours."),
        ("Charts not loading", "The dashboard charts keep spinning and never load in Chrome or Firefox. Is this a known bug?"),
        ("Audio stutters", "Playback stutters every few seconds; it is slow and choppy since the last update."),
    ],
    "account": [
        ("Forgot password", "I forgot my password and the reset link never arrives."),
        ("Account locked", "My account is locked after too many login attempts. How can I unlock it?"),
        ("Change email address", "I want to change the email on my profile to my new work address."),
        ("Cannot sign in", "I cannot sign in with Google anymore; it says the account does not exist."),
        ("Two-factor codes", "I lost my phone and cannot get the two-factor login codes."),
        ("Change username", "Is it possible to change my username? It still shows my old surname."),
        ("Delete my account", "Please delete my account and all profile data linked to it."),
        ("Merge two accounts", "I accidentally created a second account with another email. Can you merge them?"),
        ("Profile picture will not update", "My profile photo keeps reverting to the old one after I log out."),
        ("Login loop", "After entering my password the login page just reloads and asks again."),
        ("Shared family account", "How do I add my partner to our family account with their own login?"),
        ("Suspicious sign-in alert", "I received an alert about a sign in from another country. Was my account compromised?"),
        ("Username already taken", "The username I want says it is taken, but it is my old account's name."),
    ],
    "shipping": [
        ("Where is my package?", "My package was shipped a week ago and the tracking page has not changed."),
        ("Delivery to wrong address", "The courier says it was delivered but nothing arrived at my door."),
        ("Tracking number invalid", "The tracking number in my confirmation email shows as invalid on the courier site."),
        ("Damaged box", "The package arrived with a crushed box and {product} inside is scratched."),
        ("Change delivery date", "Can the delivery be moved to next Friday? I am away until then."),
        ("Express delivery late", "I paid for express delivery but the parcel has not shipped after four days."),
        ("Missing item in parcel", "Only two of the three items arrived in my package."),
        ("International delivery", "Do you ship to Iceland and how long does delivery usually take?"),
        ("Courier left no note", "The courier claims they tried to deliver but left no card or note."),
        ("Package returned to sender", "Tracking says the package is being returned to the sender. Why?"),
        ("Pickup point closed", "The pickup point for my delivery closed permanently. Where will my package go?"),
        ("Order not shipped yet", "Ordered {product} two weeks ago and it still says not shipped."),
    ],
    "other": [
        ("Store opening hours", "What are your store opening hours on public holidays?"),
        ("Partnership proposal", "We run a cycling club and would like to discuss a partnership for our next event."),
        ("Feedback on the new design", "Just wanted to say the new design looks great, well done to the team!"),
        ("Job application", "Are you hiring for the customer team in Lisbon?"),
        ("Press enquiry", "I am a journalist writing about sustainable gadgets and would like to interview your founder."),
        ("Feature suggestion", "It would be nice to have a dark theme and more colour options for notes."),
        ("Recycling old devices", "Do you take back old devices for recycling?"),
        ("Sponsorship request", "Our school fair is looking for sponsors. Would your company be interested?"),
        ("Compliment for support", "Kira from your team was very kind on the phone yesterday, thank you."),
        ("Student discount question", "Do you offer discounts for university students or teachers?"),
        ("Data centre location", "In which country are your servers located? Our policy requires the EU."),
    ],
}

# Hard rows: several labels' words mixed, or none of the expected words (the right label is first).
HARD_TICKETS = [
    ("billing", "Charged after the app crashed", "The app crashed during checkout and then I saw the charge twice on my statement."),
    ("technical", "Payment page shows an error", "Every time I open the payment page it shows error 500 and a blank screen."),
    ("account", "Email keeps bouncing", "Your emails about my order bounce because my profile still has an address I closed."),
    ("shipping", "Need the invoice for a lost parcel", "My parcel never arrived; the courier asked me for the invoice to open a claim."),
    ("other", "Question about your privacy policy email", "I got an email about the new privacy policy. Where can I read the full text?"),
    ("technical", "Cannot log in after update", "Since the update the login button does nothing at all, on two different phones."),
    ("billing", "Money taken for nothing", "Forty dollars left my account on Monday and I never ordered anything from you."),
    ("shipping", "Where is my stuff", "Ordered on the 3rd, still waiting. The website just says processing."),
    ("account", "Someone else uses my profile", "A stranger seems to be posting from my profile. Please secure it."),
    ("other", "Warranty terms", "How long is the warranty on the Orbit speaker and what does it cover?"),
    ("technical", "Sign up form broken", "The sign up form throws an error when I press submit."),
    ("billing", "Account charged twice", "My account shows two charges for the same order, please refund one."),
]


def _ticket_rows(rng: random.Random) -> list[dict]:
    rows: list[dict] = []
    for label, items in TICKETS.items():
        for title, body in items:
            body = body.format(product=rng.choice(PRODUCTS))
            sign = rng.choice(NAMES)
            rows.append({"title": title, "body": f"{body} Thanks, {sign}", "category": label})
    for label, title, body in HARD_TICKETS:
        rows.append({"title": title, "body": f"{body} Thanks, {rng.choice(NAMES)}", "category": label})
    rng.shuffle(rows)
    for i, row in enumerate(rows, start=1):
        row["ticket_id"] = f"T-{1000 + i}"
    return [{"ticket_id": r["ticket_id"], "title": r["title"], "body": r["body"], "category": r["category"]} for r in rows]


def make_tickets() -> None:
    rows = _ticket_rows(random.Random(SEED))
    base = ROOT / "support_ticket_classification" / "data"
    # Like the template: the experiment dataset carries the ground truth; the evaluator reads the same file.
    _write_jsonl(base / "tickets.jsonl", rows)
    rng = random.Random(SEED + 2)
    dev = sorted(rng.sample(range(len(rows)), 10))
    _write_jsonl(base / "tickets_dev.jsonl", [rows[i] for i in dev])


# ==================================================================================================
# document_qa: the Fernhill Robotics handbook (fictional)
# ==================================================================================================
# Each document is a list of paragraphs; a paragraph is a list of sentences. A sentence given as
# (sentence, question, answer) also yields a dataset row. Hard rows use questions whose wording
# differs from the document's.

Q = tuple  # (sentence, question, answer)

DOCS: dict[str, tuple[str, list[list]]] = {
    "leave_policy.md": ("Leave policy", [
        [
            Q(("Full-time staff at Fernhill Robotics receive annual leave of 27 days.",
               "How much annual leave do full-time staff receive?", "27 days")),
            "Leave is booked in the PeopleDesk portal and approved by your line manager.",
            Q(("The maximum carry-over of unused leave into the next year is five days.",
               "What is the maximum carry-over of unused leave into the next year?", "five days")),
        ],
        [
            Q(("Paid parental leave for the primary carer lasts 26 weeks.",
               "How long does paid parental leave for the primary carer last?", "26 weeks")),
            Q(("The secondary carer is entitled to paid leave of six weeks.",
               "How much paid leave is the secondary carer entitled to?", "six weeks")),
            Q(("Sick days must be reported to your manager before 10 am.",
               "By what time must sick days be reported to your manager?", "10 am")),
            "Longer illness needs a doctor's note after the seventh day.",
        ],
    ]),
    "expenses.md": ("Expenses", [
        [
            Q(("The app for submitting expense claims is Tallyo.",
               "Which app is used for submitting expense claims?", "Tallyo")),
            Q(("Receipts are required for every expense above 25 euros.",
               "Above what amount are receipts required for an expense?", "25 euros")),
            Q(("Approved claims are reimbursed with the next monthly payroll.",
               "When are approved claims reimbursed?", "next monthly payroll")),
        ],
        [
            Q(("The daily meal allowance on business trips is 45 euros.",
               "What is the daily meal allowance on business trips?", "45 euros")),
            "Alcohol is never reimbursed, even at client dinners.",
            Q(("The finance team rejects claims that are older than 90 days.",
               "Which claims does the finance team reject?", "older than 90 days")),
        ],
    ]),
    "remote_work.md": ("Remote work", [
        [
            Q(("Employees may work remotely up to three days per week.",
               "How often may employees work remotely?", "three days per week")),
            Q(("The core collaboration hours are 10:00 to 15:00 Central European Time.",
               "What are the core collaboration hours?", "10:00 to 15:00")),
            Q(("The one-off home office budget is 600 euros.",
               "How large is the one-off home office budget?", "600 euros")),
        ],
        [
            Q(("Working from another country is allowed for up to 30 days a year.",
               "How long is working from another country allowed?", "30 days a year")),
            Q(("Requests to work abroad are approved by the People team.",
               "Who approves requests to work abroad?", "the People team")),
        ],
    ]),
    "security.md": ("Information security", [
        [
            Q(("The minimum password length is 14 characters.",
               "What is the minimum password length?", "14 characters")),
            Q(("The password manager provided to all staff is Keyvale.",
               "Which password manager is provided to staff?", "Keyvale")),
            Q(("Multi-factor authentication is required for email, code hosting and the VPN.",
               "For which systems is multi-factor authentication required?", "email, code hosting and the VPN")),
        ],
        [
            Q(("To flag a suspected phishing email, press the Report button in the mail client.",
               "How do I flag a suspected phishing email?", "Report button")),
            Q(("Lost or stolen laptops are reported to the security desk at extension 4400.",
               "At which extension are lost or stolen laptops reported?", "4400")),
            "Customer data may never be copied to personal devices.",
        ],
    ]),
    "onboarding.md": ("Onboarding", [
        [
            Q(("Every new starter is assigned an onboarding buddy from another team.",
               "Who is every new starter assigned?", "onboarding buddy")),
            Q(("The welcome session for new starters takes place every Monday at 9:30.",
               "When does the welcome session for new starters take place?", "every Monday at 9:30")),
            Q(("The probation period at Fernhill Robotics lasts six months.",
               "How long does the probation period last?", "six months")),
        ],
        [
            Q(("New starters complete the safety course in the robotics lab within two weeks.",
               "Within what time do new starters complete the safety course?", "two weeks")),
            "Laptops are handed out on the first morning by the IT desk.",
        ],
    ]),
    "it_equipment.md": ("IT equipment", [
        [
            Q(("The memory of an engineering laptop is 32 GB.",
               "How much memory does an engineering laptop have?", "32 GB")),
            Q(("Laptops are replaced after four years of use.",
               "When are laptops replaced?", "four years")),
            Q(("The number of external monitors each employee may order is two.",
               "How many external monitors may each employee order?", "two")),
        ],
        [
            Q(("The portal for reporting hardware faults is Fixit.",
               "What is the portal for reporting hardware faults?", "Fixit")),
            Q(("Company phones are available only for the on-call rota.",
               "For whom are company phones available?", "the on-call rota")),
        ],
    ]),
    "travel.md": ("Business travel", [
        [
            Q(("The agency that books all business travel is Waypoint Journeys.",
               "Which agency books business travel?", "Waypoint Journeys")),
            Q(("Trains are preferred for journeys under five hours.",
               "When are trains preferred?", "journeys under five hours")),
            Q(("For flights of up to eight hours the seat class is economy.",
               "What seat class is used for flights of up to eight hours?", "economy")),
        ],
        [
            Q(("The hotel limit in capital cities is 180 euros per night.",
               "What is the hotel limit in capital cities?", "180 euros per night")),
            Q(("Travel insurance is provided by Harrowgate Assurance.",
               "Who provides travel insurance?", "Harrowgate Assurance")),
        ],
    ]),
    "benefits.md": ("Benefits", [
        [
            Q(("The employer pension contribution is 6 percent of salary.",
               "What is the employer pension contribution?", "6 percent of salary")),
            Q(("The yearly learning budget for each employee is 1,500 euros.",
               "How much is the yearly learning budget for each employee?", "1,500 euros")),
            Q(("Gym membership is subsidised through the partner FitLoop.",
               "Through which partner is gym membership subsidised?", "FitLoop")),
        ],
        [
            Q(("Bike leasing is offered through a scheme run by Pedalgo.",
               "Who runs the bike leasing scheme?", "Pedalgo")),
            "Benefits start on the first day of employment.",
        ],
    ]),
    "code_review.md": ("Code review", [
        [
            Q(("The number of approvals every pull request needs is two.",
               "How many approvals does every pull request need?", "two")),
            Q(("Reviews should be completed within 24 hours.",
               "Within what time should reviews be completed?", "24 hours")),
            Q(("The main branch is protected and deploys automatically to staging.",
               "Where does the main branch deploy automatically?", "staging")),
        ],
        [
            Q(("The size limit for a pull request before it must be split is 400 lines.",
               "What is the size limit for a pull request before it must be split?", "400 lines")),
            Q(("The style that commit messages follow is Ledger Notation.",
               "Which style do commit messages follow?", "Ledger Notation")),
        ],
    ]),
    "incident_response.md": ("Incident response", [
        [
            Q(("The channel for declaring production incidents is incident-room.",
               "Which channel is used for declaring production incidents?", "incident-room")),
            Q(("A severity one incident must be acknowledged within 15 minutes.",
               "How quickly must a severity one incident be acknowledged?", "15 minutes")),
            Q(("The incident commander is the on-call engineering manager.",
               "Who is the incident commander?", "on-call engineering manager")),
        ],
        [
            Q(("A written postmortem is due within five working days.",
               "When is a written postmortem due?", "within five working days")),
            Q(("Postmortems are blameless and focus on systems rather than people.",
               "What do postmortems focus on?", "systems rather than people")),
        ],
    ]),
    "offices.md": ("Offices", [
        [
            Q(("The headquarters of Fernhill Robotics is located in Rotterdam.",
               "Where is the headquarters located?", "Rotterdam")),
            Q(("The engineering hub opened in 2019 in Tallinn.",
               "When did the engineering hub open?", "2019")),
            "Both offices have quiet rooms and a small workshop.",
        ],
        [
            Q(("Visitors sign in at the reception on the ground floor.",
               "Where do visitors sign in?", "the reception on the ground floor")),
            Q(("Office access badges are issued by the facilities team.",
               "Who issues office access badges?", "the facilities team")),
        ],
    ]),
}

# Hard questions: paraphrases that share few words with the answering sentence. (No question or
# document may contain "short", "concise" or "few words": those words ask the sandbox for a terse answer.)
HARD_QA = [
    ("How much time off do I get each year?", "27 days"),
    ("Can I bring unused holiday into January?", "five days"),
    ("How old can a claim be before finance turns it down?", "90 days"),
    ("Do I get money back for wine at a customer dinner?", "never reimbursed"),
    ("How often can I stay at home instead of coming in?", "three days per week"),
    ("What should I do if a message looks like a scam?", "Report button"),
    ("Who shows me around when I start?", "onboarding buddy"),
    ("When will my computer be swapped for a newer one?", "four years"),
    ("Should I go by rail or by plane for a four-hour trip?", "Trains"),
    ("Do you help pay for a bicycle?", "Pedalgo"),
    ("How big can my change get before I have to break it up?", "400 lines"),
    ("How fast do I need to respond to the worst outages?", "15 minutes"),
]


def _doc_text(title: str, paragraphs: list[list]) -> str:
    parts = [f"# {title}", ""]
    for paragraph in paragraphs:
        sentences = [s[0] if isinstance(s, tuple) else s for s in paragraph]
        parts.append(" ".join(sentences))
        parts.append("")
    return "\n".join(parts)


def make_qa() -> None:
    base = ROOT / "document_qa"
    docs_dir = base / "flows" / "standard" / "docs"
    docs_dir.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    for name, (title, paragraphs) in DOCS.items():
        (docs_dir / name).write_text(_doc_text(title, paragraphs), encoding="utf-8", newline="\n")
        for paragraph in paragraphs:
            for s in paragraph:
                if isinstance(s, tuple):
                    rows.append({"question": s[1], "answer": s[2], "source": name})
    for question, answer in HARD_QA:
        source = next(
            (n for n, (_, ps) in DOCS.items() for p in ps for s in p if isinstance(s, tuple) and s[2] == answer),
            next(n for n, (_, ps) in DOCS.items() for p in ps for s in p if answer in (s[0] if isinstance(s, tuple) else s)),
        )
        rows.append({"question": question, "answer": answer, "source": source})
    rng = random.Random(SEED)
    rng.shuffle(rows)
    for i, row in enumerate(rows, start=1):
        row["id"] = f"Q{i:03d}"
    rows = [{"id": r["id"], "question": r["question"], "answer": r["answer"], "source": r["source"]} for r in rows]
    _write_jsonl(base / "data" / "questions.jsonl", rows)
    dev = sorted(random.Random(SEED + 3).sample(range(len(rows)), 10))
    _write_jsonl(base / "data" / "questions_dev.jsonl", [rows[i] for i in dev])


if __name__ == "__main__":
    make_ner()
    make_tickets()
    make_qa()
    print("datasets written under", ROOT)
