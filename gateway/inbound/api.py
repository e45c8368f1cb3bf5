"""The document API for internal systems: POST canonical documents for a partner, GET what became of them.

Routes (on the gateway's HTTP listener, see gateway/openapi.json):

    POST /api/v1/documents           map canonical JSON to the partner's EDI and queue it (201, or 200 on a
                                     repeated Idempotency-Key)
    GET  /api/v1/documents/{id}      queued / sent / dead / mdn / acknowledged, with the delivery's attempts
    GET  /api/v1/openapi.json        the OpenAPI 3.1 description (no token needed)
    GET  /api/v1/schemas/{name}      the canonical JSON Schemas it refers to (no token needed)

Every other request needs ``Authorization: Bearer <token>`` with a token of gateway.toml
``[api] tokens``; tokens are compared in constant time and never logged (the caller is named
by its reference, e.g. ``env:ERP_API_TOKEN``). The flow is ``gateway send --document``'s:
compose (check + map) off the loop, then ``Store.submit_interchange`` on the store writer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import math
import re
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from .. import canonical
from ..callbacks import document_status
from ..compose import compose_documents
from ..config import Deployment
from ..edi.serialize import render
from ..errors import GatewayError, IdempotencyConflict, StoreError, ValidationError
from ..model import Channel
from ..retry import RateLimit
from ..store.submissions import Submission
from ..writer import threaded_write

log = structlog.get_logger("gateway.api")

PREFIX = "/api/v1"
OPENAPI_FILE = Path(__file__).resolve().parents[1] / "openapi.json"
_REQUEST_KEYS = ("partner", "type", "document", "documents")
_IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,200}\Z")     # printable ASCII, no spaces
_MESSAGE_ID = re.compile(r"msg_[0-9a-f]{20}\Z")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")

Write = Callable[..., Awaitable[Any]]


class ApiError(Exception):
    """An answer other than success: HTTP status and the ``errors`` lines of the JSON body."""

    def __init__(self, status: int, errors: list[str], headers: dict[str, str] | None = None) -> None:
        super().__init__("; ".join(errors))
        self.status = status
        self.errors = errors
        self.headers = headers or {}

    def response(self) -> web.Response:
        return web.json_response({"errors": self.errors}, status=self.status, headers=self.headers)


class DocumentApi:
    """Handlers of the document API; add :meth:`routes` to the HTTP server before it starts."""

    def __init__(self, deployment: Deployment, store: Any, write: Write | None = None, *,
                 on_queued: Callable[[], None] | None = None) -> None:
        self.deployment = deployment
        self.store = store
        self.write = write or threaded_write
        self.on_queued = on_queued          # e.g. wake the delivery worker
        api = deployment.settings.api
        self._tokens = [(ref, value.encode()) for ref, value in zip(api.token_refs, api.tokens)]
        self.max_documents = api.max_documents
        self.rate_limit = api.rate_limit
        self._rates: dict[str, RateLimit] = {}     # per token reference
        self._openapi = OPENAPI_FILE.read_bytes()

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post(f"{PREFIX}/documents", self.post_document),
            web.get(f"{PREFIX}/documents/{{id}}", self.get_document),
            web.get(f"{PREFIX}/openapi.json", self.openapi),
            web.get(f"{PREFIX}/schemas/{{name}}", self.schema),
        ]

    # ------------------------------------------------------------------ authentication

    def _caller(self, request: web.Request) -> str:
        """The reference of the bearer token presented (e.g. "env:ERP_API_TOKEN"); ApiError 401 otherwise.

        A token over its ``[api] rate_limit`` gets ApiError 429 with Retry-After.
        """
        scheme, _, presented = request.headers.get("Authorization", "").partition(" ")
        found = ""
        if scheme.lower() == "bearer" and presented.strip():
            offered = presented.strip().encode()
            for ref, token in self._tokens:   # every token is compared: the time does not tell which matched
                if hmac.compare_digest(offered, token) and not found:
                    found = ref
        if not found:
            raise ApiError(401, ["missing or unknown bearer token (Authorization: Bearer <token>)"],
                           {"WWW-Authenticate": 'Bearer realm="gateway"'})
        limit = self._rates.setdefault(found, RateLimit(self.rate_limit))
        now = time.monotonic()
        if limit.available(now) < 1:
            wait = max(1, math.ceil(limit.wait(now)))
            raise ApiError(429, [f"too many requests for this token (limit {self.rate_limit:g}/s): retry in {wait} s"],
                           {"Retry-After": str(wait)})
        limit.take(now)
        return found

    # ------------------------------------------------------------------ POST /documents

    async def post_document(self, request: web.Request) -> web.Response:
        try:
            caller = self._caller(request)
            return await self._submit(request, caller)
        except ApiError as exc:
            return exc.response()

    async def _submit(self, request: web.Request, caller: str) -> web.Response:
        key = request.headers.get("Idempotency-Key")
        if key is not None and not _IDEMPOTENCY_KEY.match(key):
            raise ApiError(400, ["Idempotency-Key: 1 to 200 printable ASCII characters without spaces"])
        try:
            body = json.loads(await request.read())
        except (ValueError, UnicodeDecodeError) as exc:
            raise ApiError(400, [f"(root): the body is not JSON: {exc}"]) from None
        partner_id, document_type, bodies = self._request_of(body)
        partner = self.deployment.partners.get(partner_id)
        if partner is None:
            raise ApiError(404, [f"partner: unknown partner {partner_id!r}"])
        if not partner.enabled:
            raise ApiError(422, [f"partner: {partner_id} is disabled in {partner.file}"])
        target = self.deployment.reply_target(partner)
        if target is None:
            raise ApiError(422, [f"partner: {partner_id} has no outbound channel (set [as2] url, [sftp_remote] "
                                 f"upload_dir or an [sftp] account in {partner.file})"])
        at = time.time()
        request_sha256 = hashlib.sha256(json.dumps([partner_id, document_type, bodies], sort_keys=True,
                                                   separators=(",", ":")).encode()).hexdigest()
        # Schema checks (~30 ms for a large invalid document) and mapping are CPU work: off the loop.
        composed = await asyncio.to_thread(self._compose, partner, document_type, bodies, at)
        store_key = None
        if key is not None:   # the store namespaces it by partner; the caller's token namespaces it further
            store_key = "api:" + hashlib.sha256(f"{caller}\0{key}".encode()).hexdigest()[:32]
        number = _UNSAFE_NAME.sub("_", composed.numbers[0])[:40].strip("._") if composed.numbers else ""
        filename = f"{document_type}-{number or 'document'}.{'x12' if composed.envelope.format == 'x12' else 'edi'}"
        try:
            message, delivery_id = await self.write(
                self.store.submit_interchange, partner=partner.id, target=target, format=composed.envelope.format,
                build=lambda next_number: render(composed.envelope, composed.messages, next_number),
                filename=filename, document_type=document_type, idempotency_key=store_key, channel=Channel.API,
                standard=composed.standard, expect_ack_within=self.deployment.expect_ack_seconds(partner),
                submission=Submission(caller, request_sha256, self.deployment.settings.api.callback_target(caller)),
                number=", ".join(composed.numbers)[:200],
                now=at, durable=True)
        except IdempotencyConflict:   # the key was used when the partner's channel was another
            raise ApiError(409, [f"Idempotency-Key: {key!r} was used for {partner.id} when it was reached "
                                 f"through another channel than {target}; use a new key"]) from None
        except StoreError as exc:
            log.error("api submit failed", partner=partner.id, error=str(exc))
            raise ApiError(503, [f"the store cannot queue the document now: {exc}"]) from None
        except GatewayError as exc:   # render: a value the partner's format cannot carry
            raise ApiError(422, [str(exc)]) from None
        first = message.received_at == at   # a repeated key returns the first submission, made earlier
        if not first:
            earlier = await asyncio.to_thread(self.store.submission, message.id)
            if earlier is not None and earlier.request_sha256 != request_sha256:
                raise ApiError(422, [f"Idempotency-Key: {key!r} was used for another request (message "
                                     f"{message.id}); a repeat must send the same partner, type and documents"])
        if first and self.on_queued is not None:
            self.on_queued()
        log.info("api document queued" if first else "api document repeated", caller=caller, partner=partner.id,
                 type=document_type, message_id=message.id, delivery_id=delivery_id, interchange=message.interchange,
                 documents=len(bodies))
        location = f"{PREFIX}/documents/{message.id}"
        return web.json_response({"id": message.id, "status": "queued", "delivery": delivery_id,
                                  "interchange": message.interchange},
                                 status=201 if first else 200, headers={"Location": location})

    def _request_of(self, body: Any) -> tuple[str, str, list[Any]]:
        """Partner, type and document bodies of the request; ApiError 422 listing every problem."""
        if not isinstance(body, dict):
            raise ApiError(422, ["(root): must be a JSON object with partner, type and document (or documents)"])
        errors = [f"{name}: unknown key (allowed here: {', '.join(_REQUEST_KEYS)})"
                  for name in body if name not in _REQUEST_KEYS]
        partner, document_type = body.get("partner"), body.get("type")
        if not isinstance(partner, str) or not partner:
            errors.append("partner: missing (the partner id, e.g. \"ACME\")")
        if document_type not in canonical.DOCUMENT_TYPES:
            errors.append(f"type: must be one of {', '.join(canonical.DOCUMENT_TYPES)}, got {document_type!r}")
        bodies: list[Any] = []
        if ("document" in body) == ("documents" in body):
            errors.append("document: give one document, or a list in documents (not both, not neither)")
        elif "document" in body:
            bodies = [body["document"]]
        elif not isinstance(body["documents"], list) or not body["documents"]:
            errors.append("documents: must be a non-empty list of documents")
        elif len(body["documents"]) > self.max_documents:
            errors.append(f"documents: at most {self.max_documents} documents in one request "
                          f"(got {len(body['documents'])})")
        else:
            bodies = body["documents"]
        if errors:
            raise ApiError(422, errors)
        return partner, document_type, bodies

    def _compose(self, partner: Any, document_type: str, bodies: list[Any], at: float) -> Any:
        """The mapped interchange, or ApiError 422 with every schema problem or the mapping/routing problem."""
        try:
            return compose_documents(self.deployment, partner, document_type, bodies,
                                     datetime.fromtimestamp(at, timezone.utc))
        except ValidationError as exc:
            raise ApiError(422, exc.issues) from None
        except GatewayError as exc:   # no outbound mapping, no identity to write as, a mapping failure
            raise ApiError(422, [str(exc)]) from None

    # ------------------------------------------------------------------ GET /documents/{id}

    async def get_document(self, request: web.Request) -> web.Response:
        try:
            caller = self._caller(request)
            message_id = request.match_info["id"]
            found = (await asyncio.to_thread(document_status, self.store, message_id)
                     if _MESSAGE_ID.match(message_id) else None)
            if found is None:
                raise ApiError(404, [f"id: no document sent through the API or `gateway send` has id {message_id!r}"])
        except ApiError as exc:
            return exc.response()
        except StoreError as exc:
            log.error("api status failed", error=str(exc), caller=caller)
            return ApiError(503, [f"the store cannot answer now: {exc}"]).response()
        return web.json_response(found)

    # ------------------------------------------------------------------ description

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self._openapi, content_type="application/json")

    async def schema(self, request: web.Request) -> web.Response:
        name = request.match_info["name"].removesuffix(".schema.json").removesuffix(".json")
        if name not in canonical.SCHEMAS:
            return ApiError(404, [f"name: no canonical schema {name!r} "
                                  f"(known: {', '.join(sorted(canonical.SCHEMAS))})"]).response()
        return web.json_response(canonical.SCHEMAS[name], content_type="application/schema+json")
