"""Tell which format received bytes are in (EDIFACT, X12 or XML) by looking at how they start.

Detection is deliberately shallow: it reads only the first bytes, never parses, and
leaves every deeper problem to the format's reader, which can name a segment.
"""

from __future__ import annotations

from gateway.errors import DetectError

UTF8_BOM = b"\xef\xbb\xbf"
# Whitespace that may precede the first segment (ASCII, and EBCDIC space/NL/LF/CR/TAB).
_ASCII_SPACE = b" \t\r\n\x0b\x0c"
_EBCDIC_SPACE = b"\x40\x15\x25\x0d\x05"
# "ISA" in EBCDIC code pages 037 and 500 (letters are identical in both).
EBCDIC_ISA = b"\xc9\xe2\xc1"
_SNIFF = 512  # bytes looked at to judge "binary"; enough for any real header
# XML in UTF-16/32 (with or without a BOM): "<" as 2 or 4 bytes. lxml reads the encoding itself.
_WIDE_XML = (b"\xff\xfe<\x00", b"\xfe\xff\x00<", b"<\x00", b"\x00<", b"\xff\xfe\x00\x00<\x00\x00\x00",
             b"\x00\x00\xfe\xff\x00\x00\x00<", b"<\x00\x00\x00", b"\x00\x00\x00<")


def strip_prefix(raw: bytes) -> bytes:
    """Drop a UTF-8 byte order mark and leading ASCII whitespace."""
    if raw.startswith(UTF8_BOM):
        raw = raw[len(UTF8_BOM):]
    return raw.lstrip(_ASCII_SPACE)


def is_ebcdic_x12(raw: bytes) -> bool:
    """True when the bytes start (after EBCDIC whitespace) with ``ISA`` in EBCDIC."""
    return raw.lstrip(_EBCDIC_SPACE).startswith(EBCDIC_ISA)


def _looks_binary(head: bytes) -> bool:
    # NUL never occurs in text EDI/XML; otherwise count control bytes that text does
    # not use (EDI terminators such as 0x15/0x1C-0x1F and CR/LF/TAB are allowed).
    if b"\x00" in head:
        return True
    allowed = set(b"\t\n\r\x0b\x0c\x15\x1c\x1d\x1e\x1f\x1a")
    odd = sum(1 for b in head if b < 0x20 and b not in allowed)
    if odd * 10 > len(head):
        return True
    # Invalid UTF-8 alone is not binary (latin-1 EDI exists), but a head full of
    # high bytes without any recognisable structure is.
    high = sum(1 for b in head if b >= 0x80)
    return high * 10 > len(head) * 3


def detect(raw: bytes) -> str:
    """Return ``"edifact"``, ``"x12"`` or ``"xml"`` for the given bytes.

    A UTF-8 BOM and leading whitespace are tolerated; EBCDIC X12 is recognised by its
    ``ISA``. Raises ``DetectError`` for empty, binary or unrecognised input.
    """
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise DetectError(f"expected bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    body = strip_prefix(raw)
    if body.startswith((b"UNA", b"UNB")):
        return "edifact"
    if body.startswith(b"ISA"):
        return "x12"
    if body.startswith(b"<"):  # covers <?xml ...?>, comments and a bare root element
        return "xml"
    if is_ebcdic_x12(raw):
        return "x12"
    if raw.startswith(_WIDE_XML):
        return "xml"
    if not body:
        raise DetectError("empty file")
    if _looks_binary(body[:_SNIFF]):
        raise DetectError("binary content, not EDI or XML")
    start = body[:20].decode("utf-8", errors="replace")
    raise DetectError(f"not EDIFACT, X12 or XML: file starts with {start!r}")
