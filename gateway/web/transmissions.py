"""Dashboard pages and actions for transmissions: search, one transmission, payloads, replay/retry/cancel."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from typing import Any
from urllib.parse import urlencode

import structlog
from aiohttp import web

from ..errors import GatewayError
from ..model import Channel, DeliveryStatus, MessageStatus
from ..writer import blocking
from .auth import PREFIX, WebUser, action, page, see_other
from .masking import masked_document

log = structlog.get_logger("gateway.web")

PAGE_SIZE = 50
RAW_SHOWN = 256 * 1024            # bytes of a raw payload shown inline; the download has them all
DIRECTIONS = ("inbound", "outbound")
# Query parameter -> search_transmissions keyword (text filters; times and choices are parsed apart).
TEXT_FILTERS = {"partner": "partner", "type": "document_type", "message_id": "as2_message_id",
                "interchange": "interchange", "number": "document_number"}
CHOICE_FILTERS = {"direction": DIRECTIONS, "channel": tuple(c.value for c in Channel),
                  "status": tuple(s.value for s in MessageStatus)}
_MESSAGE_ID = re.compile(r"msg_[0-9a-f]{20}\Z")
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")


class SearchProblem(ValueError):
    """A search form value that cannot be used (shown on the page, status 400)."""


def parse_when(value: str, name: str) -> float:
    """An ISO time from a ``datetime-local`` field (UTC unless it names an offset) as epoch seconds."""
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise SearchProblem(f"{name}: {value[:40]!r} is not a time like 2026-11-26T10:00") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def search_arguments(query: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """The keyword arguments of ``Store.search_transmissions`` from a query string, and the form's values."""
    form = {key: str(query.get(key, "")).strip()[:200] for key in (*TEXT_FILTERS, *CHOICE_FILTERS, "since", "until")}
    kwargs: dict[str, Any] = {}
    for key, keyword in TEXT_FILTERS.items():
        if form[key]:
            kwargs[keyword] = form[key]
    for key, allowed in CHOICE_FILTERS.items():
        if form[key]:
            if form[key] not in allowed:
                raise SearchProblem(f"{key} must be one of {', '.join(allowed)}")
            kwargs[key] = form[key]
    for key in ("since", "until"):
        if form[key]:
            kwargs[key] = parse_when(form[key], key)
    return kwargs, form


