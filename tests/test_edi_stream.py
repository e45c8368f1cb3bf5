"""Streaming EDI reader: what parse reads and reports, at any chunk size, one message in memory."""

from __future__ import annotations

import io
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway import edi
from gateway.edi import edifact, x12
from gateway.edi.model import Interchange, Message
from gateway.edi.stream import HEAD_BYTES, Source
from gateway.errors import DetectError, ParseError

FIXTURES = Path(__file__).parent / "fixtures" / "edi"
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "edi-samples"
# Chunk sizes that split every multi-character construct (CRLF, "?'", UTF-8, U+2026) somewhere.
SMALL_CHUNKS = [1, 2, 3, 5, 7, 4096]


def collect(pairs: Iterator[tuple[Interchange, Message]]) -> list[Interchange]:
    """Rebuild whole interchanges from streamed (header, message) pairs."""
    out: list[Interchange] = []
    for ic, msg in pairs:
        assert not ic.messages or (out and out[-1] is ic), "a header must arrive without messages"
        if not out or out[-1] is not ic:
            out.append(ic)
        ic.messages.append(msg)
    return out


def streamed(module, raw: bytes, chunk: int) -> list[Interchange]:
    return collect(module.iter_messages(io.BytesIO(raw), chunk_size=chunk))


def error_of(read, *args) -> tuple:
    with pytest.raises(ParseError) as info:
        read(*args)
    e = info.value
    return e.problem, e.segment, e.tag, e.element


# --------------------------------------------------------------------------- builders


def orders(ref: str, *body: str, el: str = "+", comp: str = ":") -> list[str]:
    seg = [f"UNH{el}{ref}{el}ORDERS{comp}D{comp}96A{comp}UN{comp}EAN008", *body]
    return [*seg, f"UNT{el}{len(seg) + 1}{el}{ref}"]


def big_edifact(count: int = 1200) -> bytes:
    """UNOW syntax 4, custom UNA with release char, CRLF, multi-byte text, repetitions, groups:
    well over HEAD_BYTES, so small chunks split every construct after the head."""
    out = ["UNB=UNOW|4=SENDER|14=RECEIVER|14=20261120|1015=IC1"]
    out.append("UNG=ORDERS=APP|1=APP|2=20261120|1015=G1=UN=D|96A")
    for n in range(count):
        out += orders(f"M{n}", "BGM=220=PO!#1!=!!2=9", "FTX=AAI+++Żółw żółty café=x*y*z",
                      "IMD=F==|||Tomato juice 1L!| organic", el="=", comp="|")
    out += [f"UNE={count}=G1", "UNZ=1=IC1"]
    return ("UNA|=.!*#\r\n" + "#\r\n".join(out)).encode() + b"#\r\n"


def big_x12(count: int = 1000) -> bytes:
    """Two ISAs with different delimiters, the second ending segments with U+2026 (3 bytes)."""
    def one(sep: str, comp: str, term: str, rep: str, control: str) -> str:
        isa = sep.join(["ISA", "00", " " * 10, "00", " " * 10, "ZZ", "SENDER".ljust(15), "ZZ",
                        "RECEIVER".ljust(15), "261120", "1015", rep, "00501", control, "0", "P",
                        comp])
        segs = [f"GS{sep}PO{sep}S{sep}R{sep}20261120{sep}1015{sep}7{sep}X{sep}005010"]
        for n in range(count):
            segs += [f"ST{sep}850{sep}{n:04d}", f"BEG{sep}00{sep}SA{sep}PO{n}",
                     f"N1{sep}BY{sep}Müller{sep}UL{sep}1{comp}2{rep}3{comp}4", f"SE{sep}4{sep}{n:04d}"]
        segs += [f"GE{sep}{count}{sep}7", f"IEA{sep}1{sep}{control}"]
        return isa + term + "\n" + "".join(s + term + "\n" for s in segs)
    return (one("*", ">", "~", "^", "000000001") + one("|", ":", "\u2026", "!", "000000002")).encode()


# --------------------------------------------------------------------------- same as parse


def test_big_files_exceed_the_head() -> None:
    assert len(big_edifact()) > 2 * HEAD_BYTES and len(big_x12()) > 2 * HEAD_BYTES


@pytest.mark.parametrize("chunk", SMALL_CHUNKS)
def test_edifact_stream_equals_parse_at_any_chunk_size(chunk: int) -> None:
    raw = big_edifact()
    ics = streamed(edifact, raw, chunk)
    assert ics == edifact.parse(raw)
    [ic] = ics
    assert len(ic.messages) == 1200
    last = ic.messages[-1]
    assert (last.reference, last.group_reference, last.group_id) == ("M1199", "G1", "ORDERS")
    bgm, ftx, imd = last.body
    assert bgm.elements == [("220",), ("PO#1=!2",), ("9",)]
    assert ftx.get(1) == "AAI+++Żółw żółty café"
    assert ftx.elements == [("AAI+++Żółw żółty café",), ("x",)]
    assert ftx.repetitions == {2: [("x",), ("y",), ("z",)]}
    assert imd.get(3, 4) == "Tomato juice 1L| organic"
    assert last.segments[-1].number == 2 + 1200 * 5  # UNB, UNG, 1200 x (UNH, 3 body, UNT)


