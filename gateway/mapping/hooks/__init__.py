"""Python hooks that mapping files may call with ``{ python = "gateway.mapping.hooks:NAME" }``.

Only functions in this package (and its submodules) can be named by a mapping file, so a file
dropped into mappings/ can never import arbitrary code. A hook receives the segments in the
field's scope (the header section, one line group or one party group, in document order) and
the whole Message, and returns a string (then converted, coded and defaulted like any value)
or None when it finds nothing. It must be pure: no I/O, no state, no clock. A hook taking a
third argument gets a dict shared by every field of one message (one ``Mapping.apply``), for
indexes every line would otherwise rebuild. Format-specific hooks: ``hooks.edifact``, ``hooks.x12``.
"""

from __future__ import annotations

from ...edi.model import Message, Segment

__all__ = ["free_text"]


def free_text(segments: list[Segment], message: Message) -> str | None:
    """Join the text lines (element 4, components 1-5) of every FTX segment in scope with spaces.

    EDIFACT splits long free text over up to five 512-character components and over several
    FTX segments; a path can only read one component, so this is a natural hook.
    Example: ``note = { python = "gateway.mapping.hooks:free_text" }``.
    """
    parts = [component.strip()
             for segment in segments if segment.tag == "FTX"
             for component in (segment.elements[3] if len(segment.elements) >= 4 else ())]
    text = " ".join(part for part in parts if part)
    return text or None
