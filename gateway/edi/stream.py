"""Chunked text source and the segment tokenizer shared by the EDIFACT and X12 readers.

A ``Source`` decodes a byte stream chunk by chunk and keeps only the text not yet read
(``text[pos:]``), so a reader holds one message plus one chunk however large the file is;
``parse(raw)`` uses the same code with the whole input as its only chunk. ``segments`` is the
hot loop both formats run: ``str.find``/``str.split`` do the work and the release-aware
scanner runs only for segments that contain a release character. Pure: the stream is any
object with ``read(n) -> bytes``; nothing here opens files.
"""

from __future__ import annotations

import codecs
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import repeat
from typing import BinaryIO

from gateway.edi.model import Delimiters, Interchange, Message, Segment
from gateway.errors import ParseError

__all__ = ["CHUNK_SIZE", "HEAD_BYTES", "Source", "Syntax", "escaped", "gc_paused", "guarded", "name",
           "number_or_none", "read_all", "read_stream", "segments", "show", "truncated"]

UTF8_BOM = b"\xef\xbb\xbf"
CHUNK_SIZE = 1 << 20
# Bytes read before decoding starts: enough to find the charset in UNB, detect EBCDIC and
# judge whether an EDIFACT file is wrapped at a fixed width, whatever the chunk size.
HEAD_BYTES = 64 * 1024
# Inputs above this size are parsed with the cyclic GC paused (see gc_paused).
GC_PAUSE_BYTES = 256 * 1024

# Decoding error handler for formats without a charset declaration (X12): a byte that is not
# part of valid UTF-8 is read as latin-1 (which maps every byte), so a latin-1 file reads as
# latin-1 and a UTF-8 file with a stray byte keeps its UTF-8 text. Decided byte by byte, the
# result does not depend on where chunks split the data.
LATIN1_FALLBACK = "edi-latin-1"
codecs.register_error(
    LATIN1_FALLBACK, lambda exc: (exc.object[exc.start:exc.end].decode("latin-1"), exc.end))

# fail(bad byte, segment number, delimiters, partial text) -> the ParseError for that byte.
Failure = Callable[[int, int, Delimiters, str], ParseError]


