"""Read UN/EDIFACT interchanges (UNA/UNB..UNZ) from bytes into the format-neutral EDI model.

Pure and I/O-free. ``parse`` decodes the bytes with the character set the UNB syntax
identifier names, tokenizes them (release-character aware) and checks the envelopes:
UNH/UNT, UNG/UNE and UNB/UNZ counts and control references. Every problem is a
``ParseError`` carrying the 1-based segment number in the file (UNA is a service string
advice, not a segment, so UNB is segment 1), the segment tag and the element.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import replace
from itertools import repeat

from gateway.edi.model import Delimiters, Interchange, Message, Party, Segment
from gateway.errors import ParseError

__all__ = ["CODECS", "DEFAULT_DELIMITERS", "gc_paused", "iter_segments", "parse"]

UTF8_BOM = b"\xef\xbb\xbf"
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


# Inputs above this size are parsed with the cyclic GC paused (see gc_paused).
GC_PAUSE_BYTES = 256 * 1024


@contextmanager
def gc_paused(size: int) -> Iterator[None]:
    """Pause the cyclic garbage collector while reading ``size`` bytes, if that is large.

    Reading allocates millions of small containers that all survive; each allocation burst
    triggers collections that re-walk the growing heap, which more than halves throughput
    on big files. The readers create no reference cycles, so refcounting frees everything.
    The collector is re-enabled only if it was enabled on entry, so nested or concurrent
    readers leave it as they found it.
    """
    if size < GC_PAUSE_BYTES or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


# --------------------------------------------------------------------------- tokenizing


def _strip_chars(d: Delimiters) -> str:
    """Whitespace allowed around segment boundaries, minus any char used as a delimiter."""
    used = {d.element, d.component, d.segment, d.release, d.repetition}
    return "".join(c for c in _WS if c not in used)


def _escaped(text: str, i: int, start: int, release: str) -> bool:
    """True when ``text[i]`` is preceded by an odd run of release characters."""
    k = i - 1
    while k >= start and text[k] == release:
        k -= 1
    return (i - 1 - k) % 2 == 1


def _spans(text: str, pos: int, d: Delimiters, ws: str) -> Iterator[tuple[int, int]]:
    """Yield ``(start, end)`` of each segment from ``pos``; ``end`` is its terminator index.

    A final segment without terminator is yielded too (``end == len(text)``): a file cut
    short is caught by the envelope checks, and a missing last ``'`` is common and harmless.
    """
    find = text.find
    term = d.segment
    rel = d.release
    n = len(text)
    while pos < n:
        end = find(term, pos)
        if rel is not None:
            # A released terminator is data: keep looking past it.
            while end > pos and text[end - 1] == rel and _escaped(text, end, pos, rel):
                end = find(term, end + 1)
        if end < 0:
            if text[pos:].strip(ws):
                yield pos, n
            return
        yield pos, end
        pos = end + 1


def _split_released(token: str, d: Delimiters) -> list[list[tuple[str, ...]]]:
    """Split a segment that contains release characters: elements -> repetitions -> components."""
    rel, el, co, rp = d.release, d.element, d.component, d.repetition
    elements: list[list[tuple[str, ...]]] = []
    reps: list[tuple[str, ...]] = []
    comps: list[str] = []
    buf: list[str] = []
    i, n = 0, len(token)
    while i < n:
        c = token[i]
        if c == rel:
            # The release makes the next character data, whatever it is (common practice;
            # strictly it should only precede a delimiter). A dangling release is dropped.
            if i + 1 < n:
                buf.append(token[i + 1])
            i += 2
            continue
        if c == co:
            comps.append("".join(buf))
            buf = []
        elif c == el:
            comps.append("".join(buf))
            reps.append(tuple(comps))
            elements.append(reps)
            reps, comps, buf = [], [], []
        elif c == rp:
            comps.append("".join(buf))
            reps.append(tuple(comps))
            comps, buf = [], []
        else:
            buf.append(c)
        i += 1
    comps.append("".join(buf))
    reps.append(tuple(comps))
    elements.append(reps)
    return elements


def _valid_tag(tag: str) -> bool:
    return len(tag) == 3 and tag.isascii() and tag.isalnum() and tag.isupper() and tag[0].isalpha()


# Tags already checked once; a set lookup is cheaper than validating every segment.
_GOOD_TAGS: set[str] = set()


def _bad_tag(tag: str, token: str, number: int) -> ParseError:
    if not token:
        return ParseError("empty segment (two segment terminators in a row)", segment=number)
    return ParseError(f"invalid segment tag {_show(tag, 20)}", segment=number)


def _released_segment(token: str, d: Delimiters, number: int) -> Segment:
    """Build a Segment from text that contains release characters (the slow path)."""
    split = _split_released(token, d)
    tag = split[0][0][0]
    if tag not in _GOOD_TAGS:
        if not _valid_tag(tag):
            raise _bad_tag(tag, token, number)
        _GOOD_TAGS.add(tag)
    elements = []
    repetitions: dict[int, list[tuple[str, ...]]] = {}
    for i, reps in enumerate(split[1:], 1):
        elements.append(reps[0])
        if len(reps) > 1:
            repetitions[i] = reps
    return Segment(tag, elements, number, repetitions)


def _segments(
    text: str, pos: int, d: Delimiters, number: int, cursor: list[int]
) -> Iterator[Segment]:
    """Yield Segments from ``pos``; ``cursor[0]`` is kept at the offset after the last one.

    This is the hot loop, so splitting is inlined: ``str.find``/``str.split`` do the work
    and the release-aware scanner runs only for segments that contain a release char.
    A final segment without terminator is yielded too: a file cut short is caught by the
    envelope checks, and a missing last terminator is common and harmless.
    """
    find, n = text.find, len(text)
    term, el, comp, rep, rel = d.segment, d.element, d.component, d.repetition, d.release
    ws = _strip_chars(d)
    good, split, tuple_ = _GOOD_TAGS, str.split, tuple
    # Only look for escapes when the release char occurs at all after this point.
    if rel is not None and find(rel, pos) < 0:
        rel = None
    while pos < n:
        end = find(term, pos)
        if rel is not None:
            # A released terminator is data: keep looking past it.
            while end > pos and text[end - 1] == rel and _escaped(text, end, pos, rel):
                end = find(term, end + 1)
        if end < 0:
            # Unterminated last segment: whatever follows its data is the file's end, so
            # trailing whitespace and a DOS Ctrl-Z are not part of the value.
            end = len(text.rstrip(ws + "\x1a"))
            if end <= pos or not text[pos:end].strip(ws):
                cursor[0] = n
                return
        token = text[pos:end].lstrip(ws)
        pos = cursor[0] = end + 1
        if rel is not None and rel in token:
            yield _released_segment(token, d, number)
            number += 1
            continue
        parts = token.split(el)
        tag = parts[0]
        if comp in tag:
            tag = tag.split(comp, 1)[0]
        if tag not in good:
            if not _valid_tag(tag):
                raise _bad_tag(tag, token, number)
            good.add(tag)
        del parts[0]
        elements = [*map(tuple_, map(split, parts, repeat(comp)))]
        repetitions: dict[int, list[tuple[str, ...]]] = {}
        if rep is not None and rep in token:
            for i, p in enumerate(parts, 1):
                if rep in p:
                    reps = [tuple(r.split(comp)) for r in p.split(rep)]
                    elements[i - 1] = reps[0]
                    repetitions[i] = reps
        yield Segment(tag, elements, number, repetitions)
        number += 1


def iter_segments(text: str, delimiters: Delimiters, first_number: int = 1) -> Iterator[Segment]:
    """Tokenize EDIFACT ``text`` (no UNA) into Segments numbered from ``first_number``.

    Release characters are resolved, whitespace around segment boundaries is skipped and
    elements keep their components as tuples. Raises ``ParseError`` for an empty segment or
    an invalid tag.
    """
    return _segments(text, 0, delimiters, first_number, [0])


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


def _syntax_identifier(raw: bytes) -> str:
    """Peek the UNB character repertoire (e.g. ``UNOC``) to choose the codec."""
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


def _decode_failure(raw: bytes, exc: UnicodeDecodeError, syntax_id: str, codec: str) -> ParseError:
    """ParseError naming the segment that holds the first byte the codec rejects."""
    bad = raw[exc.start]
    prefix = raw[: exc.start].decode(codec, errors="replace").lstrip(_WS)
    d = DEFAULT_DELIMITERS
    if prefix.startswith("UNA"):
        # A broken UNA is reported by the parser proper; count with the defaults then.
        with suppress(ParseError):
            d = _una_delimiters(prefix[3:9])
        prefix = prefix[9:]
    ws = _strip_chars(d)
    spans = list(_spans(prefix, 0, d, ws))
    if spans and spans[-1][1] == len(prefix):  # the bad byte sits inside the last, open span
        number, partial = len(spans), prefix[spans[-1][0]:].lstrip(ws)
    else:  # the bad byte starts a new segment
        number, partial = len(spans) + 1, ""
    tag = partial[:3] if _valid_tag(partial[:3]) else None
    element = None
    if tag:
        count = sum(1 for i, c in enumerate(partial) if c == d.element and not (
            d.release and _escaped(partial, i, 0, d.release)))
        element = str(count) if count else None
    charset = _name(syntax_id) if syntax_id else "unknown"
    problem = f"byte 0x{bad:02X} is not valid in character set {charset} ({codec})"
    return ParseError(problem, segment=number, tag=tag, element=element)


def _decode(raw: bytes) -> str:
    """Decode with the codec the first UNB's syntax identifier names (UTF-8 when unknown)."""
    if raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM):]
    syntax_id = _syntax_identifier(raw)
    codec = CODECS.get(syntax_id.upper(), "utf-8")
    try:
        return raw.decode(codec)
    except UnicodeDecodeError as exc:
        raise _decode_failure(raw, exc, syntax_id, codec) from None


