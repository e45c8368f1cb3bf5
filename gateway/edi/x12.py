"""Read ANSI ASC X12 interchanges (ISA..IEA, mailbags too) from bytes into the EDI model.

Pure and I/O-free. Each ISA sets its own delimiters: the element separator is the
character after ``ISA``, the component separator is ISA16, the segment terminator is the
character right after ISA16 (read as a decoded character, so a multi-byte terminator such
as U+2026 works) and ISA11 is the repetition separator from version 00402 on. Envelopes
are checked (SE/GE/IEA counts and control numbers); every problem is a ``ParseError``
with the 1-based segment number in the file, the tag and the element.
"""

from __future__ import annotations

from collections.abc import Iterator
from itertools import repeat

from gateway.edi.detect import UTF8_BOM, is_ebcdic_x12
from gateway.edi.edifact import gc_paused
from gateway.edi.model import Delimiters, Interchange, Message, Party, Segment
from gateway.errors import ParseError

__all__ = ["parse"]

# Whitespace allowed around segment boundaries; U+0085 is EBCDIC's NL (0x15) after cp037
# decoding (when it is the terminator itself it is excluded, like any delimiter).
_WS = " \t\r\n\x0b\x0c\x85"
_ENVELOPE = frozenset({"ISA", "IEA", "GS", "GE", "ST"})
# The ISA is 106 characters when every field has its fixed width; tolerate a little
# slack (trimmed or padded fields) but do not scan a whole file looking for separators.
_ISA_MAX = 160
_GOOD_TAGS: set[str] = set()


def _decode(raw: bytes) -> str:
    """EBCDIC (cp037) when the ISA is EBCDIC; else UTF-8, falling back to latin-1."""
    if raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM):]
    if not raw.lstrip(_WS.encode()).startswith(b"ISA") and is_ebcdic_x12(raw):
        return raw.decode("cp037")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        # X12 has no charset declaration; latin-1 maps every byte, so nothing is lost.
        return raw.decode("latin-1")


def _valid_tag(tag: str) -> bool:
    return (2 <= len(tag) <= 3 and tag.isascii() and tag.isalnum() and tag.isupper()
            and tag[0].isalpha())


def _segments(
    text: str, pos: int, d: Delimiters, number: int, cursor: list[int]
) -> Iterator[Segment]:
    """Yield Segments from ``pos``; ``cursor[0]`` is kept at the offset after the last one.

    The hot loop: ``str.find``/``str.split`` do the work (X12 has no release character).
    A final segment without terminator is yielded too; truncation is caught by the
    envelope checks.
    """
    find, n = text.find, len(text)
    term, el, comp, rep = d.segment, d.element, d.component, d.repetition
    ws = "".join(c for c in _WS if c not in (el, comp, term, rep))
    good, split, tuple_ = _GOOD_TAGS, str.split, tuple
    while pos < n:
        end = find(term, pos)
        if end < 0:
            # Unterminated last segment: whatever follows its data is the file's end, so
            # trailing whitespace and a DOS Ctrl-Z are not part of the value.
            end = len(text.rstrip(ws + "\x1a"))
            if end <= pos or not text[pos:end].strip(ws):
                cursor[0] = n
                return
        parts = text[pos:end].lstrip(ws).split(el)
        pos = cursor[0] = end + 1
        tag = parts[0]
        if tag not in good:
            if len(parts) == 1 and not tag:
                raise ParseError("empty segment (two segment terminators in a row)", segment=number)
            if not _valid_tag(tag):
                raise ParseError(f"invalid segment tag {_show(tag, 20)}", segment=number)
            good.add(tag)
        del parts[0]
        elements = [*map(tuple_, map(split, parts, repeat(comp)))]
        repetitions: dict[int, list[tuple[str, ...]]] = {}
        if rep is not None:
            for i, p in enumerate(parts, 1):
                if rep in p:
                    reps = [tuple(r.split(comp)) for r in p.split(rep)]
                    elements[i - 1] = reps[0]
                    repetitions[i] = reps
        yield Segment(tag, elements, number, repetitions)
        number += 1


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


def _show(value: str, limit: int = 35) -> str:
    """A partner value for an error message: repr'd (control chars escaped) and capped."""
    return repr(value[:limit]) + ("..." if len(value) > limit else "")


def _name(value: str) -> str:
    """A partner identifier inside prose: as is when short and printable, else like _show."""
    return value if len(value) <= 35 and value.isprintable() else _show(value)


def _require(seg: Segment, element: int, what: str) -> str:
    value = seg.get(element)
    if not value:
        raise ParseError(f"{what} is missing", segment=seg.number, tag=seg.tag,
                         element=str(element))
    return value


