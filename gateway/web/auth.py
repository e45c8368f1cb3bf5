"""Dashboard logins and sessions: scrypt passwords, hashed session tokens, CSRF tokens, roles, login throttling.

The session cookie holds a random token (HttpOnly, SameSite=Strict, Secure under TLS); the store
keeps only its SHA-256, so a database copy opens no session. Every form carries the session's
CSRF token, checked on every POST. Handlers are wrapped by :func:`page` (no session: redirect
to the login page; wrong role: 403) or :func:`action` (POST: no session 401, bad CSRF token
403, wrong role 403).
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from aiohttp import web

from ..config_sftp import check_password, hash_password
from ..config_web import WebSettings

SESSION_COOKIE = "gw_session"
LOGIN_COOKIE = "gw_login"          # double-submit token of the login form (there is no session yet)
PREFIX = "/ui"
TOUCH_EVERY = 60.0                 # seconds between last_seen_at writes of one session


@functools.cache
def _dummy_hash() -> str:
    """Checked against when the user does not exist, so a login takes as long either way."""
    return hash_password(secrets.token_hex(16))


@dataclass(frozen=True)
class WebUser:
    """The signed-in user of a request."""

    name: str
    role: str
    csrf: str = field(repr=False)
    token_sha256: str = field(repr=False)

    @property
    def operator(self) -> bool:
        return self.role == "operator"


def token_hash(token: str) -> str:
    """What the store keeps of a session token."""
    return hashlib.sha256(token.encode()).hexdigest()


def same_token(given: Any, expected: str) -> bool:
    """Constant-time comparison of a submitted token; anything but a non-empty string fails."""
    return isinstance(given, str) and bool(given) and hmac.compare_digest(given.encode(), expected.encode())


def safe_next(target: str | None) -> str:
    """Where to go after login: only a path under /ui/ (never another site: no open redirect)."""
    if target and target.startswith(PREFIX + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return PREFIX + "/"


_USER_KEY = web.RequestKey("web_user", object)   # the request's user, once looked up


def see_other(location: str) -> web.Response:
    """A 303 redirect to a path of ours (after a POST: the browser GETs it)."""
    return web.Response(status=303, headers={"Location": location})


class LoginThrottle:
    """Failed logins per client address over a window; an address with too many is locked out for the window."""

    MAX_ADDRESSES = 10_000   # bounded memory under a spray of addresses: the oldest entries go first

    def __init__(self, max_failures: int, window: float) -> None:
        self.max_failures = max_failures
        self.window = window
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str, now: float) -> deque[float]:
        failures = self._failures.get(address, deque())
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def locked_for(self, address: str, now: float) -> float:
        """Seconds until ``address`` may try again (0: it may now)."""
        failures = self._recent(address, now)
        if len(failures) < self.max_failures:
            return 0.0
        return max(0.0, failures[-self.max_failures] + self.window - now)

    def failed(self, address: str, now: float) -> None:
        failures = self._recent(address, now)
        failures.append(now)
        self._failures.pop(address, None)
        self._failures[address] = failures   # re-inserted: dict order is least recently failed first
        while len(self._failures) > self.MAX_ADDRESSES:
            del self._failures[next(iter(self._failures))]

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)


class Sessions:
    """Opens, finds and ends dashboard sessions in the store; sets and clears the cookie."""

    def __init__(self, store: Any, write: Callable[..., Awaitable[Any]], settings: WebSettings) -> None:
        self.store = store
        self.write = write
        self.settings = settings

    def cookie_options(self) -> dict[str, Any]:
        return {"path": PREFIX, "httponly": True, "samesite": "Strict", "secure": self.settings.secure_cookies}

    async def authenticate(self, name: str, password: str) -> Any:
        """The user record if ``name`` exists, is enabled and ``password`` matches; else None (same cost)."""
        user = await asyncio.to_thread(self.store.user, name) if name else None
        stored = user.password_hash if user is not None else _dummy_hash()
        ok = await asyncio.to_thread(check_password, password, stored)
        return user if ok and user is not None and not user.disabled else None

    async def open(self, response: web.StreamResponse, name: str, role: str) -> None:
        """Start a session for ``name``: a fresh token in the cookie, its hash and a CSRF token in the store."""
        token = secrets.token_urlsafe(32)
        now = time.time()
        expires = now + self.settings.session_hours * 3600
        await self.write(self.store.create_session, name, token_hash(token), secrets.token_urlsafe(32),
                         expires_at=expires, now=now)
        await self.write(self.store.note_login, name, now=now)
        response.set_cookie(SESSION_COOKIE, token, max_age=int(expires - now), **self.cookie_options())

    async def user_of(self, request: web.Request) -> WebUser | None:
        """The request's signed-in user, or None (no cookie, unknown or expired session, disabled user)."""
        if _USER_KEY in request:
            return request[_USER_KEY]
        token = request.cookies.get(SESSION_COOKIE)
        user = None
        if token and len(token) < 200:
            now = time.time()
            session = await asyncio.to_thread(self.store.session, token_hash(token), now=now)
            if session is not None:
                user = WebUser(session.user_name, session.role, session.csrf, session.token_sha256)
                if now - session.last_seen_at > TOUCH_EVERY:
                    await self.write(self.store.touch_session, session.token_sha256, now=now)
        request[_USER_KEY] = user
        return user

    async def close(self, response: web.StreamResponse, user: WebUser) -> None:
        await self.write(self.store.end_session, user.token_sha256)
        response.del_cookie(SESSION_COOKIE, path=PREFIX)


Handler = Callable[..., Awaitable[web.StreamResponse]]


def page(role: str | None = None) -> Callable[[Handler], Handler]:
    """A GET handler that needs a session (else 303 to the login page) and, if given, ``role`` (else 403)."""

    def decorate(method: Handler) -> Handler:
        @functools.wraps(method)
        async def wrapper(self: Any, request: web.Request) -> web.StreamResponse:
            user = await self.sessions.user_of(request)
            if user is None:
                raise web.HTTPSeeOther(f"{PREFIX}/login?next={quote(request.path_qs, safe='')}")
            if role is not None and user.role != role:
                return self.refuse(request, user, 403, f"this needs the {role} role")
            return await method(self, request, user)
        wrapper.web_kind = "page"   # type: ignore[attr-defined]  # read by the authorization tests
        return wrapper
    return decorate


def action(role: str | None = "operator") -> Callable[[Handler], Handler]:
    """A POST handler: a session (else 401), the session's CSRF token in the form (else 403), ``role`` (else 403)."""

    def decorate(method: Handler) -> Handler:
        @functools.wraps(method)
        async def wrapper(self: Any, request: web.Request) -> web.StreamResponse:
            user = await self.sessions.user_of(request)
            if user is None:
                return self.refuse(request, None, 401, "sign in first")
            form = await request.post()
            if not same_token(form.get("csrf"), user.csrf):
                return self.refuse(request, user, 403, "the form's security token is missing or stale: reload the page")
            if role is not None and user.role != role:
                return self.refuse(request, user, 403, f"this needs the {role} role")
            return await method(self, request, user, form)
        wrapper.web_kind = "action"   # type: ignore[attr-defined]
        return wrapper
    return decorate
