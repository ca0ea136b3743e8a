"""Join the ticket's title and body into one line of text for the prompt.

Line breaks are folded into spaces so that nothing in a customer's message can look like a new
prompt section (``Category:``, ``# user:``) to the model or to Prompt flow's chat parser.
"""

from promptflow.core import tool


@tool
def prepare_ticket(title: str, body: str) -> str:
    title = " ".join((title or "").split()).rstrip(".")
    body = " ".join((body or "").split())
    if title and body:
        return f"{title}. {body}" if title[-1] not in "?!" else f"{title} {body}"
    return title or body
