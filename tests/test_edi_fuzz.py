"""Fuzzing the EDI readers: only ParseError escapes, streaming agrees with parse, values survive
a write/read round trip.

Inputs are random bytes and mutated valid interchanges (byte flips, deletions, insertions,
truncation, delimiter swaps, inserted segments). The streamed inputs are prefixed with a valid
interchange larger than the stream's head, so the mutated part is read chunk by chunk.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway import edi
from gateway.edi import edifact, x12
from gateway.edi.model import Delimiters, Segment
from gateway.edi.stream import HEAD_BYTES
from gateway.errors import DetectError, ParseError

FIXTURES = Path(__file__).parent / "fixtures" / "edi"
EDIFACT_SEEDS = [(FIXTURES / n).read_bytes() for n in (
    "orders_d96a.edi", "invoic_d01b_syntax4.edi", "two_interchanges.edi", "orders_group_d96a.edi",
    "latin1_unoc.edi")]
X12_SEEDS = [(FIXTURES / n).read_bytes() for n in ("850_004010.x12", "mailbag_two_isa.x12")]
FUZZ = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


_TEXT = "padding " * 90  # few, long segments: the pads are cheap to read


def _edifact_pad() -> bytes:
    """A valid UNOC interchange larger than the head; its first two lines differ in length."""
    body = "".join(f"UNH+P{n}+ORDERS:D:96A:UN'\nFTX+AAI+++{_TEXT}{n}'\nUNT+3+P{n}'\n"
                   for n in range(100))
    return f"UNA:+.? '\nUNB+UNOC:3+S+R+261120:1015+PAD'\n{body}UNZ+100+PAD'\n".encode()


def _x12_pad() -> bytes:
    isa = ("ISA*00*          *00*          *ZZ*S              *ZZ*R              *261120*1015*U*"
           "00401*000000900*0*P*>~\n")
    sets = "".join(f"ST*850*{n:04d}~\nMSG*{_TEXT}{n}~\nSE*3*{n:04d}~\n" for n in range(100))
    return f"{isa}GS*PO*S*R*20261120*1015*9*X*004010~\n{sets}GE*100*9~\nIEA*1*000000900~\n".encode()


PADS = {edifact: _edifact_pad(), x12: _x12_pad()}


def test_pads_exceed_the_head() -> None:
    assert all(len(pad) > HEAD_BYTES for pad in PADS.values())
    assert len(edifact.parse(PADS[edifact])[0].messages) == 100
    assert len(x12.parse(PADS[x12])[0].messages) == 100


# --------------------------------------------------------------------------- helpers


def outcome(read):
    """What a reader makes of an input: comparable interchanges, or the error's position."""
    try:
        return [(ic.control_number, ic.delimiters, ic.syntax, ic.first_segment, ic.messages)
                for ic in read() if ic.messages]
    except (ParseError, DetectError) as exc:
        assert "internal error" not in exc.problem, exc.__cause__
        return ("error", type(exc).__name__, exc.problem, exc.segment, exc.tag, exc.element)


def streamed(iter_messages, raw: bytes, chunk: int):
    def read():
        out = []
        for ic, msg in iter_messages(io.BytesIO(raw), chunk_size=chunk):
            if not out or out[-1] is not ic:
                out.append(ic)
            ic.messages.append(msg)
        return out
    return read


def mutate(data: st.DataObject, raw: bytes, delimiters: bytes, segments: list[bytes]) -> bytes:
    out = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 4), label="mutations")):
        op = data.draw(st.sampled_from(["flip", "delete", "insert", "truncate", "swap", "segment"]))
        pos = data.draw(st.integers(0, max(len(out) - 1, 0)))
        if op == "flip" and out:
            out[pos] = data.draw(st.sampled_from(list(delimiters + b" \n\r\t\x00\x1a\xff\xc3\x85ANU0")))
        elif op == "delete":
            del out[pos:pos + data.draw(st.integers(1, 12))]
        elif op == "insert":
            out[pos:pos] = data.draw(st.binary(max_size=8))
        elif op == "truncate":
            del out[pos:]
        elif op == "swap":  # one delimiter for another everywhere, or the two exchanged
            a, b = data.draw(st.lists(st.sampled_from(list(delimiters)), min_size=2, max_size=2,
                                      unique=True))
            table = bytes.maketrans(bytes([a, b]), bytes([b, a]) if data.draw(st.booleans())
                                    else bytes([b, b]))
            out = bytearray(bytes(out).translate(table))
        else:
            out[pos:pos] = data.draw(st.sampled_from(segments))
    return bytes(out)


_EDIFACT_SEGMENTS = [b"UNH+9+ORDERS:D:96A:UN'", b"UNT+2+9'", b"UNZ+1+X'", b"UNA:+.? '",
                     b"UNG+X+S+R+1:1+G+UN+D:96A'", b"UNE+1+G'", b"UNB+UNOW:4+S+R+1:1+Y'", b"'",
                     b"FTX+AAI+++?'?+?:??'", b"\xef\xbb\xbf"]