@contextmanager
def gc_paused(size: int) -> Iterator[None]:
    """Pause the cyclic garbage collector while reading ``size`` bytes, if that is large.

    Reading a whole file allocates millions of small containers that all survive; each
    allocation burst triggers collections that re-walk the growing heap, which more than
    halves throughput on big files. The readers create no reference cycles, so refcounting
    frees everything. The collector is re-enabled only if it was enabled on entry, so nested
    or concurrent readers leave it as they found it.
    """
    if size < GC_PAUSE_BYTES or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class Source:
    """Decoded text of a byte stream, read a chunk at a time; ``text[pos:]`` is still unread.

    Construct with the first bytes (all of them for ``parse``) and optionally the stream the
    rest comes from; a UTF-8 BOM is dropped. The format reader inspects ``head`` (raw bytes)
    to choose a codec, then calls ``start``. A byte the codec rejects ends the text just
    before it and sets ``bad``; ``fail`` (set by the reader, which must not capture the
    source: no reference cycles) turns that into the reader's ParseError.
    """

    __slots__ = ("text", "pos", "head", "bad", "fail", "transform", "_stream", "_chunk", "_want",
                 "_eof", "_decoder", "_codec")

    def __init__(self, data: bytes = b"", stream: BinaryIO | None = None,
                 chunk_size: int = CHUNK_SIZE) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")
        if stream is not None:
            pieces, size = [data], len(data)
            while size < HEAD_BYTES:
                piece = stream.read(max(chunk_size, HEAD_BYTES - size))
                if not piece:
                    stream = None
                    break
                pieces.append(piece)
                size += len(piece)
            data = b"".join(pieces)
        self.head = data[len(UTF8_BOM):] if data.startswith(UTF8_BOM) else data
        self.text = ""
        self.pos = 0
        self.bad: int | None = None
        self.fail: Failure | None = None
        # Applied to each decoded chunk (EDIFACT unwrapping); gets (text, is_last_chunk).
        self.transform: Callable[[str, bool], str] | None = None
        self._stream = stream
        self._chunk = self._want = chunk_size
        self._eof = stream is None
        self._decoder: codecs.IncrementalDecoder | None = None
        self._codec = ""

    @classmethod
    def from_text(cls, text: str) -> Source:
        """A source over text that is already decoded (nothing more to read)."""
        src = cls()
        src.text = text
        return src

    @property
    def complete(self) -> bool:
        """True when ``text`` already holds everything up to the end of the data."""
        return self._eof

    def start(self, codec: str, errors: str = "strict") -> None:
        """Start decoding (the head first) with ``codec`` and a codecs error handler."""
        self._codec = codec
        self._decoder = codecs.getincrementaldecoder(codec)(errors)
        head, self.head = self.head, b""
        self.text = self._decode(head, self._eof)
        self.pos = 0

    def _decode(self, data: bytes, final: bool) -> str:
        dec = self._decoder
        assert dec is not None, "start() first"
        pending = dec.getstate()[0]  # bytes of a character split across chunks
        try:
            return dec.decode(data, final)
        except UnicodeDecodeError as exc:
            data = pending + data
            # Everything before the bad byte is valid; the reader reports the byte once it
            # has read that far (errors come in file order).
            self.bad = data[exc.start]
            self._eof = True
            return data[:exc.start].decode(self._codec)

    def more(self) -> bool:
        """Append the next chunk's text, dropping what was read; False at the end of data."""
        while not self._eof:
            assert self._stream is not None
            data = self._stream.read(self._want) or b""
            final = not data
            if final:
                self._eof = True
            text = self._decode(data, final)
            if self.transform is not None:
                text = self.transform(text, final)
            if text:
                rest = self.text[self.pos:]
                # A segment longer than a chunk: read as much again next time, so re-scanning
                # the unfinished segment stays linear in its length.
                self._want = max(self._chunk, len(rest))
                self.text = rest + text
                self.pos = 0
                return True
        return False

    def undecodable(self, number: int, d: Delimiters, partial: str) -> ParseError:
        """The error for ``bad``: segment ``number`` holds it, ``partial`` is its text so far."""
        assert self.bad is not None and self.fail is not None
        return self.fail(self.bad, number, d, partial)

    def ensure(self, count: int) -> bool:
        """Make ``count`` characters from ``pos`` available; False if the data is shorter."""
        while len(self.text) - self.pos < count:
            if not self.more():
                return False
        return True

    def skip(self, chars: str) -> bool:
        """Advance ``pos`` past any of ``chars``; False when the data ends first."""
        while True:
            text, pos, n = self.text, self.pos, len(self.text)
            while pos < n and text[pos] in chars:
                pos += 1
            self.pos = pos
            if pos < n:
                return True
            if not self.more():
                return False

    def rest_is(self, chars: str) -> bool:
        """True when all that is left consists of ``chars`` (``pos`` stays where it is)."""
        k = self.pos
        while True:
            text, n = self.text, len(self.text)
            while k < n and text[k] in chars:
                k += 1
            if k < n:
                return False
            k -= self.pos  # more() drops the text before pos
            if not self.more():
                return True


@dataclass(frozen=True, slots=True)
class Syntax:
    """What differs between the formats' tokenizing: tag rules and the whitespace set."""

    name: str                       # "EDIFACT" | "X12", for internal-error messages
    valid_tag: Callable[[str], bool]
    whitespace: str                 # allowed around segment boundaries (minus delimiters)
    tag_components: bool = False    # EDIFACT: a tag may carry components ("UNH:1")
    good: set[str] | None = None    # tags already validated (a set lookup beats re-checking)

    def strip_chars(self, d: Delimiters) -> str:
        """Whitespace skipped around segments, minus any character used as a delimiter."""
        used = (d.element, d.component, d.segment, d.release, d.repetition)
        return "".join(c for c in self.whitespace if c not in used)


def escaped(text: str, i: int, start: int, release: str) -> bool:
    """True when ``text[i]`` is preceded by an odd run of release characters."""
    k = i - 1
    while k >= start and text[k] == release:
        k -= 1
    return (i - 1 - k) % 2 == 1


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


def _bad_tag(tag: str, token: str, number: int) -> ParseError:
    if not token:
        return ParseError("empty segment (two segment terminators in a row)", segment=number)
    return ParseError(f"invalid segment tag {show(tag, 20)}", segment=number)


def _released_segment(token: str, d: Delimiters, number: int, syntax: Syntax) -> Segment:
    """Build a Segment from text that contains release characters (the slow path)."""
    split = _split_released(token, d)
    tag = split[0][0][0]
    good = syntax.good
    if good is None or tag not in good:
        if not syntax.valid_tag(tag):
            raise _bad_tag(tag, token, number)
        if good is not None:
            good.add(tag)
    elements = []
    repetitions: dict[int, list[tuple[str, ...]]] = {}
    for i, reps in enumerate(split[1:], 1):
        elements.append(reps[0])
        if len(reps) > 1:
            repetitions[i] = reps
    return Segment(tag, elements, number, repetitions)


