"""The ``as2`` connector: sends a document to a trading partner as an AS2 message and settles it on the MDN.

One connector per partner with an AS2 ``url`` (target ``as2:<ID>``, built by the composition
root, not registered in CONNECTORS). The receipt decides the delivery: a positive MDN whose
Received-Content-MIC equals ours means delivered; a negative one, a wrong MIC, an unsigned
MDN where we asked for a signed one, or no MDN in time is retried (the partner may be
recovering). HTTP answers are classified like the ``rest`` connector's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import ssl
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog

from ..as2 import Outbound, build, encryption_certificate, mime, parse_mdn
from ..as2.cmsbase import mic_name
from ..errors import As2Error, GatewayError, PermanentDeliveryError, RetryableDeliveryError
from ..model import DeliveryJob
from .as2_receipts import ReceiptBook, is_positive, normalize_message_id, stored_mic_matches
from .rest import RETRYABLE_STATUS, retry_after_seconds

__all__ = ["As2Connector", "ReceiptBook"]

log = structlog.get_logger("gateway.outbound.as2")

MAX_MDN_BYTES = 1 << 20   # a synchronous MDN is a few KB; more is not an MDN


def _as2_name(as2_id: str) -> str:
    """An AS2 id as an AS2-From/AS2-To value: quoted when it has spaces (RFC 4130 §6.2)."""
    return f'"{as2_id}"' if " " in as2_id else as2_id


def _shown(url: str) -> str:
    """The URL without any user:password part, for logs and error texts."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()


async def _read_at_most(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The answer's body, stopping after ``limit`` bytes (``content.read(n)`` may return any part of it)."""
    data = bytearray()
    async for chunk in resp.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) >= limit:
            break
    return bytes(data)


