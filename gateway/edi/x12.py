"""Read ANSI ASC X12 interchanges (ISA..IEA, mailbags too) into the EDI model.

Pure and I/O-free: ``parse`` reads bytes, ``iter_messages`` a binary stream one transaction
set at a time (same code, same errors, reported in file order). Each ISA sets its own
delimiters: the element separator is the character after ``ISA``, the component separator
is ISA16, the segment terminator is the character right after ISA16 (read as a decoded
character, so a multi-byte terminator such as U+2026 works) and ISA11 is the repetition
separator from version 00402 on. Envelopes are checked (SE/GE/IEA counts and control
numbers); every problem is a ``ParseError`` with the 1-based segment number in the file,
the tag and the element.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from gateway.edi.detect import is_ebcdic_x12
from gateway.edi.model import Delimiters, Interchange, Message, Party, Segment
from gateway.edi.stream import (
    CHUNK_SIZE, LATIN1_FALLBACK, Event, Source, Syntax, name, number_or_none, read_all, read_stream,
    segments, show, truncated,
)
from gateway.errors import ParseError

__all__ = ["iter_messages", "parse"]

# Whitespace allowed around segment boundaries; U+0085 is EBCDIC's NL (0x15) after cp037
# decoding (when it is the terminator itself it is excluded, like any delimiter).
_WS = " \t\r\n\x0b\x0c\x85"
_ENVELOPE = frozenset({"ISA", "IEA", "GS", "GE", "ST"})
# The ISA is 106 characters when every field has its fixed width; tolerate a little
# slack (trimmed or padded fields) but do not scan a whole file looking for separators.
_ISA_MAX = 160


def _start(src: Source) -> None:
    """EBCDIC (cp037) when the ISA is EBCDIC; else UTF-8, byte by byte falling back to latin-1."""
    if not src.head.lstrip(_WS.encode()).startswith(b"ISA") and is_ebcdic_x12(src.head):
        src.start("cp037")
    else:
        # X12 has no charset declaration: UTF-8, and any byte that is not valid UTF-8 is
        # read as latin-1 (which maps every byte, so nothing is lost).
        src.start("utf-8", LATIN1_FALLBACK)


def _valid_tag(tag: str) -> bool:
    return (2 <= len(tag) <= 3 and tag.isascii() and tag.isalnum() and tag.isupper()
            and tag[0].isalpha())


_SYNTAX = Syntax("X12", _valid_tag, _WS, good=set())


def _read_isa(text: str, pos: int, number: int) -> tuple[Segment, Delimiters, int]:
    """Parse the ISA at ``pos``: its Segment, the delimiters it sets, offset after it."""
    if len(text) - pos < 4:
        raise ParseError("file ends inside the ISA segment", segment=number, tag="ISA")
    sep = text[pos + 3]
    if sep.isalnum() or sep in _WS:
        raise ParseError(f"invalid element separator {sep!r} after ISA", segment=number, tag="ISA")
    j = pos + 3
    for k in range(2, 17):
        j = text.find(sep, j + 1, pos + _ISA_MAX)
        if j < 0:
            raise ParseError(f"ISA has only {k - 1} elements (16 expected): truncated or "
                             "not a fixed-width ISA", segment=number, tag="ISA", element=str(k - 1))
    if j + 2 >= len(text):
        raise ParseError("file ends inside the ISA segment: no segment terminator after ISA16",
                         segment=number, tag="ISA", element="16")
    comp, term = text[j + 1], text[j + 2]
    if comp.isalnum() or comp == sep or comp in _WS:
        raise ParseError(f"invalid component separator {comp!r} in ISA16", segment=number,
                         tag="ISA", element="16")
    if term.isalnum() or term in (sep, comp, " "):
        raise ParseError(f"invalid segment terminator {term!r} after ISA16", segment=number,
                         tag="ISA", element="16")
    values = text[pos:j + 2].split(sep)[1:]
    isa = Segment("ISA", [(v,) for v in values], number)
    version, isa11 = values[11], values[10]
    repetition = None
    # ISA11 is the repetition separator from 00402 on (before it is the "U" standards id);
    # a letter left there by a sender would cut data, so only a real separator counts.
    if (len(version) == 5 and version.isascii() and version.isdigit() and version >= "00402"
            and len(isa11) == 1 and not isa11.isalnum() and isa11 not in (sep, comp, term, " ")):
        repetition = isa11
    return isa, Delimiters(element=sep, component=comp, segment=term, repetition=repetition), j + 3


def _require(seg: Segment, element: int, what: str) -> str:
    value = seg.get(element)
    if not value:
        raise ParseError(f"{what} is missing", segment=seg.number, tag=seg.tag,
                         element=str(element))
    return value


def _count(seg: Segment, element: int) -> int:
    value = number_or_none(seg.get(element))
    if value is None:
        raise ParseError(f"count {show(seg.get(element))} is not a number", segment=seg.number,
                         tag=seg.tag, element=str(element))
    return value


def _check(seg: Segment, element: int, expected: str, what: str) -> None:
    if seg.get(element) != expected:
        raise ParseError(f"{seg.tag}{element:02d} {show(seg.get(element))} does not match {what} "
                         f"{show(expected)}", segment=seg.number, tag=seg.tag,
                         element=str(element))


def _check_count(seg: Segment, actual: int, what: str) -> None:
    declared = _count(seg, 1)
    if declared != actual:
        raise ParseError(f"{seg.tag}01 says {declared} {what} but there are {actual}",
                         segment=seg.number, tag=seg.tag, element="1")


def _read_interchange(src: Source, number: int) -> Iterator[Event]:
    """Read one ISA..IEA from ``src.pos``, yielding each transaction set as its SE checks out
    and ``(interchange, None)`` after IEA; returns the number of the next segment."""
    src.ensure(_ISA_MAX + 3)
    isa, d, src.pos = _read_isa(src.text, src.pos, number)
    control = _require(isa, 13, "interchange control number")
    interchange = Interchange(
        format="x12",
        sender=Party(isa.get(6).strip(), isa.get(5).strip()),
        recipient=Party(isa.get(8).strip(), isa.get(7).strip()),
        control_number=control,
        syntax=isa.get(12),
        delimiters=d,
        date=isa.get(9),
        time=isa.get(10),
        test=isa.get(15) == "T",
        first_segment=number,
        ack_requested=isa.get(14) == "1",
    )
    group: Segment | None = None
    group_version = ""
    in_group = 0
    groups = 0
    msg: Message | None = None
    body: list[Segment] = []
    last = isa
    for seg in segments(src, d, number + 1, _SYNTAX):
        tag = seg.tag
        if msg is not None:
            # Hot path: a body segment costs one append and two cheap comparisons.
            body.append(seg)
            if tag == "SE":
                _check_count(seg, len(body), "segments (ST..SE)")
                _check(seg, 2, msg.reference, "ST02")
                yield interchange, msg
                in_group += 1
                last, msg = seg, None
            elif tag in _ENVELOPE:
                raise ParseError(f"{tag} found but transaction set {name(msg.reference)} was not "
                                 "closed by SE", segment=seg.number, tag=tag)
            continue
        number = seg.number
        last = seg
        if tag == "ST":
            if group is None:
                raise ParseError("ST outside a GS..GE functional group", segment=number, tag=tag)
            msg = Message(
                type=_require(seg, 1, "transaction set identifier"),
                version=group_version[:6],
                reference=_require(seg, 2, "transaction set control number"),
                segments=[seg],
                agency=group_version,
                group_reference=group.get(6),
                group_id=group.get(1),
                group_sender=group.get(2),
                group_recipient=group.get(3),
            )
            body = msg.segments
        elif tag == "GS":
            if group is not None:
                raise ParseError(f"GS found but group {name(group.get(6))} was not closed by GE",
                                 segment=number, tag=tag)
            _require(seg, 6, "group control number")
            group_version = _require(seg, 8, "version / release / industry identifier")
            group, in_group = seg, 0
        elif tag == "GE" and group is not None:
            _check_count(seg, in_group, "transaction sets")
            _check(seg, 2, group.get(6), "GS06")
            group = None
            groups += 1
        elif tag == "IEA" and group is None:
            _check_count(seg, groups, "functional groups")
            _check(seg, 2, control, "ISA13")
            yield interchange, None
            return number + 1
        elif tag == "IEA" and group is not None:
            raise ParseError(f"IEA found but group {name(group.get(6))} was not closed by GE",
                             segment=number, tag=tag)
        elif tag == "TA1" and group is None:
            # An interchange acknowledgment sits between ISA and IEA, outside any group;
            # keep it as a one-segment "message" so the acks code can see it.
            yield interchange, Message(type="TA1", version=interchange.syntax,
                                       reference=seg.get(1), segments=[seg])
        elif tag == "GE":
            raise ParseError("GE without a preceding GS", segment=number, tag=tag)
        elif tag == "ISA":
            raise ParseError(f"ISA found but interchange {name(control)} was not closed by IEA",
                             segment=number, tag=tag)
        else:
            raise ParseError(f"segment {tag} outside any transaction set", segment=number, tag=tag)
    if msg is not None:
        raise truncated(body[-1], f"transaction set {name(msg.reference)}", "SE")
    if group is not None:
        raise truncated(last, f"group {name(group.get(6))}", "GE")
    raise truncated(last, f"interchange {name(control)}", "IEA")


def _read(src: Source) -> Iterator[Event]:
    """Every interchange in ``src``: sets as they complete, then ``(interchange, None)``."""
    _start(src)
    number, found = 1, False
    while src.skip(_WS):
        if src.text[src.pos] == "\x1a" and src.rest_is(_WS + "\x1a"):
            break  # a DOS end-of-file mark (Ctrl-Z) that some systems append
        src.ensure(3)
        if not src.text.startswith("ISA", src.pos):
            raise ParseError("expected ISA interchange header, found "
                             f"{show(src.text[src.pos:src.pos + 3])}", segment=number)
        number = yield from _read_interchange(src, number)
        found = True
    if not found:
        raise ParseError("no ISA interchange header found")


def parse(raw: bytes) -> list[Interchange]:
    """Read every X12 interchange in ``raw`` (one ISA..IEA or a mailbag of several).

    Raises ``ParseError`` naming segment number, tag and element for any syntax or
    envelope problem (counts, control numbers, truncation).
    """
    return read_all(raw, _read, "X12")


def iter_messages(stream: BinaryIO, *, chunk_size: int = CHUNK_SIZE
                  ) -> Iterator[tuple[Interchange, Message]]:
    """Read X12 from a binary stream one transaction set at a time, in ``chunk_size`` reads.

    Yields ``(interchange, message)`` as each SE checks out (a TA1 as a one-segment
    message); the interchange is its header (``messages`` stays empty). Checks and errors
    are those of ``parse``, raised when reading reaches them: a GE/IEA problem comes after
    the sets before it were yielded, so treat them as final only when the iteration ends
    without error. Memory holds one transaction set and one chunk.
    """
    return read_stream(stream, chunk_size, _read, "X12")
