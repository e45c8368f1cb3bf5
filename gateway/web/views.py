"""The dashboard's application object: routes, rendering, login/logout, the overview and the partner pages."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
import structlog
from aiohttp import web

from .. import certstore
from ..config import Deployment
from ..config_as2 import certificate_warnings
from ..config_web import WebSettings
from ..store.tables import ALERT_SEVERITIES
from ..writer import threaded_write
from .auth import (LOGIN_COOKIE, PREFIX, LoginThrottle, Sessions, WebUser, action, page, safe_next, same_token,
                   see_other)
from .charts import OK_COLOUR, horizontal_bars, stacked_bars
from .transmissions import TransmissionViews

log = structlog.get_logger("gateway.web")

HERE = Path(__file__).resolve().parent
# The overview's windows: (label, seconds, bucket seconds).
WINDOWS = {"1h": (3600, 300), "24h": (86400, 3600), "7d": (7 * 86400, 6 * 3600), "30d": (30 * 86400, 86400)}
MAX_SERIES = 7   # chart series (partner/channel) shown; the rest add up to "other"
# Browsers get no inline scripts, no framing, no foreign resources.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                               "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

Write = Callable[..., Awaitable[Any]]


def when(epoch: float | None) -> str:
    """Epoch seconds as ``2026-11-26 10:00:00`` (UTC)."""
    if not epoch:
        return ""
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def percent(rate: float | None) -> str:
    return "–" if rate is None else f"{rate * 100:.1f}%"


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.1f} s" if value < 120 else f"{value / 60:.1f} min"


class WebDashboard(TransmissionViews):
    """The operators' dashboard under /ui/ on the gateway's HTTP listener: add :meth:`routes` before it starts.

    ``masking``: per partner id, the canonical-document fields viewers see as ``***``.
    ``on_queued``: called after something was queued (a retry, a replay), e.g. to wake the worker.
    """

    def __init__(self, deployment: Deployment, store: Any, settings: WebSettings, *, write: Write | None = None,
                 masking: Mapping[str, Sequence[str]] | None = None,
                 on_queued: Callable[[], None] | None = None) -> None:
        self.deployment = deployment
        self.store = store
        self.settings = settings
        self.write = write or threaded_write
        self.masking = {partner: tuple(paths) for partner, paths in (masking or {}).items()}
        self.on_queued = on_queued
        self.sessions = Sessions(store, self.write, settings)
        self.throttle = LoginThrottle(settings.max_failures, settings.lockout_seconds)
        self.templates = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE / "templates"),
                                            autoescape=True, undefined=jinja2.StrictUndefined)
        self.templates.filters.update(when=when, percent=percent, seconds=seconds)

    def routes(self) -> list[web.AbstractRouteDef]:
        """Every dashboard route; each handler checks the session and role itself (see auth.py)."""
        return [
            web.get(f"{PREFIX}/login", self.login_form),
            web.post(f"{PREFIX}/login", self.login),
            web.post(f"{PREFIX}/logout", self.logout),
            web.get(f"{PREFIX}/", self.overview),
            web.get(PREFIX, self.to_overview),
            web.get(f"{PREFIX}/partners", self.partners),
            web.get(f"{PREFIX}/partners/{{partner}}", self.partner),
            *self.transmission_routes(),
            web.static(f"{PREFIX}/static", HERE / "static", append_version=True),
        ]

    # ------------------------------------------------------------------ rendering

    def render(self, user: WebUser | None, template: str, *, status: int = 200, **context: Any) -> web.Response:
        html = self.templates.get_template(template).render(user=user, prefix=PREFIX, **context)
        return web.Response(text=html, status=status, content_type="text/html", headers=SECURITY_HEADERS)

    def refuse(self, request: web.Request, user: WebUser | None, status: int, reason: str) -> web.Response:
        """An error page (401/403/404/409...) that says why, without echoing anything the request sent."""
        if status in (401, 403):
            log.warning("web request refused", path=request.path, status=status, user=user.name if user else None,
                        remote=request.remote)
        return self.render(user, "error.html", status=status, reason=reason)

    async def to_overview(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPSeeOther(f"{PREFIX}/")

    # ------------------------------------------------------------------ login / logout

    async def login_form(self, request: web.Request, *, status: int = 200, problem: str = "") -> web.Response:
        if status == 200 and await self.sessions.user_of(request) is not None:
            raise web.HTTPSeeOther(safe_next(request.query.get("next")))
        token = request.cookies.get(LOGIN_COOKIE) or ""
        if not 20 <= len(token) <= 100:
            token = secrets.token_urlsafe(24)
        response = self.render(None, "login.html", status=status, problem=problem, login_token=token,
                               next=safe_next(request.query.get("next")))
        response.set_cookie(LOGIN_COOKIE, token, **self.sessions.cookie_options())
        return response

    async def login(self, request: web.Request) -> web.StreamResponse:
        """Check the form's login token, the address's throttle, then the password; open a session."""
        address = request.remote or "-"
        now = time.time()
        wait = self.throttle.locked_for(address, now)
        if wait:
            return await self.login_form(request, status=429, problem=f"Too many failed logins from your address: "
                                                                      f"try again in {wait:.0f} seconds.")
        form = await request.post()
        if not same_token(form.get("login_token"), request.cookies.get(LOGIN_COOKIE, "")):
            return await self.login_form(request, status=403, problem="The login form expired: please try again.")
        name = str(form.get("username", "")).strip()[:100]
        password = str(form.get("password", ""))
        user = await self.sessions.authenticate(name, password)
        if user is None:
            self.throttle.failed(address, now)
            log.warning("dashboard login failed", user=name, remote=address)
            await self.write(self.store.event, "login", "failed", detail=f"dashboard user {name!r} from {address}")
            return await self.login_form(request, status=401, problem="Wrong user name or password.")
        self.throttle.succeeded(address)
        response = see_other(safe_next(str(form.get("next", ""))))
        await self.sessions.open(response, user.name, user.role)
        response.del_cookie(LOGIN_COOKIE, path=PREFIX)
        log.info("dashboard login", user=user.name, role=user.role, remote=address)
        await self.write(self.store.event, "login", "ok", detail=f"dashboard user {user.name!r} ({user.role}) "
                                                                 f"from {address}")
        return response

    @action(role=None)
    async def logout(self, request: web.Request, user: WebUser, form: Any) -> web.StreamResponse:
        response = see_other(f"{PREFIX}/login")
        await self.sessions.close(response, user)
        await self.write(self.store.event, "logout", "ok", detail=f"dashboard user {user.name!r}")
        return response

    # ------------------------------------------------------------------ overview

    @page()
    async def overview(self, request: web.Request, user: WebUser) -> web.StreamResponse:
        window = request.query.get("window", "24h")
        if window not in WINDOWS:
            window = "24h"
        span, bucket = WINDOWS[window]
        until = time.time()
        since = until - span
        ov = await asyncio.to_thread(self.store.overview, since=since, until=until, bucket_seconds=bucket)
        alerts = sorted((await asyncio.to_thread(self.store.open_alerts)).values(),
                        key=lambda a: (ALERT_SEVERITIES.index(a.severity), -a.opened_at))   # most severe first
        return self.render(user, "overview.html", window=window, windows=list(WINDOWS), ov=ov, alerts=alerts,
                           **self._overview_figures(ov, bucket))

    def _overview_figures(self, ov: Any, bucket: float) -> dict[str, Any]:
        """Charts, tiles and tables of the overview page from ``Store.overview``."""
        starts = ov.bucket_starts
        fmt = "%H:%M" if bucket < 86400 / 4 else "%m-%d %H:%M" if bucket < 86400 else "%m-%d"
        labels = [dt.datetime.fromtimestamp(s, dt.timezone.utc).strftime(fmt) for s in starts]
        index = {start: n for n, start in enumerate(starts)}
        counts: dict[str, list[int]] = {}
        for point in ov.traffic:
            name = f"{point.partner or '(unknown)'} / {point.channel}"
            counts.setdefault(name, [0] * len(starts))[index.get(point.start, len(starts) - 1)] += point.messages
        ranked = sorted(counts.items(), key=lambda kv: -sum(kv[1]))
        series = ranked[:MAX_SERIES]
        if len(ranked) > MAX_SERIES:
            series.append(("other", [sum(v[i] for _, v in ranked[MAX_SERIES:]) for i in range(len(starts))]))
        traffic_chart = stacked_bars(labels, series, title="Messages per partner and channel")
        errors = [(f"{o.partner or '(unknown)'} {o.document_type or '(rejected)'}",
                   1 - (o.success_rate or 0.0), f"{o.failed} of {o.processed + o.failed}")
                  for o in ov.outcomes if o.processed + o.failed]
        errors.sort(key=lambda row: -row[1])
        error_chart = horizontal_bars(errors, title="Error rate by partner and document type", maximum=1.0)
        dead = [(f"{q.partner} → {q.target}", float(q.dead), str(q.dead)) for q in ov.queues if q.dead]
        dead_chart = horizontal_bars(dead, title="Dead letters per partner and target")
        latency = [(p.partner or "(unknown)", p.p95_latency, seconds(p.p95_latency))
                   for p in ov.partners if p.p95_latency is not None]
        latency_chart = horizontal_bars(latency, title="P95 receipt to delivery", colour=OK_COLOUR)
        documents = sum(p.documents for p in ov.partners)
        failed = sum(p.failed for p in ov.partners)
        dead_documents = sum(p.dead_documents for p in ov.partners)
        total = documents + failed
        tiles = {
            "messages": sum(p.messages for p in ov.partners),
            "success_rate": percent((documents - dead_documents) / total if total else None),
            "rejected": failed,
            "dead": sum(q.dead for q in ov.queues),
            "waiting": sum(q.queued + q.retrying for q in ov.queues),
            "p95": seconds(max((p.p95_latency for p in ov.partners if p.p95_latency is not None), default=None)),
        }
        certificates = certificate_warnings(self.deployment, dt.datetime.now(dt.UTC))
        overdue = [p for p in ov.partners if p.overdue_acks]
        return {"traffic_chart": traffic_chart, "error_chart": error_chart, "dead_chart": dead_chart,
                "latency_chart": latency_chart, "tiles": tiles, "certificates": certificates, "overdue": overdue}

    # ------------------------------------------------------------------ partners

    @page()
    async def partners(self, request: web.Request, user: WebUser) -> web.StreamResponse:
        now = time.time()
        ov = await asyncio.to_thread(self.store.overview, since=now - 86400, until=now, bucket_seconds=86400)
        summary = {p.partner: p for p in ov.partners}
        moment = dt.datetime.now(dt.UTC)
        rows = []
        for partner in self.deployment.partners.values():
            certs = partner.as2.certificates if partner.as2 is not None else ()
            rows.append({"partner": partner, "summary": summary.get(partner.id),
                         "channels": self._channels(partner),
                         "cert_days": min((certstore.days_left(c, moment) for c in certs), default=None)})
        return self.render(user, "partners.html", rows=rows, problems=self.deployment.problems)

    @page()
    async def partner(self, request: web.Request, user: WebUser) -> web.StreamResponse:
        partner = self.deployment.partners.get(request.match_info["partner"])
        if partner is None:
            return self.refuse(request, user, 404, "no such partner in this deployment")
        now = time.time()
        ov = await asyncio.to_thread(self.store.overview, since=now - 86400, until=now, bucket_seconds=3600)
        moment = dt.datetime.now(dt.UTC)
        window = self.deployment.settings.as2.expiry_warning_days
        certs = [certstore.describe(c, moment, window) for c in (partner.as2.certificates if partner.as2 else ())]
        recent = await asyncio.to_thread(self.store.search_transmissions, partner=partner.id, limit=10)
        return self.render(user, "partner.html", partner=partner, channels=self._channels(partner),
                           summary=next((p for p in ov.partners if p.partner == partner.id), None),
                           outcomes=[o for o in ov.outcomes if o.partner == partner.id],
                           queues=[q for q in ov.queues if q.partner == partner.id], certificates=certs,
                           settings=self._settings_rows(partner), recent=recent,
                           masking=self.masking.get(partner.id, ()))

    def _channels(self, partner: Any) -> list[str]:
        channels = ["inbox"] if partner.inbox is not None else []
        return channels + self.deployment.partner_channels(partner)

    def _settings_rows(self, partner: Any) -> list[tuple[str, str]]:
        """Read-only settings worth showing; secrets (passwords, hashes, keys) are never among them."""
        rows = [("name", partner.name), ("file", partner.file), ("enabled", str(partner.enabled)),
                ("inbox", str(partner.inbox or "–"))]
        rows += [(f"identifiers.{fmt}", ", ".join(ids)) for fmt, ids in partner.identifiers.items()]
        rows += [(f"mappings.{key}", value) for key, value in partner.mappings.items()]
        rows += [("route", f"{r.document} → {', '.join(r.targets)}" + (" (fallback)" if r.fallback else ""))
                 for r in partner.routes]
        if partner.as2 is not None:
            a = partner.as2
            rows += [("as2.id", a.as2_id), ("as2.url", a.url or "(receive only)"), ("as2.sign", a.sign or "none"),
                     ("as2.encrypt", a.encrypt or "none"), ("as2.compress", a.compress or "none"),
                     ("as2.mdn", a.mdn), ("as2.mdn_signed", str(a.mdn_signed)),
                     ("as2.basic_auth", "required" if a.basic_auth_user else "no")]
        if partner.sftp is not None:
            rows += [("sftp.username", partner.sftp.username),
                     ("sftp.keys", str(len(partner.sftp.authorized_keys))),
                     ("sftp.password", "set" if partner.sftp.password_hash else "no")]
        if partner.sftp_remote is not None:
            remote = partner.sftp_remote
            rows += [("sftp_remote.host", f"{remote.host}:{remote.port}"),
                     ("sftp_remote.upload_dir", remote.upload_dir or "–"),
                     ("sftp_remote.poll_dir", remote.poll_dir or "–")]
        edi = partner.edi
        rows += [("edi.acknowledge", str(edi.acknowledge)), ("edi.duplicates", edi.duplicates)]
        return rows