def _count(seg: Segment, element: int) -> int:
    value = seg.get(element)
    # The length cap keeps int() away from digit strings it refuses (and no count is that big).
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise ParseError(f"count {_show(value)} is not a number", segment=seg.number, tag=seg.tag,
                         element=str(element))
    return int(value)


def _check(seg: Segment, element: int, expected: str, what: str) -> None:
    if seg.get(element) != expected:
        raise ParseError(f"{seg.tag}{element:02d} {_show(seg.get(element))} does not match {what} "
                         f"{_show(expected)}", segment=seg.number, tag=seg.tag,
                         element=str(element))


def _check_count(seg: Segment, actual: int, what: str) -> None:
    declared = _count(seg, 1)
    if declared != actual:
        raise ParseError(f"{seg.tag}01 says {declared} {what} but there are {actual}",
                         segment=seg.number, tag=seg.tag, element="1")


def _truncated(last: Segment, where: str, missing: str) -> ParseError:
    return ParseError(f"file ends inside {where}: no {missing} after this segment",
                      segment=last.number, tag=last.tag)


def _read_interchange(text: str, pos: int, number: int) -> tuple[Interchange, int, int]:
    """Read one ISA..IEA from ``pos``; return it, the offset after IEA and the next number."""
    isa, d, pos = _read_isa(text, pos, number)
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
    )
    messages = interchange.messages
    group: Segment | None = None
    group_version = ""
    in_group = 0
    groups = 0
    msg: Message | None = None
    body: list[Segment] = []
    last = isa
    cursor = [pos]
    for seg in _segments(text, pos, d, number + 1, cursor):
        tag = seg.tag
        if msg is not None:
            # Hot path: a body segment costs one append and two cheap comparisons.
            body.append(seg)
            if tag == "SE":
                _check_count(seg, len(body), "segments (ST..SE)")
                _check(seg, 2, msg.reference, "ST02")
                messages.append(msg)
                in_group += 1
                last, msg = seg, None
            elif tag in _ENVELOPE:
                raise ParseError(f"{tag} found but transaction set {_name(msg.reference)} was not "
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
            )
            body = msg.segments
        elif tag == "GS":
            if group is not None:
                raise ParseError(f"GS found but group {_name(group.get(6))} was not closed by GE",
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
            return interchange, cursor[0], number + 1
        elif tag == "IEA" and group is not None:
            raise ParseError(f"IEA found but group {_name(group.get(6))} was not closed by GE",
                             segment=number, tag=tag)
        elif tag == "TA1" and group is None:
            # An interchange acknowledgment sits between ISA and IEA, outside any group;
            # keep it as a one-segment "message" so the acks code can see it.
            messages.append(Message(type="TA1", version=interchange.syntax, reference=seg.get(1),
                                    segments=[seg]))
        elif tag == "GE":
            raise ParseError("GE without a preceding GS", segment=number, tag=tag)
        elif tag == "ISA":
            raise ParseError(f"ISA found but interchange {_name(control)} was not closed by IEA",
                             segment=number, tag=tag)
        else:
            raise ParseError(f"segment {tag} outside any transaction set", segment=number, tag=tag)
    if msg is not None:
        raise _truncated(body[-1], f"transaction set {_name(msg.reference)}", "SE")
    if group is not None:
        raise _truncated(last, f"group {_name(group.get(6))}", "GE")
    raise _truncated(last, f"interchange {_name(control)}", "IEA")


def parse(raw: bytes) -> list[Interchange]:
    """Read every X12 interchange in ``raw`` (one ISA..IEA or a mailbag of several).

    Raises ``ParseError`` naming segment number, tag and element for any syntax or
    envelope problem (counts, control numbers, truncation).
    """
    try:
        raw = bytes(raw)
        with gc_paused(len(raw)):
            return _parse(raw)
    except ParseError:
        raise
    except Exception as exc:  # never leak a foreign exception to the pipeline; keep the cause
        raise ParseError(f"unreadable X12 (internal error: {type(exc).__name__})") from exc


def _parse(raw: bytes) -> list[Interchange]:
    text = _decode(raw)
    interchanges: list[Interchange] = []
    pos, number, n = 0, 1, len(text)
    while True:
        while pos < n and text[pos] in _WS:
            pos += 1
        if pos >= n or (text[pos] == "\x1a" and not text[pos:].strip(_WS + "\x1a")):
            break  # end of data, or a DOS end-of-file mark (Ctrl-Z) that some systems append
        if not text.startswith("ISA", pos):
            raise ParseError(f"expected ISA interchange header, found {_show(text[pos:pos + 3])}",
                             segment=number)
        interchange, pos, number = _read_interchange(text, pos, number)
        interchanges.append(interchange)
    if not interchanges:
        raise ParseError("no ISA interchange header found")
    return interchanges
