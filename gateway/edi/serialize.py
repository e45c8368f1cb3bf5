"""Write EDI: segments to text (escaped per delimiters) and whole EDIFACT/X12 interchanges with envelopes.

Pure and I/O-free. ``render`` wraps message bodies in UNB/UNG/UNH..UNT/UNE/UNZ or
ISA/GS/ST..SE/GE/IEA, computes every count and takes each control number from
``next_number(level)`` (level ``interchange``, ``group`` or ``message``) so the caller decides
where numbers come from (the store allocates them gap-free inside the transaction that
records the interchange). A value that cannot be written (an X12 value holding a delimiter, a
character outside the declared character set, an ISA field too wide) is a ``MappingError``
naming the segment and element.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from gateway.edi.edifact import CODECS, DEFAULT_DELIMITERS as EDIFACT_DELIMITERS
from gateway.edi.model import Delimiters, Party, Segment
from gateway.errors import MappingError

__all__ = ["EDIFACT_DELIMITERS", "Envelope", "OutMessage", "Rendered", "X12_DELIMITERS", "X12_FUNCTIONAL_IDS",
           "render", "segment_text"]

X12_DELIMITERS = Delimiters(element="*", component=">", segment="~", repetition="^")
# GS01 functional identifier per transaction set (X12.6 / the GS01 code list), for the ones we write.
X12_FUNCTIONAL_IDS = {"850": "PO", "855": "PR", "856": "SH", "810": "IN", "997": "FA", "999": "FA",
                      "860": "PC", "865": "CA", "820": "RA", "846": "IB", "940": "OW", "945": "SW"}
# Widths of the fixed-length ISA elements 1..16.
_ISA_WIDTHS = (2, 10, 2, 10, 2, 15, 2, 15, 6, 4, 1, 5, 9, 1, 1, 1)
_MAX_CONTROL = {"x12": 999_999_999, "edifact": 99_999_999_999_999}
NextNumber = Callable[[str], int]


@dataclass(frozen=True, slots=True)
class OutMessage:
    """One message to write: its type, version and the body between UNH/ST and UNT/SE."""

    type: str                  # ORDERS, INVOIC, CONTRL, 850, 997...
    version: str               # EDIFACT "D96A" (or "4:1" for CONTRL: 0052:0054), X12 "004010"
    body: Sequence[Segment]
    agency: str = ""           # EDIFACT association code (UNH 0057, e.g. EAN008); X12 GS08 override (004010VICS)
    group_id: str = ""         # X12 GS01 (default from X12_FUNCTIONAL_IDS), EDIFACT UNG 0038 (default: type)
    implementation: str = ""   # X12 ST03 implementation convention reference (005010X231 for a 999)


@dataclass(frozen=True, slots=True)
class Envelope:
    """Who sends to whom, when and how: everything an interchange header needs besides numbers."""

    format: str                # "edifact" | "x12"
    sender: Party
    recipient: Party
    at: datetime
    test: bool = False
    syntax: str = ""           # EDIFACT "UNOC:3" (default); X12 ISA12, default from the first message's version
    delimiters: Delimiters | None = None
    ack_requested: bool = False   # UNB 0031 / ISA14
    groups: bool = False       # EDIFACT: wrap messages in UNG/UNE (X12 always has GS/GE)
    application_sender: str = ""     # GS02 / UNG sender (default: sender.id)
    application_recipient: str = ""  # GS03 / UNG recipient (default: recipient.id)
    una: bool = True           # EDIFACT: write the UNA service string advice
    line_break: str = "\n"     # written after each segment terminator (readers accept it; "" for none)
    leading: Sequence[Segment] = ()  # X12 segments right after the ISA, outside groups (a TA1)


@dataclass(frozen=True, slots=True)
class Rendered:
    """A written interchange and the control numbers it carries."""

    raw: bytes
    interchange: str
    groups: list[str] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def _escape_edifact(value: str, d: Delimiters, specials: str, seg: Segment, element: int) -> str:
    if not any(c in specials for c in value):
        return value
    if d.release is None:
        raise MappingError(f"value {value[:35]!r} holds a delimiter and the interchange has no release character",
                           segment=seg.number or None, tag=seg.tag, element=str(element))
    return "".join(d.release + c if c in specials else c for c in value)


def _check_x12(value: str, specials: str, seg: Segment, element: int) -> str:
    if any(c in specials for c in value):
        bad = next(c for c in value if c in specials)
        raise MappingError(f"value {value[:35]!r} holds the delimiter {bad!r}; X12 has no release character",
                           segment=seg.number or None, tag=seg.tag, element=str(element))
    return value


def segment_text(segment: Segment, d: Delimiters, *, edifact: bool | None = None) -> str:
    """One segment with its terminator; trailing empty components/elements are left out.

    EDIFACT values get the release character before any delimiter; X12 has none, so a value
    holding a delimiter is an error. ``edifact`` defaults to "the delimiters have a release".
    """
    edifact = d.release is not None if edifact is None else edifact
    specials = "".join(c for c in (d.element, d.component, d.segment, d.release, d.repetition) if c)
    clean = ((lambda v, i: _escape_edifact(v, d, specials, segment, i)) if edifact
             else (lambda v, i: _check_x12(v, specials, segment, i)))

    def composite(comps: tuple[str, ...], index: int) -> str:
        parts = [clean(c, index) for c in comps]
        while parts and parts[-1] == "":
            parts.pop()
        return d.component.join(parts)

    elements = []
    for index, comps in enumerate(segment.elements, 1):
        reps = segment.repetitions.get(index)
        if reps and len(reps) > 1:
            if not d.repetition:
                raise MappingError("element repeats but the interchange has no repetition separator",
                                   segment=segment.number or None, tag=segment.tag, element=str(index))
            elements.append(d.repetition.join(composite(r, index) for r in reps))
        else:
            elements.append(composite(comps, index))
    while elements and elements[-1] == "":
        elements.pop()
    return d.element.join([segment.tag, *elements]) + d.segment


def _seg(tag: str, *elements: str | tuple[str, ...]) -> Segment:
    return Segment(tag, [e if isinstance(e, tuple) else (e,) for e in elements])


def _number(next_number: NextNumber, level: str, fmt: str) -> int:
    value = next_number(level)
    if not 0 < value <= _MAX_CONTROL[fmt]:
        raise MappingError(f"{level} control number {value} is outside 1..{_MAX_CONTROL[fmt]}")
    return value


# --------------------------------------------------------------------------- EDIFACT

def _edifact_version(version: str) -> tuple[str, str]:
    """'D96A' -> ('D', '96A'); '4:1' -> ('4', '1') (CONTRL and other service messages)."""
    if ":" in version:
        number, _, release = version.partition(":")
        return number, release
    return version[:1], version[1:]


def _render_edifact(env: Envelope, messages: Sequence[OutMessage], next_number: NextNumber) -> Rendered:
    syntax = env.syntax or "UNOC:3"
    charset, _, level = syntax.partition(":")
    codec = CODECS.get(charset)
    if codec is None:
        raise MappingError(f"unknown EDIFACT character set {charset!r} (known: {', '.join(CODECS)})",
                           tag="UNB", element="1")
    d = env.delimiters or EDIFACT_DELIMITERS
    syntax4 = level.isdigit() and int(level) >= 4
    if syntax4 and d.repetition is None:
        d = replace(d, repetition="*")
    elif not syntax4 and d.repetition is not None:
        d = replace(d, repetition=None)  # before syntax 4 the UNA repetition position is a reserved space
    out: list[str] = []
    if env.una:
        out.append(f"UNA{d.component}{d.element}{d.decimal}{d.release or ' '}{d.repetition or ' '}{d.segment}")
    date = env.at.strftime("%Y%m%d" if syntax4 else "%y%m%d")
    icn = str(_number(next_number, "interchange", "edifact"))
    unb = [(charset, level) if level else (charset,), (env.sender.id, env.sender.qualifier),
           (env.recipient.id, env.recipient.qualifier), (date, env.at.strftime("%H%M")), icn]
    if env.ack_requested or env.test:
        unb += ["", "", "", "1" if env.ack_requested else ""]
        if env.test:
            unb += ["", "1"]
    segments: list[Segment] = [_seg("UNB", *unb)]
    groups: list[str] = []
    refs: list[str] = []

    def add_messages(batch: Sequence[OutMessage]) -> None:
        for message in batch:
            ref = str(_number(next_number, "message", "edifact"))
            refs.append(ref)
            number, release = _edifact_version(message.version)
            s009 = (message.type, number, release, "UN", message.agency) if message.agency else (
                message.type, number, release, "UN")
            segments.append(_seg("UNH", ref, s009))
            segments.extend(message.body)
            segments.append(_seg("UNT", str(len(message.body) + 2), ref))

    if env.groups:
        for group_id, batch in _batches(messages, lambda m: (m.group_id or m.type, m.version, m.agency)):
            gcn = str(_number(next_number, "group", "edifact"))
            groups.append(gcn)
            number, release = _edifact_version(batch[0].version)
            segments.append(_seg("UNG", group_id[0], (env.application_sender or env.sender.id, env.sender.qualifier),
                                 (env.application_recipient or env.recipient.id, env.recipient.qualifier),
                                 (date, env.at.strftime("%H%M")), gcn, "UN",
                                 (number, release, batch[0].agency) if batch[0].agency else (number, release)))
            add_messages(batch)
            segments.append(_seg("UNE", str(len(batch)), gcn))
    else:
        add_messages(messages)
    segments.append(_seg("UNZ", str(len(groups) if env.groups else len(messages)), icn))
    out.extend(segment_text(s, d, edifact=True) for s in segments)
    text = env.line_break.join(out) + env.line_break
    return Rendered(_encode(text, codec, charset, segments, out), icn, groups, refs)


def _encode(text: str, codec: str, charset: str, segments: list[Segment], lines: list[str]) -> bytes:
    try:
        return text.encode(codec)
    except UnicodeEncodeError as exc:
        # Name the segment holding the character: walk the written lines to the failing offset.
        char = exc.object[exc.start]
        for segment, line in zip(segments, lines[-len(segments):]):
            if char in line:
                raise MappingError(f"character {char!r} cannot be written in character set {charset} ({codec})",
                                   tag=segment.tag) from None
        raise MappingError(f"character {char!r} cannot be written in character set {charset} ({codec})") from None


# --------------------------------------------------------------------------- X12

def _batches(messages: Sequence[OutMessage], key: Callable[[OutMessage], tuple]) -> list[tuple[tuple, list[OutMessage]]]:
    """Consecutive messages with the same key form one group (order kept)."""
    out: list[tuple[tuple, list[OutMessage]]] = []
    for message in messages:
        k = key(message)
        if out and out[-1][0] == k:
            out[-1][1].append(message)
        else:
            out.append((k, [message]))
    return out


def _isa_field(value: str, index: int) -> str:
    width = _ISA_WIDTHS[index - 1]
    if len(value) > width:
        raise MappingError(f"{value!r} is longer than the {width} characters ISA{index:02d} holds",
                           tag="ISA", element=str(index))
    return value.ljust(width)


def _render_x12(env: Envelope, messages: Sequence[OutMessage], next_number: NextNumber) -> Rendered:
    d = env.delimiters or X12_DELIMITERS
    first_version = messages[0].version if messages else "00401"
    version = env.syntax or first_version[:5].rjust(5, "0")
    if len(version) != 5 or not version.isdigit():
        raise MappingError(f"ISA12 version {version!r} must be 5 digits (e.g. 00401)", tag="ISA", element="12")
    repetition = d.repetition if version >= "00402" and d.repetition else None
    d = replace(d, repetition=repetition, release=None)
    icn = _number(next_number, "interchange", "x12")
    isa = [("00", 1), ("", 2), ("00", 3), ("", 4), (env.sender.qualifier or "ZZ", 5), (env.sender.id, 6),
           (env.recipient.qualifier or "ZZ", 7), (env.recipient.id, 8), (env.at.strftime("%y%m%d"), 9),
           (env.at.strftime("%H%M"), 10), (repetition or "U", 11), (version, 12), (f"{icn:09d}", 13),
           ("1" if env.ack_requested else "0", 14), ("T" if env.test else "P", 15)]
    specials = {d.element, d.component, d.segment} | ({repetition} if repetition else set())
    fields = []
    for value, index in isa:
        if index != 11 and any(c in specials for c in value):
            raise MappingError(f"ISA{index:02d} value {value!r} holds a delimiter", tag="ISA", element=str(index))
        fields.append(_isa_field(value, index))
    lines = ["ISA" + d.element + d.element.join(fields) + d.element + d.component + d.segment]
    segments: list[Segment] = [_seg("ISA")]
    body: list[Segment] = list(env.leading)
    groups: list[str] = []
    refs: list[str] = []
    for (group_id, gs08, _), batch in _batches(
            messages, lambda m: (m.group_id or X12_FUNCTIONAL_IDS.get(m.type, ""), m.agency or m.version, 0)):
        if not group_id:
            raise MappingError(f"no GS01 functional identifier known for transaction set {batch[0].type}; "
                               "set group_id", tag="GS", element="1")
        gcn = str(_number(next_number, "group", "x12"))
        groups.append(gcn)
        body.append(_seg("GS", group_id, env.application_sender or env.sender.id,
                         env.application_recipient or env.recipient.id, env.at.strftime("%Y%m%d"),
                         env.at.strftime("%H%M"), gcn, "X", gs08))
        for message in batch:
            ref = f"{_number(next_number, 'message', 'x12'):04d}"
            refs.append(ref)
            st = [message.type, ref] + ([message.implementation] if message.implementation else [])
            body.append(_seg("ST", *st))
            body.extend(message.body)
            body.append(_seg("SE", str(len(message.body) + 2), ref))
        body.append(_seg("GE", str(len(batch)), gcn))
    body.append(_seg("IEA", str(len(groups)), f"{icn:09d}"))
    lines.extend(segment_text(s, d, edifact=False) for s in body)
    segments.extend(body)
    text = env.line_break.join(lines) + env.line_break
    return Rendered(_encode(text, "utf-8" if not text.isascii() else "ascii", "X12", segments, lines),
                    f"{icn:09d}", groups, refs)


_RENDERERS = {"edifact": _render_edifact, "x12": _render_x12}


def render(envelope: Envelope, messages: Sequence[OutMessage], next_number: NextNumber) -> Rendered:
    """Write one interchange holding ``messages`` (in order); raises MappingError."""
    renderer = _RENDERERS.get(envelope.format)
    if renderer is None:
        raise MappingError(f"cannot write format {envelope.format!r} (known: {', '.join(_RENDERERS)})")
    return renderer(envelope, messages, next_number)
