"""Dashboard authorization over real HTTP (aiohttp client, no browser): sessions, roles, CSRF, login throttling."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from aiohttp import web

from gateway.app import run_pipeline
from gateway.config import load_deployment
from gateway.config_web import WebSettings
from gateway.model import Channel, Received
from gateway.store import Store
from gateway.store.tables import web_sessions
from gateway.web.auth import SESSION_COOKIE
from harness import SECRET, edifact_order, make_deployment
from web_helpers import PASSWORDS, Dashboard, add_users, client, csrf_of, hidden, sign_in


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A deployment and store with one processed order whose delivery is dead and one queued, plus two users."""
    home = make_deployment(tmp_path / "gw", "http://127.0.0.1:9/orders")
    monkeypatch.setenv("GW_HARNESS_SECRET", SECRET)
    deployment = load_deployment(home)
    store = Store.open(f"sqlite:///{tmp_path / 'gw.db'}", tmp_path / "blobs")
    add_users(store)
    ids, numbers = [], {}
    for po in ("PO-AUTH-1", "PO-AUTH-2"):
        raw = edifact_order(po)
        received = store.receive(Received(raw=raw, channel=Channel.INBOX, partner="ACME", filename=f"{po}.edi"))
        run_pipeline(store, deployment, received.message.id)
        ids.append(received.message.id)
        numbers[received.message.id] = po
    claimed = store.claim("test", limit=1, lease_seconds=30)
    store.bury(claimed[0].delivery_id, "test", error="HTTP 400: refused")
    queued = [d for d in store.deliveries(status="queued")][0]
    yield {"deployment": deployment, "store": store, "dead": claimed[0], "queued": queued,
           "message": claimed[0].message_id, "other": next(i for i in ids if i != claimed[0].message_id),
           "numbers": numbers}
    store.close()


def _path(template: str, world: dict) -> str:
    return (template.replace("{message_id}", world["message"]).replace("{delivery_id}", world["dead"].delivery_id)
            .replace("{document_id}", world["dead"].document_id).replace("{partner}", "ACME"))


def _routes(dash: Dashboard) -> tuple[list[str], list[str]]:
    """Every page (GET) and action (POST) path template the dashboard serves, by the decorator on its handler."""
    pages, actions = [], []
    for route in dash.web.routes():
        kind = getattr(getattr(route, "handler", None), "web_kind", None)
        if kind == "page":
            pages.append(route.path)
        elif kind == "action":
            actions.append(route.path)
        elif isinstance(route, web.StaticDef):
            assert route.prefix == "/ui/static"   # CSS and JS only
        else:   # only these may be reached without a session
            assert route.path in ("/ui/login", "/ui"), route
    return pages, actions


async def test_every_page_redirects_and_every_action_refuses_without_a_session(world: dict) -> None:
    async with Dashboard(world["deployment"], world["store"]) as dash, client() as http:
        pages, actions = _routes(dash)
        assert len(pages) >= 7 and len(actions) >= 4
        for template in pages:
            async with http.get(dash.http.url + _path(template, world), allow_redirects=False) as r:
                assert r.status == 303, template
                assert r.headers["Location"].startswith("/ui/login?next="), template
        for template in actions:
            async with http.post(dash.http.url + _path(template, world), data={"csrf": "x"},
                                 allow_redirects=False) as r:
                assert r.status == 401, template
        assert world["store"].deliveries(status="dead")[0].id == world["dead"].delivery_id   # nothing changed


