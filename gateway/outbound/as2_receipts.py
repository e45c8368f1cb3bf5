"""Where partners' MDNs for the AS2 messages we send meet the sends that wait for them.

The ``as2`` connector tells the book which Message-ID it is about to send and the MIC it
computed (``expect``), then ``wait``s. An async MDN posted to our AS2 endpoint arrives in
``accept`` (the inbound receiver calls it), is checked, stored durably and wakes the waiter.
Another node behind the same endpoint may receive it instead, so ``wait`` also polls the store.
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass
from typing import Any, Callable

import structlog

from ..as2 import Mdn, parse_mdn
from ..as2.cmsbase import digest_name
from ..errors import As2Error
from ..store.transfers import ReceiptRecord

log = structlog.get_logger("gateway.outbound.as2")

POLL_SECONDS = 1.0   # how often a waiting send looks in the store for an MDN another node stored


def mdn_entity(content_type: str, body: bytes) -> bytes:
    """The MDN as one MIME entity (header + body): what is stored as the receipt's evidence."""
    return f"Content-Type: {content_type}\r\n\r\n".encode() + body


def normalize_message_id(value: str) -> str:
    """``<id@host>`` whatever the partner did to the brackets and spaces (some drop the brackets)."""
    value = value.strip()
    return value if value.startswith("<") else f"<{value}>"


def disposition_text(mdn: Mdn) -> str:
    """``processed``, ``processed/error: decryption-failed``...: the value stored and shown to operators."""
    return f"{mdn.disposition}/{mdn.modifier}" if mdn.modifier else mdn.disposition


def is_positive(disposition: str) -> bool:
    """Same rule as ``Mdn.ok`` for a stored disposition: processed, at most with a warning."""
    kind, _, modifier = disposition.strip().lower().partition("/")
    return kind.strip() == "processed" and (not modifier or modifier.strip().startswith("warning"))


def mic_text(mdn: Mdn) -> str | None:
    """Received-Content-MIC as stored: ``<base64>, <algorithm>`` (both, or None)."""
    return f"{mdn.mic}, {mdn.mic_algorithm}" if mdn.mic and mdn.mic_algorithm else None


def stored_mic_matches(stored: str | None, mic: str, mic_algorithm: str) -> bool:
    """Does a stored ``<base64>, <algorithm>`` equal the MIC we computed when sending?"""
    if not stored:
        return False
    value, _, algorithm = stored.rpartition(",")
    return (digest_name(algorithm) == digest_name(mic_algorithm)
            and "".join(value.split()) == "".join(mic.split()))


@dataclass
class _Expected:
    """A send waiting for its async MDN: the MIC it computed and the future ``accept`` resolves."""

    mic: str | None
    mic_algorithm: str | None
    delivery_id: str | None
    future: asyncio.Future


