"""Sans-I/O EDI formats: detect what bytes are, and read EDIFACT or X12 into the EDI model.

``read(raw)`` is the one entry point the pipeline needs: it detects the format and
dispatches to the matching reader. Everything here is pure (no I/O, no asyncio).
The detector itself is ``gateway.edi.detect.detect``; it is deliberately not re-exported
here, so that ``gateway.edi.detect`` keeps naming the module (imports and mock.patch).
"""

from __future__ import annotations

from gateway.edi import detect, edifact, x12
from gateway.edi.model import Delimiters, Interchange, Message, Party, Segment

__all__ = ["Delimiters", "Interchange", "Message", "Party", "Segment", "read"]

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