async def test_every_action_refuses_a_viewer_and_a_post_without_a_valid_csrf_token(world: dict) -> None:
    store = world["store"]
    async with Dashboard(world["deployment"], store) as dash:
        _, actions = _routes(dash)
        async with client() as viewer, client() as operator:
            assert (await sign_in(viewer, dash.url, "victor")).status == 303
            assert (await sign_in(operator, dash.url, "olivia")).status == 303
            viewer_csrf, operator_csrf = await csrf_of(viewer, dash.url), await csrf_of(operator, dash.url)
            for template in actions:
                url = dash.http.url + _path(template, world)
                if not template.endswith("/logout"):
                    async with viewer.post(url, data={"csrf": viewer_csrf}, allow_redirects=False) as r:
                        assert r.status == 403, template
                for data in ({}, {"csrf": ""}, {"csrf": viewer_csrf}, {"csrf": operator_csrf + "x"}):
                    async with operator.post(url, data=data, allow_redirects=False) as r:
                        assert r.status == 403, (template, data)
            async with viewer.get(f"{dash.url}/transmissions/{world['message']}/raw", allow_redirects=False) as r:
                assert r.status == 403
    assert store.delivery(world["dead"].delivery_id).status.value == "dead"
    assert store.delivery(world["queued"].id).status.value == "queued"
    assert not [e for e in store.timeline(world["message"]) if e.step == "operator"]


