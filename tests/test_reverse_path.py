"""The reverse path end to end: an invoice posted to our document API reaches a partner gateway.

Two real ``gateway serve`` processes on 127.0.0.1: ``hq`` (ours, document API on) and ``acme``
(the partner's gateway, which knows us as its partner HQ and routes invoices to a recording
REST target). The invoice travels as EDIFACT INVOIC over AS2 (signed, encrypted, MDN) or as
X12 810 pushed to acme's own SFTP server; acme maps it back to a canonical invoice. Whether an
acknowledgment (CONTRL / 997) comes back is decided by the configuration each case writes, and
the API status on hq is asserted to be exactly what that configuration implies.
"""

from __future__ import annotations

import copy
import json
import re
import socket
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncssh
import pytest

from gateway.as2 import generate_identity
from harness import REPO, GatewayProcess, RecordingTarget, make_deployment, wait_for

TOKEN = "reverse-path-token-0123456789abcdef"    # >= 16 characters, given to hq as $REVERSE_API_TOKEN
HQ_IDS = {"edifact": "14:4000001000005", "x12": "ZZ:MYCOMPANY"}     # who we write as (UNB / ISA sender)
ACME_IDS = {"edifact": "14:5412345000013", "x12": "ZZ:ACMEUS"}      # ACME's identifiers in partners/ACME.toml
MAPPING = {"edifact": "out-edifact-invoic", "x12": "out-x12-810"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def golden_invoice(mapping: str) -> dict[str, Any]:
    """The hand-written canonical invoice of a mapping's golden pair (a valid invoice for that format)."""
    return json.loads((REPO / "mappings" / "golden" / mapping / "basic.input.json").read_text())


def inline(d: dict[str, str]) -> str:
    return "{ " + ", ".join(f'{k} = "{v}"' for k, v in d.items()) + " }"


def ids_table(d: dict[str, str]) -> str:
    return "[identifiers]\n" + "".join(f'{k} = ["{v}"]\n' for k, v in d.items())


def as2_identity(home: Path, name: str, cn: str) -> bytes:
    """Our key pair in certs/<name>.pem; returns the certificate (PEM) for the other side."""
    key, cert = generate_identity(cn)
    (home / "certs").mkdir(exist_ok=True)
    (home / "certs" / f"{name}.pem").write_bytes(key + cert)
    return cert


@dataclass
class Pair:
    hq: GatewayProcess
    acme: GatewayProcess
    api: str          # http://127.0.0.1:PORT/api/v1


def build_pair(tmp: Path, target_url: str, *, channel: str, mdn: str = "sync", ack: bool) -> Pair:
    """hq (API on, partner ACME over ``channel``) and acme (partner HQ, invoices routed to ``target_url``).

    ``ack``: acme acknowledges what HQ sends (CONTRL / 997) and hq expects it (expect_ack_minutes);
    without it neither side asks for or sends one.
    """
    fmt = "edifact" if channel == "as2" else "x12"
    hq_http = free_port()
    hq = make_deployment(tmp / "hq", "http://127.0.0.1:9/unused")
    acme = make_deployment(tmp / "acme", target_url)
    for home in (hq, acme):   # an AS2 send holds its lease for the POST and the async MDN wait
        config = home / "gateway.toml"
        config.write_text(config.read_text().replace("lease_seconds = 5", "lease_seconds = 30"))
    hq_conf = (f'\n[http]\nport = {hq_http}\n[api]\nenabled = true\ntokens = ["env:REVERSE_API_TOKEN"]\n'
               f'[edi]\nidentifiers = {inline(HQ_IDS)}\n')
    acme_conf = f'\n[edi]\nidentifiers = {inline(ACME_IDS)}\n'
    # What hq knows of ACME, and what acme knows of HQ (each file written whole: one [edi] table each).
    acme_file = (f'name = "ACME Retail Europe"\n{ids_table(ACME_IDS)}[inbox]\nenabled = false\n'
                 f'[mappings]\ninvoice = "{MAPPING[fmt]}"\n'
                 f'[edi]\nformat = "{fmt}"\nexpect_ack_minutes = {60 if ack else 0}\n')
    hq_file = (f'name = "Headquarters"\n{ids_table(HQ_IDS)}[inbox]\nenabled = false\n'
               f'[[routes]]\ndocument = "invoice"\ntargets = ["erp"]\n'
               f'[edi]\nacknowledge = {str(ack).lower()}\n')

    if channel == "as2":
        acme_http = free_port()
        hq_cert = as2_identity(hq, "hq", "HQGW")
        acme_cert = as2_identity(acme, "acme", "ACMEAS2")
        (hq / "certs" / "acme.cert.pem").write_bytes(acme_cert)
        (acme / "certs" / "hq.cert.pem").write_bytes(hq_cert)
        hq_conf += '[as2]\nas2_id = "HQGW"\nidentities = ["certs/hq.pem"]\nmdn_timeout = 10\n'
        acme_conf += (f'[http]\nport = {acme_http}\n'
                      '[as2]\nas2_id = "ACMEAS2"\nidentities = ["certs/acme.pem"]\nmdn_timeout = 10\n')
        acme_file += (f'[as2]\nid = "ACMEAS2"\nurl = "http://127.0.0.1:{acme_http}/as2"\ntimeout = 5\n'
                      f'certificates = ["certs/acme.cert.pem"]\nsign = "sha256"\nencrypt = "aes256-cbc"\n'
                      f'mdn = "{mdn}"\nmdn_signed = true\nrequire_signature = true\n')
        hq_file += (f'[as2]\nid = "HQGW"\nurl = "http://127.0.0.1:{hq_http}/as2"\ntimeout = 5\n'
                    f'certificates = ["certs/hq.cert.pem"]\nsign = "sha256"\nencrypt = "aes256-cbc"\n'
                    f'mdn = "sync"\nrequire_signature = true\nasync_mdn_hosts = ["127.0.0.1"]\n')
    else:
        sftp_port = free_port()
        host = asyncssh.generate_private_key("ssh-ed25519")
        (acme / "certs").mkdir(exist_ok=True)
        host.write_private_key(str(acme / "certs" / "ssh_host_ed25519_key"))
        client = asyncssh.generate_private_key("ssh-ed25519")
        (hq / "certs").mkdir(exist_ok=True)
        client.write_private_key(str(hq / "certs" / "acme-sftp.key"))
        (hq / "certs" / "acme-sftp.key").chmod(0o600)
        acme_conf += (f'[sftp]\nhost = "127.0.0.1"\nport = {sftp_port}\n'
                      'host_keys = ["certs/ssh_host_ed25519_key"]\n')
        # hq pushes to acme's /inbox and, when an acknowledgment is expected, polls acme's /outbox for it.
        acme_file += (f'[sftp_remote]\nhost = "127.0.0.1"\nport = {sftp_port}\nusername = "hq"\n'
                      f'key = "certs/acme-sftp.key"\n'
                      f'host_key = "{host.export_public_key().decode().strip()}"\nupload_dir = "/inbox"\n'
                      + ('poll_dir = "/outbox"\npoll_seconds = 1\nafter_poll = "delete"\n' if ack else '')
                      + 'timeout = 10\n')
        hq_file += (f'[sftp]\nusername = "hq"\n'
                    f'authorized_keys = ["{client.export_public_key().decode().strip()}"]\n')

    with (hq / "gateway.toml").open("a") as fh:
        fh.write(hq_conf)
    with (acme / "gateway.toml").open("a") as fh:
        fh.write(acme_conf)
    (hq / "partners" / "ACME.toml").write_text(acme_file)
    (acme / "partners" / "ACME.toml").unlink()   # the partner's gateway knows us as its partner HQ
    (acme / "partners" / "HQ.toml").write_text(hq_file)
    return Pair(GatewayProcess(hq, env={"REVERSE_API_TOKEN": TOKEN}), GatewayProcess(acme),
                f"http://127.0.0.1:{hq_http}/api/v1")


def call(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None,
         token: str = TOKEN) -> tuple[int, dict[str, Any]]:
    """One HTTP request to hq's API; returns (status, JSON body) for every status."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={
        "Authorization": f"Bearer {token}", "Content-Type": "application/json", **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=15) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def start(pair: Pair) -> None:
    """`gateway check` both deployments (a partner file with a problem would only be disabled), then serve."""
    with ThreadPoolExecutor(2) as pool:   # the two deployments are independent: check and start side by side
        list(pool.map(lambda gw: gw.cli("check"), (pair.hq, pair.acme)))
        list(pool.map(lambda gw: gw.start(), (pair.acme, pair.hq)))


def stop(pair: Pair) -> None:
    pair.hq.stop()
    pair.acme.stop()


def post_invoice(pair: Pair, invoice: dict[str, Any], key: str) -> tuple[int, dict[str, Any]]:
    return call("POST", f"{pair.api}/documents", {"partner": "ACME", "type": "invoice", "document": invoice},
                headers={"Idempotency-Key": key})


class StatusWatch:
    """Polls GET /api/v1/documents/{id} and keeps every status seen, in order, without repeats."""

    def __init__(self, pair: Pair, message_id: str) -> None:
        self.url = f"{pair.api}/documents/{message_id}"
        self.seen: list[str] = []
        self.last: dict[str, Any] = {}

    def poll(self) -> dict[str, Any]:
        code, body = call("GET", self.url)
        assert code == 200, (code, body)
        if not self.seen or self.seen[-1] != body["status"]:
            self.seen.append(body["status"])
        self.last = body
        return body

    def until(self, done: Any, timeout: float, what: str) -> dict[str, Any]:
        try:
            wait_for(lambda: done(self.poll()), timeout, what, interval=0.1)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; statuses seen {self.seen}, last answer {self.last}") from None
        return self.last


def assert_order(seen: list[str], order: list[str]) -> None:
    """Statuses only move forward along ``order`` (queued first, the expected final state last)."""
    assert seen and all(s in order for s in seen), f"statuses {seen}, expected only {order}"
    positions = [order.index(s) for s in seen]
    assert positions == sorted(positions), f"statuses went backwards: {seen}"
    assert seen[-1] == order[-1], f"statuses {seen} did not end at {order[-1]}"


def assert_received_once(target: RecordingTarget, invoice: dict[str, Any], *, channel: str, fmt: str,
                         standard: str, interchange: str) -> dict[str, Any]:
    """acme's target got exactly one request: the canonical invoice we posted, mapped back from the EDI."""
    assert len(target.attempts) == 1, target.attempts
    [record] = target.received
    envelope = record["document"]
    assert (envelope["type"], envelope["partner"]) == ("invoice", "HQ"), envelope
    source = envelope["source"]
    assert (source["channel"], source["format"], source["standard"], source["interchange"]) == \
        (channel, fmt, standard, interchange), source
    got = envelope["document"]
    expected = copy.deepcopy(invoice)
    if fmt == "x12":
        # An 810 IT1 line carries quantity x unit price, no extended amount: the 810 mappings document that
        # line_amount is not sent (out-x12-810.toml) and reads back as null (x12-810.toml).
        for line in expected["lines"]:
            assert Decimal(line["quantity"]) * Decimal(line["unit_price"]) == Decimal(line["line_amount"]), line
            line["line_amount"] = None
    assert got["number"] == expected["number"]
    assert got["totals"] == expected["totals"]
    assert got["lines"] == expected["lines"]
    assert got == expected   # everything else too (dates, parties, currency, order number)
    return envelope


def repeat_post(pair: Pair, invoice: dict[str, Any], key: str, created: dict[str, Any]) -> None:
    """The same Idempotency-Key again: 200 with the first answer (same message, delivery and interchange)."""
    code, again = post_invoice(pair, invoice, key)
    assert code == 200, (code, again)
    assert (again["id"], again["delivery"], again["interchange"]) == \
        (created["id"], created["delivery"], created["interchange"]), (again, created)


def assert_nothing_new(target: RecordingTarget, watch: StatusWatch, before: dict[str, Any], since: float) -> None:
    """After a repeat POST: no second request at acme's target, hq's status document unchanged."""
    # A second interchange would be sent and delivered within well under a second (the first was).
    time.sleep(max(0.0, since + 1.5 - time.monotonic()))
    assert len(target.attempts) == 1, target.attempts
    after = watch.poll()
    assert after["delivery"] == before["delivery"] and after["status"] == before["status"], (before, after)


def logs(pair: Pair) -> tuple[tuple[dict[str, Any], dict[str, Any], list[str]], list[dict[str, Any]]]:
    """acme's log (see acme_log) and what hq received from ACME, read side by side."""
    with ThreadPoolExecutor(2) as pool:
        inbound = pool.submit(acme_log, pair)
        acks = pool.submit(hq_acks_received, pair)
        return inbound.result(), acks.result()


def acme_log(pair: Pair) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """acme's one received message (log list), its details (log show), and the standards of what it sent HQ."""
    listed = pair.acme.cli_json("log", "list")
    assert all(m["partner"] == "HQ" for m in listed), listed
    inbound = [m for m in listed if m["channel"] != "api"]
    assert len(inbound) == 1, listed
    sent = [m["standard"].split()[0] for m in listed if m["channel"] == "api"]   # acknowledgments it wrote us
    return inbound[0], pair.acme.cli_json("log", "show", inbound[0]["id"]), sent


def hq_acks_received(pair: Pair) -> list[dict[str, Any]]:
    """Messages hq received from ACME (acknowledgments are the only thing ACME sends in these tests)."""
    return [m for m in pair.hq.cli_json("log", "list") if m["partner"] == "ACME" and m["channel"] != "api"]


# ----------------------------------------------------------------------------- AS2, EDIFACT INVOIC


@pytest.mark.parametrize("mdn,ack", [("sync", False), ("async", True)], ids=["sync-mdn", "async-mdn-contrl"])
def test_api_invoice_reaches_partner_gateway_as_invoic_over_as2(tmp_path, target, mdn, ack):
    pair = build_pair(tmp_path, target.url, channel="as2", mdn=mdn, ack=ack)
    start(pair)
    try:
        invoice = golden_invoice(MAPPING["edifact"])
        invoice["number"] = f"INV-AS2-{mdn}"
        key = f"erp-invoice-as2-{mdn}"
        code, created = post_invoice(pair, invoice, key)
        assert code == 201, (code, created)
        assert re.fullmatch(r"msg_[0-9a-f]{20}", created["id"]) and created["status"] == "queued", created
        watch = StatusWatch(pair, created["id"])

        # acme: the invoice arrives, is read as INVOIC and mapped back to the canonical invoice we posted.
        wait_for(lambda: target.received, 30, "the invoice at acme's target")
        assert_received_once(target, invoice, channel="as2", fmt="edifact", standard="INVOIC D96A",
                             interchange=created["interchange"])

        # hq: queued -> mdn (the partner's signed receipt, MIC checked) [-> acknowledged by a CONTRL].
        final = "acknowledged" if ack else "mdn"
        doc = watch.until(lambda d: d["status"] in (final, "dead"), 30, f"status {final!r} on hq")
        assert_order(["queued"] + watch.seen, ["queued", "mdn", "acknowledged"] if ack else ["queued", "mdn"])
        assert (doc["partner"], doc["type"], doc["channel"], doc["standard"]) == \
            ("ACME", "invoice", "api", "INVOIC D96A"), doc
        assert doc["mdn"]["positive"] is True and doc["mdn"]["mic_ok"] is True, doc
        assert doc["mdn"]["disposition"] == "processed", doc
        assert (doc["delivery"]["target"], doc["delivery"]["status"], doc["delivery"]["attempts"]) == \
            ("as2:ACME", "delivered", 1), doc
        if ack:
            assert doc["acknowledgment"]["status"] == "accepted", doc
            assert [m["status"] for m in doc["acknowledgment"]["messages"]] == ["accepted"], doc
        else:
            assert doc["acknowledgment"] is None, doc

        # 3. Nothing doubles: the same Idempotency-Key answers 200 with the first id; checked after the logs.
        before, repeated_at = dict(doc), time.monotonic()
        repeat_post(pair, invoice, key, created)
        (message, view, acme_sent), contrl = logs(pair)

        # acme's log: received over AS2 as EDIFACT, processed, our receipt sent ("processed", signed, sync/async).
        assert (message["channel"], message["format"], message["standard"], message["status"]) == \
            ("as2", "edifact", "INVOIC D96A", "processed"), message
        assert (message["interchange"], message["filename"]) == \
            (created["interchange"], f"invoice-{invoice['number']}.edi"), message
        [receipt] = view["mdns"]
        assert (receipt["direction"], receipt["mode"], receipt["disposition"], receipt["signed"]) == \
            ("sent", mdn, "processed", True), receipt
        assert [d["status"] for d in view["deliveries"] if d["target"] == "erp"] == ["delivered"], view["deliveries"]

        # The acknowledgment: acme wrote a CONTRL, and hq received it, exactly when that was configured.
        assert acme_sent == (["CONTRL"] if ack else []), acme_sent
        assert ("ack-sent" in [e["step"] for e in view["events"]]) is ack, view["events"]
        assert [(m["channel"], m["format"], m["standard"].split()[0]) for m in contrl] == \
            ([("as2", "edifact", "CONTRL")] if ack else []), contrl

        assert_nothing_new(target, watch, before, repeated_at)
    finally:
        stop(pair)


# ----------------------------------------------------------------------------- SFTP push, X12 810

@pytest.mark.parametrize("ack", [False, True], ids=["no-ack", "997"])
def test_api_invoice_reaches_partner_gateway_as_810_over_sftp(tmp_path, target, ack):
    pair = build_pair(tmp_path, target.url, channel="sftp", ack=ack)
    start(pair)
    try:
        invoice = golden_invoice(MAPPING["x12"])
        invoice["number"] = f"INV-SFTP-{int(ack)}"
        key = f"erp-invoice-sftp-{int(ack)}"
        code, created = post_invoice(pair, invoice, key)
        assert code == 201, (code, created)
        assert re.fullmatch(r"msg_[0-9a-f]{20}", created["id"]) and created["status"] == "queued", created
        watch = StatusWatch(pair, created["id"])

        # Our connector stages the upload under a hidden name and renames it: acme's server stores it then.
        doc = watch.until(lambda d: d["delivery"]["status"] in ("delivered", "dead"), 30, "the SFTP push")
        assert doc["delivery"]["status"] == "delivered", doc["delivery"]

        wait_for(lambda: target.received, 30, "the invoice at acme's target")
        assert_received_once(target, invoice, channel="sftp", fmt="x12", standard="810 004010",
                             interchange=created["interchange"])

        final = "acknowledged" if ack else "sent"
        doc = watch.until(lambda d: d["status"] in (final, "dead"), 30, f"status {final!r} on hq")
        assert_order(["queued"] + watch.seen, ["queued", "sent", "acknowledged"] if ack else ["queued", "sent"])
        assert (doc["partner"], doc["type"], doc["channel"], doc["standard"]) == \
            ("ACME", "invoice", "api", "810 004010"), doc
        assert (doc["delivery"]["target"], doc["delivery"]["status"], doc["delivery"]["attempts"]) == \
            ("sftp:ACME", "delivered", 1), doc
        assert doc["mdn"] is None, doc
        if ack:
            assert doc["acknowledgment"]["status"] == "accepted", doc
        else:
            assert doc["acknowledgment"] is None, doc

        before, repeated_at = dict(doc), time.monotonic()
        repeat_post(pair, invoice, key, created)
        (message, view, acme_sent), functional = logs(pair)

        # acme's log: uploaded to its SFTP server by HQ, read as X12 810, processed.
        assert (message["channel"], message["format"], message["standard"], message["status"]) == \
            ("sftp", "x12", "810 004010", "processed"), message
        # The file keeps the name hq gave it (the API names it invoice-<number>.x12), not a temp name.
        assert (message["interchange"], message["filename"]) == \
            (created["interchange"], f"invoice-{invoice['number']}.x12"), message
        assert view["mdns"] == [], view["mdns"]
        assert [d["status"] for d in view["deliveries"] if d["target"] == "erp"] == ["delivered"], view["deliveries"]

        # The 997: acme wrote one to its outbox and hq polled it in, exactly when that was configured.
        assert acme_sent == (["997"] if ack else []), acme_sent
        assert ("ack-sent" in [e["step"] for e in view["events"]]) is ack, view["events"]
        assert [(m["channel"], m["format"], m["standard"].split()[0]) for m in functional] == \
            ([("poll", "x12", "997")] if ack else []), functional

        assert_nothing_new(target, watch, before, repeated_at)
    finally:
        stop(pair)