class As2Connector:
    """Delivers documents to one partner over AS2: build, POST, then judge the MDN (sync, async or none)."""

    def __init__(self, partner: Any, deployment: Any, book: ReceiptBook) -> None:
        if partner.as2 is None or not partner.as2.url:
            raise GatewayError(f"partner {partner.id} has no AS2 url to send to")
        self.partner = partner
        self.as2 = partner.as2
        self.ours = deployment.settings.as2
        self.receipt_url = deployment.settings.http.base_url + "/as2"
        self.book = book
        self.url_shown = _shown(self.as2.url)
        self.ssl: ssl.SSLContext | bool = True
        if not self.as2.verify_tls:
            self.ssl = False
            log.warning("TLS verification is OFF for this partner (verify_tls = false)", partner=partner.id)
        elif self.as2.ca_file is not None:
            self.ssl = ssl.create_default_context(cafile=str(self.as2.ca_file))
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self.as2.timeout),
                connector=aiohttp.TCPConnector(ssl=self.ssl, limit=16),
            )
        return self._session

    def message_id(self, job: DeliveryJob) -> str:
        """The AS2 Message-ID of a delivery.

        Derived from the idempotency key, so every retry of one delivery (and a re-send after
        a crash) carries the same Message-ID and the partner can recognise it as a duplicate.
        """
        return f"<gw-{job.idempotency_key}@{self.ours.as2_id}>"

    def _build(self, job: DeliveryJob) -> Outbound:
        a = self.as2
        certificate = self._encryption_certificate() if a.encrypt else None
        return build(
            job.body, content_type=a.content_type, filename=job.filename or f"{job.document_id}.{job.document_type}",
            sign=self.ours.identities[0] if a.sign else None, digest=a.sign or "sha256",
            encrypt=[certificate] if certificate is not None else (), cipher=a.encrypt or "aes256-cbc",
            compress=a.compress or None, binary_transfer=a.binary_transfer,
            algorithm_protection=a.algorithm_protection,
        )

    def _encryption_certificate(self) -> Any:
        """The partner's newest certificate valid now (during a rollover they list old and new)."""
        cert = encryption_certificate(self.as2.certificates, dt.datetime.now(dt.UTC))
        if cert is not None:
            return cert
        raise PermanentDeliveryError(
            f"partner {self.partner.id}: none of its certificates is valid now; update [as2] certificates")

    def _headers(self, message_id: str, out: Outbound) -> dict[str, str]:
        a = self.as2
        headers = {
            "AS2-Version": "1.2",
            "AS2-From": _as2_name(self.ours.as2_id),
            "AS2-To": _as2_name(a.as2_id),
            "Message-ID": message_id,
            "Subject": f"AS2 message from {self.ours.as2_id} to {a.as2_id}",
            "Date": email.utils.formatdate(usegmt=True),
            "MIME-Version": "1.0",
            "Content-Type": out.content_type,
            **dict(out.headers),
        }
        if a.mdn != "none":
            headers["Disposition-Notification-To"] = self.receipt_url
            if a.mdn_signed:
                digest = a.sign or "sha256"
                micalg = mic_name(digest) if a.micalg_spelling == "rfc" else digest
                headers["Disposition-Notification-Options"] = (
                    f"signed-receipt-protocol=optional, pkcs7-signature; signed-receipt-micalg=optional, {micalg}")
        if a.mdn == "async":
            headers["Receipt-Delivery-Option"] = self.receipt_url
        return headers

    async def send(self, job: DeliveryJob) -> int | None:
        """Send one document; returns the HTTP status (None when an earlier MDN already settled it)."""
        pid = self.partner.id
        message_id = self.message_id(job)
        bound = log.bind(partner=pid, delivery_id=job.delivery_id, as2_message_id=message_id)
        known = await self.book.stored(pid, message_id) if job.attempt > 1 and self.as2.mdn != "none" else None
        try:
            out = await asyncio.to_thread(self._build, job)
        except As2Error as exc:   # settings the AS2 core refuses (e.g. a non-RSA certificate to encrypt to)
            raise PermanentDeliveryError(f"cannot build the AS2 message for {pid}: {exc}") from None
        # An earlier attempt's MDN settles this one only if its MIC is this content's (not its own check's verdict).
        if known is not None and is_positive(known.disposition) and self._mic_ok(None, known.mic, out):
            # The MDN of an earlier attempt arrived after it gave up (or on another node).
            bound.info("already acknowledged by an earlier MDN; not sent again", disposition=known.disposition)
            return None
        if self.as2.mdn == "async":
            await self.book.expect(pid, message_id, mic=out.mic, mic_algorithm=out.mic_algorithm,
                                   delivery_id=job.delivery_id)
        try:
            status, content_type, body = await self._post(self._headers(message_id, out), out.body)
            if self.as2.mdn == "sync":
                await self._settle_sync(job, message_id, out, content_type, body)
            elif self.as2.mdn == "async":
                record = await self.book.wait(pid, message_id, self.ours.mdn_timeout, known=known)
                if record is None:
                    raise RetryableDeliveryError(f"no MDN from {pid} within {self.ours.mdn_timeout:g} s "
                                                 f"for {message_id}", status=status)
                self._judge(message_id, record.disposition, self._mic_ok(record.mic_ok, record.mic, out),
                            signed=record.signed)
        finally:
            self.book.forget(pid, message_id)
        bound.info("sent over AS2", status=status, mdn=self.as2.mdn, mic=out.mic)
        return status

    async def _post(self, headers: dict[str, str], body: bytes) -> tuple[int, str, bytes]:
        """POST the message; returns (status, Content-Type, body) of a 2xx answer or raises a DeliveryError."""
        try:
            async with self._client().post(self.as2.url, data=body, headers=headers, allow_redirects=False) as resp:
                status = resp.status
                if not 200 <= status < 300:
                    snippet = (await resp.content.read(300)).decode("utf-8", "replace").strip()
                    retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
                else:
                    return status, resp.headers.get("Content-Type", ""), await _read_at_most(resp, MAX_MDN_BYTES + 1)
        except asyncio.TimeoutError:
            raise RetryableDeliveryError(f"no answer from {self.url_shown} within {self.as2.timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise RetryableDeliveryError(
                f"cannot reach {self.url_shown}: {exc.__class__.__name__}: {exc}") from None
        detail = f"{self.url_shown} answered HTTP {status}" + (f": {snippet}" if snippet else "")
        if status in RETRYABLE_STATUS or status >= 500:
            raise RetryableDeliveryError(detail, status=status, retry_after=retry_after)
        raise PermanentDeliveryError(detail, status=status)

    async def _settle_sync(self, job: DeliveryJob, message_id: str, out: Outbound, content_type: str,
                           body: bytes) -> None:
        """Read the MDN in the HTTP answer, store it, and raise unless it is positive with our MIC."""
        pid = self.partner.id
        kind = mime.content_type(content_type)[0] if content_type else ""
        if kind not in ("multipart/signed", "multipart/report") or not body.strip():
            raise RetryableDeliveryError(f"{pid} answered without an MDN for {message_id} "
                                         f"(Content-Type {kind or 'none'}, {len(body)} bytes)")
        if len(body) > MAX_MDN_BYTES:
            raise RetryableDeliveryError(f"{pid} answered {message_id} with {len(body)}+ bytes: not an MDN")
        try:
            mdn = await asyncio.to_thread(parse_mdn, content_type, body, trusted=self.as2.certificates,
                                          require_signature=self.as2.mdn_signed)
        except As2Error as exc:
            raise RetryableDeliveryError(f"the MDN from {pid} for {message_id} is not acceptable: {exc}") from None
        answered = normalize_message_id(mdn.original_message_id or "")
        if answered != message_id:
            raise RetryableDeliveryError(f"the MDN from {pid} answers {answered}, not {message_id}")
        mic_ok = mdn.mic_matches(out.mic, out.mic_algorithm)
        record = await self.book.record(pid, message_id, mdn, mode="sync", content_type=content_type, body=body,
                                        mic_ok=mic_ok, delivery_id=job.delivery_id)
        self._judge(message_id, record.disposition, self._mic_ok(mic_ok, record.mic, out), signed=mdn.signed)

    def _mic_ok(self, mic_ok: bool | None, stored_mic: str | None, out: Outbound) -> bool:
        """Does the MDN's MIC prove the partner got our exact content?

        An unsigned MDN we did not ask to be signed may leave the MIC out (RFC 4130 returns it
        for signed receipts); a MIC that is there must always match.
        """
        if stored_mic is None:
            return not self.as2.mdn_signed
        return mic_ok if mic_ok is not None else stored_mic_matches(stored_mic, out.mic, out.mic_algorithm)

    def _judge(self, message_id: str, disposition: str, mic_ok: bool, *, signed: bool) -> None:
        pid = self.partner.id
        if not is_positive(disposition):
            raise RetryableDeliveryError(f"partner {pid} answered {disposition} for {message_id}")
        if self.as2.mdn_signed and not signed:
            raise RetryableDeliveryError(f"partner {pid} sent an unsigned MDN for {message_id}; a signed one "
                                         "was requested")
        if not mic_ok:
            raise RetryableDeliveryError(f"the MDN from {pid} for {message_id} does not carry our MIC: the "
                                         "partner did not receive the exact content we sent")

    async def close(self) -> None:
        """Close the HTTP session and its connections."""
        if self._session is not None:
            await self._session.close()