async def test_operator_retries_and_cancels_and_each_action_is_logged_with_the_user(world: dict) -> None:
    store = world["store"]
    woken = []
    async with Dashboard(world["deployment"], store, on_queued=lambda: woken.append(1)) as dash, client() as op:
        await sign_in(op, dash.url, "olivia")
        csrf = await csrf_of(op, dash.url)
        dead = world["dead"]
        async with op.post(f"{dash.url}/deliveries/{dead.delivery_id}/retry",
                           data={"csrf": csrf, "message": dead.message_id}, allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"].endswith(f"/transmissions/{dead.message_id}?done=retried")
        assert store.delivery(dead.delivery_id).status.value == "queued" and woken
        queued = world["queued"]
        async with op.post(f"{dash.url}/deliveries/{queued.id}/cancel", data={"csrf": csrf, "message": world["other"]},
                           allow_redirects=False) as r:
            assert r.status == 303
        cancelled = store.delivery(queued.id)
        assert cancelled.status.value == "dead" and cancelled.last_error == "cancelled by olivia"
        async with op.post(f"{dash.url}/deliveries/{queued.id}/cancel", data={"csrf": csrf}) as r:
            assert r.status == 409 and "only queued or retrying" in await r.text()
        async with op.post(f"{dash.url}/transmissions/{dead.message_id}/replay", data={"csrf": csrf},
                           allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"].endswith("?done=replayed")
    steps = [(e.outcome, e.detail) for e in store.timeline(dead.message_id) if e.step == "operator"]
    assert ("ok", f"olivia: retry of dead delivery {dead.delivery_id}") in steps
    assert any(o == "ok" and d.startswith(f"olivia: replay of {dead.message_id}") for o, d in steps)
    other = [(e.outcome, e.detail) for e in store.timeline(world["other"]) if e.step == "operator"]
    assert other[0] == ("ok", f"olivia: cancel of delivery {queued.id}")
    assert ("error", f"olivia: cancel of delivery {queued.id}: delivery {queued.id} is dead: only queued or "
                     "retrying deliveries are cancelled") in other


async def test_viewer_sees_masked_documents_and_no_raw_payload_operator_sees_all(world: dict) -> None:
    message = world["message"]
    document = world["dead"].document_id
    async with Dashboard(world["deployment"], world["store"]) as dash, client() as viewer, client() as op:
        await sign_in(viewer, dash.url, "victor")
        await sign_in(op, dash.url, "olivia")
        async with viewer.get(f"{dash.url}/transmissions/{message}/documents/{document}") as r:
            body = json.loads(await r.text())
        assert body["document"]["buyer"]["name"] == "***"
        assert {line["unit_price"] for line in body["document"]["lines"]} == {"***"}
        assert body["document"]["number"] == world["numbers"][message]   # not masked: not in the rules
        async with op.get(f"{dash.url}/transmissions/{message}/documents/{document}?download=1") as r:
            assert r.headers["Content-Disposition"].startswith("attachment;")
            full = json.loads(await r.text())
        assert full["document"]["buyer"]["name"] == "ACME Retail Europe" and full["document"]["lines"][0]["unit_price"] == "1.25"
        async with viewer.get(f"{dash.url}/transmissions/{message}") as r:
            page = await r.text()
        assert "ACME Retail Europe" not in page and "UNB+UNOC" not in page and 'id="raw-hidden"' in page
        assert 'class="retry"' not in page and "/replay" not in page
        async with op.get(f"{dash.url}/transmissions/{message}") as r:
            page = await r.text()
        assert "UNB+UNOC" in page and 'class="retry"' in page and "HTTP 400: refused" in page
        async with op.get(f"{dash.url}/transmissions/{message}/raw?download=1") as r:
            assert r.status == 200 and (await r.read()).startswith(b"UNA:+.? '")


async def test_session_cookie_is_httponly_strict_and_only_its_hash_is_stored(world: dict) -> None:
    store = world["store"]
    async with Dashboard(world["deployment"], store, settings=WebSettings(enabled=True, secure_cookies=True)) as dash:
        async with client() as http, http.get(f"{dash.url}/login") as form:
            assert "; Secure" in form.headers["Set-Cookie"]   # under TLS: never sent over plain HTTP
    async with Dashboard(world["deployment"], store) as dash, client() as http:
        response = await sign_in(http, dash.url, "olivia")
        cookie = response.cookies[SESSION_COOKIE]
        assert cookie["httponly"] and cookie["samesite"] == "Strict" and cookie["path"] == "/ui"
        with store.engine.connect() as conn:
            stored = conn.execute(sa.select(web_sessions.c.token_sha256)).scalars().all()
        assert stored == [hashlib.sha256(cookie.value.encode()).hexdigest()]
    async with Dashboard(world["deployment"], store) as dash, client() as http:
        await sign_in(http, dash.url, "olivia")
        async with http.get(f"{dash.url}/") as page:
            assert "script-src 'self'" in page.headers["Content-Security-Policy"]
            assert page.headers["X-Frame-Options"] == "DENY"
            csrf = hidden(await page.text(), "csrf")
        async with http.post(f"{dash.url}/logout", data={"csrf": csrf}, allow_redirects=False) as r:
            assert r.status == 303
        async with http.get(f"{dash.url}/", allow_redirects=False) as r:
            assert r.status == 303   # the session is gone from the store, whatever the browser kept
        await sign_in(http, dash.url, "victor")
        store.set_disabled("victor", True)
        async with http.get(f"{dash.url}/", allow_redirects=False) as r:
            assert r.status == 303   # disabling an account ends its sessions at once


async def test_failed_logins_are_events_without_the_password_and_an_address_is_locked_out(world: dict) -> None:
    store = world["store"]
    settings = WebSettings(enabled=True, max_failures=3, lockout_seconds=60)
    async with Dashboard(world["deployment"], store, settings=settings) as dash, client() as http:
        for attempt in range(3):
            response = await sign_in(http, dash.url, "olivia", password=f"wrong-secret-{attempt}")
            assert response.status == 401 and "Wrong user name or password" in await response.text()
        response = await sign_in(http, dash.url, "olivia")   # right password, but the address is locked out
        assert response.status == 429 and SESSION_COOKIE not in response.cookies
        async with http.post(f"{dash.url}/login", data={"username": "olivia", "password": PASSWORDS["olivia"]}) as r:
            assert r.status == 429
    with store.engine.connect() as conn:
        from gateway.store.tables import events

        rows = conn.execute(sa.select(events.c.step, events.c.outcome, events.c.detail)
                            .where(events.c.step == "login")).all()
    assert [(s, o) for s, o, _ in rows] == [("login", "failed")] * 3
    assert all("wrong-secret" not in d and "olivia" in d for _, _, d in rows)


async def test_login_refuses_a_form_without_its_token_and_redirects_only_inside_the_dashboard(world: dict) -> None:
    async with Dashboard(world["deployment"], world["store"]) as dash, client() as http:
        async with http.post(f"{dash.url}/login", data={"username": "olivia", "password": PASSWORDS["olivia"]},
                             allow_redirects=False) as r:
            assert r.status == 403 and SESSION_COOKIE not in r.cookies
        async with http.get(f"{dash.url}/login?next=//evil.example/x") as form:
            html = await form.text()
        token = hidden(html, "login_token")
        assert hidden(html, "next") == "/ui/"
        async with http.post(f"{dash.url}/login", data={"login_token": token, "username": "olivia",
                                                        "password": PASSWORDS["olivia"], "next": "https://evil.example/"},
                             allow_redirects=False) as r:
            assert r.status == 303 and r.headers["Location"] == "/ui/"


async def test_search_finds_by_po_number_and_bad_filters_are_a_clear_400(world: dict) -> None:
    async with Dashboard(world["deployment"], world["store"]) as dash, client() as http:
        await sign_in(http, dash.url, "victor")
        async with http.get(f"{dash.url}/transmissions", params={"number": world["numbers"][world["other"]]}) as r:
            page = await r.text()
        assert world["other"] in page and world["message"] not in page
        async with http.get(f"{dash.url}/transmissions", params={"status": "bogus"}) as r:
            assert r.status == 400 and "status must be one of" in await r.text()
        async with http.get(f"{dash.url}/transmissions", params={"since": "yesterday"}) as r:
            assert r.status == 400 and "is not a time like" in await r.text()
        for path in ("/", "/?window=7d", "/partners", "/partners/ACME"):
            async with http.get(dash.url + path) as r:
                assert r.status == 200, path
        async with http.get(f"{dash.url}/partners/NOPE") as r:
            assert r.status == 404


async def test_the_overview_lists_open_alerts_most_severe_first(world: dict) -> None:
    from gateway.alerts import Finding

    store = world["store"]
    store.record_alerts([Finding("dead-letters", "ACME/erp", "medium", "1 dead delivery", "ACME"),
                         Finding("success-rate", "ACME", "critical", "50.0% of 2 messages", "ACME")], [], 1.8e9)
    async with Dashboard(world["deployment"], store) as dash, client() as viewer:
        await sign_in(viewer, dash.url, "victor")
        async with viewer.get(f"{dash.url}/") as page:
            html = await page.text()
    section = html[html.index('id="alerts"'):html.index("Messages per partner and channel")]
    assert section.index("50.0% of 2 messages") < section.index("1 dead delivery")
    assert "No open alerts" not in section
    resolved = list(store.open_alerts().values())
    store.record_alerts([], [(alert, "ACME") for alert in resolved], 1.8e9 + 60)
    async with Dashboard(world["deployment"], store) as dash, client() as viewer:
        await sign_in(viewer, dash.url, "victor")
        async with viewer.get(f"{dash.url}/") as page:
            assert "No open alerts." in await page.text()


async def test_replay_of_a_message_whose_raw_blob_is_damaged_is_refused_clearly(world: dict) -> None:
    store = world["store"]
    message = store.message(world["other"])
    path = store.blobs.path(message.raw_sha256)
    path.chmod(0o600)
    path.write_bytes(b"not the bytes that were received")   # damaged at rest: its hash no longer matches
    async with Dashboard(world["deployment"], store) as dash, client() as op:
        await sign_in(op, dash.url, "olivia")
        csrf = await csrf_of(op, dash.url)
        async with op.post(f"{dash.url}/transmissions/{message.id}/replay", data={"csrf": csrf}) as r:
            assert r.status == 409 and "The replay was refused" in await r.text()
    [event] = [e for e in store.timeline(message.id) if e.step == "operator"]
    assert event.outcome == "error" and "corrupt" in event.detail