def _unwrap(text: str) -> str:
    """Undo fixed-width "blocked" files: line breaks inserted mid-segment every N chars.

    Only when every line but the last has the same length and some line does not end with
    the segment terminator; otherwise line breaks are ordinary whitespace between segments.
    """
    term = text[8] if text.startswith("UNA") and len(text) > 8 else "'"
    if term in "\r\n" or "\n" not in text:
        return text
    # Cheap early exit for the common case: the first two lines differ in length.
    first = text.find("\n")
    second = text.find("\n", first + 1)
    if second >= 0 and second - first - 1 != first:
        return text
    lines = text.split("\n")
    if lines[-1].strip(_WS) == "":
        lines.pop()
    lines = [line[:-1] if line.endswith("\r") else line for line in lines]
    if len(lines) < 2:
        return text
    width = len(lines[0])
    if width == 0 or len(lines[-1]) > width or any(len(line) != width for line in lines[:-1]):
        return text
    if all(line.endswith(term) for line in lines[:-1]):
        return text
    return "".join(lines)


# --------------------------------------------------------------------------- envelopes


def _show(value: str, limit: int = 35) -> str:
    """A partner value for an error message: repr'd (control chars escaped) and capped."""
    return repr(value[:limit]) + ("..." if len(value) > limit else "")


