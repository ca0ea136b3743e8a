"""Number formatting shared by the app, the CLI and the exporters, so one figure reads the same
everywhere (no ``4.95e-05`` for money)."""

from __future__ import annotations

import math


def fmt_money(value: float | None, *, signed: bool = False) -> str:
    """US dollars with about three significant digits below a dollar and cents above:
    ``$0.0376``, ``$0.0000495``, ``$12.30``, ``+$0.0049`` (``signed``); "-" when unknown."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    sign = "-" if value < 0 else ("+" if signed and value > 0 else "")
    amount = abs(float(value))
    if amount == 0:
        return f"{sign}$0.00"
    decimals = max(2, min(8, 2 - math.floor(math.log10(amount))))
    return f"{sign}${amount:,.{decimals}f}"
