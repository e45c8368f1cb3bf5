"""Format detection: EDIFACT, X12 (ASCII and EBCDIC) and XML, and the errors for the rest."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.edi import read
from gateway.edi.detect import detect
from gateway.errors import DetectError, InputError, ParseError

FIXTURES = Path(__file__).parent / "fixtures" / "edi"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"UNA:+.? 'UNB+UNOC:3+A+B+261120:1015+1'", "edifact"),
        (b"UNB+UNOA:3+A+B+261120:1015+1'", "edifact"),
        (b"\xef\xbb\xbfUNA:+.? 'UNB+UNOC:3'", "edifact"),
        (b" \r\n\t UNB+UNOC:3'", "edifact"),
        (b"ISA*00*          *00*", "x12"),
        (b"\xef\xbb\xbf\r\nISA*00*", "x12"),
        (b"<?xml version='1.0'?><Order/>", "xml"),
        (b"\n  <Invoice xmlns='urn:x'/>", "xml"),
        (b"\xef\xbb\xbf<?xml version='1.0' encoding='utf-8'?>\n<a/>", "xml"),
        ("ISA*00*".encode("cp037"), "x12"),
        ("ISA*00*".encode("cp500"), "x12"),
        (b"\x40\x40\x15" + "ISA*00*".encode("cp037"), "x12"),  # EBCDIC spaces/NL first
    ],
)
def test_detects_format(raw: bytes, expected: str) -> None:
    assert detect(raw) == expected


def test_detects_fixture_files() -> None:
    assert detect((FIXTURES / "orders_d96a.edi").read_bytes()) == "edifact"
    assert detect((FIXTURES / "850_004010.x12").read_bytes()) == "x12"
    assert detect((FIXTURES / "850_004010_ebcdic.x12").read_bytes()) == "x12"
    assert detect((FIXTURES / "utf8_unow_bom_tabs.edi").read_bytes()) == "edifact"


@pytest.mark.parametrize("raw", [b"", b"   \r\n\t", b"\xef\xbb\xbf", b"\xef\xbb\xbf \n"])
def test_empty_input(raw: bytes) -> None:
    with pytest.raises(DetectError) as info:
        detect(raw)
    assert info.value.problem == "empty file"


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00\x01\x02\x03",
        b"%PDF-1.7\n\x00\x00binary",
        b"PK\x03\x04\x14\x00\x06\x00",  # a zip (xlsx, docx)
        bytes(range(0x80, 0x100)) * 2,
        b"\x01\x02\x03\x04\x05\x06\x07\x08abc",
    ],
)
def test_binary_input(raw: bytes) -> None:
    with pytest.raises(DetectError) as info:
        detect(raw)
    assert info.value.problem == "binary content, not EDI or XML"


def test_unknown_text_names_its_start() -> None:
    with pytest.raises(DetectError) as info:
        detect(b"Hello partner, please find attached our order for next week")
    assert "'Hello partner, pleas'" in info.value.problem
    assert "not EDIFACT, X12 or XML" in info.value.problem


def test_unknown_start_is_repr_safe() -> None:
    with pytest.raises(DetectError) as info:
        detect("STX\u00e9\u00e8 \x1b[31m evil\nnext line".encode())
    problem = info.value.problem
    assert "\n" not in problem and "\x1b" not in problem  # control characters are escaped
    assert "STX" in problem


def test_detect_error_is_an_input_error() -> None:
    with pytest.raises(InputError):
        detect(b"")


def test_non_bytes_is_a_detect_error() -> None:
    with pytest.raises(DetectError):
        detect("UNB+UNOC:3")  # type: ignore[arg-type]


def test_read_dispatches() -> None:
    fmt, interchanges = read((FIXTURES / "orders_d96a.edi").read_bytes())
    assert fmt == "edifact" and interchanges[0].messages[0].type == "ORDERS"
    fmt, interchanges = read((FIXTURES / "850_004010.x12").read_bytes())
    assert fmt == "x12" and interchanges[0].messages[0].type == "850"
    assert read(b"<?xml version='1.0'?><Order/>") == ("xml", [])


def test_read_accepts_bytearray() -> None:
    fmt, interchanges = read(bytearray((FIXTURES / "850_004010.x12").read_bytes()))
    assert fmt == "x12" and len(interchanges) == 1


_PREFIXES = [b"", b"UNA", b"UNA:+.? '", b"UNB+UNOC:3+", b"\xef\xbb\xbfUNB+UNOW:4+", b"ISA*", b"<",
             (FIXTURES / "850_004010.x12").read_bytes()[:106], "ISA*00*".encode("cp037")]


@settings(max_examples=400, deadline=None)
@given(st.sampled_from(_PREFIXES), st.binary(max_size=400))
def test_read_arbitrary_bytes_only_raises_input_errors(prefix: bytes, tail: bytes) -> None:
    try:
        read(prefix + tail)
    except (DetectError, ParseError) as exc:
        assert "internal error" not in exc.problem


def test_detect_module_is_not_shadowed() -> None:
    import gateway.edi
    import gateway.edi.detect as module

    assert module.detect is detect
    assert gateway.edi.detect is module


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-32"])
def test_xml_in_utf16_and_utf32_is_xml_not_binary(encoding):
    raw = '<?xml version="1.0"?><Order/>'.encode(encoding)
    assert detect(raw) == "xml"


def test_binary_starting_with_nul_is_still_binary():
    with pytest.raises(DetectError, match="binary"):
        detect(b"\x00\x01\x02\x03" * 20)
