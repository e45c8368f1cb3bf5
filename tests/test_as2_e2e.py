"""Two gateway deployments trading over AS2 on 127.0.0.1: `gateway send` on one, the order at the other's target."""

from __future__ import annotations

import hashlib
import socket
from pathlib import Path

import pytest

from gateway.as2 import generate_identity
from harness import GatewayProcess, edifact_order, make_deployment, wait_for


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def identity(home: Path, name: str, cn: str) -> Path:
    """Our key pair in certs/<name>.pem (key + certificate) and the public part in certs/<name>.cert.pem."""
    key, cert = generate_identity(cn)
    (home / "certs").mkdir(exist_ok=True)
    (home / "certs" / f"{name}.pem").write_bytes(key + cert)
    (home / "certs" / f"{name}.cert.pem").write_bytes(cert)
    return home / "certs" / f"{name}.cert.pem"


def as2_pair(tmp: Path, target_url: str, *, mdn: str, signed: bool, compress: str,
             encrypt: str = "aes256-cbc") -> tuple[Path, Path]:
    """Deployment `hq` (ours: receives ACME's orders, routes them to the target) and `acme` (the partner's gateway)."""
    hq_port, acme_port = free_port(), free_port()
    hq = make_deployment(tmp / "hq", target_url)
    acme = make_deployment(tmp / "acme", target_url)
    for home in (hq, acme):   # a send holds its lease for the POST (5 s) and the async MDN wait (10 s)
        config = home / "gateway.toml"
        config.write_text(config.read_text().replace("lease_seconds = 5", "lease_seconds = 30"))
    hq_cert = identity(hq, "hq", "HQGW")
    acme_cert = identity(acme, "acme", "ACMEAS2")
    (hq / "certs" / "acme.cert.pem").write_bytes(acme_cert.read_bytes())
    (acme / "certs" / "hq.cert.pem").write_bytes(hq_cert.read_bytes())
    for home, as2_id, ident, port in ((hq, "HQGW", "hq", hq_port), (acme, "ACMEAS2", "acme", acme_port)):
        with (home / "gateway.toml").open("a") as fh:
            fh.write(f'\n[http]\nport = {port}\n[as2]\nas2_id = "{as2_id}"\nidentities = ["certs/{ident}.pem"]\n'
                     f'mdn_timeout = 10\n')
    sign = "sha256" if signed else ""
    with (hq / "partners" / "ACME.toml").open("a") as fh:
        fh.write(f'\n[as2]\nid = "ACMEAS2"\nurl = "http://127.0.0.1:{acme_port}/as2"\ntimeout = 5\n'
                 f'certificates = ["certs/acme.cert.pem"]\nrequire_signature = {str(signed).lower()}\n'
                 f'async_mdn_hosts = ["127.0.0.1"]\n')   # its async MDN address is local here
    (acme / "partners" / "ACME.toml").unlink()   # the partner's gateway knows us as its partner HQ
    (acme / "partners" / "HQ.toml").write_text(
        f'name = "Headquarters"\n[inbox]\nenabled = false\n'
        f'[as2]\nid = "HQGW"\nurl = "http://127.0.0.1:{hq_port}/as2"\ntimeout = 5\ncertificates = ["certs/hq.cert.pem"]\n'
        f'sign = "{sign}"\nencrypt = "{encrypt}"\ncompress = "{compress}"\nmdn = "{mdn}"\n'
        f'mdn_signed = {str(signed).lower()}\nrequire_signature = {str(signed).lower()}\n')
    return hq, acme


@pytest.mark.parametrize("mdn,signed,compress", [
    ("sync", True, ""),
    ("async", True, "before-signing"),
    ("sync", False, "after-signing"),
    ("async", False, ""),
])
def test_two_gateways_trade_an_order_over_as2(tmp_path, target, mdn, signed, compress):
    hq_home, acme_home = as2_pair(tmp_path, target.url, mdn=mdn, signed=signed, compress=compress)
    hq, acme = GatewayProcess(hq_home), GatewayProcess(acme_home)
    hq.cli("check")
    acme.cli("check")
    hq.start()
    acme.start()
    try:
        order = edifact_order(f"PO-AS2-{mdn}-{int(signed)}")
        (tmp_path / "order.edi").write_bytes(order)
        sent = acme.cli("send", str(tmp_path / "order.edi"), "--partner", "HQ", "--timeout", "60")
        assert "delivered" in sent.stdout, sent.stdout

        # At HQ: the order reached the internal target, from a message stored byte-identical.
        wait_for(lambda: target.received, 30, "the order at HQ's target")
        assert target.received[0]["document"]["document"]["number"] == f"PO-AS2-{mdn}-{int(signed)}"
        [received] = hq.cli_json("log", "list")
        assert received["channel"] == "as2" and received["partner"] == "ACME"
        hq_view = hq.cli_json("log", "show", received["id"])
        assert hq_view["message"]["raw_sha256"] == hashlib.sha256(order).hexdigest()
        [ours] = hq_view["mdns"]
        assert (ours["direction"], ours["mode"], ours["disposition"], ours["signed"]) == ("sent", mdn, "processed", signed)

        # At ACME: the delivery is done and the MDN it got back is stored with the message, MIC checked.
        [out] = acme.cli_json("log", "list")
        acme_view = acme.cli_json("log", "show", out["id"])
        assert [d["status"] for d in acme_view["deliveries"]] == ["delivered"]
        [theirs] = acme_view["mdns"]
        assert (theirs["direction"], theirs["disposition"], theirs["signed"]) == ("received", "processed", signed)
        assert theirs["mic_ok"] is True
        assert theirs["as2_message_id"] == ours["as2_message_id"]

        if mdn == "sync" and signed:   # the onboarding check: a test message and its MDN, through the queue
            tested = acme.cli("partners", "test", "HQ", "--send")
            assert "answers (HTTP" in tested.stdout and "MDN         processed (MIC matches)" in tested.stdout
    finally:
        acme.stop()
        hq.stop()


def test_check_names_a_partner_ca_file_that_holds_no_certificate(tmp_path, monkeypatch):
    from gateway.config import check_deployment

    monkeypatch.setenv("GW_HARNESS_SECRET", "x")
    hq, _ = as2_pair(tmp_path, "http://127.0.0.1:9/erp", mdn="sync", signed=True, compress="")
    (hq / "certs" / "acme-ca.pem").write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    with (hq / "partners" / "ACME.toml").open("a") as fh:
        fh.write('ca_file = "certs/acme-ca.pem"\n')   # still inside its [as2] table
    problems = [str(p) for p in check_deployment(hq)]
    assert any(p.startswith("partners/ACME.toml: as2.ca_file: certs/acme-ca.pem holds no usable CA certificate")
               for p in problems), problems