def _name(value: str) -> str:
    """A partner identifier inside prose: as is when short and printable, else like _show."""
    return value if len(value) <= 35 and value.isprintable() else _show(value)


def _number(value: str) -> int | None:
    """ASCII digits as int; None otherwise (also for absurd lengths int() would refuse)."""
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None


def _count(seg: Segment, element: int) -> int:
    value = _number(seg.get(element))
    if value is None:
        raise ParseError(f"count {_show(seg.get(element))} is not a number", segment=seg.number,
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
    level = _number(version) or 0
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
    )


def _message_header(unh: Segment, group_reference: str) -> Message:
    return Message(
        type=_require(unh, 2, 1, "message type"),
        version=_require(unh, 2, 2, "message version") + _require(unh, 2, 3, "message release"),
        reference=_require(unh, 1, None, "message reference"),
        segments=[unh],
        agency=unh.get(2, 5),
        group_reference=group_reference,
    )


def _close_message(msg: Message, unt: Segment) -> None:
    declared = _count(unt, 1)
    if declared != len(msg.segments):
        raise ParseError(f"UNT says {declared} segments but message {_name(msg.reference)} has "
                         f"{len(msg.segments)}", segment=unt.number, tag="UNT", element="1")
    if unt.get(2) != msg.reference:
        raise ParseError(f"UNT reference {_show(unt.get(2))} does not match UNH reference "
                         f"{_show(msg.reference)}", segment=unt.number, tag="UNT", element="2")


def _truncated(last: Segment, where: str, missing: str) -> ParseError:
    return ParseError(f"file ends inside {where}: no {missing} after this segment",
                      segment=last.number, tag=last.tag)