@pytest.mark.parametrize("chunk", SMALL_CHUNKS)
def test_x12_stream_equals_parse_at_any_chunk_size(chunk: int) -> None:
    raw = big_x12()
    ics = streamed(x12, raw, chunk)
    assert ics == x12.parse(raw)
    assert [ic.delimiters.segment for ic in ics] == ["~", "\u2026"]
    assert [len(ic.messages) for ic in ics] == [1000, 1000]
    n1 = ics[1].messages[-1].segments[2]
    assert n1.get(2) == "Müller"
    assert n1.repetitions == {4: [("1", "2"), ("3", "4")]}
    assert ics[1].messages[-1].group_id == "PO"


def _fixture_files() -> list[Path]:
    files = sorted(FIXTURES.glob("*.*"))
    if SAMPLES.is_dir():
        files += sorted(p for p in SAMPLES.iterdir() if p.suffix in (".edi", ".x12"))
    return files


def _outcome(read, *args):
    try:
        return read(*args)
    except ParseError as exc:
        return ("error", exc.problem, exc.segment, exc.tag, exc.element)


@pytest.mark.parametrize("path", _fixture_files(), ids=lambda p: p.name)
def test_every_fixture_and_sample_streams_like_parse(path: Path) -> None:
    raw = path.read_bytes()
    expected = _outcome(lambda: edi.read(raw)[1])
    for chunk in (1, 3, 1 << 20):
        assert _outcome(lambda: collect(edi.iter_messages(io.BytesIO(raw), chunk_size=chunk))) \
            == expected


def test_wrapped_file_beyond_the_head_with_split_crlf() -> None:
    # 80-column blocked file, CRLF after every 80 characters, breaks inside segments.
    segs = ["UNB+UNOC:3+S+R+261120:1015+W1"]
    for n in range(1500):
        segs += orders(str(n), "FTX+AAI+++" + "x" * 50 + "'y")
    text = "UNA:+.? '" + "".join(s.replace("'y", "?'y") + "'" for s in segs) + "UNZ+1500+W1'"
    wrapped = "\r\n".join(text[i:i + 80] for i in range(0, len(text), 80)) + "\r\n"
    raw = wrapped.encode("latin-1")
    assert len(raw) > HEAD_BYTES
    for chunk in (1, 81, 82, 4096):
        [ic] = streamed(edifact, raw, chunk)
        assert len(ic.messages) == 1500
        assert all(m.segments[1].get(4) == "x" * 50 + "'y" for m in ic.messages)


# --------------------------------------------------------------------------- same errors


def test_errors_beyond_the_head_are_those_of_parse() -> None:
    raw = big_edifact()
    cases = [
        raw.replace(b"UNT=5=M700#", b"UNT=6=M700#"),            # count, far into the file
        raw.replace(b"UNZ=1=IC1#\r\n", b""),                    # no UNZ
        raw.replace(b"UNE=1200=G1", b"UNE=1200=G2"),             # group reference
        raw[:-200],                                              # cut in the middle of a message
    ]
    for bad in cases:
        expected = error_of(edifact.parse, bad)
        for chunk in (1, 7, 4096):
            assert error_of(lambda: collect(edifact.iter_messages(io.BytesIO(bad),
                                                                 chunk_size=chunk))) == expected
    assert error_of(edifact.parse, cases[0])[1:] == (3 + 700 * 5 + 4, "UNT", "1")


def test_undecodable_byte_beyond_the_head_is_located_and_messages_before_it_arrive() -> None:
    raw = big_edifact().replace(b"UNOW", b"UNOA").replace("Żółw żółty café".encode(), b"plain")
    bad = raw.replace(b"IMD=F==|||Tomato juice 1L!| organic#\r\nUNT=5=M600#",
                      b"IMD=F==|||Tomato \xe9 1L!| organic#\r\nUNT=5=M600#")
    # UNB 1, UNG 2, message n starts at 3 + 5n; its IMD is the 4th segment.
    expected = ("byte 0xE9 is not valid in character set UNOA (ascii)", 3 + 600 * 5 + 3, "IMD",
                "3")
    assert error_of(edifact.parse, bad) == expected
    seen: list[str] = []
    with pytest.raises(ParseError) as info:
        for _, msg in edifact.iter_messages(io.BytesIO(bad), chunk_size=4096):
            seen.append(msg.reference)
    assert (info.value.problem, info.value.segment, info.value.tag, info.value.element) == expected
    assert seen == [f"M{n}" for n in range(600)]


