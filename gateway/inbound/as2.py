"""The AS2 receiving endpoint (RFC 4130): POST /as2 checks the sender, stores the message, answers with an MDN.

One request, in order: the AS2 headers name a known partner and this gateway; the partner's
IP allowlist and basic auth pass; the body streams to an anonymous temp file under
``var/tmp`` (size cap, time limit); a partner's MDN for one of OUR messages goes to
``on_mdn``; a Message-ID seen before is answered with the MDN already sent and never
processed twice; otherwise the message is opened (decrypt, decompress, verify) in a thread,
its payload -- or, when it cannot be opened, the body as received -- is committed to the
store, and only then is the MDN built, stored and sent (in the answer, or later by
:class:`~gateway.inbound.as2_mdn.AsyncMdnSender`). A store outage answers 503 without an MDN,
so the partner retries; a retry of a message stored just before a crash is recognised by its
Message-ID (``source_ref``) and answered without storing it again.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import mmap
import re
import tempfile
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import aiohttp
import structlog
from aiohttp import web

from ..as2 import Inbound, build_mdn, mime, parse, parse_disposition_options
from ..config import Deployment, Partner
from ..config_as2 import PartnerAs2
from ..errors import As2Error, StoreError
from ..model import Channel, MessageStatus, Received
from ..store import Store
from ..store.blobs import sha256_hex
from ..store.transfers import ReceiptRecord
from .as2_mdn import DEFAULT_RETRY_DELAYS, AsyncMdnSender, Write, mdn_url_problem, reply_headers, split_mdn_entity

log = structlog.get_logger("gateway.as2")

OnMessage = Callable[[str], None]
OnMdn = Callable[[Partner, str, bytes], Awaitable[tuple[int, str]]]
Body = bytes | mmap.mmap

# Kept with the body as "the request as received" (non-repudiation); never Authorization or cookies.
_TRANSPORT_HEADERS = (
    "AS2-Version", "AS2-From", "AS2-To", "Message-ID", "Date", "Subject", "From", "MIME-Version", "Content-Type",
    "Content-Disposition", "Content-Transfer-Encoding", "Disposition-Notification-To",
    "Disposition-Notification-Options", "Receipt-Delivery-Option", "EDIINT-Features", "Recipient-Address",
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NOT_TEXT = re.compile(r"[\ud800-\udfff]")   # aiohttp's surrogateescape for header bytes that are not UTF-8
_MAX_MESSAGE_ID = 998  # RFC 5322 line length; the receipts column holds 1000
_SNIFF_BYTES = 4096    # enough to see the first part's Content-Type of a multipart/signed body


def _quoted(value: str, limit: int = 200) -> str:
    """Partner data for texts and logs: repr() (no control characters get through), cut to ``limit``."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


def _as2_id(value: str) -> str:
    """An AS2-From/AS2-To value without its optional quotes (RFC 4130 allows a quoted-string)."""
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def _basic_auth_ok(header: str | None, as2: PartnerAs2) -> bool:
    """Constant-time check of an ``Authorization: Basic`` header against the partner's credentials."""
    scheme, _, encoded = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, colon, password = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except ValueError:   # bad base64 (binascii.Error), non-ASCII text, bytes that are not UTF-8
        return False
    user_ok = hmac.compare_digest(user.encode(), as2.basic_auth_user.encode())
    password_ok = hmac.compare_digest(password.encode(), as2.basic_auth_password.encode())
    return bool(colon) and user_ok and password_ok


def is_mdn(content_type: str, head: bytes) -> bool:
    """Is this body a receipt (multipart/report, possibly inside multipart/signed) rather than a message?

    ``head`` is the start of the body: a signed MDN is recognised by its first part's Content-Type.
    """
    ctype, params = mime.content_type(content_type)
    if ctype == "multipart/report":
        return params.get("report-type", "").lower() == "disposition-notification"
    boundary = params.get("boundary", "")
    if ctype != "multipart/signed" or not boundary:
        return False
    start = head.find(b"--" + boundary.encode("latin-1", "replace"))
    eol = head.find(b"\n", start)
    if start < 0 or eol < 0:
        return False
    try:
        headers, _ = mime.split_entity(mime.Span.of(head[eol + 1:]))
    except mime.NotMime:
        return False
    return mime.content_type(headers.get("content-type"))[0] == "multipart/report"