def segments(src: Source, d: Delimiters, number: int, syntax: Syntax) -> Iterator[Segment]:
    """Yield Segments from ``src.pos``, numbered from ``number``; ``src.pos`` follows each one.

    Reads more chunks as needed. A final segment without terminator is yielded too: a file
    cut short is caught by the envelope checks, and a missing last terminator is common and
    harmless. Raises ``ParseError`` for an empty segment, an invalid tag or (via
    ``src.fail``) a byte the character set does not allow.
    """
    term, el, comp, rep, rel = d.segment, d.element, d.component, d.repetition, d.release
    ws = syntax.strip_chars(d)
    good = syntax.good if syntax.good is not None else set()
    valid, tag_comps = syntax.valid_tag, syntax.tag_components
    split, tuple_ = str.split, tuple
    text, pos = src.text, src.pos
    find, n = text.find, len(text)
    # Only look for escapes when the release char occurs at all in the buffered text.
    released = rel is not None and find(rel, pos) >= 0
    while True:
        end = find(term, pos)
        if released:
            # A released terminator is data: keep looking past it.
            while end > pos and text[end - 1] == rel and escaped(text, end, pos, rel):
                end = find(term, end + 1)
        if end < 0:
            src.pos = pos
            if src.more():
                text, pos = src.text, src.pos
                find, n = text.find, len(text)
                released = rel is not None and find(rel, pos) >= 0
                continue
            if src.bad is not None:
                raise src.undecodable(number, d, text[pos:])
            # Unterminated last segment: whatever follows its data is the file's end, so
            # trailing whitespace and a DOS Ctrl-Z are not part of the value.
            end = len(text.rstrip(ws + "\x1a"))
            if end <= pos or not text[pos:end].strip(ws):
                src.pos = n
                return
        token = text[pos:end].lstrip(ws)
        pos = src.pos = end + 1
        if released and rel in token:
            yield _released_segment(token, d, number, syntax)
            number += 1
            continue
        parts = token.split(el)
        tag = parts[0]
        if tag_comps and comp in tag:
            tag = tag.split(comp, 1)[0]
        if tag not in good:
            if not valid(tag):
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


# (interchange, message) for each finished message; (interchange, None) once its trailer checked out.
Event = tuple[Interchange, Message | None]


def read_all(raw: bytes, read: Callable[[Source], Iterator[Event]], what: str) -> list[Interchange]:
    """Run a format's reader over all of ``raw`` and return whole interchanges."""
    try:
        raw = bytes(raw)
    except TypeError as exc:
        raise ParseError(f"unreadable {what} (not bytes: {type(raw).__name__})") from exc
    interchanges: list[Interchange] = []
    with gc_paused(len(raw)):
        for interchange, msg in guarded(read(Source(raw)), what):
            if msg is None:
                interchanges.append(interchange)
            else:
                interchange.messages.append(msg)
    return interchanges


def read_stream(stream: BinaryIO, chunk_size: int, read: Callable[[Source], Iterator[Event]],
                what: str) -> Iterator[tuple[Interchange, Message]]:
    """Run a format's reader over a stream, yielding each message with its header."""
    for interchange, msg in guarded(read(Source(b"", stream, chunk_size)), what):
        if msg is not None:
            yield interchange, msg


def guarded(events: Iterator[Event], what: str) -> Iterator[Event]:
    """Pass ``events`` through, turning any foreign exception into a ParseError (I/O errors pass)."""
    try:
        yield from events
    except (ParseError, OSError):
        raise
    except Exception as exc:  # never leak a foreign exception to the pipeline; keep the cause
        raise ParseError(f"unreadable {what} (internal error: {type(exc).__name__})") from exc


def show(value: str, limit: int = 35) -> str:
    """A partner value for an error message: repr'd (control chars escaped) and capped."""
    return repr(value[:limit]) + ("..." if len(value) > limit else "")


def name(value: str) -> str:
    """A partner identifier inside prose: as is when short and printable, else like show."""
    return value if len(value) <= 35 and value.isprintable() else show(value)


def number_or_none(value: str) -> int | None:
    """ASCII digits as int; None otherwise (also for absurd lengths int() would refuse)."""
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None


def truncated(last: Segment, where: str, missing: str) -> ParseError:
    """The error for data that ends inside an envelope, located at its last segment."""
    return ParseError(f"file ends inside {where}: no {missing} after this segment",
                      segment=last.number, tag=last.tag)
