"""The document API on a real gateway (127.0.0.1, SQLite): POST canonical documents, GET their status, OpenAPI.

The partner ACME has an account on our SFTP server, so what the API queues goes to
``outbox:ACME`` and the running delivery worker writes it there as X12 (ACME's format).
Every answer is checked against gateway/openapi.json, and the documented statuses are all produced.
"""

from __future__ import annotations

import asyncio
import copy
import json
import shutil
import time
from pathlib import Path
from typing import Any

import aiohttp
import asyncssh
import pytest
from aiohttp.test_utils import TestServer
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from structlog.testing import capture_logs

from gateway import canonical
from gateway.app import Gateway, open_store, run_pipeline
from gateway.config import load_deployment, load_settings
from gateway.edi import read
from gateway.inbound.api import OPENAPI_FILE, DocumentApi
from gateway.model import Channel, Received
from gateway.store import Store

REPO = Path(__file__).resolve().parents[1]
TOKEN = "erp-token-0123456789abcdef"
OTHER_TOKEN = "bi-token-fedcba9876543210"
INVOICE = {"number": "INV-7", "issue_date": "2026-11-27", "order_number": "PO-1", "currency": "USD",
           "buyer": {"id": "0614141000012", "scheme": "GLN", "name": "Acme"}, "seller": None,
           "lines": [{"line": "1", "item": {"gtin": "012345678905", "buyer_code": None, "seller_code": None,
                                            "description": None},
                      "quantity": "10", "unit": "EA", "unit_price": "2.50", "line_amount": "25.00",
                      "tax_rate": None}],
           "totals": {"net": "25.00", "tax": "0.00", "gross": "25.00"}}
ORDER_RESPONSE = {"number": "R1", "issue_date": None, "order_number": "PO-1", "status": "accepted",
                  "buyer": None, "seller": None,
                  "lines": [{"line": "1", "item": {"gtin": "012345678905", "buyer_code": None, "seller_code": None,
                                                   "description": None},
                             "quantity": "10", "unit": "EA", "unit_price": None, "status": None}]}
OPENAPI = json.loads(OPENAPI_FILE.read_text())
SEEN: set[tuple[str, str, str]] = set()     # (documented path, method, status) answered in this module


def deployment_in(home: Path, partner_extra: str = "") -> Any:
    """ACME (X12, expects our invoices acknowledged within an hour) with an SFTP account: outbox:ACME."""
    if not (home / "mappings").exists():
        shutil.copytree(REPO / "mappings", home / "mappings")
    if not (home / "partners").exists():
        (home / "partners").mkdir()
        (home / "certs").mkdir()
        asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(home / "certs" / "host_key"))
    client = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    (home / "gateway.toml").write_text(
        '[http]\nhost = "127.0.0.1"\nport = 0\n'
        '[api]\nenabled = true\ntokens = ["env:H10_ERP_TOKEN", "env:H10_BI_TOKEN"]\n'
        '[sftp]\nenabled = false\nhost_keys = ["certs/host_key"]\n'
        '[edi]\nidentifiers = { edifact = "14:4000001000005", x12 = "ZZ:MYCOMPANY" }\n'
        '[targets.erp]\ntype = "file"\npath = "var/erp"\n')
    (home / "partners" / "ACME.toml").write_text(
        '[identifiers]\nx12 = ["ZZ:ACMEUS"]\n[inbox]\nenabled = false\n'
        '[[routes]]\ndocument = "*"\ntargets = ["erp"]\n'
        f'[sftp]\nusername = "acme"\nauthorized_keys = ["{client}"]\n'
        '[edi]\nformat = "x12"\nexpect_ack_minutes = 60\n' + partner_extra)
    deployment = load_deployment(home)
    assert not deployment.problems, deployment.problems
    return deployment


