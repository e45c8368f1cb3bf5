"""The soap connector against a real SOAP service on 127.0.0.1 (tests/soap_service.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.config import BreakerSettings, Target, resolve_secret
from gateway.errors import PermanentDeliveryError, RetryableDeliveryError
from gateway.model import DeliveryJob
from gateway.outbound import CONNECTORS
from gateway.outbound.soap import SoapConnector
from gateway.retry import RetryPolicy

from soap_service import ENV11, ENV12, PASSWORD_TEXT, WSSE, SoapService

NS = "urn:test:erp"
KEY = "k" * 32
PASSWORD = "s3cret-Pa55word"

# A canonical order envelope written by hand (DESIGN §4): nested objects, a two-line list,
# a null, integers and a boolean.
ORDER = {
    "type": "order",
    "version": 1,
    "id": "doc_1",
    "idempotency_key": KEY,
    "partner": "ACME",
    "source": {"channel": "as2", "message_id": "<m1@acme>", "format": "edifact",
               "standard": "ORDERS D96A", "interchange": "42", "message": "1"},
    "document": {
        "number": "PO-1001",
        "issue_date": "2026-11-27",
        "requested_delivery_date": None,
        "currency": "EUR",
        "buyer": {"id": "4012345000009", "scheme": "GLN", "name": "Acme & Sons <Retail>"},
        "lines": [
            {"line": 1, "item": {"gtin": "4000862141404", "description": "Bolts"},
             "quantity": "12", "unit": "PCE", "unit_price": "0.35"},
            {"line": 2, "item": {"gtin": "4000862141411", "description": "Nuts"},
             "quantity": "3.5", "unit": "KGM", "unit_price": "4.10"},
        ],
        "urgent": False,
    },
}


def target(**options):
    return Target(name="erp", type="soap", options=options, retry=RetryPolicy(), breaker=BreakerSettings())


def job(body: bytes | None = None) -> DeliveryJob:
    return DeliveryJob(delivery_id="dlv_1", target="erp", partner="ACME", document_id="doc_1",
                       document_type="order", idempotency_key=KEY,
                       body=json.dumps(ORDER).encode() if body is None else body, attempt=1)


@pytest.fixture
async def service():
    svc = await SoapService(namespace=NS).start()
    yield svc
    await svc.stop()


@pytest.fixture
async def secured(monkeypatch):
    monkeypatch.setenv("GW_TEST_SOAP_PASSWORD", PASSWORD)
    svc = await SoapService(namespace=NS, username="gateway", password=PASSWORD).start()
    yield svc
    await svc.stop()


async def deliver(url: str, body: bytes | None = None, **options):
    conn = SoapConnector(target(**{"url": url, "namespace": NS, **options}), Path("."))
    try:
        return await conn.send(job(body))
    finally:
        await conn.close()


async def failure(url: str, kind: type, **options):
    with pytest.raises(kind) as err:
        await deliver(url, **options)
    return err.value


# --------------------------------------------------------------------------- delivered

async def test_soap11_delivery_parses_back_to_the_canonical_json(service):
    assert await deliver(service.url, action="urn:test:erp/Submit") == 200
    got = service.received[0]
    assert got.problems == []
    assert got.version == "1.1"
    assert got.headers["Content-Type"] == "text/xml; charset=utf-8"
    assert got.headers["SOAPAction"] == '"urn:test:erp/Submit"'
    assert got.idempotency_key == KEY
    assert got.document == ORDER


async def test_soap12_uses_soap_xml_content_type_with_action(service):
    assert await deliver(service.url, version="1.2", action="urn:test:erp/Submit") == 200
    got = service.received[0]
    assert got.problems == [] and got.version == "1.2"
    assert got.headers["Content-Type"] == 'application/soap+xml; charset=utf-8; action="urn:test:erp/Submit"'
    assert "SOAPAction" not in got.headers
    assert got.body.count(ENV12.encode()) == 1 and ENV11.encode() not in got.body
    assert got.document == ORDER


async def test_custom_operation_name_is_the_body_element():
    svc = await SoapService(operation="PostOrder", namespace=NS).start()
    try:
        assert await deliver(svc.url, operation="PostOrder") == 200
    finally:
        await svc.stop()
    assert svc.received[0].problems == [] and svc.received[0].document == ORDER


async def test_empty_202_one_way_answer_counts_as_delivered(service):
    service.answers.append(("empty", 202))
    assert await deliver(service.url) == 202


async def test_wssecurity_username_token_carries_the_password_as_text(secured):
    assert await deliver(secured.url, version="1.2", username="gateway", password="env:GW_TEST_SOAP_PASSWORD") == 200
    got = secured.received[0]
    assert got.problems == []
    assert (got.username, got.password) == ("gateway", PASSWORD)
    assert f'Type="{PASSWORD_TEXT}"'.encode() in got.body
    assert f'xmlns:wsse="{WSSE}"'.encode() in got.body
    assert b'soap:mustUnderstand="true"' in got.body


async def test_wrong_password_fault_is_permanent_and_never_shows_a_password(secured, monkeypatch):
    monkeypatch.setenv("GW_TEST_SOAP_PASSWORD", "wrong-password-1")
    err = await failure(secured.url, PermanentDeliveryError, username="gateway",
                        password="env:GW_TEST_SOAP_PASSWORD")
    assert "soap:Client" in str(err) and "authentication failed" in str(err)
    assert "wrong-password-1" not in str(err) and PASSWORD not in str(err)


async def test_password_echoed_back_in_a_fault_is_blanked_out(secured):
    secured.answers.append(("fault", "soap:Server", "could not process: ", {"echo": True}))
    err = await failure(secured.url, RetryableDeliveryError, username="gateway",
                        password="env:GW_TEST_SOAP_PASSWORD")
    assert "could not process" in str(err)
    assert PASSWORD not in str(err) and PASSWORD not in repr(err)


# --------------------------------------------------------------------------- faults

@pytest.mark.parametrize("version,code,kind", [
    ("1.1", "soap:Server", RetryableDeliveryError),
    ("1.1", "soap:Server.Database", RetryableDeliveryError),
    ("1.1", "soap:Client", PermanentDeliveryError),
    ("1.1", "soap:MustUnderstand", PermanentDeliveryError),
    ("1.2", "soap:Receiver", RetryableDeliveryError),
    ("1.2", "soap:Sender", PermanentDeliveryError),
    ("1.2", "soap:DataEncodingUnknown", PermanentDeliveryError),
])
async def test_faults_are_classified_by_default_rules(service, version, code, kind):
    service.answers.append(("fault", code, "backend said no"))
    err = await failure(service.url, kind, version=version)
    assert f"SOAP Fault {code}: backend said no" in str(err)
    assert err.status == (400 if code == "soap:Sender" else 500)


async def test_custom_retry_fault_matches_a_soap12_subcode(service):
    service.answers.append(("fault", "soap:Sender", "try later", {"subcode": "MessageTimeout"}))
    err = await failure(service.url, RetryableDeliveryError, version="1.2", retry_faults=["m:MessageTimeout"])
    assert "soap:Sender / m:MessageTimeout" in str(err)


async def test_custom_permanent_fault_overrides_the_server_default(service):
    service.answers.append(("fault", "soap:Server", "schema invalid"))
    await failure(service.url, PermanentDeliveryError, permanent_faults=["soap:Server"])


async def test_custom_retry_fault_matches_a_soap11_dotted_code(service):
    service.answers += [("fault", "soap:Client.Busy", "locked"), ("fault", "soap:Client.Other", "bad")]
    await failure(service.url, RetryableDeliveryError, retry_faults=["Client.Busy"])
    await failure(service.url, PermanentDeliveryError, retry_faults=["Client.Busy"])


async def test_a_fault_on_http_200_is_still_a_fault(service):
    service.answers.append(("fault", "soap:Server", "busy", {"status": 200}))
    err = await failure(service.url, RetryableDeliveryError)
    assert err.status == 200


async def test_a_soap11_fault_answering_a_soap12_request_is_read(service):
    service.answers.append(("fault", "soap:VersionMismatch", "only 1.1 here", {"version": "1.1"}))
    err = await failure(service.url, PermanentDeliveryError, version="1.2")
    assert "soap:VersionMismatch: only 1.1 here" in str(err)


# --------------------------------------------------------------------------- HTTP and transport

@pytest.mark.parametrize("status,kind", [(503, RetryableDeliveryError), (429, RetryableDeliveryError),
                                         (408, RetryableDeliveryError), (404, PermanentDeliveryError),
                                         (401, PermanentDeliveryError), (302, PermanentDeliveryError)])
async def test_http_errors_without_a_fault_follow_the_status(service, status, kind):
    service.answers.append(("raw", status, b"service unavailable", {"Retry-After": "9"}))
    err = await failure(service.url, kind)
    assert err.status == status and f"HTTP {status}: service unavailable" in str(err)
    if kind is RetryableDeliveryError:
        assert err.retry_after == 9.0


async def test_timeout_is_retryable(service):
    service.answers.append(("slow", 5))
    err = await failure(service.url, RetryableDeliveryError, timeout=0.3)
    assert "no answer" in str(err) and "0.3 s" in str(err)


async def test_connection_refused_is_retryable():
    err = await failure("http://127.0.0.1:9/soap", RetryableDeliveryError, timeout=2)
    assert "cannot reach" in str(err)


async def test_garbage_answer_is_retryable_with_a_clear_message(service):
    service.answers.append(("raw", 200, b"<html><body>Gateway portal", {"Content-Type": "text/html"}))
    err = await failure(service.url, RetryableDeliveryError)
    assert "answered HTTP 200 with an answer that is not XML" in str(err)


async def test_xml_that_is_not_a_soap_envelope_is_retryable(service):
    service.answers.append(("raw", 200, b"<ok>fine</ok>", {"Content-Type": "text/xml"}))
    err = await failure(service.url, RetryableDeliveryError)
    assert "not a SOAP envelope (root ok)" in str(err)


async def test_answer_with_external_entity_is_not_resolved(service, tmp_path):
    secret_file = tmp_path / "local.txt"
    secret_file.write_text("LOCAL-FILE-CONTENT")
    evil = (f'<?xml version="1.0"?><!DOCTYPE e [<!ENTITY x SYSTEM "file://{secret_file}">]>'
            f'<soap:Envelope xmlns:soap="{ENV11}"><soap:Body><soap:Fault><faultcode>soap:Client</faultcode>'
            f"<faultstring>&x;</faultstring></soap:Fault></soap:Body></soap:Envelope>").encode()
    service.answers.append(("raw", 200, evil, {"Content-Type": "text/xml"}))
    err = await failure(service.url, RetryableDeliveryError)
    assert "with an answer with a DTD" in str(err)
    assert "LOCAL-FILE-CONTENT" not in str(err)


# --------------------------------------------------------------------------- documents that cannot be sent

@pytest.mark.parametrize("body,words", [
    (b"not json", "not canonical JSON"),
    (b"[1, 2]", "not a canonical JSON envelope"),
    (b'{"type": "order", "bad key": 1}', "key 'bad key' at $ cannot be an XML element name"),
    (b'{"document": {"note": "bell \\u0007"}}', "$.document.note holds characters"),
    (b'{"n": NaN}', "not canonical JSON"),
])
async def test_documents_xml_cannot_carry_are_permanent_without_a_request(service, body, words):
    with pytest.raises(PermanentDeliveryError) as err:
        await deliver(service.url, body=body)
    assert words in str(err.value)
    assert service.received == []


# --------------------------------------------------------------------------- options

def test_soap_is_registered():
    assert CONNECTORS["soap"] is SoapConnector


def test_good_options_have_no_problems(monkeypatch, tmp_path):
    monkeypatch.setenv("GW_TEST_SOAP_PASSWORD", PASSWORD)
    (tmp_path / "ca.pem").write_text("x")
    options = {"url": "https://erp.example/soap", "version": "1.2", "action": "urn:a", "operation": "Post",
               "namespace": "urn:erp", "timeout": 20, "headers": {"X-Api": "env:GW_TEST_SOAP_PASSWORD"},
               "username": "gw", "password": "env:GW_TEST_SOAP_PASSWORD", "retry_faults": ["Receiver"],
               "permanent_faults": ["soap:Sender"], "verify_tls": True, "ca_file": "ca.pem"}
    assert list(SoapConnector.check_options(options, tmp_path, resolve_secret)) == []


def test_each_bad_option_is_reported_by_key(monkeypatch):
    monkeypatch.delenv("GW_TEST_SOAP_UNSET", raising=False)
    problems = dict(SoapConnector.check_options({
        "url": "ftp://erp", "version": "2.0", "action": 5, "operation": "soap:Post", "namespace": "erp",
        "timeout": 0, "headers": {"X-Api": "env:GW_TEST_SOAP_UNSET"}, "username": "gw",
        "password": "env:GW_TEST_SOAP_UNSET", "retry_faults": "Server", "permanent_faults": [3],
        "verify_tls": "no", "ca_file": "missing.pem", "wsdl": "x"}, Path("."), resolve_secret))
    assert set(problems) == {"url", "version", "action", "operation", "namespace", "timeout", "headers.X-Api",
                             "password", "retry_faults", "permanent_faults", "verify_tls", "ca_file", "wsdl"}
    assert "GW_TEST_SOAP_UNSET is not set" in problems["password"]


def test_fault_code_in_both_lists_and_lone_username_are_problems():
    problems = dict(SoapConnector.check_options({
        "url": "https://erp/soap", "username": "gw",
        "retry_faults": ["soap:Server"], "permanent_faults": ["Server"]}, Path("."), resolve_secret))
    assert problems == {"password": "username and password go together",
                        "permanent_faults": "Server also listed in retry_faults"}


def test_a_literal_password_is_refused_without_echoing_it():
    problems = dict(SoapConnector.check_options({"url": "https://erp/soap", "username": "gw", "password": PASSWORD},
                                                Path("."), resolve_secret))
    assert problems == {"password": "must be a secret reference: env:NAME or file:PATH"}


def test_clear_text_password_over_plain_http_needs_https_except_on_loopback(monkeypatch):
    monkeypatch.setenv("GW_TEST_SOAP_PASSWORD", PASSWORD)
    creds = {"username": "gw", "password": "env:GW_TEST_SOAP_PASSWORD"}
    remote = dict(SoapConnector.check_options({"url": "http://erp.example/soap", **creds}, Path("."), resolve_secret))
    local = dict(SoapConnector.check_options({"url": "http://127.0.0.1:8080/soap", **creds}, Path("."), resolve_secret))
    assert remote == {"url": "a WS-Security password in clear text needs an https url"}
    assert local == {}
    assert PASSWORD not in repr(remote)


# --------------------------------------------------------------------------- spyne, a real SOAP stack

@pytest.fixture(params=["1.1", "1.2"])
def spyne_service(request):
    pytest.importorskip("spyne", reason="spyne (test extra, Python 3.11) is not installed")
    from soap_service import SpyneService

    svc = SpyneService(request.param, namespace=NS)
    yield svc
    svc.stop()


async def test_spyne_validates_and_reads_the_delivered_order(spyne_service):
    assert await deliver(spyne_service.url, version=spyne_service.version, action="SubmitDocument") == 200
    (got,) = spyne_service.received
    assert (got["type"], got["version"], got["partner"], got["idempotency_key"]) == ("order", 1, "ACME", KEY)
    assert got["source"].standard == "ORDERS D96A"
    document = got["document"]
    assert document.requested_delivery_date is None and document.urgent is False
    assert document.buyer.name == "Acme & Sons <Retail>"
    assert [(line.line, line.item.gtin, line.quantity) for line in document.lines] == [
        (1, "4000862141404", "12"), (2, "4000862141411", "3.5")]


async def test_spyne_schema_rejection_is_permanent(spyne_service):
    if spyne_service.version == "1.2":
        pytest.skip("spyne 2.14 crashes rendering a SOAP 1.2 schema-validation fault (bytes Reason)")
    err = await failure(spyne_service.url, PermanentDeliveryError, version=spyne_service.version,
                        namespace="urn:test:other")
    assert "SOAP Fault" in str(err) and spyne_service.received == []


async def test_spyne_server_fault_is_retryable(spyne_service):
    spyne_service.fault = "Server.Busy"        # spyne writes Receiver + subcode Busy in SOAP 1.2
    err = await failure(spyne_service.url, RetryableDeliveryError, version=spyne_service.version)
    assert "spyne says no" in str(err)
