"""The gateway's HTTP listener: one aiohttp application that AS2 (and later the API and dashboard) add routes to.

HTTPS when ``[http] tls_cert``/``tls_key`` are set (TLS 1.2 or newer). Every request is logged
once with its method, path, status, client address and duration -- never its headers, which
carry partners' Authorization credentials, nor its query string.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Awaitable, Callable, Iterable

import structlog
from aiohttp import web

from .config_as2 import HttpSettings
from .errors import GatewayError

log = structlog.get_logger("gateway.http")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _access_log(request: web.Request, handler: Handler) -> web.StreamResponse:
    started = time.monotonic()
    status = 500  # an exception that is not an HTTP answer becomes aiohttp's 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        log.info("http", method=request.method, path=request.path, status=status, remote=request.remote,
                 ms=round((time.monotonic() - started) * 1000, 1))


def server_ssl_context(cert: str, key: str) -> ssl.SSLContext:
    """A server-side TLS context for the certificate chain and key (PEM files), TLS 1.2 minimum."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert, key)
    return context


class HttpServer:
    """An aiohttp application bound to ``settings.host:port`` (port 0 picks a free port)."""

    def __init__(self, settings: HttpSettings, *, shared: bool = False) -> None:
        self.settings = settings
        self.shared = shared   # several processes listen on the port (SO_REUSEPORT): the kernel spreads connections
        # Handlers that stream their body (AS2) enforce the cap themselves; this bounds the others.
        self.app = web.Application(middlewares=[_access_log], client_max_size=settings.max_body_bytes)
        self._runner: web.AppRunner | None = None

    def add_routes(self, routes: Iterable[web.AbstractRouteDef]) -> None:
        """Register routes; only before :meth:`start` (aiohttp freezes the router then)."""
        self.app.add_routes(routes)

    async def start(self) -> None:
        """Bind the socket and start serving."""
        s = self.settings
        context = server_ssl_context(str(s.tls_cert), str(s.tls_key)) if s.tls_cert and s.tls_key else None
        # aiohttp closes a connection whose handler still waits for a request head when its keep-alive
        # time is up -- armed when the connection opens and after each answer -- so this bounds a
        # trickled ("slowloris") head by request_timeout, like the AS2 handler bounds a body.
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False,
                               keepalive_timeout=s.request_timeout)
        await runner.setup()
        try:
            await web.TCPSite(runner, s.host, s.port, ssl_context=context, reuse_port=self.shared or None).start()
        except OSError as exc:   # port taken, address not ours: a clear error, not a traceback
            await runner.cleanup()
            raise GatewayError(f"[http] cannot listen on {s.host}:{s.port}: {exc.strerror or exc}") from None
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        log.info("http listening", url=self.url)

    async def stop(self) -> None:
        """Stop accepting, let running requests finish (aiohttp's shutdown grace), close the socket."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    @property
    def port(self) -> int:
        """The port actually bound (useful with port 0)."""
        if self._runner is None or not self._runner.addresses:
            raise RuntimeError("the HTTP server is not started")
        return int(self._runner.addresses[0][1])

    @property
    def url(self) -> str:
        """The base URL the server is bound to, e.g. ``https://127.0.0.1:8443``."""
        scheme = "https" if self.settings.tls_cert and self.settings.tls_key else "http"
        host = self.settings.host
        return f"{scheme}://{f'[{host}]' if ':' in host else host}:{self.port}"
