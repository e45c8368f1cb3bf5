"""Target authentication (bearer, basic, mutual TLS) against a real HTTPS aiohttp server with a test CA."""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import ssl
from pathlib import Path

import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from gateway.config import BreakerSettings, Target, resolve_secret
from gateway.errors import PermanentDeliveryError, RetryableDeliveryError
from gateway.model import DeliveryJob
from gateway.outbound.rest import RestConnector
from gateway.outbound.soap import SoapConnector

TOKEN = "tok-3f9a1c7e55d2"
PASSWORD = "pw-Zq81xVv0"


def target(**options):
    from gateway.retry import RetryPolicy
    return Target(name="t", type="rest", options=options, retry=RetryPolicy(), breaker=BreakerSettings())


def job():
    return DeliveryJob(delivery_id="dlv_1", target="t", partner="ACME", document_id="doc_1",
                       document_type="order", idempotency_key="k" * 32, body=b'{"type":"order"}', attempt=1)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey, passphrase: bytes | None = None):
    path.with_suffix(".pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    encryption = (serialization.BestAvailableEncryption(passphrase) if passphrase
                  else serialization.NoEncryption())
    path.with_suffix(".key").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                           serialization.PrivateFormat.PKCS8, encryption))


@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> Path:
    """A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA."""
    home = tmp_path_factory.mktemp("home")
    (home / "certs").mkdir()
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Test CA")).issuer_name(_name("Test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    (home / "certs" / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(cn: str, usage, san=None):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
                   .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                                  critical=False))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(ca_key, hashes.SHA256()), key

    server, server_key = leaf("127.0.0.1", ExtendedKeyUsageOID.SERVER_AUTH,
                              [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    _write(home / "certs" / "server", server, server_key)
    client, client_key = leaf("erp-client", ExtendedKeyUsageOID.CLIENT_AUTH)
    _write(home / "certs" / "erp-client", client, client_key)
    _write(home / "certs" / "locked-client", client, client_key, passphrase=b"open sesame")
    # A self-signed client certificate the server's CA never issued.
    other_key = ec.generate_private_key(ec.SECP256R1())
    other = (x509.CertificateBuilder().subject_name(_name("stranger")).issuer_name(_name("stranger"))
             .public_key(other_key.public_key()).serial_number(x509.random_serial_number())
             .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=1))
             .sign(other_key, hashes.SHA256()))
    _write(home / "certs" / "stranger", other, other_key)
    return home


