"""The ``rest`` connector: POSTs canonical JSON with an Idempotency-Key and Standard Webhooks signature."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ssl
import time
from pathlib import Path
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

import aiohttp

from ..errors import GatewayError, PermanentDeliveryError, RetryableDeliveryError
from ..model import DeliveryJob
from .tls import (AUTH_KEYS, auth_headers, check_auth_options, client_ssl_context, scrub, secret_values,
                  tls_hint)

RETRYABLE_STATUS = frozenset({408, 425, 429})
_KNOWN = {"url", "timeout", "secret", "headers", "ca_file"} | AUTH_KEYS


def webhook_signature(secret: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks ``v1,<base64 HMAC-SHA256 of "id.timestamp.body">``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret, signed, hashlib.sha256).digest()).decode()


def secret_bytes(secret: str) -> bytes:
    """Standard Webhooks secrets look like ``whsec_<base64>``; anything else is used as UTF-8."""
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[6:])
    return secret.encode()


def retry_after_seconds(value: str | None) -> float | None:
    if value and value.strip().isdigit():
        return float(value.strip())
    return None


class RestConnector:
    """Delivers a document with ``POST url``; the target's answer decides the delivery's fate.

    2xx delivered; 408/425/429/5xx, timeouts and connection errors are retried; any other
    status (other 4xx, 3xx: redirects are not followed with a body) is permanent.
    """

    @classmethod
    def check_options(cls, options: dict[str, Any], home: Path,
                      resolve_secret: Callable[[str], str]) -> Iterable[tuple[str, str]]:
        """Validate url, timeout, secret reference, headers, ca_file and the auth options."""
        for key in options:
            if key not in _KNOWN:
                yield key, "unknown setting for a rest target"
        url = options.get("url")
        parts = urlsplit(url) if isinstance(url, str) else None
        if not parts or parts.scheme not in ("http", "https") or not parts.hostname:
            yield "url", "a rest target needs url = \"http(s)://host/path\""
            parts = None
        elif parts.password:
            yield "url", "put credentials in secret/headers references, not in the URL"
        timeout = options.get("timeout", 10)
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            yield "timeout", "must be a positive number of seconds"
        if "secret" in options:
            if not isinstance(options["secret"], str):
                yield "secret", "must be a string: env:NAME, file:PATH or a whsec_ value"
            else:
                try:
                    value = resolve_secret(options["secret"])
                    secret_bytes(value)
                except GatewayError as exc:
                    yield "secret", str(exc)
                except ValueError:
                    yield "secret", "a whsec_ secret must be base64 after the prefix"
        headers = options.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            yield "headers", "must be a table of header = \"value\" (values may be env:NAME references)"
        ca_file = options.get("ca_file")
        if ca_file is not None and not (isinstance(ca_file, str) and (home / ca_file).is_file()):
            yield "ca_file", "must name an existing PEM file (TLS verification cannot be turned off)"
        yield from check_auth_options(options, home, resolve_secret, scheme=parts.scheme if parts else None,
                                      host=(parts.hostname or "") if parts else "")

    def __init__(self, target: Any, home: Path) -> None:
        from ..config import resolve_secret

        opts = target.options
        self.url: str = opts["url"]
        self.timeout = aiohttp.ClientTimeout(total=float(opts.get("timeout", 10)))
        self.secret = secret_bytes(resolve_secret(opts["secret"])) if "secret" in opts else None
        self.headers = {k: resolve_secret(v) for k, v in opts.get("headers", {}).items()}
        self.headers.update(auth_headers(opts, resolve_secret))
        self.ssl: ssl.SSLContext | bool = client_ssl_context(opts, home, resolve_secret)
        self._client_cert = bool(opts.get("client_cert"))
        # Blanked out of any text a server sends back (an error page may echo the request).
        referenced = [resolve_secret(v) for v in opts.get("headers", {}).values() if v.startswith(("env:", "file:"))]
        self._secrets = sorted({*secret_values(opts, resolve_secret), *(v for v in referenced if len(v) >= 4)},
                               key=len, reverse=True)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                timeout=self.timeout,
                connector=aiohttp.TCPConnector(ssl=self.ssl, limit=64),
            )
        return self._session

    async def send(self, job: DeliveryJob) -> int | None:
        """POST the document; returns the HTTP status or raises a typed DeliveryError."""
        headers = {
            **self.headers,
            "Content-Type": "application/json",
            "Idempotency-Key": job.idempotency_key,
            "X-Gateway-Partner": job.partner,
            "X-Gateway-Document-Type": job.document_type,
            "X-Gateway-Attempt": str(job.attempt),
        }
        if self.secret is not None:
            timestamp = int(time.time())
            headers["webhook-id"] = job.idempotency_key
            headers["webhook-timestamp"] = str(timestamp)
            headers["webhook-signature"] = webhook_signature(self.secret, job.idempotency_key, timestamp, job.body)
        try:
            async with self._client().post(self.url, data=job.body, headers=headers, allow_redirects=False) as resp:
                snippet = (await resp.content.read(300)).decode("utf-8", "replace").strip()
                status = resp.status
                retry_after = retry_after_seconds(resp.headers.get("Retry-After"))
        except asyncio.TimeoutError:
            raise RetryableDeliveryError(f"no answer from {self.url} within {self.timeout.total:g} s") from None
        except aiohttp.ClientError as exc:
            hint = tls_hint(exc, self._client_cert, self.url)
            raise RetryableDeliveryError(scrub(f"cannot reach {self.url}: {exc.__class__.__name__}: {exc}{hint}",
                                               self._secrets)) from None
        if 200 <= status < 300:
            return status
        detail = scrub(f"{self.url} answered HTTP {status}" + (f": {snippet}" if snippet else ""), self._secrets)
        if status in RETRYABLE_STATUS or status >= 500:
            raise RetryableDeliveryError(detail, status=status, retry_after=retry_after)
        raise PermanentDeliveryError(detail, status=status)

    async def close(self) -> None:
        """Close the HTTP session and its connections."""
        if self._session is not None:
            await self._session.close()
