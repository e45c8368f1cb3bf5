"""Format-neutral EDI model shared by the EDIFACT and X12 readers and the mapping engine.

A ``Segment`` holds its elements as tuples of components, exactly as split by the
interchange's delimiters with release characters already resolved. Positions in paths and
errors are 1-based, like the standards' own documentation: ``NAD`` element 2 component 1 is
``segment.get(2, 1)``; element 0 is never used (the tag is ``segment.tag``).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Delimiters:
    """The separators one interchange uses (from UNA/ISA or the syntax defaults)."""

    element: str
    component: str
    segment: str
    release: str | None = None
    repetition: str | None = None
    decimal: str = "."


@dataclass(slots=True)
class Segment:
    """One segment: tag, elements as component tuples, and its 1-based number in the file."""

    tag: str
    elements: list[tuple[str, ...]]
    number: int = 0
    # Only elements that repeat (syntax-4 / X12 repetition separator): index -> every repetition.
    # ``elements[i-1]`` always holds the first repetition so plain lookups stay simple.
    repetitions: dict[int, list[tuple[str, ...]]] = field(default_factory=dict)

    def get(self, element: int, component: int = 1) -> str:
        """Value at 1-based element/component, or '' when absent (EDI omits trailing empties)."""
        if element < 1 or element > len(self.elements):
            return ""
        comps = self.elements[element - 1]
        if component < 1 or component > len(comps):
            return ""
        return comps[component - 1]

    def element_count(self) -> int:
        """Number of elements present (trailing empty elements are usually omitted)."""
        return len(self.elements)


@dataclass(slots=True)
class Party:
    """An interchange/group sender or recipient: identifier and its code qualifier."""

    id: str
    qualifier: str = ""


@dataclass(slots=True)
class Message:
    """One business message (EDIFACT UNH..UNT, X12 ST..SE), envelope segments included."""

    type: str                 # ORDERS, INVOIC, 850, 810...
    version: str              # D96A, D01B, 004010, 005010...
    reference: str            # UNH 0062 / ST02 control number
    segments: list[Segment]
    agency: str = ""          # EDIFACT association code, e.g. EAN008; X12: GS08 version string
    group_reference: str = ""  # UNG/GS control number when the message sits in a group

    @property
    def body(self) -> list[Segment]:
        """Segments between the message header and trailer."""
        return self.segments[1:-1]


@dataclass(slots=True)
class Interchange:
    """One interchange (UNB..UNZ or ISA..IEA) and the messages inside it."""

    format: str               # "edifact" | "x12"
    sender: Party
    recipient: Party
    control_number: str
    syntax: str               # EDIFACT "UNOC:3", X12 ISA12 "00401"
    delimiters: Delimiters
    messages: list[Message] = field(default_factory=list)
    date: str = ""
    time: str = ""
    test: bool = False
    first_segment: int = 1    # file segment number of the UNB/ISA, for error positions
