"""Read received XML safely (no DTDs, entities or network) and tell which document it is.

Partner XML is untrusted input: a DOCTYPE is refused before libxml2 parses it (so no external
entity (XXE) can read a file or a URL, and no "billion laughs" expansion can start), the
parser never touches the network, keeps libxml2's size limits (``huge_tree`` off), and the
bytes and element depth are capped. Every problem is a ``ParseError`` naming line and column.
"""

from __future__ import annotations

import re
from pathlib import Path

from lxml import etree

from ..errors import ParseError

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_DEPTH", "REFUSED_DTD", "SchemaProblem", "hardened_parser",
           "identify", "load_schema", "parse_xml"]

DEFAULT_MAX_BYTES = 20 * 1024 * 1024     # business documents are KB..MB; more is a mistake or an attack
DEFAULT_MAX_DEPTH = 64                   # UBL nests ~8 deep; libxml2 itself stops at 256
DEFAULT_MAX_ELEMENTS = 200_000           # a 10,000-line invoice has ~150,000; a tree costs ~120 bytes per element
_FEED_BYTES = 64 * 1024                  # parsed in pieces, so a limit stops it before the whole tree is built
REFUSED_DTD = "external entities and DTDs are refused"

# Prolog items that may precede a DOCTYPE or the root element (XML 1.0 §2.8).
_PROLOG_ITEM = re.compile(r"[ \t\r\n]+|<\?.*?\?>|<!--.*?-->", re.S)
# How the first bytes give away the encoding family (XML 1.0 Appendix F), so the prolog can
# be read before libxml2 sees it; everything else is ASCII-compatible for markup characters.
_FAMILIES = ((b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
             (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"),
             (b"<\x00\x00\x00", "utf-32-le"), (b"\x00\x00\x00<", "utf-32-be"),
             (b"<\x00", "utf-16-le"), (b"\x00<", "utf-16-be"))
_POSITION_SUFFIX = re.compile(r", line \d+, column \d+\Z")


_HARDENED = dict(resolve_entities=False, no_network=True, load_dtd=False, dtd_validation=False, huge_tree=False,
                 collect_ids=False, attribute_defaults=False)


def hardened_parser() -> etree.XMLParser:
    """A new parser that loads no DTD, resolves no entity, never uses the network.

    A new one per document: parsers keep state, and creating one costs microseconds.
    """
    return etree.XMLParser(**_HARDENED)


def _prolog_doctype(raw: bytes) -> tuple[int, int] | None:
    """(line, column) of a DOCTYPE (the only place entities are declared) before the root, or None."""
    head = raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw
    codec = "latin-1"                   # lossless for bytes; markup characters are ASCII
    for prefix, family in _FAMILIES:
        if raw.startswith(prefix):
            codec, head = family, raw
            break
    text = head.decode(codec, errors="replace")
    if text[:1] == "\ufeff":
        text = text[1:]
    pos = 0
    while True:
        match = _PROLOG_ITEM.match(text, pos)
        if match is None:
            break
        pos = match.end()
    if not (text.startswith("<!DOCTYPE", pos) or text.startswith("<!ENTITY", pos)):
        return None
    line = text.count("\n", 0, pos) + 1
    return line, pos - text.rfind("\n", 0, pos)


def _syntax_error(exc: etree.XMLSyntaxError) -> ParseError:
    line, column = exc.position if exc.position else (exc.lineno or 0, 0)
    text = exc.msg or str(exc)
    # The feeding parser may report only "no element found" at close: libxml2's first error of
    # this document (the log was cleared before it) is the cause.
    first = next(iter(exc.error_log), None) if exc.error_log else None
    if (line, column) == (0, 0) and first is not None:
        line, column, text = first.line, first.column, first.message
    message = " ".join(_POSITION_SUFFIX.sub("", text.strip()).split())   # one line
    if "amplification" in message or ("ntity" in message and "loop" in message):
        message = f"{message} ({REFUSED_DTD})"
    return ParseError(f"line {line} column {column}: {message}")


def parse_xml(raw: bytes, *, max_bytes: int = DEFAULT_MAX_BYTES, max_depth: int = DEFAULT_MAX_DEPTH,
              max_elements: int = DEFAULT_MAX_ELEMENTS) -> etree._ElementTree:
    """Parse untrusted XML bytes into an lxml tree, or raise ParseError (with line and column).

    The encoding comes from the BOM or the ``<?xml encoding=...?>`` declaration (UTF-8 when
    neither says), as XML requires. Refused: any DOCTYPE or entity declaration, more than
    ``max_bytes`` bytes, elements nested deeper than ``max_depth``, more than ``max_elements``
    elements (a wide tree of empty elements costs ~30x its bytes in memory).
    """
    if not isinstance(raw, (bytes, bytearray, memoryview)):
        raise ParseError(f"expected bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    if len(raw) > max_bytes:
        raise ParseError(f"line 1 column 1: the document has {len(raw)} bytes, more than the limit of {max_bytes}")
    doctype = _prolog_doctype(raw)
    if doctype is not None:
        raise ParseError(f"line {doctype[0]} column {doctype[1]}: the document has a DOCTYPE: {REFUSED_DTD}")
    if not raw.strip():
        raise ParseError("line 1 column 1: Document is empty")
    etree.clear_error_log()   # this thread's log: what an error reports must be this document's
    parser = etree.XMLPullParser(events=("start", "end"), **_HARDENED)
    depth = elements = 0
    try:
        for offset in range(0, len(raw), _FEED_BYTES):
            parser.feed(raw[offset:offset + _FEED_BYTES])
            for event, element in parser.read_events():
                if event == "end":
                    depth -= 1
                    continue
                depth += 1
                elements += 1
                if depth > max_depth:
                    raise ParseError(f"line {element.sourceline} column 0: elements nested deeper than "
                                     f"{max_depth} levels (<{etree.QName(element).localname}>)")
                if elements > max_elements:
                    raise ParseError(f"line {element.sourceline} column 0: more than {max_elements} elements")
        root = parser.close()
    except etree.XMLSyntaxError as exc:
        raise _syntax_error(exc) from None
    except (ValueError, LookupError) as exc:   # e.g. an unknown encoding name in the declaration
        raise ParseError(f"line 1 column 1: {exc}") from None
    tree = root.getroottree()
    docinfo = tree.docinfo
    # Second guard for encodings the prolog scan cannot read (EBCDIC...): libxml2 saw a DTD.
    if docinfo.internalDTD is not None or docinfo.externalDTD is not None or docinfo.doctype:
        raise ParseError(f"line 1 column 1: the document has a DOCTYPE: {REFUSED_DTD}")
    return tree


def identify(root: etree._Element | etree._ElementTree) -> tuple[str, str]:
    """``(namespace URI, local name)`` of the root element; the namespace is "" when it has none."""
    if isinstance(root, etree._ElementTree):
        root = root.getroot()
    qname = etree.QName(root)
    return qname.namespace or "", qname.localname


# --- XSD files (configuration, read once at start) ------------------------------------------
_XS = "{http://www.w3.org/2001/XMLSchema}"


class SchemaProblem(ValueError):
    """An XSD file cannot be used; the message names the file (and line) and why."""


def _local_file(text: object, base: Path, relative_to: Path, where: str) -> Path:
    if not isinstance(text, str) or not text or ":" in text or text.startswith(("/", "\\")):
        raise SchemaProblem(f"{where}{text!r} must be a relative path of a file in {base.name}/ "
                            "(no URL, no absolute path)")
    resolved = (relative_to / text).resolve()
    if not resolved.is_relative_to(base):
        raise SchemaProblem(f"{where}{text!r} points outside {base.name}/")
    if not resolved.is_file():
        raise SchemaProblem(f"{where}{text!r}: no such file in {base.name}/")
    return resolved


def load_schema(location: object, base: Path) -> etree.XMLSchema:
    """Compile the XSD at ``location`` (relative to ``base``, e.g. mappings/); raises SchemaProblem.

    libxml2 follows xs:import/include/redefine by itself, so each schemaLocation is checked
    first: only files inside ``base``, never a URL or an absolute path. Schema files are read
    with the hardened parser (no DTD, no entities).
    """
    base = Path(base).resolve()
    target = _local_file(location, base, base, "")
    pending, seen = [target], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        name = current.relative_to(base)
        try:
            doc = etree.parse(str(current), hardened_parser())
        except (OSError, etree.XMLSyntaxError) as exc:
            raise SchemaProblem(f"{name}: cannot be read as XML: {exc}") from None
        if doc.docinfo.doctype:
            raise SchemaProblem(f"{name}: has a DOCTYPE: {REFUSED_DTD}")
        for ref in doc.iter(_XS + "import", _XS + "include", _XS + "redefine"):
            if ref.get("schemaLocation") is not None:
                pending.append(_local_file(ref.get("schemaLocation"), base, current.parent,
                                           f"{name} line {ref.sourceline}: "))
    try:
        return etree.XMLSchema(etree.parse(str(target), hardened_parser()))
    except (etree.XMLSchemaParseError, etree.XMLSyntaxError, OSError) as exc:
        raise SchemaProblem(f"{location}: not a valid XML schema: {exc}") from None
