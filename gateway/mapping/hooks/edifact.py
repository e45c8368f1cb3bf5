"""Hooks for EDIFACT mappings: values a path cannot reach from the scope it runs in."""

from __future__ import annotations

from ...edi.model import Message, Segment

__all__ = ["sole_order_number"]

_DETAIL = frozenset({"CPS", "LIN"})        # the heading section ends at the first of these


def sole_order_number(segments: list[Segment], message: Message) -> str | None:
    """The order number (RFF+ON) of the heading section, when it names exactly one order.

    A DESADV line often carries no RFF+ON of its own: it then belongs to the message's order,
    which only the heading says. With several orders in the heading, guessing would be wrong,
    so the result is None. Reads only the heading, so it costs the same for every line.
    Example: ``order_number = ["RFF[1.1=ON]/1.2", { python = "gateway.mapping.hooks.edifact:sole_order_number" }]``.
    """
    found: set[str] = set()
    for segment in message.body:
        if segment.tag in _DETAIL:
            break
        if segment.tag == "RFF" and segment.get(1, 1) == "ON":
            value = segment.get(1, 2).strip()
            if value:
                found.add(value)
    return found.pop() if len(found) == 1 else None