class ReceiptBook:
    """Matches async MDNs with the sends waiting for them, and stores every MDN we receive."""

    def __init__(self, deployment: Any, store: Any, write: Callable[..., Any]) -> None:
        self.deployment = deployment
        self.store = store
        self.write = write
        self.our_as2_id: str = deployment.settings.as2.as2_id
        self._expected: dict[tuple[str, str], _Expected] = {}

    # ------------------------------------------------------------------ senders' side

    async def expect(self, partner_id: str, as2_message_id: str, *, mic: str, mic_algorithm: str,
                     delivery_id: str | None) -> None:
        """Register a send before it is POSTed: a fast partner's MDN may arrive before the HTTP answer.

        The MIC is also stored, so another node receiving the async MDN can check it.
        """
        self._expected[(partner_id, as2_message_id)] = _Expected(
            mic, mic_algorithm, delivery_id, asyncio.get_running_loop().create_future())
        await self.write(self.store.remember_sent_mic, partner_id, as2_message_id, mic=mic,
                         mic_algorithm=mic_algorithm, delivery_id=delivery_id)

    def forget(self, partner_id: str, as2_message_id: str) -> None:
        """The send gave up (or finished): a later MDN for it is stored without a waiter."""
        self._expected.pop((partner_id, as2_message_id), None)

    async def wait(self, partner_id: str, as2_message_id: str, timeout: float, *,
                   known: ReceiptRecord | None = None) -> ReceiptRecord | None:
        """The MDN for a sent message, or None after ``timeout`` seconds.

        Resolves as soon as ``accept`` takes it in this process, and polls the store about
        once a second for one another node stored. ``known`` is a receipt stored before this
        attempt: the store keeps the first MDN per Message-ID, so it is not an answer to this one.
        """
        key = (partner_id, as2_message_id)
        expected = self._expected.get(key)
        if expected is None:
            expected = self._expected[key] = _Expected(None, None, None, asyncio.get_running_loop().create_future())
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            while True:
                if expected.future.done():
                    return expected.future.result()
                record = await asyncio.to_thread(self.store.receipt_for, "received", partner_id, as2_message_id)
                if record is not None and (known is None or record.id != known.id):
                    return record
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return None
                await asyncio.wait({expected.future}, timeout=min(POLL_SECONDS, remaining))
        finally:
            if self._expected.get(key) is expected:
                del self._expected[key]

    async def stored(self, partner_id: str, as2_message_id: str) -> ReceiptRecord | None:
        """An MDN already stored for this Message-ID (by this node or another), if any."""
        return await asyncio.to_thread(self.store.receipt_for, "received", partner_id, as2_message_id)

    async def record(self, partner_id: str, as2_message_id: str, mdn: Mdn, *, mode: str, content_type: str,
                     body: bytes, mic_ok: bool | None, delivery_id: str | None) -> ReceiptRecord:
        """Store a partner's MDN durably (it is the proof of delivery) and return it as it arrived.

        The store keeps the first MDN per Message-ID; the record returned describes this one,
        so a retry's positive MDN is not judged by an earlier negative one.
        """
        disposition = disposition_text(mdn)
        record = await self.write(
            self.store.add_receipt, direction="received", partner=partner_id, as2_message_id=as2_message_id,
            disposition=disposition, signed=mdn.signed, mode=mode, delivery_id=delivery_id, mic=mic_text(mdn),
            mic_ok=mic_ok, entity=mdn_entity(content_type, body), durable=True)
        return dataclasses.replace(record, disposition=disposition, mic=mic_text(mdn), mic_ok=mic_ok,
                                   signed=mdn.signed)

    # ------------------------------------------------------------------ our AS2 endpoint's side

    async def accept(self, partner: Any, content_type: str, body: bytes) -> tuple[int, str]:
        """An async MDN a partner POSTed to us: check it, store it, wake its send. Returns (HTTP status, text)."""
        settings = partner.as2
        try:
            mdn = await asyncio.to_thread(parse_mdn, content_type, body, trusted=settings.certificates,
                                          require_signature=settings.mdn_signed)
        except As2Error as exc:
            return await self._refuse(partner.id, 400, f"cannot read the MDN from {partner.id}: {exc}")
        if not mdn.original_message_id:
            return await self._refuse(partner.id, 400, f"the MDN from {partner.id} has no Original-Message-ID")
        message_id = normalize_message_id(mdn.original_message_id)
        key = (partner.id, message_id)
        expected = self._expected.get(key)
        if expected is None and not self._ours(message_id):
            return await self._refuse(partner.id, 404, f"{message_id} is not a message we sent to {partner.id}")
        mic_ok = None
        delivery_id = expected.delivery_id if expected is not None else None
        if expected is not None and expected.mic is not None and expected.mic_algorithm is not None:
            mic_ok = mdn.mic_matches(expected.mic, expected.mic_algorithm)
        else:   # sent by another node (or before a restart): the MIC it stored
            sent = await asyncio.to_thread(self.store.sent_mic, partner.id, message_id)
            if sent is not None:
                mic_ok = mdn.mic_matches(sent[0], sent[1])
                delivery_id = sent[2]
        record = await self.record(partner.id, message_id, mdn, mode="async", content_type=content_type, body=body,
                                   mic_ok=mic_ok, delivery_id=delivery_id)
        if expected is not None and not expected.future.done():
            expected.future.set_result(record)
        log.info("async MDN received", partner=partner.id, as2_message_id=message_id,
                 delivery_id=record.delivery_id, disposition=record.disposition, mic_ok=mic_ok,
                 waiting=expected is not None)
        return 200, "MDN received"

    def _ours(self, message_id: str) -> bool:
        """Is this one of the Message-IDs our connector writes (``<gw-KEY@OUR-AS2-ID>``)?"""
        return message_id.startswith("<gw-") and message_id.endswith(f"@{self.our_as2_id}>")

    async def _refuse(self, partner_id: str, status: int, text: str) -> tuple[int, str]:
        log.warning("async MDN refused", partner=partner_id, status=status, error=text)
        await self.write(self.store.event, "mdn-received", "error", partner=partner_id, detail=text)
        return status, text
