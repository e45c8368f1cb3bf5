"""Sans-I/O EDI formats: detect what bytes are, and read EDIFACT or X12 into the EDI model.

``read(raw)`` is the one entry point the pipeline needs: it detects the format and
dispatches to the matching reader. ``iter_messages(stream)`` does the same for a binary
stream too large to hold, one message at a time. Nothing here opens files or sockets.
The detector itself is ``gateway.edi.detect.detect``; it is deliberately not re-exported
here, so that ``gateway.edi.detect`` keeps naming the module (imports and mock.patch).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO, cast

from gateway.edi import detect, edifact, x12
from gateway.edi.model import Delimiters, Interchange, Message, Party, Segment
from gateway.edi.stream import CHUNK_SIZE, Source
from gateway.errors import DetectError

__all__ = ["Delimiters", "Interchange", "Message", "Party", "Segment", "iter_messages", "read"]

_READERS = {"edifact": edifact.parse, "x12": x12.parse}


def read(raw: bytes) -> tuple[str, list[Interchange]]:
    """Detect the format of ``raw`` and read its interchanges.

    Returns ``(format, interchanges)``; XML is only detected here and returns
    ``("xml", [])`` (the XML reader lives elsewhere). Raises ``DetectError`` or
    ``ParseError``.
    """
    fmt = detect.detect(raw)
    reader = _READERS.get(fmt)
    return fmt, (reader(raw) if reader else [])


def iter_messages(stream: BinaryIO, *, chunk_size: int = CHUNK_SIZE
                  ) -> Iterator[tuple[Interchange, Message]]:
    """Detect the format of a binary stream and read it one message at a time.

    Yields ``(interchange header, message)`` like ``edifact.iter_messages`` /
    ``x12.iter_messages`` (see there: trailer errors come after the messages they close).
    Raises ``DetectError`` for anything but EDIFACT or X12 (XML included), ``ParseError``
    for bad EDI.
    """
    head = Source(b"", stream, chunk_size).head  # the first bytes, BOM dropped
    fmt = detect.detect(head)
    if fmt == "xml":
        raise DetectError("XML is not EDI: the streaming reader reads EDIFACT and X12 only")
    reader = edifact.iter_messages if fmt == "edifact" else x12.iter_messages
    return reader(cast(BinaryIO, _Prefixed(head, stream)), chunk_size=chunk_size)


class _Prefixed:
    """A binary stream that first returns ``head`` (bytes already read), then ``stream``."""

    def __init__(self, head: bytes, stream: BinaryIO) -> None:
        self._head, self._stream = head, stream

    def read(self, size: int = -1) -> bytes:
        if self._head:
            out, self._head = self._head, b""
            return out
        return self._stream.read(size)
