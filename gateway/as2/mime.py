"""Byte-exact MIME for AS2: header blocks, Content-Type parameters, multipart split by boundary.

Python's email package re-wraps headers and re-encodes bodies, which breaks signatures and
payload identity, so entities are split here on the raw bytes: a ``Span`` is a window on one
buffer (the received body, or a decrypted/decompressed plaintext) and parts are sub-windows of
it. Nothing is copied until the payload itself is taken.
"""

from __future__ import annotations

import base64
import binascii
import quopri
import re
import secrets
from dataclasses import dataclass

from gateway.as2.der import BytesLike

MAX_HEADER_BLOCK = 64 * 1024
_HEADER_NAME = re.compile(rb"[!-9;-~]+")
_PARAM = re.compile(r';\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;\s]*)')
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")


class NotMime(ValueError):
    """The bytes do not start with a MIME header block."""


@dataclass(frozen=True, slots=True)
class Span:
    """The bytes ``base[start:end]`` of a buffer that supports ``find`` (bytes, bytearray, mmap)."""

    base: bytes
    start: int
    end: int

    @classmethod
    def of(cls, data: BytesLike) -> Span:
        """A span over all of ``data`` (a memoryview is copied once: it cannot ``find``)."""
        if isinstance(data, memoryview):
            if isinstance(data.obj, (bytes, bytearray)) and data.contiguous and len(data) == len(data.obj):
                data = data.obj
            else:
                data = data.tobytes()
        return cls(data, 0, len(data))  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self.end - self.start

    def view(self) -> memoryview:
        """A zero-copy view of the span (for hashing, DER walking)."""
        return memoryview(self.base)[self.start : self.end]

    def tobytes(self) -> bytes:
        """The span's bytes (the buffer itself when the span covers it whole)."""
        if self.start == 0 and self.end == len(self.base) and isinstance(self.base, bytes):
            return self.base
        return self.view().tobytes()   # one copy, whatever the base (slicing a bytearray or mmap copies too)

    def find(self, needle: bytes, offset: int = 0) -> int:
        """Position of ``needle`` relative to the span start, or -1."""
        i = self.base.find(needle, self.start + offset, self.end)
        return -1 if i < 0 else i - self.start

    def sub(self, start: int, end: int | None = None) -> Span:
        """A sub-span, positions relative to this span."""
        stop = self.end if end is None else self.start + end
        return Span(self.base, self.start + start, stop)

    def head(self, n: int) -> bytes:
        """The first ``n`` bytes (a small copy, for sniffing and header parsing)."""
        return bytes(self.base[self.start : min(self.end, self.start + n)])


Headers = dict[str, str]


def split_entity(span: Span) -> tuple[Headers, Span]:
    """Split a MIME entity into its headers (lower-cased names, unfolded values) and its body.

    Accepts CRLF or bare-LF line ends. Raises NotMime when the span does not start with a
    well-formed header block followed by an empty line.
    """
    head = span.head(MAX_HEADER_BLOCK)
    if head.startswith(b"\r\n"):
        return {}, span.sub(2)
    if head.startswith(b"\n"):
        return {}, span.sub(1)
    crlf, lf = head.find(b"\r\n\r\n"), head.find(b"\n\n")
    candidates = [(crlf, 4), (lf, 2)]
    found = [(i, n) for i, n in candidates if i >= 0]
    if not found:
        raise NotMime("no empty line after the MIME headers")
    i, n = min(found)
    headers: Headers = {}
    name: str | None = None
    for line in re.split(rb"\r?\n", head[:i]):
        if line[:1] in (b" ", b"\t"):
            if name is None:
                raise NotMime("header block starts with a continuation line")
            headers[name] += " " + line.strip().decode("latin-1")
            continue
        key, colon, value = line.partition(b":")
        if not colon or not _HEADER_NAME.fullmatch(key):
            raise NotMime(f"not a header line: {line[:40]!r}")
        name = key.decode("ascii").lower()
        text = value.strip().decode("latin-1")
        headers[name] = f"{headers[name]}, {text}" if name in headers and name != "content-type" else text
    if "content-type" not in headers and not headers:
        raise NotMime("empty header block")
    return headers, span.sub(i + n)


