"""Helpers for the dashboard tests: a store with the dashboard's parts, a dashboard server, signing in."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiohttp

from gateway.config_as2 import HttpSettings
from gateway.config_sftp import hash_password
from gateway.config_web import WebSettings
from gateway.http import HttpServer
from gateway.web import WebDashboard

PASSWORDS = {"olivia": "operator-password-1", "victor": "viewer-password-12"}
ROLES = {"olivia": "operator", "victor": "viewer"}
MASKING = {"ACME": ("document.buyer.name", "document.lines.unit_price")}

def add_users(store: Any) -> None:
    for name, role in ROLES.items():
        store.add_user(name, role, hash_password(PASSWORDS[name]))


class Dashboard:
    """A WebDashboard served by a real HttpServer on 127.0.0.1 (port picked by the OS)."""

    def __init__(self, deployment: Any, store: Any, *, write: Any = None, on_queued: Any = None,
                 settings: WebSettings | None = None) -> None:
        self.web = WebDashboard(deployment, store, settings or WebSettings(enabled=True), write=write,
                                masking=MASKING, on_queued=on_queued)
        self.http = HttpServer(HttpSettings(host="127.0.0.1", port=0))
        self.http.add_routes(self.web.routes())

    async def __aenter__(self) -> "Dashboard":
        await self.http.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.stop()

    @property
    def url(self) -> str:
        return self.http.url + "/ui"


def client() -> aiohttp.ClientSession:
    """A client that keeps cookies for 127.0.0.1 (unsafe=True: an IP host) and never follows redirects itself."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


def hidden(html: str, name: str) -> str:
    match = re.search(rf'name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden {name} field in the page"
    return match.group(1)


async def sign_in(session: aiohttp.ClientSession, base: str, name: str, password: str | None = None) -> aiohttp.ClientResponse:
    """Fetch the login form (its token and cookie), post the credentials; returns the POST's response."""
    async with session.get(f"{base}/login") as form:
        token = hidden(await form.text(), "login_token")
    return await session.post(f"{base}/login", data={"login_token": token, "username": name,
                                                     "password": PASSWORDS.get(name, "") if password is None else password,
                                                     "next": "/ui/"}, allow_redirects=False)


async def csrf_of(session: aiohttp.ClientSession, base: str) -> str:
    async with session.get(f"{base}/") as page:
        assert page.status == 200, await page.text()
        return hidden(await page.text(), "csrf")


async def eventually(condition: Any, timeout: float, what: str) -> Any:
    """Await until ``condition()`` (run on a thread: it may read the store) is truthy; the loop keeps running."""
    deadline = time.monotonic() + timeout
    while not (value := await asyncio.to_thread(condition)):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await asyncio.sleep(0.05)
    return value