async def _https_server(pki: Path, require_client_cert: bool):
    requests: list[tuple[dict, str | None]] = []

    async def handle(request):
        await request.read()
        peer = request.transport.get_extra_info("peercert")
        subject = dict(x[0] for x in peer["subject"])["commonName"] if peer else None
        requests.append((dict(request.headers), subject))
        if request.headers.get("X-Echo"):
            return web.Response(status=401, text="denied: " + request.headers.get("Authorization", "")
                                + request.headers.get("X-Api-Key", ""))
        return web.Response(text="ok")

    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(pki / "certs" / "ca.pem"))
    context.load_cert_chain(pki / "certs" / "server.pem", pki / "certs" / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED if require_client_cert else ssl.CERT_NONE
    app = web.Application()
    app.router.add_post("/in", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    return runner, f"https://127.0.0.1:{port}/in", requests


@pytest.fixture
async def https(pki):
    runner, url, requests = await _https_server(pki, require_client_cert=False)
    yield url, requests
    await runner.cleanup()


@pytest.fixture
async def mtls(pki):
    runner, url, requests = await _https_server(pki, require_client_cert=True)
    yield url, requests
    await runner.cleanup()


@pytest.fixture(autouse=True)
def secrets_env(monkeypatch):
    monkeypatch.setenv("ERP_TOKEN", TOKEN)
    monkeypatch.setenv("ERP_PASSWORD", PASSWORD)
    monkeypatch.setenv("KEY_PASS", "open sesame")


async def _send(home: Path, job_=None, **options):
    conn = RestConnector(target(**options), home)
    try:
        return await conn.send(job_ or job())
    finally:
        await conn.close()


# --------------------------------------------------------------------------- bearer / basic

async def test_bearer_token_arrives_as_authorization_bearer(pki, https):
    url, requests = https
    assert await _send(pki, url=url, ca_file="certs/ca.pem", bearer_token="env:ERP_TOKEN") == 200
    assert requests[0][0]["Authorization"] == "Bearer tok-3f9a1c7e55d2"


async def test_basic_credentials_arrive_as_http_basic(pki, https):
    url, requests = https
    assert await _send(pki, url=url, ca_file="certs/ca.pem", basic_user="gateway",
                       basic_password="env:ERP_PASSWORD") == 200
    header = requests[0][0]["Authorization"]
    assert header.startswith("Basic ")
    assert base64.b64decode(header[6:]) == b"gateway:pw-Zq81xVv0"


async def test_an_echoed_authorization_header_is_blanked_in_the_error(pki, https):
    url, _ = https
    conn = RestConnector(target(url=url, ca_file="certs/ca.pem", bearer_token="env:ERP_TOKEN",
                                headers={"X-Echo": "1"}), pki)
    try:
        with pytest.raises(PermanentDeliveryError) as caught:
            await conn.send(job())
    finally:
        await conn.close()
    assert str(caught.value) == f"{url} answered HTTP 401: denied: Bearer ***"


async def test_a_header_given_by_secret_reference_is_blanked_when_echoed(pki, https):
    url, _ = https
    conn = RestConnector(target(url=url, ca_file="certs/ca.pem", headers={"X-Echo": "1", "X-Api-Key": "env:ERP_TOKEN"}),
                         pki)
    try:
        with pytest.raises(PermanentDeliveryError) as caught:
            await conn.send(job())
    finally:
        await conn.close()
    assert str(caught.value) == f"{url} answered HTTP 401: denied: ***"


async def test_soap_target_sends_the_same_bearer_header(pki, https):
    url, requests = https
    conn = SoapConnector(target(url=url, ca_file="certs/ca.pem", bearer_token="env:ERP_TOKEN"), pki)
    try:
        await conn.send(job())   # "ok" is not a SOAP envelope: the answer itself does not matter here
    except RetryableDeliveryError:
        pass
    finally:
        await conn.close()
    assert requests[0][0]["Authorization"] == "Bearer tok-3f9a1c7e55d2"


# --------------------------------------------------------------------------- mutual TLS

async def test_server_requiring_a_client_certificate_accepts_ours(pki, mtls):
    url, requests = mtls
    assert await _send(pki, url=url, ca_file="certs/ca.pem", client_cert="certs/erp-client.pem",
                       client_key="certs/erp-client.key") == 200
    assert requests[0][1] == "erp-client"


async def test_encrypted_client_key_loads_with_its_pass_phrase(pki, mtls):
    url, requests = mtls
    assert await _send(pki, url=url, ca_file="certs/ca.pem", client_cert="certs/locked-client.pem",
                       client_key="certs/locked-client.key", client_key_password="env:KEY_PASS") == 200
    assert requests[0][1] == "erp-client"


async def test_server_requiring_a_client_certificate_refuses_a_connection_without_one(pki, mtls):
    url, requests = mtls
    with pytest.raises(RetryableDeliveryError) as caught:
        await _send(pki, url=url, ca_file="certs/ca.pem")
    assert str(caught.value).startswith(f"cannot reach {url}: ")
    assert "set client_cert and client_key" in str(caught.value)
    assert requests == []


async def test_server_refuses_a_client_certificate_from_another_ca(pki, mtls):
    url, requests = mtls
    with pytest.raises(RetryableDeliveryError) as caught:
        await _send(pki, url=url, ca_file="certs/ca.pem", client_cert="certs/stranger.pem",
                    client_key="certs/stranger.key")
    assert "check client_cert against the CA it trusts" in str(caught.value)
    assert requests == []


async def test_tls_verification_stays_on_with_a_client_certificate(pki, mtls):
    url, _ = mtls   # no ca_file: the test CA is not trusted, so our side refuses the server
    with pytest.raises(RetryableDeliveryError, match="certificate verify failed"):
        await _send(pki, url=url, client_cert="certs/erp-client.pem", client_key="certs/erp-client.key")


# --------------------------------------------------------------------------- check_options

def problems(home: Path, **options) -> dict[str, str]:
    options.setdefault("url", "https://erp.example/in")
    return dict(RestConnector.check_options(options, home, resolve_secret))


def test_valid_auth_options_have_no_problems(pki):
    assert problems(pki, bearer_token="env:ERP_TOKEN") == {}
    assert problems(pki, basic_user="gw", basic_password="env:ERP_PASSWORD") == {}
    assert problems(pki, client_cert="certs/erp-client.pem", client_key="certs/erp-client.key",
                    ca_file="certs/ca.pem") == {}


def test_literal_secrets_are_refused_without_quoting_them(pki):
    found = problems(pki, bearer_token=TOKEN)
    assert found == {"bearer_token": "must be a secret reference: env:NAME or file:PATH"}
    found = problems(pki, basic_user="gw", basic_password=PASSWORD)
    assert found == {"basic_password": "must be a secret reference: env:NAME or file:PATH"}


def test_unset_secret_reference_is_a_problem(pki, monkeypatch):
    monkeypatch.delenv("ERP_TOKEN")
    assert problems(pki, bearer_token="env:ERP_TOKEN") == {
        "bearer_token": "environment variable ERP_TOKEN is not set"}


def test_bearer_and_basic_together_is_a_problem(pki):
    found = problems(pki, bearer_token="env:ERP_TOKEN", basic_user="gw", basic_password="env:ERP_PASSWORD")
    assert found == {"bearer_token": "choose bearer_token or basic_user/basic_password, not both"}


def test_basic_user_without_password_is_a_problem(pki):
    assert problems(pki, basic_user="gw") == {"basic_password": "basic_user and basic_password go together"}


def test_credentials_over_plain_http_need_https_except_on_loopback(pki):
    assert problems(pki, url="http://erp.example/in", bearer_token="env:ERP_TOKEN") == {
        "url": "bearer or basic credentials in clear text need an https url"}
    assert problems(pki, url="http://127.0.0.1:8080/in", bearer_token="env:ERP_TOKEN") == {}


def test_client_cert_without_key_is_a_problem(pki):
    assert problems(pki, client_cert="certs/erp-client.pem") == {
        "client_key": "client_cert and client_key go together"}


def test_missing_client_cert_file_is_a_problem(pki):
    assert problems(pki, client_cert="certs/nope.pem", client_key="certs/erp-client.key") == {
        "client_cert": "must name an existing PEM file (relative to the deployment home)"}


def test_key_of_another_certificate_is_a_problem(pki):
    assert problems(pki, client_cert="certs/erp-client.pem", client_key="certs/stranger.key") == {
        "client_cert": "cannot load the certificate and key: the key does not belong to the certificate"}


def test_encrypted_key_without_pass_phrase_is_a_problem(pki):
    found = problems(pki, client_cert="certs/locked-client.pem", client_key="certs/locked-client.key")
    assert list(found) == ["client_cert"]
    assert "the key is encrypted: set client_key_password" in found["client_cert"]


def test_a_file_that_is_not_pem_is_a_problem(pki):
    assert problems(pki, client_cert="certs/ca.pem", client_key="certs/ca.pem") == {
        "client_cert": "cannot load the certificate and key: not a PEM certificate and unencrypted private key"}


def test_soap_check_options_share_the_auth_rules(pki):
    found = dict(SoapConnector.check_options({"url": "https://erp/soap", "bearer_token": TOKEN,
                                              "client_cert": "certs/erp-client.pem"}, pki, resolve_secret))
    assert found == {"bearer_token": "must be a secret reference: env:NAME or file:PATH",
                     "client_key": "client_cert and client_key go together"}


def test_no_problem_text_contains_a_secret_value(pki, monkeypatch):
    monkeypatch.setenv("KEY_PASS", "wrong pass phrase")
    texts = [
        *problems(pki, bearer_token=TOKEN, basic_user="gw", basic_password=PASSWORD).values(),
        *problems(pki, client_cert="certs/locked-client.pem", client_key="certs/locked-client.key",
                  client_key_password="env:KEY_PASS").values(),
    ]
    assert texts
    for text in texts:
        assert TOKEN not in text and PASSWORD not in text and "wrong pass phrase" not in text