def _read_interchange(text: str, pos: int, una: Delimiters | None, una_rep: str | None,
                      number: int) -> tuple[Interchange, int, int]:
    """Read one UNB..UNZ from ``pos``; return it, the offset after UNZ and the next number."""
    d = una or DEFAULT_DELIMITERS
    cursor = [pos]
    unb = next(_segments(text, pos, d, number, cursor), None)
    if unb is None:
        raise ParseError("file ends after UNA: no UNB interchange header", tag="UNA")
    if unb.tag != "UNB":
        raise ParseError(f"expected UNB interchange header, found {unb.tag}", segment=number,
                         tag=unb.tag)
    interchange = _interchange_header(unb, d, una_rep, una is not None)
    # The syntax version in UNB decides the repetition separator for what follows.
    d = interchange.delimiters
    control = interchange.control_number
    messages = interchange.messages
    msg: Message | None = None
    body: list[Segment] = []
    group: Segment | None = None
    group_count = 0
    groups = 0
    uses_groups: bool | None = None
    last = unb
    for seg in _segments(text, cursor[0], d, number + 1, cursor):
        tag = seg.tag
        if msg is not None:
            # Hot path: a body segment costs one append and one set lookup.
            body.append(seg)
            if tag in _SERVICE:
                if tag != "UNT":
                    raise ParseError(f"{tag} found but message {_name(msg.reference)} was not "
                                     "closed by UNT", segment=seg.number, tag=tag)
                _close_message(msg, seg)
                messages.append(msg)
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
            msg = _message_header(seg, group.get(5) if group is not None else "")
            body = msg.segments
        elif tag == "UNG":
            if group is not None:
                raise ParseError(f"UNG found but group {_name(group.get(5))} was not closed by UNE",
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
                                 f"{_name(group.get(5))} has {group_count}", segment=number,
                                 tag=tag, element="1")
            if seg.get(2) != group.get(5):
                raise ParseError(f"UNE reference {_show(seg.get(2))} does not match UNG reference "
                                 f"{_show(group.get(5))}", segment=number, tag=tag, element="2")
            group = None
            groups += 1
        elif tag == "UNZ" and group is None:
            actual, what = (groups, "groups") if uses_groups else (len(messages), "messages")
            declared = _count(seg, 1)
            if declared != actual:
                raise ParseError(f"UNZ says {declared} {what} but interchange {_name(control)} has "
                                 f"{actual}", segment=number, tag=tag, element="1")
            if seg.get(2) != control:
                raise ParseError(f"UNZ reference {_show(seg.get(2))} does not match UNB control "
                                 f"reference {_show(control)}", segment=number, tag=tag,
                                 element="2")
            return interchange, cursor[0], number + 1
        elif tag == "UNE":
            raise ParseError("UNE without a preceding UNG", segment=number, tag=tag)
        elif tag == "UNB":
            raise ParseError(f"UNB found but interchange {_name(control)} was not closed by UNZ",
                             segment=number, tag=tag)
        elif group is not None and tag == "UNZ":
            raise ParseError(f"UNZ found but group {_name(group.get(5))} was not closed by UNE",
                             segment=number, tag=tag)
        else:
            raise ParseError(f"segment {tag} outside any message", segment=number, tag=tag)
    if msg is not None:
        raise _truncated(body[-1], f"message {_name(msg.reference)}", "UNT")
    if group is not None:
        raise _truncated(last, f"group {_name(group.get(5))}", "UNE")
    raise _truncated(last, f"interchange {_name(control)}", "UNZ")


def parse(raw: bytes) -> list[Interchange]:
    """Read every EDIFACT interchange in ``raw`` (one file) and check its envelopes.

    Accepts UNA or none, any delimiter set, a UTF-8 BOM, whitespace between segments and
    fixed-width wrapped files. Raises ``ParseError`` naming segment, tag and element.
    """
    try:
        raw = bytes(raw)
        with gc_paused(len(raw)):
            return _parse(raw)
    except ParseError:
        raise
    except Exception as exc:  # never leak a foreign exception to the pipeline; keep the cause
        raise ParseError(f"unreadable EDIFACT (internal error: {type(exc).__name__})") from exc


def _parse(raw: bytes) -> list[Interchange]:
    text = _unwrap(_decode(raw).lstrip(_WS))
    interchanges: list[Interchange] = []
    pos, number, n = 0, 1, len(text)
    while True:
        while pos < n and text[pos] in _WS:
            pos += 1
        if pos >= n or (text[pos] == "\x1a" and not text[pos:].strip(_WS + "\x1a")):
            break  # end of data, or a DOS end-of-file mark (Ctrl-Z) that some systems append
        una, una_rep = None, None
        if text.startswith("UNA", pos):
            una = _una_delimiters(text[pos + 3:pos + 9])
            una_rep = text[pos + 7]
            pos += 9
        interchange, pos, number = _read_interchange(text, pos, una, una_rep, number)
        interchanges.append(interchange)
    if not interchanges:
        raise ParseError("no UNB interchange header found")
    return interchanges