def content_type(value: str | None) -> tuple[str, dict[str, str]]:
    """``("type/subtype", {param: value})`` of a Content-Type, lower-cased type and parameter names.

    Defaults to ``text/plain`` (RFC 2045) when absent.
    """
    if not value:
        return "text/plain", {}
    main, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for m in _PARAM.finditer(";" + rest):
        v = m.group(2)
        if v.startswith('"'):
            v = re.sub(r"\\(.)", r"\1", v[1:-1])
        params[m.group(1).lower()] = v
    return main.strip().lower() or "text/plain", params


def filename(disposition: str | None, params: dict[str, str]) -> str | None:
    """The file name from Content-Disposition (``filename=``), else Content-Type's ``name=``.

    Partner-supplied, so reduced to a bare name: directories and control characters are dropped.
    """
    name = None
    if disposition:
        name = content_type("x/x;" + disposition.partition(";")[2])[1].get("filename")
    name = _UNSAFE.sub("", (name or params.get("name") or "")).replace("\\", "/").rsplit("/", 1)[-1].strip()
    return name if name not in ("", ".", "..") else None


def split_multipart(span: Span, boundary: str) -> list[Span]:
    """The body parts of a multipart body (RFC 2046), each exactly as sent.

    The line break before each delimiter belongs to the delimiter, so a part's bytes end
    where its content ended. Tolerates LF-only line ends and transport padding.
    """
    if not boundary or len(boundary) > 200:
        raise NotMime("missing or invalid multipart boundary")
    delim = b"--" + boundary.encode("latin-1")
    if span.head(len(delim)) == delim:
        pos = 0
    else:
        pos = span.find(b"\n" + delim)
        if pos < 0:
            raise NotMime("multipart boundary not found")
        pos += 1
    parts: list[Span] = []
    while True:
        after = pos + len(delim)
        if span.base[span.start + after : span.start + after + 2] == b"--":
            return parts
        eol = span.find(b"\n", after)
        if eol < 0:
            raise NotMime("multipart body ends inside a delimiter line")
        if span.base[span.start + after : span.start + eol].strip(b" \t\r"):
            raise NotMime("garbage after a multipart delimiter")
        body_start = eol + 1
        nxt = span.find(b"\n" + delim, body_start - 1)
        if nxt < 0:
            raise NotMime("multipart body has no closing delimiter")
        end = nxt - 1 if nxt > body_start - 1 and span.base[span.start + nxt - 1] == 0x0D else nxt
        parts.append(span.sub(body_start, max(end, body_start)))
        pos = nxt + 1


def decode_body(span: Span, transfer_encoding: str | None) -> Span:
    """Undo a Content-Transfer-Encoding: base64 and quoted-printable decode, others pass through."""
    cte = (transfer_encoding or "binary").strip().lower()
    if cte == "base64":
        try:
            data = base64.b64decode(re.sub(rb"\s+", b"", span.tobytes()), validate=True)
        except (binascii.Error, ValueError) as e:
            raise NotMime(f"bad base64 body: {e}") from None
        return Span.of(data)
    if cte == "quoted-printable":
        return Span.of(quopri.decodestring(span.tobytes()))
    return span


def encode_base64(data: BytesLike) -> bytes:
    """Base64 in 76-character CRLF lines, as MIME wants."""
    raw = base64.encodebytes(data)
    return raw.replace(b"\n", b"\r\n")


def header_block(headers: list[tuple[str, str]]) -> bytes:
    """``Name: value`` lines with CRLF, then the empty line; values must be single-line (no folding)."""
    out = []
    for name, value in headers:
        if _UNSAFE.search(value) or _UNSAFE.search(name):
            raise ValueError(f"control character in MIME header {name}")
        out.append(f"{name}: {value}\r\n")
    out.append("\r\n")
    return "".join(out).encode("utf-8")


def unsafe(value: str) -> bool:
    """Does the value hold a control character (CR, LF, NUL...) that could break a header?"""
    return bool(_UNSAFE.search(value))


def new_boundary() -> str:
    """A fresh multipart boundary (random enough never to occur in content)."""
    return "----=_Part_" + secrets.token_hex(16)


def safe_param(value: str) -> str:
    """A value fit for a quoted MIME parameter: control characters, quotes and backslashes dropped."""
    return _UNSAFE.sub("", value).replace('"', "").replace("\\", "")


def canonicalize(data: bytes) -> bytes:
    """Text canonical form (RFC 5751 §3.1.1): every line ending becomes CRLF."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
