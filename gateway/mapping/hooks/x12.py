"""Hooks for X12 mappings: what a path cannot say in the 856 hierarchy and the 810 summary."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from ...edi.model import Message, Segment
from ...errors import MappingError
from ..convert import ConversionError, to_decimal, to_implied2

__all__ = ["hl_order_number", "net_total", "sscc", "tax_total"]


def _levels(message: Message) -> dict[str, tuple[str, str, str | None]]:
    """HL01 id -> (HL03 level, HL02 parent id, first PRF01 of that level), in one pass."""
    levels: dict[str, tuple[str, str, str | None]] = {}
    current: str | None = None
    for segment in message.segments:
        if segment.tag == "HL":
            current = segment.get(1).strip()
            levels[current] = (segment.get(3).strip(), segment.get(2).strip(), None)
        elif segment.tag == "PRF" and current is not None and levels[current][2] is None:
            level, parent, _ = levels[current]
            levels[current] = (level, parent, segment.get(1).strip() or None)
    return levels


def hl_order_number(segments: list[Segment], message: Message, memo: dict | None = None) -> str | None:
    """856 line (an HL*I group): PRF01 of its order-level ancestor (HL03 = O), found by HL02 parent ids.

    The order level sits above the pack level (S-O-P-I, S-O-T-P-I) or right above the item
    (S-O-I), so a line's own segments never hold its purchase order number. The message's HL
    levels are indexed once per message (``memo``), so each line costs its depth, not the
    message's length.
    Example: ``order_number = { python = "gateway.mapping.hooks.x12:hl_order_number" }``.
    """
    if not segments or segments[0].tag != "HL":
        return None
    memo = {} if memo is None else memo
    levels = memo.get("x12.hl_levels")
    if levels is None:
        levels = memo["x12.hl_levels"] = _levels(message)
    parent = segments[0].get(2).strip()
    seen: set[str] = set()
    while parent and parent not in seen:       # `seen`: a looping parent chain must not hang
        seen.add(parent)
        found = levels.get(parent)
        if found is None:
            return None
        level, parent_of_parent, order = found
        if level == "O":
            return order
        parent = parent_of_parent
    return None


def sscc(segments: list[Segment], message: Message) -> str | None:
    """856 pack/tare level: the SSCC of the first MAN*GM in scope, as its 18 digits.

    VICS puts the GS1 application identifier "00" in front (20 digits); it is dropped so the
    value compares equal to the EDIFACT GIN+BJ SSCC and the label's barcode text.
    Example: ``sscc = { python = "gateway.mapping.hooks.x12:sscc" }``.
    """
    for segment in segments:
        if segment.tag == "MAN" and segment.get(1) == "GM":
            value = segment.get(2).strip()
            if len(value) == 20 and value.startswith("00") and value.isdigit():
                return value[2:]
            return value or None
    return None


def _amount(text: str, segment: Segment, element: int, implied: bool = False) -> Decimal:
    try:
        value = to_implied2(text) if implied else to_decimal(text)
        return Decimal(value)
    except (ConversionError, InvalidOperation, TypeError):
        kind = "a whole number with two implied decimals" if implied else "a decimal number"
        raise MappingError(f"{text!r} is not {kind}", segment=segment.number or None, tag=segment.tag,
                           element=str(element)) from None


def _tax(segments: list[Segment]) -> Decimal | None:
    amounts = [_amount(s.get(2), s, 2) for s in segments if s.tag == "TXI" and s.get(2).strip()]
    return sum(amounts, Decimal(0)) if amounts else None


def tax_total(segments: list[Segment], message: Message) -> str | None:
    """810 summary: the sum of the TXI02 tax amounts in scope (state + local + ... taxes).

    Example: ``"totals.tax" = { python = "gateway.mapping.hooks.x12:tax_total", convert = "decimal" }``.
    """
    tax = _tax(segments)
    return None if tax is None else str(tax)


def net_total(segments: list[Segment], message: Message) -> str | None:
    """810 summary: the total without tax, TDS01 (two implied decimals) minus the TXI02 amounts.

    An 810 states only the total amount (TDS01, taxes, allowances and charges included);
    with no TXI the net is that total.
    Example: ``"totals.net" = { python = "gateway.mapping.hooks.x12:net_total", convert = "decimal" }``.
    """
    tds = next((s for s in segments if s.tag == "TDS" and s.get(1).strip()), None)
    if tds is None:
        return None
    total = _amount(tds.get(1), tds, 1, implied=True)
    return str(total - (_tax(segments) or Decimal(0)))