_X12_SEGMENTS = [b"ST*850*9~", b"SE*2*9~", b"GE*1*1~", b"IEA*1*000000001~", b"GS*PO*S*R*1*1*5*X*0~",
                 b"TA1*000000001*261120*1015*A*000~", b"~", b"ISA*00*", PADS[x12][:107]]


# --------------------------------------------------------------------------- only ParseError


@FUZZ
@given(st.binary(max_size=400)
       | st.text(alphabet="UNABGHTZE+:'?* \n\r\t0123\x1a", max_size=300).map(str.encode)
       | st.text(alphabet="ISAGETIE*~>^: \n0123", max_size=300).map(str.encode))
def test_random_bytes_only_raise_input_errors(raw: bytes) -> None:
    for read in (lambda: edifact.parse(raw), lambda: x12.parse(raw), lambda: edi.read(raw)[1],
                 streamed(edifact.iter_messages, raw, 7), streamed(x12.iter_messages, raw, 7),
                 streamed(edi.iter_messages, raw, 3)):
        outcome(read)


SEEDS = {edifact: (EDIFACT_SEEDS, b"'+:?*", _EDIFACT_SEGMENTS),
         x12: (X12_SEEDS, b"*~>^|:!\n", _X12_SEGMENTS)}


@pytest.mark.parametrize("module", [edifact, x12], ids=["edifact", "x12"])
@FUZZ
@given(data=st.data())
def test_mutated_interchange_only_raises_parse_error_and_streams_like_parse(
        module, data: st.DataObject) -> None:
    seeds, delimiters, segments = SEEDS[module]
    raw = mutate(data, data.draw(st.sampled_from(seeds), label="seed"), delimiters, segments)
    outcome(lambda: module.parse(raw))
    padded = PADS[module] + raw
    chunk = data.draw(st.sampled_from([1, 2, 3, 7, 64, 1000]), label="chunk")
    assert outcome(streamed(module.iter_messages, padded, chunk)) == outcome(
        lambda: module.parse(padded))


# --------------------------------------------------------------------------- write, then read


serialize = pytest.importorskip("gateway.edi.serialize")

# Delimiter sets a UNA can declare (component, element, decimal, release, repetition, terminator).
_UNAS = [":+.?*'", "|=,!^#", ":+.? '", "^~.\\`!", ">*,#|~"]
_VALUE_CHARS = "ab Z09-.,/\t" + "".join(sorted(set("".join(_UNAS)) - {" "}))


@st.composite
def edifact_segments(draw, syntax4: bool) -> list[Segment]:
    """Body segments whose values hold every delimiter and release character."""
    value = st.text(alphabet=_VALUE_CHARS, max_size=6)
    composite = st.lists(value, min_size=1, max_size=3).map(tuple)
    out = []
    for _ in range(draw(st.integers(1, 5))):
        elements, reps = [], {}
        for index in range(1, draw(st.integers(1, 4)) + 1):
            repeats = draw(st.lists(composite, min_size=1, max_size=3 if syntax4 else 1))
            elements.append(repeats[0])
            if len(repeats) > 1:
                reps[index] = repeats
        out.append(Segment(draw(st.sampled_from(["FTX", "NAD", "IMD", "RFF"])), elements,
                           repetitions=reps))
    return out


def _trimmed(comps: tuple[str, ...]) -> tuple[str, ...]:
    """Components as written: trailing empty ones are left out (and read back as absent)."""
    out = list(comps)
    while len(out) > 1 and out[-1] == "":
        out.pop()
    return tuple(out)


def values(seg: Segment) -> tuple[str, list[list[tuple[str, ...]]]]:
    """Tag and every value, element -> repetitions -> components, trailing empties dropped."""
    elements = [[_trimmed(r) for r in seg.repetitions.get(i) or [comps]]
                for i, comps in enumerate(seg.elements, 1)]
    while elements and elements[-1] == [("",)]:
        elements.pop()
    return seg.tag, elements


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(_UNAS), st.booleans(), st.data())
def test_written_edifact_reads_back_with_every_value(una: str, syntax4: bool,
                                                     data: st.DataObject) -> None:
    comp, elem, dec, rel, rep, term = una
    d = Delimiters(element=elem, component=comp, segment=term, release=rel,
                   repetition=rep if syntax4 and rep != " " else None, decimal=dec)
    body = data.draw(edifact_segments(d.repetition is not None))
    unb = Segment("UNB", [("UNOC", "4" if syntax4 else "3"), ("S",), ("R",), ("261120", "1015"),
                          ("IC",)])
    unh = Segment("UNH", [("1",), ("ORDERS", "D", "96A", "UN")])
    unt = Segment("UNT", [(str(len(body) + 2),), ("1",)])
    unz = Segment("UNZ", [("1",), ("IC",)])
    text = "UNA" + una + "\n" + "\n".join(
        serialize.segment_text(s, d) for s in [unb, unh, *body, unt, unz])
    [ic] = edifact.parse(text.encode("latin-1"))
    assert ic.delimiters == d
    read_back = ic.messages[0].body
    assert [values(s) for s in read_back] == [values(s) for s in body]
    # Writing what was read gives the same text again.
    assert [serialize.segment_text(s, d) for s in read_back] == [
        serialize.segment_text(s, d) for s in body]