@pytest.fixture
async def gw(tmp_path, monkeypatch):
    monkeypatch.setenv("H10_ERP_TOKEN", TOKEN)
    monkeypatch.setenv("H10_BI_TOKEN", OTHER_TOKEN)
    deployment = deployment_in(tmp_path)
    store = await asyncio.to_thread(open_store, deployment)
    gateway = Gateway(deployment, store)
    await gateway.start()
    try:
        yield gateway
    finally:
        await gateway.stop()
        store.close()


def auth(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _template(path: str) -> tuple[str, str]:
    """The documented path a request path matches, and the operation's method key prefix."""
    for documented in OPENAPI["paths"]:
        head, _, _ = documented.partition("{")
        if path == documented or ("{" in documented and path.startswith(head) and "/" not in path[len(head):]):
            return documented, head
    raise AssertionError(f"{path} is not documented")


_REGISTRY = Registry().with_resources((s["$id"], Resource.from_contents(s)) for s in canonical.SCHEMAS.values())


def _validator(schema: dict) -> Draft202012Validator:
    # Response schemas refer to #/components/...: validate inside the whole document.
    return Draft202012Validator({**schema, "components": OPENAPI["components"]}, registry=_REGISTRY)


async def call(base: str, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None,
               raw: bytes | None = None) -> tuple[int, Any, Any]:
    """Make a request and check the answer against the OpenAPI description: (status, JSON, headers)."""
    async with aiohttp.ClientSession() as client:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        async with client.request(method, base + path, data=data, headers={
                "Content-Type": "application/json", **(headers or {})}) as resp:
            status, answer, got = resp.status, await resp.json(content_type=None), resp.headers
    documented, _ = _template(path)
    operation = OPENAPI["paths"][documented][method.lower()]
    assert str(status) in operation["responses"], f"{method} {path} answered undocumented {status}"
    response = operation["responses"][str(status)]
    [(media, content)] = response["content"].items()
    assert got["Content-Type"].split(";")[0] == media
    errors = list(_validator(content["schema"]).iter_errors(answer))
    assert not errors, [e.message for e in errors]
    for header in response.get("headers", {}):
        assert header in got, f"{header} missing from the {status} answer"
    SEEN.add((documented, method.lower(), str(status)))
    return status, answer, got


async def until_status(gw: Gateway, message_id: str, wanted: str, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        _, found, _ = await call(gw.http.url, "GET", f"/api/v1/documents/{message_id}", headers=auth())
        if found["status"] == wanted or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


async def test_post_answers_201_and_the_status_goes_from_queued_to_sent(gw):
    status, queued, headers = await call(gw.http.url, "POST", "/api/v1/documents",
                                         {"partner": "ACME", "type": "invoice", "document": INVOICE}, auth())
    assert status == 201 and queued["status"] == "queued"
    assert headers["Location"] == f"/api/v1/documents/{queued['id']}"
    assert queued["interchange"] == "000000001"       # ACME's first X12 interchange control number (ISA13)
    sent = await until_status(gw, queued["id"], "sent")
    assert sent["status"] == "sent" and sent["partner"] == "ACME" and sent["type"] == "invoice"
    assert sent["delivery"]["id"] == queued["delivery"] and sent["delivery"]["target"] == "outbox:ACME"
    assert (sent["delivery"]["status"], sent["delivery"]["attempts"], sent["delivery"]["last_error"]) == (
        "delivered", 1, None)
    assert sent["acknowledgment"]["status"] == "pending"    # expect_ack_minutes = 60 in ACME's file
    assert sent["mdn"] is None and sent["channel"] == "api"


async def test_queued_interchange_is_real_x12_addressed_to_the_partner(gw, tmp_path):
    _, queued, _ = await call(gw.http.url, "POST", "/api/v1/documents", {
        "partner": "ACME", "type": "invoice",
        "documents": [INVOICE, dict(INVOICE, number="INV-8")]}, auth())
    await until_status(gw, queued["id"], "sent")
    [outbox_file] = (tmp_path / "var" / "sftp" / "ACME" / "outbox").iterdir()
    raw = outbox_file.read_bytes()
    assert raw == gw.store.raw(queued["id"])
    fmt, [interchange] = read(raw)
    assert fmt == "x12" and interchange.control_number == queued["interchange"]
    assert (interchange.sender.id, interchange.recipient.id) == ("MYCOMPANY", "ACMEUS")
    assert [m.type for m in interchange.messages] == ["810", "810"]
    # BIG02 is the invoice number, BIG04 the order number.
    bigs = [s for m in interchange.messages for s in m.segments if s.tag == "BIG"]
    assert [(s.elements[1][0], s.elements[3][0]) for s in bigs] == [("INV-7", "PO-1"), ("INV-8", "PO-1")]


async def test_requests_without_or_with_a_wrong_token_get_401_and_queue_nothing(gw):
    body = {"partner": "ACME", "type": "invoice", "document": INVOICE}
    for headers in ({}, auth("wrong-token-0123456789"), auth(TOKEN + "x"), {"Authorization": f"Basic {TOKEN}"},
                    {"Authorization": "Bearer "}):
        status, answer, got = await call(gw.http.url, "POST", "/api/v1/documents", body, headers)
        assert status == 401 and got["WWW-Authenticate"].startswith("Bearer")
        assert "bearer token" in answer["errors"][0]
        status, _, _ = await call(gw.http.url, "GET", "/api/v1/documents/msg_0000000000000000000a", headers=headers)
        assert status == 401
    assert gw.store.deliveries(partner="ACME") == []


async def test_422_lists_every_schema_problem_of_every_document(gw):
    bad = copy.deepcopy(INVOICE)
    bad["lines"][0]["quantity"] = 10            # a JSON number, not a decimal string
    del bad["currency"]                         # every key is always present
    bad["issue_date"] = "2026-02-30"            # not a date
    status, answer, _ = await call(gw.http.url, "POST", "/api/v1/documents",
                                   {"partner": "ACME", "type": "invoice", "document": bad}, auth())
    assert status == 422
    assert sorted(answer["errors"]) == sorted([
        'document.lines[0].quantity: 10 is a JSON number; numbers are decimal strings ("10")',
        "document.currency: missing (every key is always present: null when there is no value)",
        "document.issue_date: '2026-02-30' is not a valid date"])
    # In a list, each problem names its document; the valid first one does not hide the second's.
    status, answer, _ = await call(gw.http.url, "POST", "/api/v1/documents",
                                   {"partner": "ACME", "type": "invoice", "documents": [INVOICE, bad]}, auth())
    assert status == 422 and len(answer["errors"]) == 3
    assert all(line.startswith("documents[1].") for line in answer["errors"])
    # The request's own shape: every problem at once.
    status, answer, _ = await call(gw.http.url, "POST", "/api/v1/documents",
                                   {"type": "bill", "colour": "red"}, auth())
    assert status == 422 and [line.split(":")[0] for line in answer["errors"]] == [
        "colour", "partner", "type", "document"]
    assert gw.store.deliveries(partner="ACME") == []


async def test_a_document_type_the_partner_has_no_outbound_mapping_for_gets_422(gw, tmp_path):
    home = tmp_path / "no-855"
    home.mkdir()
    shutil.copytree(REPO / "mappings", home / "mappings")
    (home / "mappings" / "out-x12-855.toml").unlink()
    server = TestServer(_app(DocumentApi(deployment_in(home), gw.store)), host="127.0.0.1")
    await server.start_server()
    try:
        status, answer, _ = await call(str(server.make_url("")), "POST", "/api/v1/documents", {
            "partner": "ACME", "type": "order_response", "document": ORDER_RESPONSE}, auth())
    finally:
        await server.close()
    assert status == 422 and answer["errors"] == [
        "partner ACME: no outbound mapping writes order_response documents as x12 in mappings/"]
    assert gw.store.deliveries(partner="ACME") == []


async def test_idempotency_key_repeats_the_first_answer_and_queues_nothing_more(gw):
    body = {"partner": "ACME", "type": "invoice", "document": INVOICE}
    first = await call(gw.http.url, "POST", "/api/v1/documents", body, {**auth(), "Idempotency-Key": "inv-7"})
    again = await call(gw.http.url, "POST", "/api/v1/documents", body, {**auth(), "Idempotency-Key": "inv-7"})
    assert (first[0], again[0]) == (201, 200)
    assert again[1] == first[1] and again[2]["Location"] == first[2]["Location"]
    assert len(gw.store.deliveries(partner="ACME")) == 1
    # Another key, or the same key from another token, is another document.
    other_key = await call(gw.http.url, "POST", "/api/v1/documents", body, {**auth(), "Idempotency-Key": "inv-8"})
    other_token = await call(gw.http.url, "POST", "/api/v1/documents", body,
                             {**auth(OTHER_TOKEN), "Idempotency-Key": "inv-7"})
    assert (other_key[0], other_token[0]) == (201, 201)
    assert len({first[1]["id"], other_key[1]["id"], other_token[1]["id"]}) == 3
    assert len({first[1]["interchange"], other_key[1]["interchange"], other_token[1]["interchange"]}) == 3
    status, answer, _ = await call(gw.http.url, "POST", "/api/v1/documents", body,
                                   {**auth(), "Idempotency-Key": "has space"})
    assert status == 400 and answer["errors"][0].startswith("Idempotency-Key")


async def test_unknown_partner_and_bad_json_and_unknown_ids(gw):
    status, answer, _ = await call(gw.http.url, "POST", "/api/v1/documents",
                                   {"partner": "NOPE", "type": "invoice", "document": INVOICE}, auth())
    assert status == 404 and answer["errors"] == ["partner: unknown partner 'NOPE'"]
    status, answer, _ = await call(gw.http.url, "POST", "/api/v1/documents", headers=auth(), raw=b"{not json")
    assert status == 400 and answer["errors"][0].startswith("(root): the body is not JSON")
    for unknown in ("msg_0000000000000000000a", "nonsense", "out_123"):
        status, _, _ = await call(gw.http.url, "GET", f"/api/v1/documents/{unknown}", headers=auth())
        assert status == 404
    # A message a partner sent us is not an API document.
    inbound = gw.store.receive(Received(raw=b"UNA:+.? 'UNB+UNOC:3+X+Y+261127:0900+1'UNZ+0+1'",
                                        channel=Channel.INBOX, partner="ACME", filename="in.edi",
                                        source_ref="test:in")).message.id
    status, _, _ = await call(gw.http.url, "GET", f"/api/v1/documents/{inbound}", headers=auth())
    assert status == 404


async def test_partner_997_makes_the_document_acknowledged(gw):
    _, queued, _ = await call(gw.http.url, "POST", "/api/v1/documents",
                              {"partner": "ACME", "type": "invoice", "document": INVOICE}, auth())
    await until_status(gw, queued["id"], "sent")
    # Our invoice went out as interchange 1, group 1, set 0001: ACME's 997 accepts it.
    ack = ("ISA*00*          *00*          *ZZ*ACMEUS         *ZZ*MYCOMPANY      *261127*1000*U*00401*000000900*0*P*>~"
           "GS*FA*ACMEUS*MYCOMPANY*20261127*1000*900*X*004010~ST*997*0001~AK1*IN*1~AK2*810*0001~AK5*A~"
           "AK9*A*1*1*1~SE*6*0001~GE*1*900~IEA*1*000000900~").encode()
    ack_id = gw.store.receive(Received(raw=ack, channel=Channel.INBOX, partner="ACME", filename="997.x12",
                                       source_ref="test:997")).message.id
    await asyncio.to_thread(run_pipeline, gw.store, gw.deployment, ack_id)
    done = await until_status(gw, queued["id"], "acknowledged")
    assert done["status"] == "acknowledged" and done["acknowledgment"]["status"] == "accepted"
    assert [(m["reference"], m["status"]) for m in done["acknowledgment"]["messages"]] == [("0001", "accepted")]


async def test_token_never_reaches_the_logs(gw):
    with capture_logs() as logged:
        await call(gw.http.url, "POST", "/api/v1/documents",
                   {"partner": "ACME", "type": "invoice", "document": INVOICE}, auth())
        await call(gw.http.url, "POST", "/api/v1/documents", {"partner": "ACME"}, auth("wrong-token-0123456789"))
    queued = [entry for entry in logged if entry["event"] == "api document queued"]
    assert queued and queued[0]["caller"] == "env:H10_ERP_TOKEN"
    assert TOKEN not in repr(logged) and "wrong-token" not in repr(logged)
    assert repr(gw.settings.api).count(TOKEN) == 0


async def test_openapi_is_served_and_the_canonical_schemas_it_refers_to(gw):
    status, served, _ = await call(gw.http.url, "GET", "/api/v1/openapi.json")
    assert status == 200 and served == OPENAPI and served["openapi"].startswith("3.1")
    status, schema, _ = await call(gw.http.url, "GET", "/api/v1/schemas/invoice.schema.json")
    assert status == 200 and schema == canonical.SCHEMAS["invoice"]
    status, _, _ = await call(gw.http.url, "GET", "/api/v1/schemas/passwd")
    assert status == 404
    # The documented request body accepts what the API accepts, and refuses a bad document.
    request = _validator(OPENAPI["components"]["schemas"]["DocumentRequest"])
    assert not list(request.iter_errors({"partner": "ACME", "type": "invoice", "document": INVOICE}))
    assert list(request.iter_errors({"partner": "ACME", "type": "invoice", "document": dict(INVOICE, currency=1)}))


async def test_409_and_503_answers(gw, tmp_path):
    """A key used when ACME was reached through another channel; a store that cannot answer."""
    body = {"partner": "ACME", "type": "invoice", "document": INVOICE}
    await call(gw.http.url, "POST", "/api/v1/documents", body, {**auth(), "Idempotency-Key": "moved"})
    # The same deployment after ACME got its own SFTP server: sftp:ACME comes before outbox:ACME.
    host_key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    moved = deployment_in(tmp_path, f'[sftp_remote]\nhost = "127.0.0.1"\nhost_key = "{host_key}"\n'
                                    'password = "secret"\nusername = "us"\nupload_dir = "in"\n')
    assert moved.reply_target(moved.partners["ACME"]) == "sftp:ACME"
    api = DocumentApi(moved, gw.store)
    server = TestServer(_app(api), host="127.0.0.1")
    await server.start_server()
    try:
        status, answer, _ = await call(str(server.make_url("")), "POST", "/api/v1/documents", body,
                                       {**auth(), "Idempotency-Key": "moved"})
        assert status == 409 and answer["errors"] == [
            "Idempotency-Key: 'moved' was used for ACME when it was reached through another channel than sftp:ACME; "
            "use a new key"]
    finally:
        await server.close()
    broken = Store.open(f"sqlite:///{tmp_path / 'broken.sqlite'}", tmp_path / "blobs")
    with broken.engine.begin() as conn:   # a database that lost its tables
        for table in ("deliveries", "documents", "messages"):
            conn.exec_driver_sql(f"DROP TABLE {table}")
    server = TestServer(_app(DocumentApi(gw.deployment, broken)), host="127.0.0.1")
    await server.start_server()
    try:
        base = str(server.make_url(""))
        status, _, _ = await call(base, "POST", "/api/v1/documents", body, auth())
        assert status == 503
        status, _, _ = await call(base, "GET", "/api/v1/documents/msg_0000000000000000000a", headers=auth())
        assert status == 503
    finally:
        await server.close()
        broken.close()


async def test_a_submitted_document_is_found_by_its_number_and_sent_under_its_file_name(gw, tmp_path):
    _, queued, _ = await call(gw.http.url, "POST", "/api/v1/documents",
                              {"partner": "ACME", "type": "invoice", "document": INVOICE}, auth())
    [found] = gw.store.search_transmissions(document_number="INV-7", direction="outbound")
    assert found.id == queued["id"] and found.filename == "invoice-INV-7.x12"
    await until_status(gw, queued["id"], "sent")
    outbox = gw.settings.sftp.root / "ACME" / "outbox"
    assert [p.name for p in outbox.iterdir()] == ["invoice-INV-7.x12"]


async def test_a_token_over_its_rate_limit_gets_429_and_others_are_not_held_back(gw, tmp_path):
    deployment_in(tmp_path / "limited")
    config = tmp_path / "limited" / "gateway.toml"
    config.write_text(config.read_text().replace("[api]\n", "[api]\nrate_limit = 2\n"))
    limited = load_deployment(tmp_path / "limited")
    assert limited.settings.api.rate_limit == 2
    server = TestServer(_app(DocumentApi(limited, gw.store)), host="127.0.0.1")
    await server.start_server()
    try:
        base = str(server.make_url(""))
        path = "/api/v1/documents/msg_0000000000000000000a"
        answers = [(await call(base, "GET", path, headers=auth()))[0] for _ in range(3)]
        assert answers == [404, 404, 429]                  # a burst of one second's worth, then refused
        status, refused, headers = await call(base, "POST", "/api/v1/documents",
                                              {"partner": "ACME", "type": "invoice", "document": INVOICE}, auth())
        assert status == 429 and int(headers["Retry-After"]) >= 1
        assert refused["errors"][0].startswith("too many requests for this token (limit 2/s)")
        assert (await call(base, "GET", path, headers=auth(OTHER_TOKEN)))[0] == 404   # its own allowance
        await asyncio.sleep(0.6)                                                      # a token comes back
        assert (await call(base, "GET", path, headers=auth()))[0] == 404
    finally:
        await server.close()


def _app(api: DocumentApi) -> Any:
    from aiohttp import web

    app = web.Application()
    app.add_routes(api.routes())
    return app


def test_every_documented_answer_was_produced(request):
    """Runs last in this module: the server answered every (path, method, status) the description lists."""
    documented = {(path, method, status) for path, ops in OPENAPI["paths"].items()
                  for method, op in ops.items() for status in op["responses"]}
    ran = {item.name for item in request.session.items if item.module is request.module}
    if len(ran) < sum(1 for name in globals() if name.startswith("test_")):
        pytest.skip("needs every test of tests/test_api.py in the same run")
    assert documented - SEEN == set()


def test_api_settings_are_checked(tmp_path, monkeypatch):
    monkeypatch.setenv("H10_SHORT", "short")
    (tmp_path / "gateway.toml").write_text('[http]\nenabled = false\n[api]\nenabled = true\n'
                                           'tokens = ["env:H10_UNSET_TOKEN", "env:H10_SHORT", 7]\ncolour = 1\n')
    found: list = []
    settings = load_settings(tmp_path, found)
    assert sorted(f"{p.key}: {p.problem}" for p in found) == [
        "api.colour: unknown setting",
        "api.enabled: the API is served on the [http] listener, which is disabled (http.enabled)",
        "api.tokens[0]: environment variable H10_UNSET_TOKEN is not set",
        "api.tokens[1]: the token of env:H10_SHORT is shorter than 16 characters",
        "api.tokens[2]: must be a secret reference like \"env:ERP_API_TOKEN\""]
    assert settings.api.tokens == ()
    (tmp_path / "gateway.toml").write_text("")
    assert load_settings(tmp_path, []).api.enabled is False
