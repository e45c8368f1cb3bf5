"""Minimal BER reader and DER writer for the big CMS fields, over memoryviews without copying.

asn1crypto copies every nested field it parses (each level slices its parent's bytes), which
costs several times the payload for a 100 MB message. The few structures that carry the
payload (EnvelopedData's encryptedContent, CompressedData's eContent) are therefore walked
here on a memoryview; the small parts around them (RecipientInfos, AlgorithmIdentifiers,
SignedData) are still handed to asn1crypto as bytes.
"""

from __future__ import annotations

from collections.abc import Sequence

BytesLike = bytes | bytearray | memoryview

# Tag bytes (class and constructed bits included) used by the CMS structures we walk.
SEQUENCE = 0x30
SET = 0x31
INTEGER = 0x02
OCTET_STRING = 0x04
OID = 0x06
CONTEXT_0 = 0xA0  # [0] constructed (EXPLICIT, or IMPLICIT constructed octets)
CONTEXT_0_PRIMITIVE = 0x80  # [0] IMPLICIT OCTET STRING, primitive

_MAX_DEPTH = 32


class BerError(ValueError):
    """The bytes are not the BER structure expected (truncated, bad length, wrong tag)."""


class Tlv:
    """One BER element: its first identifier byte, where its contents start and stop, where the next begins."""

    __slots__ = ("tag", "number", "start", "stop", "next")

    # A plain slotted class: thousands are made per message, and a frozen dataclass's
    # __init__ (object.__setattr__ per field) costs several times more.
    def __init__(self, tag: int, number: int, start: int, stop: int, next: int) -> None:  # noqa: A002
        self.tag = tag  # the identifier byte (class | constructed | number < 31); high numbers fold to 0x1F
        self.number = number  # the tag number (low or high form)
        self.start = start
        self.stop = stop
        self.next = next

    @property
    def constructed(self) -> bool:
        """True for constructed encodings (SEQUENCE, SET, EXPLICIT tags, chunked strings)."""
        return bool(self.tag & 0x20)

    def __repr__(self) -> str:
        return f"Tlv(tag=0x{self.tag:02x}, start={self.start}, stop={self.stop}, next={self.next})"


def read(mv: memoryview, pos: int, limit: int | None = None, _depth: int = 0) -> Tlv:
    """Read the element at ``pos`` (definite or indefinite length), checking it fits before ``limit``."""
    if limit is None:
        limit = len(mv)
    if _depth > _MAX_DEPTH:
        raise BerError("nesting too deep")
    if pos >= limit:
        raise BerError("truncated: element expected")
    tag = mv[pos]
    p = pos + 1
    number = tag & 0x1F
    if number == 0x1F:  # high tag number form
        number = 0
        while True:
            if p >= limit or p - pos > 5:
                raise BerError("bad tag")
            b = mv[p]
            p += 1
            number = (number << 7) | (b & 0x7F)
            if not b & 0x80:
                break
    if p >= limit:
        raise BerError("truncated: length expected")
    first = mv[p]
    p += 1
    if first < 0x80:
        length = first
    elif first == 0x80:
        if not tag & 0x20:
            raise BerError("indefinite length on a primitive element")
        q = p
        while True:
            if q + 2 > limit:
                raise BerError("truncated: end-of-contents expected")
            if mv[q] == 0 and mv[q + 1] == 0:
                return Tlv(tag, number, p, q, q + 2)
            q = read(mv, q, limit, _depth + 1).next
    else:
        n = first & 0x7F
        if n > 8 or p + n > limit:
            raise BerError("bad length")
        length = int.from_bytes(mv[p : p + n], "big")
        p += n
    stop = p + length
    if stop > limit:
        raise BerError("truncated: content runs past the end")
    return Tlv(tag, number, p, stop, stop)


def children(mv: memoryview, tlv: Tlv) -> list[Tlv]:
    """The elements inside a constructed element."""
    if not tlv.constructed:
        raise BerError("constructed element expected")
    out = []
    pos = tlv.start
    while pos < tlv.stop:
        child = read(mv, pos, tlv.stop)
        out.append(child)
        pos = child.next
    return out


def expect(tlv: Tlv, tag: int, what: str) -> Tlv:
    """Return ``tlv`` if its identifier byte is ``tag`` (primitive/constructed variants of strings allowed)."""
    if tlv.tag != tag and tlv.tag != tag ^ 0x20:
        raise BerError(f"{what}: unexpected tag 0x{tlv.tag:02x}")
    return tlv


def octets(mv: memoryview, tlv: Tlv, _depth: int = 0) -> list[memoryview]:
    """The content of an OCTET STRING (or IMPLICIT one), primitive or chunked, as views (no copy)."""
    if not tlv.constructed:
        return [mv[tlv.start : tlv.stop]]
    if _depth > _MAX_DEPTH:
        raise BerError("nesting too deep")
    out: list[memoryview] = []
    for child in children(mv, tlv):
        if child.number != 4:  # chunks of a constructed string are OCTET STRINGs
            raise BerError("constructed OCTET STRING holds a non-OCTET STRING")
        out.extend(octets(mv, child, _depth + 1))
    return out


def raw(mv: memoryview, pos: int, tlv: Tlv) -> bytes:
    """The complete encoding (header included) of an element read at ``pos``, as bytes."""
    return bytes(mv[pos : tlv.next])


def length_bytes(length: int) -> bytes:
    """DER length octets."""
    if length < 0x80:
        return bytes([length])
    n = (length.bit_length() + 7) // 8
    return bytes([0x80 | n]) + length.to_bytes(n, "big")


def header(tag: int, length: int) -> bytes:
    """DER identifier + length octets for an element of ``length`` content bytes."""
    return bytes([tag]) + length_bytes(length)


def tlv(tag: int, *parts: BytesLike) -> bytes:
    """A complete DER element from its content parts (small structures only: this joins)."""
    content = b"".join(parts)
    return header(tag, len(content)) + content


def oid(dotted: str) -> bytes:
    """The DER encoding (tag and length included) of an OBJECT IDENTIFIER."""
    arcs = [int(a) for a in dotted.split(".")]
    body = bytearray()
    for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return header(OID, len(body)) + bytes(body)


def total(parts: Sequence[BytesLike]) -> int:
    """The summed length of byte parts."""
    return sum(len(p) for p in parts)


def oid_text(content: BytesLike) -> str:
    """Dotted text of an OBJECT IDENTIFIER's content octets (for messages)."""
    arcs: list[int] = []
    value = 0
    for b in bytes(content):
        value = (value << 7) | (b & 0x7F)
        if not b & 0x80:
            arcs.append(value)
            value = 0
    if not arcs:
        return "?"
    first = min(arcs[0] // 40, 2)
    return ".".join(str(a) for a in [first, arcs[0] - 40 * first, *arcs[1:]])


def integer(mv: memoryview, tlv: Tlv) -> int:
    """The value of an INTEGER element."""
    if tlv.tag != INTEGER or tlv.stop == tlv.start:
        raise BerError("INTEGER expected")
    return int.from_bytes(mv[tlv.start : tlv.stop], "big", signed=True)


def content(mv: memoryview, tlv: Tlv) -> bytes:
    """The content octets of an element, as bytes (small elements; strings are joined if chunked)."""
    if tlv.constructed and tlv.number == 4:
        return b"".join(bytes(c) for c in octets(mv, tlv))
    return bytes(mv[tlv.start : tlv.stop])
