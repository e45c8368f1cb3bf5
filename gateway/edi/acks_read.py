"""Reading for acknowledgments: partners' TA1/997/999/CONTRL/APERAK (``read_ack``), and the envelope of refused input.

``read_ack`` says which of OUR interchanges, groups and messages an inbound acknowledgment
answers and how, with the codes translated to text. ``salvage`` re-reads bytes the reader
refused, leniently, to locate the ``ParseError`` in its envelope (for ``acks.failed``).
Both are pure.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Literal

from gateway.edi import edifact
from gateway.edi.acks import (SYNTAX_ERRORS_0085, TA1_NOTES, X12_ELEMENT_ERRORS, X12_GROUP_ERRORS,
                              X12_SEGMENT_ERRORS, X12_SET_ERRORS)
from gateway.edi.detect import UTF8_BOM, detect, is_ebcdic_x12
from gateway.edi.model import Delimiters, Interchange, Message, Party, Segment
from gateway.errors import GatewayError, ParseError

# Envelope tags per format: interchange/group/message header and trailer.
_TAGS = {"x12": ("ISA", "GS", "ST", "SE", "GE", "IEA"), "edifact": ("UNB", "UNG", "UNH", "UNT", "UNE", "UNZ")}
_WS = " \t\r\n\x0b\x0c"


@dataclass(frozen=True, slots=True)
class Fault:
    """Where and why the reader refused an interchange, in standard-neutral words.

    ``level``: interchange | group | message | segment. ``kind``: count (a trailer count is
    wrong), reference (trailer and header control numbers differ), missing_trailer (no
    SE/GE/IEA or UNT/UNE/UNZ: cut short or overrun), header (a header element missing or
    invalid; ``tag``/``element`` say which), structure (a segment outside its envelope),
    mixed (EDIFACT groups and bare messages mixed), charset (a byte invalid for the character
    set), segment (an unreadable segment inside a message, at ``position``), sibling (this
    interchange is fine but shares the refused file), duplicate (its control number was
    received before: refused by the partner's duplicate setting).
    """

    level: str
    kind: str
    problem: str
    group: str = ""
    message: str = ""
    tag: str = ""
    element: str = ""
    position: int | None = None    # segment position in the message (UNH/ST = 1)
    declared: int | None = None    # the count a trailer declared (count faults)
    cut: bool = False              # the file ends inside: every enclosing trailer is missing too
    group_id: str = ""             # X12 GS01 of the group at fault
    version: str = ""              # X12 GS08 of the group at fault


@dataclass
class _Context:
    group: str
    message: str
    position: int | None
    group_open: bool
    message_open: bool
    segment: Segment | None
    group_id: str = ""
    version: str = ""


@dataclass
class _Walk:
    interchange: Interchange
    last: int = 0
    closed: bool = False
    ctx: _Context | None = None
    end: _Context | None = None
    isa_problem: str = ""     # X12: the TA1 note key when the ISA itself is unreadable


def _walk(fmt: str, interchange: Interchange, segments: Iterator[Segment], error_at: int | None,
          stop: list[bool]) -> _Walk:
    """Follow the envelopes without checking them, noting the context at segment ``error_at``.

    Consumes ``segments`` up to and including the interchange trailer; ``stop`` is set when
    nothing after this interchange can be read (tokenizer error, header inside).
    """
    ih, gh, mh, mt, gt, it = _TAGS[fmt]
    walk = _Walk(interchange, last=interchange.first_segment)
    group: Segment | None = None
    message: Message | None = None

    def context(seg: Segment | None) -> _Context:
        return _Context(
            (group.get(6 if fmt == "x12" else 5) if group is not None else ""),
            message.reference if message is not None else "",
            len(message.segments) + 1 if message is not None else None,
            group is not None, message is not None, seg,
            group.get(1) if group is not None else "", group.get(8) if group is not None and fmt == "x12" else "")

    try:
        for seg in segments:
            walk.last = seg.number
            if seg.number == error_at:
                walk.ctx = context(seg)
            tag = seg.tag
            if message is not None:
                if tag not in (ih, gh, mh, gt, it):
                    message.segments.append(seg)
                    if tag == mt:
                        interchange.messages.append(message)
                        message = None
                    continue
                interchange.messages.append(message)   # overrun by an envelope segment
                message = None
            if tag == gh:
                group = seg
            elif tag == gt:
                group = None
            elif tag == mh:
                message = _message(fmt, seg, group)
            elif tag == it:
                walk.closed = True
                break
            elif tag == ih:
                stop[0] = True
                break
        else:
            stop[0] = True
    except ParseError as exc:   # the tokenizer gave up: nothing after this is readable
        stop[0] = True
        if exc.segment == error_at:
            walk.ctx = context(None)
    walk.end = context(None)
    if message is not None:
        interchange.messages.append(message)
    return walk


def _message(fmt: str, seg: Segment, group: Segment | None) -> Message:
    if fmt == "x12":
        gs08 = group.get(8) if group is not None else ""
        return Message(seg.get(1), gs08[:6], seg.get(2), [seg], agency=gs08,
                       group_reference=group.get(6) if group is not None else "",
                       group_id=group.get(1) if group is not None else "")
    return Message(seg.get(2, 1), seg.get(2, 2) + seg.get(2, 3), seg.get(1), [seg], agency=seg.get(2, 5),
                   group_reference=group.get(5) if group is not None else "",
                   group_id=group.get(1) if group is not None else "")


def _classify(fmt: str, error: ParseError, walk: _Walk, charset: bool) -> Fault:
    ih, gh, mh, mt, gt, it = _TAGS[fmt]
    ctx = walk.ctx or walk.end
    assert ctx is not None
    where = {"group": ctx.group, "message": ctx.message, "group_id": ctx.group_id, "version": ctx.version}
    problem, tag, element = error.problem, error.tag or "", error.element or ""
    if charset or error.tag is None:
        kind = "charset" if charset else "segment"
        if ctx.message_open:
            return Fault("segment", kind, problem, position=ctx.position, **where)
        return Fault("interchange", kind if charset else "structure", problem)
    levels = {mt: "message", gt: "group", it: "interchange"}
    if tag in levels and element in ("1", "2"):
        level = levels[tag]
        declared = None
        if element == "1" and ctx.segment is not None and ctx.segment.get(1).isdigit():
            declared = int(ctx.segment.get(1))
        if level == "group":
            where["message"] = ""
        elif level == "interchange":
            where = {}
        return Fault(level, "count" if element == "1" else "reference", problem, tag=tag, element=element,
                     declared=declared, **where)
    if tag in (ih, gh, mh) and element:
        return Fault("interchange", "header", problem, tag=tag, element=element)
    end = walk.end
    if not element and not walk.closed and error.segment == walk.last and end is not None:
        ctx = end   # cut short: the innermost envelope still open at the end is the one missing its trailer
        where = {"group": ctx.group, "message": ctx.message, "group_id": ctx.group_id, "version": ctx.version}
        if not ctx.message_open and not ctx.group_open:
            return Fault("interchange", "missing_trailer", problem, cut=True)
        cut = True
    else:
        cut = False
    if ctx.message_open:
        return Fault("message", "missing_trailer", problem, cut=cut, **where)
    if ctx.group_open:
        where["message"] = ""
        return Fault("group", "missing_trailer", problem, cut=cut, **where)
    if tag == ih:
        return Fault("interchange", "missing_trailer", problem)
    if fmt == "edifact" and tag in (mh, gh):
        return Fault("interchange", "mixed", problem)
    return Fault("interchange", "structure", problem, tag=tag)


# --------------------------------------------------------------------------- per format


def salvage(raw: bytes, error: ParseError) -> list[tuple[Interchange, Fault]]:
    """Every interchange of ``raw`` whose header is readable, with the fault that refused it.

    The interchange holding ``error`` gets its located fault (its messages are those the
    lenient walk could delimit, the broken one included); the others get a "sibling" fault.
    """
    try:
        fmt = detect(raw)
    except GatewayError:
        return []
    charset = False
    if fmt == "x12":
        walks = _x12_walks(raw, error)
    elif fmt == "edifact":
        walks, charset = _edifact_walks(raw, error)
    else:
        return []
    out: list[tuple[Interchange, Fault]] = []
    at = error.segment
    holder = next((w for w in walks if w.ctx is not None), None) or next(
        (w for w in walks if at is not None and w.interchange.first_segment <= at <= w.last), None)
    if holder is None and walks and at is not None and at > walks[-1].last:
        holder = walks[-1]
    for walk in walks:
        if at is None:
            fault = Fault("interchange", "structure", error.problem)
        elif walk is holder:
            fault = (_classify(fmt, error, walk, charset) if walk.end is not None else
                     Fault("interchange", "header", error.problem, tag="ISA", element=walk.isa_problem))
        else:
            fault = Fault("interchange", "sibling", "refused with another interchange of the same file: "
                          + error.problem)
        out.append((walk.interchange, fault))
    return out


def _x12_walks(raw: bytes, error: ParseError) -> list[_Walk]:
    raw = raw[len(UTF8_BOM):] if raw.startswith(UTF8_BOM) else raw
    if not raw.lstrip(_WS.encode()).startswith(b"ISA") and is_ebcdic_x12(raw):
        text = raw.decode("cp037")
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text = raw.decode("latin-1")
    pos, number, n = 0, 1, len(text)
    walks: list[_Walk] = []
    stop = [False]
    while not stop[0]:
        while pos < n and text[pos] in _WS + "\x85":
            pos += 1
        if not text.startswith("ISA", pos):
            break
        found = _isa(text, pos, number)
        if found is None:
            interchange = _lenient_isa(text, pos, number)
            if interchange is not None:   # end None: the ISA itself is at fault
                walks.append(_Walk(interchange, last=number, isa_problem=_isa_problem(text, pos)))
            break
        interchange, after = found
        cursor = [after]
        walk = _walk("x12", interchange, _x12_segments(text, after, interchange.delimiters, number + 1, cursor),
                     error.segment, stop)
        walks.append(walk)
        pos, number = cursor[0], walk.last + 1
    return walks


def _isa(text: str, pos: int, number: int) -> tuple[Interchange, int] | None:
    """The ISA at ``pos`` and the offset after it, when its 16 elements and delimiters are there."""
    sep = text[pos + 3:pos + 4]
    if not sep or sep.isalnum() or sep in _WS:
        return None
    j = pos + 3
    for _ in range(15):
        j = text.find(sep, j + 1, pos + 160)
        if j < 0:
            return None
    comp, term = text[j + 1:j + 2], text[j + 2:j + 3]
    if not comp or not term or len({sep, comp, term}) < 3 or term.isalnum():
        return None
    v = text[pos:j + 1].split(sep)
    rep = v[11] if v[12] >= "00402" and len(v[11]) == 1 and not v[11].isalnum() and v[11] not in (comp, term) else None
    return Interchange("x12", Party(v[6].strip(), v[5].strip()), Party(v[8].strip(), v[7].strip()), v[13].strip(),
                       v[12], Delimiters(sep, comp, term, repetition=rep), date=v[9], time=v[10],
                       test=v[15] == "T", first_segment=number), j + 3


def _isa_problem(text: str, pos: int) -> str:
    """Which part of an unreadable ISA is wrong, as acks' TA1 table keys it ("" = element separator)."""
    sep = text[pos + 3]
    if sep.isalnum() or sep in _WS:
        return ""
    fields = text[pos:pos + 160].split(sep)
    if len(fields) < 17 or len(fields[16]) < 2:
        return "truncated"
    comp, term = fields[16][0], fields[16][1]
    return "16" if comp.isalnum() or comp in _WS else "terminator" if term.isalnum() or term == " " else "16"


def _lenient_isa(text: str, pos: int, number: int) -> Interchange | None:
    """ISA fields split on the character after ISA, for an ISA the reader could not take."""
    if len(text) <= pos + 3:
        return None
    fields = text[pos:pos + 120].split(text[pos + 3])
    if len(fields) < 14 or not fields[13].strip():
        return None
    return Interchange("x12", Party(fields[6].strip(), fields[5].strip()),
                       Party(fields[8].strip(), fields[7].strip()), fields[13].strip(), fields[12].strip(),
                       Delimiters("*", ">", "~"), date=fields[9], time=fields[10], first_segment=number)


def _x12_segments(text: str, pos: int, d: Delimiters, number: int, cursor: list[int]) -> Iterator[Segment]:
    """X12 segments from ``pos`` numbered like the reader does; ``cursor[0]`` follows each one."""
    ws = "".join(c for c in _WS + "\x85\x1a" if c not in (d.element, d.component, d.segment))
    n = len(text)
    while pos < n:
        end = text.find(d.segment, pos)
        token = text[pos:end if end >= 0 else n].lstrip(ws)
        pos = cursor[0] = end + 1 if end >= 0 else n
        if end < 0:
            token = token.rstrip(ws)
            if not token:
                return
        tag, *parts = token.split(d.element)
        if not (2 <= len(tag) <= 3 and tag.isascii() and tag.isalnum() and tag.isupper() and tag[0].isalpha()):
            raise ParseError(f"invalid segment tag {tag[:20]!r}", segment=number)
        yield Segment(tag, [tuple(p.split(d.component)) for p in parts], number)
        number += 1


def _edifact_walks(raw: bytes, error: ParseError) -> tuple[list[_Walk], bool]:
    raw = raw[len(UTF8_BOM):] if raw.startswith(UTF8_BOM) else raw
    codec = edifact.CODECS.get(edifact.syntax_identifier(raw).upper(), "utf-8")
    charset = False
    try:
        text = raw.decode(codec)
    except UnicodeDecodeError:
        charset = True   # the reader refused a byte for the character set: read on with it replaced
        text = raw.decode(codec, errors="replace")
    text = text.lstrip(_WS)
    d, una, una_rep = edifact.DEFAULT_DELIMITERS, False, " "
    if text.startswith("UNA") and len(text) >= 9:
        comp, elem, dec, rel, una_rep, term = text[3:9]
        d, una = Delimiters(elem, comp, term, None if rel == " " else rel, decimal=dec), True
        text = text[9:]
    # Syntax 4 repetition separator: decided by the first UNB, as the reader does.
    level = _edifact_level(text, d)
    if level >= 4:
        d = replace(d, repetition=(una_rep if una_rep != " " else None) if una else "*")
    walks: list[_Walk] = []
    stop = [False]
    segments = edifact.iter_segments(text, d)
    while not stop[0]:
        try:
            unb = next(segments, None)
        except ParseError:
            break
        if unb is None or unb.tag != "UNB" or not unb.get(5):
            break   # no interchange reference: nothing to acknowledge
        version = unb.get(1, 2)
        interchange = Interchange("edifact", Party(unb.get(2, 1), unb.get(2, 2)), Party(unb.get(3, 1), unb.get(3, 2)),
                                  unb.get(5), f"{unb.get(1, 1)}:{version}" if version else unb.get(1, 1), d,
                                  date=unb.get(4, 1), time=unb.get(4, 2), test=unb.get(11) == "1",
                                  first_segment=unb.number)
        walks.append(_walk("edifact", interchange, segments, error.segment, stop))
    return walks, charset


def _edifact_level(text: str, d: Delimiters) -> int:
    start = text.lstrip(_WS)
    if not start.startswith("UNB" + d.element):
        return 0
    version = start[4:40].split(d.element, 1)[0].split(d.component)
    return int(version[1]) if len(version) > 1 and version[1].isdigit() and len(version[1]) < 3 else 0


# --------------------------------------------------------------------------- reading acknowledgments

AckStatus = Literal["accepted", "rejected", "partially_accepted"]


@dataclass(frozen=True, slots=True)
class AckReport:
    """One verdict of an inbound acknowledgment on something we sent.

    ``interchange``: our interchange control number (TA1 TA101, CONTRL UCI 0020; None for a
    997/999, which name only GS06 and ST02). ``group``: our GS06 (AK102) / UNG 0048 (UCF).
    ``message``: our ST02 (AK202) / UNH 0062 (UCM; APERAK RFF+ACW). ``document``: the business
    document number an APERAK names (RFF ON/IV/...), when it names no message reference.
    """

    interchange: str | None
    group: str | None
    message: str | None
    status: AckStatus
    detail: str
    kind: str                   # "TA1" | "997" | "999" | "CONTRL" | "APERAK"
    document: str | None = None


_X12_STATUS = {"A": "accepted", "E": "accepted", "P": "partially_accepted"}   # R, M, W, X: rejected
_X12_STATUS_TEXT = {"A": "accepted", "E": "accepted with errors noted", "P": "partially accepted",
                    "R": "rejected", "M": "rejected: message authentication failed",
                    "W": "rejected: assurance failed", "X": "rejected: content could not be analyzed"}


def _say(table: dict[str, str], code: str) -> str:
    return f"{code} {table.get(code, 'unknown code')}"


def _join(parts: list[str]) -> str:
    return "; ".join(p for p in parts if p)


def read_ack(interchange: Interchange) -> list[AckReport]:
    """Every verdict the TA1s, 997s, 999s, CONTRLs and APERAKs in ``interchange`` carry (others ignored)."""
    out: list[AckReport] = []
    for message in interchange.messages:
        if message.type == "TA1":
            out.append(_ta1(message.segments[0]))
        elif message.type in ("997", "999"):
            out.extend(_functional_ack(message))
        elif message.type == "CONTRL":
            out.extend(_contrl(message))
        elif message.type == "APERAK":
            out.append(_aperak(message))
    return out


def _ta1(seg: Segment) -> AckReport:
    code = seg.get(4)
    status = "rejected" if code == "R" else "accepted"
    return AckReport(seg.get(1), None, None, status,
                     _join([_X12_STATUS_TEXT.get(code, f"TA104 {code}"), _say(TA1_NOTES, seg.get(5))]), "TA1")


def _functional_ack(message: Message) -> list[AckReport]:
    """997 / 999: one report per AK2 (transaction set) and one per AK1..AK9 (group)."""
    kind, out = message.type, []
    group: str | None = None
    gs01 = ""
    current: tuple[str, str] | None = None
    notes: list[str] = []
    tag_in_error = ""
    for seg in message.body:
        tag = seg.tag
        if tag == "AK1":
            group, gs01 = seg.get(2), seg.get(1)
        elif tag == "AK2":
            current, notes = (seg.get(1), seg.get(2)), []
        elif tag in ("AK3", "IK3"):
            tag_in_error = seg.get(1)
            notes.append(f"segment {tag_in_error} at position {seg.get(2)}: {_say(X12_SEGMENT_ERRORS, seg.get(4))}")
        elif tag in ("AK4", "IK4"):
            where = seg.get(1, 1) + (f".{seg.get(1, 2)}" if seg.get(1, 2) else "")
            value = f" (value {seg.get(4)!r})" if seg.get(4) else ""
            notes.append(f"{tag_in_error} element {where}: {_say(X12_ELEMENT_ERRORS, seg.get(3))}{value}")
        elif tag in ("AK5", "IK5") and current is not None:
            code = seg.get(1)
            codes = [_say(X12_SET_ERRORS, c[0]) for c in seg.elements[1:] if c and c[0]]
            out.append(AckReport(None, group, current[1], _X12_STATUS.get(code, "rejected"),
                                 _join([f"{current[0]} {_X12_STATUS_TEXT.get(code, code)}", *codes, *notes]), kind))
            current, notes = None, []
        elif tag == "AK9":
            code = seg.get(1)
            codes = [_say(X12_GROUP_ERRORS, c[0]) for c in seg.elements[4:] if c and c[0]]
            counts = f"{seg.get(4)} of {seg.get(3)} received transaction sets accepted ({seg.get(2)} included)"
            out.append(AckReport(None, group, None, _X12_STATUS.get(code, "rejected"),
                                 _join([f"group {gs01} {_X12_STATUS_TEXT.get(code, code)}", counts, *codes]), kind))
    return out


def _where(tag: str, s011: tuple[str, ...]) -> str:
    element = ".".join(p for p in s011[:2] if p)
    return " ".join(p for p in (tag and f"segment {tag}", element and f"element {element}") if p)


def _contrl(message: Message) -> list[AckReport]:
    """CONTRL: UCI (interchange), UCF (group), UCM (message) with UCS/UCD details."""
    interchange: str | None = None
    uci: AckReport | None = None
    group: str | None = None
    out: list[AckReport] = []
    current: list = []   # [group, ref, action, notes] of the UCM being read
    actions = {"4": "rejected", "7": "accepted", "8": "accepted"}

    def flush() -> None:
        if current:
            group_ref, ref, action, notes = current
            out.append(AckReport(interchange, group_ref, ref, actions.get(action, "rejected"), _join(notes), "CONTRL"))
            current.clear()

    def error(seg: Segment, code_at: int) -> str:
        code = seg.get(code_at)
        if not code:
            return ""
        where = _where(seg.get(code_at + 1), seg.elements[code_at + 1] if len(seg.elements) > code_at + 1 else ())
        return f"{_say(SYNTAX_ERRORS_0085, code)}" + (f" at {where}" if where else "")

    for seg in message.body:
        tag = seg.tag
        if tag == "UCI":
            interchange = seg.get(1)
            action = seg.get(4)
            text = {"4": "rejected", "7": "acknowledged", "8": "received"}.get(action, f"action {action}")
            uci = AckReport(interchange, None, None, actions.get(action, "rejected"),
                            _join([f"interchange {text}", error(seg, 5)]), "CONTRL")
        elif tag == "UCF":
            flush()
            group = seg.get(1)
            out.append(AckReport(interchange, group, None, actions.get(seg.get(4), "rejected"),
                                 _join([f"group {'rejected' if seg.get(4) == '4' else 'acknowledged'}",
                                        error(seg, 5)]), "CONTRL"))
        elif tag == "UCM":
            flush()
            action = seg.get(3)
            current.extend([group, seg.get(1), action,
                            [f"{seg.get(2, 1)} {'rejected' if action == '4' else 'acknowledged'}", error(seg, 4)]])
        elif tag == "UCS" and current:
            code = seg.get(2)
            current[3].append(f"segment at position {seg.get(1)}" + (f": {_say(SYNTAX_ERRORS_0085, code)}"
                                                                     if code else ""))
        elif tag == "UCD" and current:
            where = ".".join(p for p in (seg.get(2, 1), seg.get(2, 2)) if p) or "?"
            current[3].append(f"element {where}: {_say(SYNTAX_ERRORS_0085, seg.get(1))}")
    flush()
    if uci is not None:
        if uci.status == "accepted" and any(r.status == "rejected" for r in out):
            uci = AckReport(uci.interchange, None, None, "partially_accepted", uci.detail, "CONTRL")
        out.insert(0, uci)
    return out


def _aperak(message: Message) -> AckReport:
    """APERAK: matched on RFF+ACW (our message reference), else the first other RFF (a document number).

    Status: BGM 1225 27 (not accepted) is rejected, 6 (confirmation) / 29 (accepted without
    amendment) accepted; otherwise an APERAK carrying ERC errors is rejected, one without accepted.
    """
    function, refs, errors, texts = "", [], [], []
    for seg in message.body:
        if seg.tag == "BGM":
            function = seg.get(3)
        elif seg.tag == "RFF":
            refs.append((seg.get(1, 1), seg.get(1, 2)))
        elif seg.tag == "ERC":
            errors.append(seg.get(1, 1))
        elif seg.tag == "FTX":
            texts.append(" ".join(c for c in (seg.elements[3] if len(seg.elements) > 3 else ()) if c))
    if function == "27":
        status: AckStatus = "rejected"
    elif function in ("6", "29"):
        status = "accepted"
    else:
        status = "rejected" if errors else "accepted"
    message_ref = next((v for q, v in refs if q == "ACW"), None)
    document = next((v for q, v in refs if q != "ACW"), None)
    detail = _join([", ".join(f"RFF {q} {v}" for q, v in refs), *(f"error {e}" for e in errors), *texts])
    return AckReport(None, None, message_ref, status, detail, "APERAK", document)
