"""Read UN/EDIFACT interchanges (UNA/UNB..UNZ) into the format-neutral EDI model.

Pure and I/O-free. ``parse`` reads bytes, ``iter_messages`` a binary stream one message at a
time (same code, same errors). The text is decoded with the character set the UNB syntax
identifier names, tokenized (release-character aware) and its envelopes are checked:
UNH/UNT, UNG/UNE and UNB/UNZ counts and control references. Every problem is a
``ParseError`` carrying the 1-based segment number in the file (UNA is a service string
advice, not a segment, so UNB is segment 1), the segment tag and the element; problems are
reported in file order (the first one found wins).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from typing import BinaryIO

from gateway.edi.model import Delimiters, Interchange, Message, Party, Segment
from gateway.edi.stream import (
    CHUNK_SIZE, GC_PAUSE_BYTES, Event, Source, Syntax, escaped, gc_paused, name, number_or_none,
    read_all, read_stream, segments, show, truncated,
)
from gateway.errors import ParseError

__all__ = ["CODECS", "DEFAULT_DELIMITERS", "GC_PAUSE_BYTES", "gc_paused", "iter_messages",
           "iter_segments", "parse", "syntax_identifier"]

# ISO 9735 defaults when there is no UNA (UNOA/UNOB level A): ":+.? '".
DEFAULT_DELIMITERS = Delimiters(element="+", component=":", segment="'", release="?", decimal=".")
# Syntax-4 default repetition separator when no UNA says otherwise.
DEFAULT_REPETITION = "*"
# Character repertoire (UNB S001/0001) -> Python codec. UNOA/UNOB are subsets of ASCII;
# anything unknown (UNOX, UNOZ, vendor codes) is read as UTF-8, the most common reality.
CODECS = {
    "UNOA": "ascii",
    "UNOB": "ascii",
    "UNOC": "latin-1",
    "UNOD": "iso8859-2",
    "UNOE": "iso8859-5",
    "UNOF": "iso8859-7",
    "UNOG": "iso8859-3",
    "UNOH": "iso8859-4",
    "UNOI": "iso8859-6",
    "UNOJ": "iso8859-8",
    "UNOK": "iso8859-9",
    "UNOW": "utf-8",
    "UNOY": "utf-8",
}
_WS = " \t\r\n\x0b\x0c"
_SERVICE = frozenset({"UNB", "UNG", "UNH", "UNT", "UNE", "UNZ"})


def _valid_tag(tag: str) -> bool:
    return len(tag) == 3 and tag.isascii() and tag.isalnum() and tag.isupper() and tag[0].isalpha()


_SYNTAX = Syntax("EDIFACT", _valid_tag, _WS, tag_components=True, good=set())


def iter_segments(text: str, delimiters: Delimiters, first_number: int = 1) -> Iterator[Segment]:
    """Tokenize EDIFACT ``text`` (no UNA) into Segments numbered from ``first_number``.

    Release characters are resolved, whitespace around segment boundaries is skipped and
    elements keep their components as tuples. Raises ``ParseError`` for an empty segment or
    an invalid tag.
    """
    return segments(Source.from_text(text), delimiters, first_number, _SYNTAX)


# --------------------------------------------------------------------------- decoding


def _una_delimiters(una: str) -> Delimiters:
    """Delimiters from the six UNA characters; repetition is decided later from the UNB."""
    if len(una) < 6:
        raise ParseError("UNA service string advice is shorter than 9 characters", tag="UNA")
    comp, elem, dec, rel, _rep, term = una[:6]
    if len({comp, elem, term}) < 3 or (rel != " " and rel in (comp, elem, term)):
        raise ParseError(f"UNA delimiters {una[:6]!r} are not distinct", tag="UNA")
    if any(c.isalnum() for c in (comp, elem, term)) or " " in (comp, elem, term):
        raise ParseError(f"UNA delimiters {una[:6]!r} use a letter, digit or space", tag="UNA")
    return Delimiters(
        element=elem,
        component=comp,
        segment=term,
        release=None if rel == " " else rel,
        decimal=dec,
    )


def syntax_identifier(raw: bytes) -> str:
    """The UNB character repertoire (e.g. ``UNOC``) peeked from the first bytes of a file
    (BOM already removed); ``""`` when there is no readable UNB. ``CODECS`` maps it to a codec."""
    head = raw[:512].replace(b"\r", b"").replace(b"\n", b"")  # wrapped files break anywhere
    head = head.lstrip(_WS.encode())
    elem, comp = b"+", b":"
    if head.startswith(b"UNA") and len(head) >= 9:
        comp, elem = head[3:4], head[4:5]
        head = head[9:].lstrip(_WS.encode())
    if not head.startswith(b"UNB" + elem):
        return ""
    value = head[4:40]
    for stop in (comp, elem):
        value = value.split(stop, 1)[0]
    return value.decode("ascii", errors="replace").strip()


def _decode_failure(charset: str, codec: str, bad: int, number: int, d: Delimiters,
                    so_far: str) -> ParseError:
    """ParseError naming the segment that holds the first byte the codec rejects.

    ``so_far`` is the text of that segment up to the bad byte (empty or whitespace when
    the byte starts a new segment) and ``number`` the segment's number in the file.
    """
    so_far = so_far.lstrip(_SYNTAX.strip_chars(d))
    tag = so_far[:3] if _valid_tag(so_far[:3]) else None
    element = None
    if tag:
        count = sum(1 for i, c in enumerate(so_far) if c == d.element and not (
            d.release and escaped(so_far, i, 0, d.release)))
        element = str(count) if count else None
    problem = f"byte 0x{bad:02X} is not valid in character set {charset} ({codec})"
    return ParseError(problem, segment=number, tag=tag, element=element)


def _start(src: Source) -> None:
    """Decode with the codec the first UNB's syntax identifier names (UTF-8 when unknown),
    skip leading whitespace and undo fixed-width wrapping."""
    syntax_id = syntax_identifier(src.head)
    codec = CODECS.get(syntax_id.upper(), "utf-8")
    charset = name(syntax_id) if syntax_id else "unknown"
    src.fail = partial(_decode_failure, charset, codec)
    src.start(codec)
    src.skip(_WS)
    if _wrapped(src.text[src.pos:]):
        src.transform = unwrap = _Unwrap()
        src.text = unwrap(src.text[src.pos:], src.complete)
        src.pos = 0


def _wrapped(text: str) -> bool:
    """True for a fixed-width "blocked" file: line breaks inserted mid-segment every N chars.

    Only when every line but the last has the same length and some line does not end with
    the segment terminator; otherwise line breaks are ordinary whitespace between segments.
    ``text`` is the start of the file (all of it for ``parse``, the head when streaming); a
    last line cut short by the head size is allowed by the "last line not longer" rule.
    """
    term = text[8] if text.startswith("UNA") and len(text) > 8 else "'"
    if term in "\r\n" or "\n" not in text:
        return False
    # Cheap early exit for the common case: the first two lines differ in length.
    first = text.find("\n")
    second = text.find("\n", first + 1)
    if second >= 0 and second - first - 1 != first:
        return False
    lines = text.split("\n")
    if lines[-1].strip(_WS) == "":
        lines.pop()
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if len(lines) < 2:
        return False
    width = len(lines[0])
    if width == 0 or len(lines[-1]) > width or any(len(line) != width for line in lines[:-1]):
        return False
    return not all(line.endswith(term) for line in lines[:-1])


class _Unwrap:
    """Drop the line breaks of a wrapped file, chunk by chunk (a CR ending a chunk waits)."""

    __slots__ = ("held",)

    def __init__(self) -> None:
        self.held = ""

    def __call__(self, text: str, final: bool) -> str:
        text, self.held = self.held + text, ""
        if text.endswith("\r") and not final:  # its LF may start the next chunk
            self.held, text = "\r", text[:-1]
        return text.replace("\r\n", "").replace("\n", "")


# --------------------------------------------------------------------------- envelopes


def _count(seg: Segment, element: int) -> int:
    value = number_or_none(seg.get(element))
    if value is None:
        raise ParseError(f"count {show(seg.get(element))} is not a number", segment=seg.number,
                         tag=seg.tag, element=str(element))
    return value


def _require(seg: Segment, element: int, component: int | None, what: str) -> str:
    """Value of a mandatory element (``component`` None = simple element) or ParseError."""
    value = seg.get(element, component or 1)
    if not value:
        label = str(element) if component is None else f"{element}.{component}"
        raise ParseError(f"{what} is missing", segment=seg.number, tag=seg.tag, element=label)
    return value


def _interchange_header(
    unb: Segment, d: Delimiters, una_rep: str | None, has_una: bool
) -> Interchange:
    """Build the Interchange from UNB and settle the repetition separator."""
    syntax_id = _require(unb, 1, 1, "syntax identifier")
    version = unb.get(1, 2)
    level = number_or_none(version) or 0
    if level >= 4:
        rep = (una_rep if una_rep != " " else None) if has_una else DEFAULT_REPETITION
        d = replace(d, repetition=rep)
    return Interchange(
        format="edifact",
        sender=Party(_require(unb, 2, 1, "interchange sender"), unb.get(2, 2)),
        recipient=Party(_require(unb, 3, 1, "interchange recipient"), unb.get(3, 2)),
        control_number=_require(unb, 5, None, "interchange control reference"),
        syntax=f"{syntax_id}:{version}" if version else syntax_id,
        delimiters=d,
        date=unb.get(4, 1),
        time=unb.get(4, 2),
        test=unb.get(11) == "1",
        first_segment=unb.number,
        ack_requested=unb.get(9) == "1",
    )


def _message_header(unh: Segment, group: Segment | None) -> Message:
    return Message(
        type=_require(unh, 2, 1, "message type"),
        version=_require(unh, 2, 2, "message version") + _require(unh, 2, 3, "message release"),
        reference=_require(unh, 1, None, "message reference"),
        segments=[unh],
        agency=unh.get(2, 5),
        group_reference=group.get(5) if group is not None else "",
        group_id=group.get(1) if group is not None else "",
    )


def _close_message(msg: Message, unt: Segment) -> None:
    declared = _count(unt, 1)
    if declared != len(msg.segments):
        raise ParseError(f"UNT says {declared} segments but message {name(msg.reference)} has "
                         f"{len(msg.segments)}", segment=unt.number, tag="UNT", element="1")
    if unt.get(2) != msg.reference:
        raise ParseError(f"UNT reference {show(unt.get(2))} does not match UNH reference "
                         f"{show(msg.reference)}", segment=unt.number, tag="UNT", element="2")


def _read_interchange(src: Source, una: Delimiters | None, una_rep: str | None,
                      number: int) -> Iterator[Event]:
    """Read one UNB..UNZ from ``src.pos``, yielding each message as its UNT checks out and
    ``(interchange, None)`` after UNZ; returns the number of the next segment."""
    d = una or DEFAULT_DELIMITERS
    unb = next(segments(src, d, number, _SYNTAX), None)
    if unb is None:
        raise ParseError("file ends after UNA: no UNB interchange header", tag="UNA")
    if unb.tag != "UNB":
        raise ParseError(f"expected UNB interchange header, found {unb.tag}", segment=number,
                         tag=unb.tag)
    interchange = _interchange_header(unb, d, una_rep, una is not None)
    # The syntax version in UNB decides the repetition separator for what follows.
    d = interchange.delimiters
    control = interchange.control_number
    msg: Message | None = None
    body: list[Segment] = []
    group: Segment | None = None
    group_count = 0
    groups = 0
    messages = 0
    uses_groups: bool | None = None
    last = unb
    for seg in segments(src, d, number + 1, _SYNTAX):
        tag = seg.tag
        if msg is not None:
            # Hot path: a body segment costs one append and one set lookup.
            body.append(seg)
            if tag in _SERVICE:
                if tag != "UNT":
                    raise ParseError(f"{tag} found but message {name(msg.reference)} was not "
                                     "closed by UNT", segment=seg.number, tag=tag)
                _close_message(msg, seg)
                yield interchange, msg
                messages += 1
                group_count += 1
                last, msg = seg, None
            continue
        number = seg.number
        last = seg
        if tag == "UNH":
            if uses_groups and group is None:
                raise ParseError("UNH outside UNG..UNE in an interchange that uses groups",
                                 segment=number, tag=tag)
            uses_groups = uses_groups or False
            msg = _message_header(seg, group)
            body = msg.segments
        elif tag == "UNG":
            if group is not None:
                raise ParseError(f"UNG found but group {name(group.get(5))} was not closed by UNE",
                                 segment=number, tag=tag)
            if uses_groups is False:
                raise ParseError("UNG in an interchange whose messages are not in groups",
                                 segment=number, tag=tag)
            uses_groups = True
            _require(seg, 5, None, "group reference")
            group, group_count = seg, 0
        elif tag == "UNE" and group is not None:
            declared = _count(seg, 1)
            if declared != group_count:
                raise ParseError(f"UNE says {declared} messages but group "
                                 f"{name(group.get(5))} has {group_count}", segment=number,
                                 tag=tag, element="1")
            if seg.get(2) != group.get(5):
                raise ParseError(f"UNE reference {show(seg.get(2))} does not match UNG reference "
                                 f"{show(group.get(5))}", segment=number, tag=tag, element="2")
            group = None
            groups += 1
        elif tag == "UNZ" and group is None:
            actual, what = (groups, "groups") if uses_groups else (messages, "messages")
            declared = _count(seg, 1)
            if declared != actual:
                raise ParseError(f"UNZ says {declared} {what} but interchange {name(control)} has "
                                 f"{actual}", segment=number, tag=tag, element="1")
            if seg.get(2) != control:
                raise ParseError(f"UNZ reference {show(seg.get(2))} does not match UNB control "
                                 f"reference {show(control)}", segment=number, tag=tag,
                                 element="2")
            yield interchange, None
            return number + 1
        elif tag == "UNE":
            raise ParseError("UNE without a preceding UNG", segment=number, tag=tag)
        elif tag == "UNB":
            raise ParseError(f"UNB found but interchange {name(control)} was not closed by UNZ",
                             segment=number, tag=tag)
        elif group is not None and tag == "UNZ":
            raise ParseError(f"UNZ found but group {name(group.get(5))} was not closed by UNE",
                             segment=number, tag=tag)
        else:
            raise ParseError(f"segment {tag} outside any message", segment=number, tag=tag)
    if msg is not None:
        raise truncated(body[-1], f"message {name(msg.reference)}", "UNT")
    if group is not None:
        raise truncated(last, f"group {name(group.get(5))}", "UNE")
    raise truncated(last, f"interchange {name(control)}", "UNZ")


def _read(src: Source) -> Iterator[Event]:
    """Every interchange in ``src``: messages as they complete, then ``(interchange, None)``."""
    _start(src)
    number, found = 1, False
    while True:
        if not src.skip(_WS):
            if src.bad is not None:  # the undecodable byte starts a new segment
                raise src.undecodable(number, DEFAULT_DELIMITERS, "")
            break
        if src.text[src.pos] == "\x1a" and src.rest_is(_WS + "\x1a"):
            if src.bad is not None:  # what follows the Ctrl-Z is undecodable
                raise src.undecodable(number, DEFAULT_DELIMITERS, "")
            break  # a DOS end-of-file mark (Ctrl-Z) that some systems append
        una, una_rep = None, None
        src.ensure(9)
        text, pos = src.text, src.pos
        if text.startswith("UNA", pos):
            if len(text) - pos < 9 and src.bad is not None:
                raise src.undecodable(number, DEFAULT_DELIMITERS, "")
            una = _una_delimiters(text[pos + 3:pos + 9])
            una_rep = text[pos + 7]
            src.pos = pos + 9
        number = yield from _read_interchange(src, una, una_rep, number)
        found = True
    if not found:
        raise ParseError("no UNB interchange header found")


def parse(raw: bytes) -> list[Interchange]:
    """Read every EDIFACT interchange in ``raw`` (one file) and check its envelopes.

    Accepts UNA or none, any delimiter set, a UTF-8 BOM, whitespace between segments and
    fixed-width wrapped files. Raises ``ParseError`` naming segment, tag and element.
    """
    return read_all(raw, _read, "EDIFACT")


def iter_messages(stream: BinaryIO, *, chunk_size: int = CHUNK_SIZE
                  ) -> Iterator[tuple[Interchange, Message]]:
    """Read EDIFACT from a binary stream one message at a time, in ``chunk_size`` reads.

    Yields ``(interchange, message)`` as each message's UNT checks out; the interchange is
    its header (``messages`` stays empty) and is the same object for all its messages. The
    envelope checks and errors are those of ``parse``, raised when reading reaches them:
    a trailer problem (UNE/UNZ) comes after the messages before it were yielded, so treat
    the messages as final only when the iteration ends without error. Memory holds one
    message and one chunk.
    """
    return read_stream(stream, chunk_size, _read, "EDIFACT")