def test_messages_arrive_before_a_bad_trailer_is_found() -> None:
    raw = big_edifact(3).replace(b"UNZ=1=IC1", b"UNZ=1=IC9")
    stream = edifact.iter_messages(io.BytesIO(raw))
    assert [m.reference for _, m in (next(stream), next(stream), next(stream))] == [
        "M0", "M1", "M2"]
    with pytest.raises(ParseError, match="UNZ reference 'IC9'"):
        next(stream)


def test_io_errors_are_not_parse_errors() -> None:
    class Broken(io.RawIOBase):
        def readinto(self, b) -> int:
            raise OSError("disk gone")

    with pytest.raises(OSError, match="disk gone"):
        list(x12.iter_messages(Broken()))


# --------------------------------------------------------------------------- the header objects


def test_header_is_shared_and_holds_no_messages() -> None:
    raw = (FIXTURES / "two_interchanges.edi").read_bytes()
    pairs = list(edifact.iter_messages(io.BytesIO(raw)))
    assert [(ic.control_number, m.type) for ic, m in pairs] == [
        ("IC1", "ORDERS"), ("IC2", "DESADV"), ("IC2", "DESADV")]
    assert pairs[1][0] is pairs[2][0]
    assert all(ic.messages == [] for ic, _ in pairs)


def test_dispatch_detects_format_and_rejects_xml_and_empty() -> None:
    raw = big_x12(400)
    assert collect(edi.iter_messages(io.BytesIO(raw), chunk_size=999)) == x12.parse(raw)
    bom = b"\xef\xbb\xbf" + big_edifact()
    assert collect(edi.iter_messages(io.BytesIO(bom), chunk_size=5)) == edifact.parse(bom)
    with pytest.raises(DetectError, match="XML"):
        edi.iter_messages(io.BytesIO(b"<?xml version='1.0'?><Order/>"))
    with pytest.raises(DetectError, match="empty"):
        edi.iter_messages(io.BytesIO(b""))


def test_chunk_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        Source(b"", io.BytesIO(b"x"), 0)


def test_segment_longer_than_many_chunks_reads_in_linear_time() -> None:
    text = "x" * 4_000_000
    raw = (f"UNB+UNOC:3+S+R+261120:1015+L'UNH+1+ORDERS:D:96A:UN'FTX+AAI+++{text}'UNT+3+1'"
           "UNZ+1+L'").encode()
    start = time.perf_counter()
    [(_, msg)] = list(edifact.iter_messages(io.BytesIO(raw), chunk_size=1024))
    assert msg.segments[1].get(4) == text
    assert time.perf_counter() - start < 5  # re-scanning per 1 KB chunk would take minutes


# --------------------------------------------------------------------------- flat memory

_MEASURE = """
import sys
from gateway.edi import iter_messages
def kb(field):  # VmHWM is this process's own peak; ru_maxrss is inherited across exec
    with open("/proc/self/status") as fh:
        return next(int(l.split()[1]) for l in fh if l.startswith(field + ":"))
base = kb("VmRSS")
with open("/proc/self/clear_refs", "w") as fh:  # peak := now
    fh.write("5")
with open(sys.argv[1], "rb") as fh:
    count = sum(len(m.segments) for _, m in iter_messages(fh))
print(count, (kb("VmHWM") - base) // 1024)
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="needs Linux /proc")
def test_streaming_20_mb_keeps_memory_flat(tmp_path: Path) -> None:
    path = tmp_path / "big.edi"
    body = "".join(s + "'\n" for s in orders("M", "BGM+220+PO1+9", "DTM+137:20261120:102",
                                              "NAD+BY+5412345000013::9++Brasserie du Coin SA",
                                              "LIN+1++8711111000118:EN", "QTY+21:24:PCE"))
    batches = 20_000_000 // (len(body) * 1000) + 1  # written 1000 messages at a time
    with open(path, "w") as fh:
        fh.write("UNB+UNOC:3+S+R+261120:1015+BIG'\n")
        for _ in range(batches):
            fh.write(body * 1000)
        fh.write(f"UNZ+{batches * 1000}+BIG'\n")
    assert path.stat().st_size > 20_000_000
    out = subprocess.run([sys.executable, "-c", _MEASURE, str(path)], capture_output=True,
                         text=True, check=True, cwd=Path(__file__).resolve().parents[1])
    segments, grown_mb = map(int, out.stdout.split())
    assert segments == batches * 1000 * 7
    # One 1 MiB chunk as bytes and text plus one message; parse would need > 500 MB here.
    assert grown_mb < 25, f"peak memory grew by {grown_mb} MB while streaming 20 MB"