class _Refusal(Exception):
    """A request answered with an HTTP error and no MDN; logged and recorded as an "as2-refused" event."""

    def __init__(self, status: int, text: str, *, partner: str | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(text)
        self.status = status
        self.text = text
        self.partner = partner
        self.headers = headers or {}


@dataclass(frozen=True)
class _Request:
    """What a POST asks for, once its headers were checked."""

    partner: Partner
    as2: PartnerAs2
    message_id: str
    content_type: str
    content_disposition: str | None
    mode: str                    # the MDN: sync (in the answer), async (POST to url) or none
    url: str | None
    signed_mdn: bool
    mic_algorithms: Sequence[str]
    headers: bytes = field(repr=False)  # the AS2 headers as a MIME header block, for the transport record


class As2Receiver:
    """POST /as2 for partners' messages (and their async MDNs), plus the async MDN sender loop."""

    def __init__(self, deployment: Deployment, store: Store, write: Write, *, on_message: OnMessage,
                 on_mdn: OnMdn | None = None, mdn_retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
                 mdn_poll_seconds: float = 5.0, send_mdns: bool = True,
                 may_send_mdns: Callable[[], bool] = lambda: True) -> None:
        self.deployment = deployment
        self.settings = deployment.settings
        self.store = store
        self.write = write
        self.on_message = on_message
        self.on_mdn = on_mdn
        self.tmp_dir = self.settings.home / "var" / "tmp"
        self.send_mdns = send_mdns
        self.sender = AsyncMdnSender(deployment, store, write, retry_delays=mdn_retry_delays,
                                     poll_seconds=mdn_poll_seconds, may_run=may_send_mdns)

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/as2", self._post), web.get("/as2", self._info)]

    async def start(self) -> None:
        """Make the temp directory and start sending pending async MDNs (left from the last run, too)."""
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        if self.send_mdns:   # one sender per deployment: secondary processes leave it to the primary
            await self.sender.start()

    async def stop(self) -> None:
        await self.sender.stop()

    async def _info(self, request: web.Request) -> web.Response:
        return web.Response(text="AS2 endpoint: POST messages here\n")

    # ------------------------------------------------------------------------- one request

    async def _post(self, request: web.Request) -> web.Response:
        try:
            return await self._receive(request)
        except _Refusal as refusal:
            await self._refused(request, refusal)
            return web.Response(status=refusal.status, text=refusal.text + "\n", headers=refusal.headers)
        except StoreError as exc:  # nothing acknowledged: the partner sends it again later
            log.error("AS2 message not accepted: the store failed", remote=request.remote, error=str(exc))
            return web.Response(status=503, text="the gateway cannot store messages right now; retry later\n")
        except Exception:
            log.exception("AS2 request failed unexpectedly", remote=request.remote)
            return web.Response(status=500, text="internal error: the message was not accepted; retry later\n")

    async def _receive(self, request: web.Request) -> web.Response:
        req = self._check(request)
        async with self._body(request, req.partner.id) as body:
            if is_mdn(req.content_type, body[:_SNIFF_BYTES]):
                if self.on_mdn is None:
                    raise _Refusal(400, "this gateway sends no AS2 messages, so it expects no MDNs",
                                   partner=req.partner.id)
                status, text = await self.on_mdn(req.partner, req.content_type, bytes(body))
                return web.Response(status=status, text=text)
            original = await asyncio.to_thread(self.store.receipt_for, "sent", req.partner.id, req.message_id)
            if original is not None:
                return await self._duplicate(req, original)
            return await self._message(req, body)

    def _check(self, request: web.Request) -> _Request:
        """Who is sending, to whom, and may they: raises _Refusal, reads no body."""
        h = request.headers
        for name in ("AS2-From", "AS2-To", "Message-ID"):
            if not h.get(name, "").strip():
                raise _Refusal(400, f"missing {name} header")
            if mime.unsafe(h[name]):
                raise _Refusal(400, f"control character in the {name} header")
        for name in _TRANSPORT_HEADERS:   # everything we store or answer with must be text, not stray bytes
            if any(_NOT_TEXT.search(value) for value in h.getall(name, ())):
                raise _Refusal(400, f"the {name} header is not valid UTF-8 text")
        as2_from, as2_to, message_id = _as2_id(h["AS2-From"]), _as2_id(h["AS2-To"]), h["Message-ID"].strip()
        if as2_to != self.settings.as2.as2_id:
            raise _Refusal(404, f"AS2-To {_quoted(as2_to)} is not this gateway")
        partner = self.deployment.partner_for_as2(as2_from)
        if partner is None or partner.as2 is None:
            raise _Refusal(403, f"unknown AS2-From {_quoted(as2_from)}")
        as2 = partner.as2
        if not as2.ip_allowed(request.remote or ""):
            raise _Refusal(403, f"client address {request.remote} is not allowed for AS2-From {_quoted(as2_from)}",
                           partner=partner.id)
        if as2.basic_auth_user and not _basic_auth_ok(h.get("Authorization"), as2):
            raise _Refusal(401, "authentication required", partner=partner.id,
                           headers={"WWW-Authenticate": 'Basic realm="AS2", charset="UTF-8"'})
        if len(message_id) > _MAX_MESSAGE_ID:
            raise _Refusal(400, f"Message-ID longer than {_MAX_MESSAGE_ID} characters", partner=partner.id)
        url = h.get("Receipt-Delivery-Option", "").strip() or None
        mode = "none" if "Disposition-Notification-To" not in h else "async" if url else "sync"
        if mode == "async" and (problem := mdn_url_problem(url or "", as2.async_mdn_hosts)):
            raise _Refusal(400, problem, partner=partner.id)
        signed_mdn, mic_algorithms = parse_disposition_options(h.get("Disposition-Notification-Options", ""))
        block = "".join(f"{name}: {_CONTROL.sub(' ', value)}\r\n"
                        for name in _TRANSPORT_HEADERS for value in h.getall(name, ()))
        return _Request(partner=partner, as2=as2, message_id=message_id, content_type=h.get("Content-Type", ""),
                        content_disposition=h.get("Content-Disposition"), mode=mode,
                        url=url if mode == "async" else None, signed_mdn=signed_mdn, mic_algorithms=mic_algorithms,
                        headers=(block + "\r\n").encode("utf-8", "surrogateescape"))

    @contextlib.asynccontextmanager
    async def _body(self, request: web.Request, partner: str) -> AsyncIterator[Body]:
        """The request body, streamed to an unnamed temp file (gone when closed, even after a crash), mmap'd."""
        http = self.settings.http
        cap = http.max_body_bytes
        too_large = _Refusal(413, f"request body over the limit of {cap} bytes", partner=partner)
        if request.content_length is not None and request.content_length > cap:
            raise too_large
        # Creating the file touches the file system: off the event loop, like the rest of the disk work.
        with await asyncio.to_thread(tempfile.TemporaryFile, dir=self.tmp_dir) as fh:
            size = 0
            try:
                async with asyncio.timeout(http.request_timeout):
                    async for chunk in request.content.iter_chunked(2**16):
                        size += len(chunk)
                        if size > cap:
                            raise too_large
                        fh.write(chunk)  # to the page cache: microseconds, not worth a thread hop per chunk
            except TimeoutError:
                raise _Refusal(408, f"request body not received within {http.request_timeout:g} s",
                               partner=partner) from None
            except (aiohttp.ClientPayloadError, ConnectionResetError) as exc:
                # The sender went away mid-body: nothing was stored, the refusal event says why.
                raise _Refusal(400, f"incomplete request body: {exc}", partner=partner) from None
            if size == 0:
                yield b""
                return
            fh.flush()
            body = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            try:
                yield body
            finally:
                # Only a cancelled request can leave a thread reading the body: it is unmapped when that ends.
                with contextlib.suppress(BufferError):
                    body.close()

    async def _refused(self, request: web.Request, refusal: _Refusal) -> None:
        message_id = request.headers.get("Message-ID", "")
        detail = f"HTTP {refusal.status}: {refusal.text} (from {request.remote}" + \
            (f", Message-ID {_quoted(message_id)})" if message_id else ")")
        log.warning("AS2 request refused", status=refusal.status, reason=refusal.text, partner=refusal.partner,
                    remote=request.remote)
        try:
            await self.write(self.store.event, "as2-refused", "error", partner=refusal.partner, detail=detail)
        except StoreError as exc:
            log.error("cannot record a refused AS2 request", error=str(exc))

    # ------------------------------------------------------------------------- messages

    def _store_transport(self, req: _Request, body: Body) -> str:
        sha = self.store.blobs.put((req.headers, body), durable=False)
        if isinstance(body, mmap.mmap):
            body.madvise(mmap.MADV_DONTNEED)   # file-backed: re-read from the temp file when needed
        return sha

    def _open(self, req: _Request, body: Body) -> Inbound | As2Error:
        """Decrypt, decompress and verify (blocking: run in a thread); an As2Error is returned, not raised."""
        try:
            return parse(req.content_type, body, identities=self.settings.as2.identities,
                         trusted=req.as2.certificates, max_size=self.settings.as2.max_decompressed_bytes,
                         require_signature=req.as2.require_signature, require_encryption=req.as2.require_encryption,
                         mic_algorithms=req.mic_algorithms, content_disposition=req.content_disposition)
        except As2Error as exc:
            # The traceback's frames hold views of the mmap'd body, which could then not be closed.
            exc.__traceback__ = exc.__context__ = exc.__cause__ = None
            return exc.located(partner=req.partner.id, file=f"AS2 message {_quoted(req.message_id)}")

    async def _message(self, req: _Request, body: Body) -> web.Response:
        # The request as received (an audit copy, not what the MDN acknowledges: no fsync) is
        # stored whatever the outcome, from its parts (a large body is never copied), and before
        # the message is opened, so that its pages can be dropped first: a large message then
        # costs its plaintext in memory, not its ciphertext as well.
        stored = await asyncio.to_thread(self._store_transport, req, body)
        opened = await asyncio.to_thread(self._open, req, body)
        raw = opened.payload if isinstance(opened, Inbound) else bytes(body)
        filename = (opened.filename or "") if isinstance(opened, Inbound) else ""
        sha = await asyncio.to_thread(self.store.blobs.put, raw)  # the fsync'd part, off the writer thread
        result = await self.write(self.store.receive, Received(
            raw=raw, channel=Channel.AS2, partner=req.partner.id, filename=filename,
            source_ref="as2:" + req.message_id, raw_sha256=sha), durable=True)
        message = result.message
        fresh = message.status == MessageStatus.RECEIVED.value
        if isinstance(opened, As2Error):
            if fresh:  # a recovered message may have crashed before this was recorded
                await self.write(self.store.record_failed, message.id, opened)
            log.warning("AS2 message could not be opened", partner=req.partner.id, message_id=message.id,
                        as2_message_id=req.message_id, error=str(opened))
            disposition, mic, mic_algorithm = f"processed/error: {opened.disposition}", None, None
        else:
            if fresh and not result.recovered:
                self.on_message(message.id)
            log.info("AS2 message received", partner=req.partner.id, message_id=message.id,
                     as2_message_id=req.message_id, size=len(raw), recovered=result.recovered,
                     duplicate_of=result.duplicate_of, mdn=req.mode)
            disposition, mic, mic_algorithm = "processed", opened.mic, opened.mic_algorithm
        return await self._acknowledge(req, message.id, disposition, mic, mic_algorithm, stored)

    async def _acknowledge(self, req: _Request, message_id: str, disposition: str, mic: str | None,
                           mic_algorithm: str | None, transport_sha256: str) -> web.Response:
        """Build the MDN, store it (durably, before anyone sees it), then answer or queue it."""
        ours = self.settings.as2
        sign = ours.identities[0] if req.signed_mdn else None
        content_type, mdn = await asyncio.to_thread(
            build_mdn, original_message_id=req.message_id, our_as2_id=ours.as2_id, partner_as2_id=req.as2.as2_id,
            mic=mic, mic_algorithm=mic_algorithm, disposition=disposition, sign=sign,
            digest=req.mic_algorithms[0] if req.mic_algorithms else "sha256")
        entity = mime.header_block([("Content-Type", content_type)]) + mdn
        await asyncio.to_thread(self.store.blobs.put, entity)
        receipt = await self.write(
            self.store.add_receipt, direction="sent", partner=req.partner.id, as2_message_id=req.message_id,
            message_id=message_id, disposition=disposition, mic=mic, signed=sign is not None, mode=req.mode,
            url=req.url, entity=entity, transport_sha256=transport_sha256, status="pending" if req.mode == "async" else "done",
            durable=True)
        if receipt.blob_sha256 != sha256_hex(entity):  # a concurrent copy of the request stored its MDN first
            return await self._duplicate(req, receipt)
        return self._answer(req, req.mode, entity, disposition)

    async def _duplicate(self, req: _Request, original: ReceiptRecord) -> web.Response:
        """A Message-ID already answered: the same MDN again, nothing processed."""
        await self.write(self.store.event, "received", "duplicate", message_id=original.message_id,
                         partner=req.partner.id,
                         detail=f"AS2 Message-ID {_quoted(req.message_id)} was received before: answered with "
                         f"the original MDN ({original.disposition}), not processed again")
        log.info("AS2 message received again", partner=req.partner.id, as2_message_id=req.message_id,
                 message_id=original.message_id)
        if req.mode == "async" and original.url:
            await self.write(self.store.requeue_async_mdn, original.id, reason="the partner sent the message again")
            self.sender.wake()
            return self._answer(req, "async", b"")
        if original.blob_sha256 is None:
            raise StoreError(f"the MDN for AS2 Message-ID {_quoted(req.message_id)} has no stored entity")
        entity = await asyncio.to_thread(self.store.blobs.get, original.blob_sha256)
        # An async request whose original MDN went in the answer gets it in the answer again.
        return self._answer(req, "sync" if req.mode == "async" else req.mode, entity, original.disposition)

    def _answer(self, req: _Request, mode: str, entity: bytes, disposition: str = "") -> web.Response:
        """The HTTP answer: the MDN itself (sync), or a short text once the MDN is stored (async, none)."""
        if mode == "sync":
            content_type, body = split_mdn_entity(entity)
            headers = {**reply_headers(self.settings.as2.as2_id, req.as2.as2_id), "Content-Type": content_type}
            return web.Response(status=200, body=body, headers=headers)
        if mode == "async":
            self.sender.wake()
            return web.Response(text="message received; the MDN follows asynchronously\n")
        return web.Response(text=f"message received{f' ({disposition})' if disposition else ''}\n")
