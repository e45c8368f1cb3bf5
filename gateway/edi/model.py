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
    group_id: str = ""         # X12 GS01 functional identifier (PO, IN, SH, PR, FA); EDIFACT UNG 0038
    group_sender: str = ""     # X12 GS02 application sender's code (an acknowledgment's GS03)
    group_recipient: str = ""  # X12 GS03 application receiver's code (an acknowledgment's GS02)

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
    ack_requested: bool = False   # UNB 0031 / ISA14 = 1: the sender asks for an acknowledgment


# Rules an Issue can break. Acknowledgment builders translate them into X12 (AK3/AK4, IK3/IK4)
# and EDIFACT CONTRL (0085) error codes, so validators and parsers name the rule, not a code.
ISSUE_RULES = frozenset({
    "segment_unknown",        # tag not defined for this message at all
    "segment_unexpected",     # defined, but not allowed here (order / wrong group)
    "segment_missing",        # a mandatory segment (or group trigger) is absent
    "segment_too_many",       # more repetitions of a segment than allowed
    "loop_too_many",          # more repetitions of a segment group / loop than allowed
    "element_missing",        # a mandatory element or component is empty
    "element_too_many",       # more elements/components/repetitions than the segment defines
    "element_too_short",
    "element_too_long",
    "element_invalid_char",   # a character outside the character set / syntax level
    "element_invalid_type",   # not numeric / decimal / date / time as the element requires
    "element_invalid_code",   # a code not in the allowed list (standard or partner rule)
    "partner_rule",           # any other rule a partner file adds
})


@dataclass(frozen=True, slots=True)
class Issue:
    """One rule a message breaks, located precisely enough to drive a negative acknowledgment.

    ``segment`` is the 1-based number in the file, ``position`` the 1-based position within the
    message (the UNH/ST is 1), ``element``/``component``/``repetition`` 1-based (None when the
    issue is about the whole segment). ``value`` is the offending data, if any.
    """

    rule: str
    problem: str
    tag: str
    segment: int | None = None
    position: int | None = None
    element: int | None = None
    component: int | None = None
    repetition: int | None = None
    value: str | None = None
    message: str = ""         # the message reference (UNH 0062 / ST02) the issue belongs to

    def __str__(self) -> str:
        where = f"segment {self.segment} " if self.segment else ""
        where += self.tag
        if self.element is not None:
            where += f" element {self.element}" + (f".{self.component}" if self.component else "")
        return f"{where}: {self.problem} [{self.rule}]"