class TransmissionViews:
    """The transmission pages of :class:`gateway.web.views.WebDashboard` (a mixin: it uses its store and helpers)."""

    store: Any
    deployment: Any
    write: Any
    masking: dict[str, tuple[str, ...]]
    on_queued: Any

    def transmission_routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get(f"{PREFIX}/transmissions", self.search),
            web.get(f"{PREFIX}/transmissions/{{message_id}}", self.transmission),
            web.get(f"{PREFIX}/transmissions/{{message_id}}/raw", self.raw_payload),
            web.get(f"{PREFIX}/transmissions/{{message_id}}/documents/{{document_id}}", self.document_payload),
            web.post(f"{PREFIX}/transmissions/{{message_id}}/replay", self.replay),
            web.post(f"{PREFIX}/deliveries/{{delivery_id}}/retry", self.retry),
            web.post(f"{PREFIX}/deliveries/{{delivery_id}}/cancel", self.cancel),
        ]

    # ------------------------------------------------------------------ search

    @page()
    async def search(self, request: web.Request, user: WebUser) -> web.StreamResponse:
        problem = ""
        found: list[Any] = []
        try:
            kwargs, form = search_arguments(request.query)
            before = request.query.get("before") or None
            found = await asyncio.to_thread(self.store.search_transmissions, **kwargs, limit=PAGE_SIZE,
                                            before_id=before)
        except SearchProblem as exc:
            problem, form = str(exc), {k: str(v)[:200] for k, v in request.query.items()}
        except GatewayError as exc:   # a filter the store refused, an unknown paging cursor
            problem, form = str(exc), {k: str(v)[:200] for k, v in request.query.items()}
        given = {k: v for k, v in form.items() if v and k != "before"}
        next_page = "?" + urlencode({**given, "before": found[-1].id}) if len(found) == PAGE_SIZE else None
        first_page_url = "?" + urlencode(given) if "before" in request.query else None
        return self.render(user, "transmissions.html", status=400 if problem else 200, problem=problem,
                           form=form, found=found, next_page=next_page, partners=sorted(self.deployment.partners),
                           choices=CHOICE_FILTERS, first_page_url=first_page_url)

    # ------------------------------------------------------------------ one transmission

    async def _message(self, request: web.Request, user: WebUser) -> Any:
        try:
            return await asyncio.to_thread(self.store.message, request.match_info["message_id"][:100])
        except GatewayError:
            raise web.HTTPNotFound() from None

    @page()
    async def transmission(self, request: web.Request, user: WebUser) -> web.StreamResponse:
        try:
            message = await self._message(request, user)
        except web.HTTPNotFound:
            return self.refuse(request, user, 404, "no such transmission")
        store = self.store

        def gather() -> dict[str, Any]:
            documents = store.documents_of(message.id)
            deliveries = [d for doc in documents for d in store.deliveries(document_id=doc.id, limit=1000)]
            events = store.timeline(message.id)
            return {"documents": documents, "deliveries": deliveries, "events": events,
                    "mdns": store.receipts_of(message.id), "acks": store.acks_of(message.id)}

        facts = await asyncio.to_thread(gather)
        attempts: dict[str, list[Any]] = {}
        for event in facts["events"]:
            if event.delivery_id:
                attempts.setdefault(event.delivery_id, []).append(event)
        raw_text = ""
        if user.operator:
            raw = await asyncio.to_thread(store.raw, message.id)
            raw_text = raw[:RAW_SHOWN].decode("utf-8", errors="replace")
        payloads = []
        for doc in facts["documents"]:
            body = await asyncio.to_thread(store.document_body, doc.id)
            # Pretty-printed for everyone; viewers' copy has the partner's masked fields replaced.
            body = masked_document(body, () if user.operator else self.masking.get(doc.partner, ()))
            payloads.append((doc, body.decode("utf-8", errors="replace")))
        notice = {"replayed": "Replayed from the raw payload.", "retried": "The delivery is back in the queue.",
                  "cancelled": "The delivery was cancelled."}.get(request.query.get("done", ""), "")
        return self.render(user, "transmission.html", m=message, attempts=attempts, raw_text=raw_text,
                           raw_truncated=message.size > RAW_SHOWN, payloads=payloads, notice=notice,
                           retryable=DeliveryStatus.DEAD, cancellable=(DeliveryStatus.QUEUED, DeliveryStatus.RETRYING),
                           **facts)

    @page(role="operator")
    async def raw_payload(self, request: web.Request, user: WebUser) -> web.StreamResponse:
        """The raw bytes as received (operators only: they are not masked)."""
        try:
            message = await self._message(request, user)
        except web.HTTPNotFound:
            return self.refuse(request, user, 404, "no such transmission")
        raw = await asyncio.to_thread(self.store.raw, message.id)
        name = _SAFE_NAME.sub("_", message.filename or "")[:100] or f"{message.id}.edi"
        return self._payload(request, raw, "application/octet-stream", name)

    @page()
    async def document_payload(self, request: web.Request, user: WebUser) -> web.StreamResponse:
        """A mapped document's JSON (masked for viewers)."""
        try:
            message = await self._message(request, user)
        except web.HTTPNotFound:
            return self.refuse(request, user, 404, "no such transmission")
        documents = await asyncio.to_thread(self.store.documents_of, message.id)
        doc = next((d for d in documents if d.id == request.match_info["document_id"]), None)
        if doc is None:
            return self.refuse(request, user, 404, "no such document in this transmission")
        body = await asyncio.to_thread(self.store.document_body, doc.id)
        if not user.operator:
            body = masked_document(body, self.masking.get(doc.partner, ()))
        return self._payload(request, body, "application/json", _SAFE_NAME.sub("_", f"{doc.type}-{doc.id}")[:120] + ".json")

    @staticmethod
    def _payload(request: web.Request, body: bytes, download_type: str, filename: str) -> web.Response:
        # Inline as text/plain (never rendered as HTML); ?download=1 as an attachment.
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-store",
                   "Content-Security-Policy": "default-src 'none'; sandbox"}
        if request.query.get("download"):
            headers["Content-Disposition"] = f'attachment; filename="{filename}"'
            return web.Response(body=body, content_type=download_type, headers=headers)
        return web.Response(body=body, content_type="text/plain", charset="utf-8", headers=headers)

    # ------------------------------------------------------------------ operator actions

    async def _operator_event(self, user: WebUser, outcome: str, what: str, **ids: Any) -> None:
        """Every operator action is itself in the log: who did what, and how it went."""
        log.info("operator action", user=user.name, action=what, outcome=outcome, **ids)
        await self.write(self.store.event, "operator", outcome, detail=f"{user.name}: {what}", **ids)

    def _back(self, form: Any, done: str) -> web.Response:
        message_id = str(form.get("message", ""))
        if _MESSAGE_ID.match(message_id):
            return see_other(f"{PREFIX}/transmissions/{message_id}?done={done}")
        return see_other(f"{PREFIX}/transmissions")

    @action()
    async def replay(self, request: web.Request, user: WebUser, form: Any) -> web.StreamResponse:
        """Run the pipeline again on the stored raw bytes (``gateway replay``): same idempotency keys."""
        from ..app import run_pipeline   # the composition root imports this package: import at call time

        try:
            message = await self._message(request, user)
        except web.HTTPNotFound:
            return self.refuse(request, user, 404, "no such transmission")
        try:
            outcome = await asyncio.to_thread(run_pipeline, self.store, self.deployment, message.id,
                                              blocking(self.write, asyncio.get_running_loop()), replay=True)
        except GatewayError as exc:   # e.g. its raw bytes are damaged (BlobError): nothing can be sent from them
            await self._operator_event(user, "error", f"replay of {message.id}: {exc}", message_id=message.id)
            return self.refuse(request, user, 409, f"The replay was refused: {exc}")
        if outcome is None:
            error = (await asyncio.to_thread(self.store.message, message.id)).error or "rejected"
            await self._operator_event(user, "error", f"replay of {message.id}: {error}", message_id=message.id)
            return self.refuse(request, user, 409, f"The replay was rejected: {error}")
        await self._operator_event(user, "ok", f"replay of {message.id} from its raw payload "
                                               f"({len(outcome.documents)} documents)", message_id=message.id)
        if self.on_queued is not None:
            self.on_queued()
        return see_other(f"{PREFIX}/transmissions/{message.id}?done=replayed")

    @action()
    async def retry(self, request: web.Request, user: WebUser, form: Any) -> web.StreamResponse:
        """Put a dead delivery back in the queue (``gateway dlq retry``)."""
        delivery_id = request.match_info["delivery_id"][:100]
        try:
            await self.write(self.store.retry_dead, delivery_id)
        except GatewayError as exc:
            await self._operator_event(user, "error", f"retry of delivery {delivery_id}: {exc}", delivery_id=delivery_id)
            return self.refuse(request, user, 409, f"Not retried: {exc}")
        await self._operator_event(user, "ok", f"retry of dead delivery {delivery_id}", delivery_id=delivery_id)
        if self.on_queued is not None:
            self.on_queued()
        return self._back(form, "retried")

    @action()
    async def cancel(self, request: web.Request, user: WebUser, form: Any) -> web.StreamResponse:
        """Bury a queued or retrying delivery (it goes to the dead letters with "cancelled by <user>")."""
        delivery_id = request.match_info["delivery_id"][:100]
        try:
            await self.write(self.store.cancel_delivery, delivery_id, by=user.name)
        except GatewayError as exc:
            await self._operator_event(user, "error", f"cancel of delivery {delivery_id}: {exc}", delivery_id=delivery_id)
            return self.refuse(request, user, 409, f"Not cancelled: {exc}")
        await self._operator_event(user, "ok", f"cancel of delivery {delivery_id}", delivery_id=delivery_id)
        return self._back(form, "cancelled")
