"""What a run, a cell or a planned sweep costs, decided in one place.

The estimate before a sweep, the progress during it, the comparison after it, the reports, the CLI and
the app all ask :func:`price_tokens`, so one run shows one cost everywhere. The rules:

- against the bundled sandbox model nothing is spent: the cost is 0 and marked ``free`` (shown as
  "free (sandbox)"), whatever ``llmops.yaml`` says the named deployment would cost;
- otherwise tokens are priced with ``llmops.yaml``'s ``prices`` for the one model the LLM nodes name
  (USD per 1K tokens); several models in one cell, an unknown model or a model without a price leave the
  cost unknown (``None``, shown as "n/a") with a note saying why, rather than a wrong number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmops_tui.core.format import fmt_money

#: How a free (sandbox) cost reads, in the app, the CLI and the reports.
FREE_TEXT = "free (sandbox)"
#: How an unknown cost reads.
UNPRICED_TEXT = "n/a (no prices)"
SANDBOX_NOTE = "sandbox model: no money is spent"


@dataclass(frozen=True)
class Cost:
    """A cost in USD: ``usd`` is 0.0 when ``free``, None when unknown (``note`` says why)."""

    usd: float | None
    free: bool = False
    note: str = ""

    @property
    def text(self) -> str:
        return fmt_cost(self.usd, free=self.free)


def is_free_endpoint(llm_endpoint: str | None) -> bool:
    """True when LLM calls go to the bundled sandbox model (``--llm-endpoint sandbox``), which costs nothing."""
    return llm_endpoint == "sandbox"


def price_tokens(
    prices: Mapping[str, Any],
    models: Sequence[str | None],
    prompt_tokens: float,
    completion_tokens: float,
    *,
    sandbox: bool,
) -> Cost:
    """The cost of these tokens sent to ``models`` (the model each LLM node names; ``prices`` maps a model
    to an object with ``prompt`` and ``completion`` USD per 1K tokens). ``sandbox``: the calls went to the
    sandbox model, so they are free."""
    if sandbox:
        return Cost(0.0, free=True, note=SANDBOX_NOTE)
    if not models:
        return Cost(None, note="no LLM node")
    if any(m is None for m in models):
        return Cost(None, note="model of an LLM node unknown")
    distinct = sorted({m for m in models if m is not None})
    if len(distinct) > 1:
        return Cost(None, note=f"several models ({', '.join(distinct)}): tokens are not split by model")
    price = prices.get(distinct[0])
    if price is None:
        return Cost(None, note=f"no price for '{distinct[0]}' in llmops.yaml")
    usd = (prompt_tokens * price.prompt + completion_tokens * price.completion) / 1000.0
    return Cost(usd, note=f"{distinct[0]} at {price.prompt:g}/{price.completion:g} USD per 1K tokens")


def fmt_cost(usd: float | None, *, free: bool = False, signed: bool = False) -> str:
    """Money as people read it: "free (sandbox)" when free, ``$0.0049`` / ``$12.30`` otherwise,
    "n/a (no prices)" when unknown."""
    if free:
        return FREE_TEXT
    if usd is None:
        return UNPRICED_TEXT
    return fmt_money(usd, signed=signed)
