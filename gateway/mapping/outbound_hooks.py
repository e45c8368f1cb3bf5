"""Python hooks outbound mapping files may call (``python = "gateway.mapping.outbound_hooks:NAME"``).

A hook receives the whole canonical document body and the current loop item (None outside a
loop) and returns the segments to write, each as ``[TAG, element, ...]`` where an element is a
string or a list of strings (a composite). Hooks must be pure: no I/O, no clock, no state.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = ["edifact_tax_breakdown"]


def edifact_tax_breakdown(document: dict, item: Any) -> list[list]:
    """EDIFACT invoice summary per VAT rate: ``TAX+7+VAT+++:::RATE'`` then ``MOA+125:TAXABLE'``.

    The taxable amount of a rate is the sum of the line amounts at that rate, which no single
    document path holds. Rates appear in the order of their first line; lines without a rate
    or an amount are left out (nothing is guessed).
    """
    totals: dict[str, Decimal] = {}
    for line in document.get("lines") or []:
        rate, amount = line.get("tax_rate"), line.get("line_amount")
        if not isinstance(rate, str) or not isinstance(amount, str) or not rate or not amount:
            continue
        try:
            totals[rate] = totals.get(rate, Decimal(0)) + Decimal(amount)
        except InvalidOperation:
            raise ValueError(f"line {line.get('line')}: line_amount {amount!r} is not a decimal") from None
    segments: list[list] = []
    for rate, taxable in totals.items():
        segments.append(["TAX", "7", "VAT", "", "", ["", "", "", rate]])
        segments.append(["MOA", ["125", f"{taxable:f}"]])
    return segments
