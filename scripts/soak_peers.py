"""The soak's world: three gateway deployments (ours and two AS2 partners) and the recording REST/SOAP targets.

``hq`` is the gateway under test. Its partner ACME (a retailer with 45 branches) sends orders
over AS2 with a sync MDN from its own gateway (``acme``), uploads them to our SFTP server and
drops them into our inbox; partner BETA sends orders over AS2 with an async MDN from its gateway
(``beta``). Our internal systems post invoices to hq's document API; they travel to ACME over
AS2 and land at ACME's own target. hq routes each order by its ship-to branch: the first 15
branches to a SOAP target (``erp-soap``), every other to a REST target (``erp``).
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
from aiohttp import web

from gateway.as2 import generate_identity
from harness import REPO, GatewayProcess, RecordingTarget, make_deployment
from soap_service import SoapService

API_TOKEN = "soak-api-token-0123456789abcdef"     # >= 16 characters; given to every gateway as $SOAK_API_TOKEN
HQ_EDI = "14:4000001000005"                          # who hq writes as (UNB sender of our invoices)
ACME_EDI = "14:5412345000013"
BETA_EDI = "14:5499999000017"
BRANCHES = [f"54123450{n:05d}" for n in range(1, 46)]   # ship-to ids of the retailer's 45 branches
SOAP_BRANCHES = BRANCHES[:15]                           # routed to the SOAP target; the rest to REST
SOAP_NAMESPACE = "urn:soak:erp"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def golden(mapping: str) -> dict[str, Any]:
    """The canonical input of a mapping's golden pair: a valid document of that type to vary."""
    return json.loads((REPO / "mappings" / "golden" / mapping / "basic.input.json").read_text())


class SoapRecorder:
    """tests/soap_service.py's SoapService on its own thread and loop, noting when each request arrived."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []      # parallel to service.received
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the SOAP service did not start")

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        self.service = SoapService(namespace=SOAP_NAMESPACE)
        handle = self.service._handle

        async def timed(request: web.Request) -> web.Response:
            # Arrival is stamped with the request's body read, as RecordingTarget does.
            self.arrivals.append(time.time())
            return await handle(request)

        self.service._handle = timed       # bound before start(): the route takes this one
        self._loop.run_until_complete(self.service.start())
        self._ready.set()
        self._loop.run_forever()

    @property
    def url(self) -> str:
        return self.service.url

    def records(self) -> list[dict[str, Any]]:
        """Accepted requests as {at, key, envelope}; requests with protocol problems are left out."""
        out = []
        for at, got in zip(list(self.arrivals), list(self.service.received)):
            if not got.problems and isinstance(got.document, dict):
                out.append({"at": at, "key": got.idempotency_key, "envelope": got.document})
        return out

    def refused(self) -> list[list[str]]:
        return [got.problems for got in list(self.service.received) if got.problems]

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.service.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def rest_records(target: RecordingTarget) -> list[dict[str, Any]]:
    """A RecordingTarget's accepted requests as {at, key, envelope}."""
    with target._lock:
        received = list(target.received)
    return [{"at": r["at"], "key": r["headers"].get("Idempotency-Key"), "envelope": r["document"]}
            for r in received]


@dataclass
class World:
    hq: GatewayProcess
    acme: GatewayProcess
    beta: GatewayProcess
    hq_api: str             # http://127.0.0.1:PORT/api/v1 of each gateway
    acme_api: str
    beta_api: str
    sftp_port: int
    sftp_key: Path          # ACME's client key for our SFTP server
    sftp_known_hosts: Path
    store_url: str          # hq's store (SQLite file or PostgreSQL)

    def gateways(self) -> list[GatewayProcess]:
        return [self.hq, self.acme, self.beta]


def _identity(home: Path, name: str, cn: str) -> bytes:
    key, cert = generate_identity(cn)
    (home / "certs").mkdir(exist_ok=True)
    (home / "certs" / f"{name}.pem").write_bytes(key + cert)
    return cert


def _lines(table: dict[str, Any]) -> str:
    return "".join(f"{k} = {json.dumps(v)}\n" for k, v in table.items())


def _routes() -> str:
    return ('[[routes]]\ndocument = "order"\n'
            f'when = {{ "ship_to.id" = {json.dumps(SOAP_BRANCHES)} }}\ntargets = ["erp-soap"]\n'
            '[[routes]]\ndocument = "order"\nfallback = true\ntargets = ["erp"]\n')


def build_world(tmp: Path, *, rest_url: str, soap_url: str, acme_target_url: str, store_url: str | None) -> World:
    """Write the three deployments under ``tmp`` (not started)."""
    hq_http, acme_http, beta_http, sftp_port = free_port(), free_port(), free_port(), free_port()
    hq = make_deployment(tmp / "hq", rest_url)
    acme = make_deployment(tmp / "acme", acme_target_url)
    beta = make_deployment(tmp / "beta", "http://127.0.0.1:9/unused")
    for home in (hq, acme, beta):   # an AS2 send holds its lease for the POST and the MDN wait
        config = home / "gateway.toml"
        config.write_text(config.read_text().replace("lease_seconds = 5", "lease_seconds = 60"))
    hq_cert = _identity(hq, "hq", "HQGW")
    acme_cert = _identity(acme, "acme", "ACMEAS2")
    beta_cert = _identity(beta, "beta", "BETAAS2")
    (hq / "certs" / "acme.cert.pem").write_bytes(acme_cert)
    (hq / "certs" / "beta.cert.pem").write_bytes(beta_cert)
    for home in (acme, beta):
        (home / "certs" / "hq.cert.pem").write_bytes(hq_cert)

    host_key = asyncssh.generate_private_key("ssh-ed25519")
    host_key.write_private_key(str(hq / "certs" / "ssh_host_ed25519_key"))
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    (tmp / "client").mkdir(mode=0o700, exist_ok=True)
    sftp_key = tmp / "client" / "acme_ed25519"
    client_key.write_private_key(str(sftp_key))
    sftp_key.chmod(0o600)
    known_hosts = tmp / "client" / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{sftp_port} {host_key.export_public_key().decode().strip()}\n")

    api = '[api]\nenabled = true\ntokens = ["env:SOAK_API_TOKEN"]\nrate_limit = 1000\n'
    with (hq / "gateway.toml").open("a") as fh:
        fh.write(f'\n[http]\nport = {hq_http}\n{api}'
                 f'[edi]\nidentifiers = {{ edifact = "{HQ_EDI}", x12 = "ZZ:MYCOMPANY" }}\n'
                 '[as2]\nas2_id = "HQGW"\nidentities = ["certs/hq.pem"]\nmdn_timeout = 10\n'
                 f'[sftp]\nhost = "127.0.0.1"\nport = {sftp_port}\nhost_keys = ["certs/ssh_host_ed25519_key"]\n'
                 f'[targets.erp-soap]\ntype = "soap"\nurl = "{soap_url}"\nversion = "1.1"\n'
                 f'action = "urn:soak:SubmitDocument"\noperation = "SubmitDocument"\n'
                 f'namespace = "{SOAP_NAMESPACE}"\ntimeout = 5\n'
                 + (f'[store]\nurl = "{store_url}"\n' if store_url else ""))
    as2_send = 'sign = "sha256"\nencrypt = "aes256-cbc"\nmdn_signed = true\nrequire_signature = true\n'
    (hq / "partners" / "ACME.toml").write_text(
        f'name = "ACME Retail Europe"\n[identifiers]\nedifact = ["{ACME_EDI}"]\n[inbox]\nenabled = true\n'
        '[mappings]\ninvoice = "out-edifact-invoic"\n' + _routes() +
        '[edi]\nformat = "edifact"\nacknowledge = false\nduplicates = "reject"\n'
        f'[as2]\nid = "ACMEAS2"\nurl = "http://127.0.0.1:{acme_http}/as2"\ntimeout = 10\n'
        f'certificates = ["certs/acme.cert.pem"]\nmdn = "sync"\n{as2_send}async_mdn_hosts = ["127.0.0.1"]\n'
        f'[sftp]\nusername = "acme"\nauthorized_keys = ["{client_key.export_public_key().decode().strip()}"]\n'
        'max_connections = 8\n')
    (hq / "partners" / "BETA.toml").write_text(
        f'name = "Beta Markets"\n[identifiers]\nedifact = ["{BETA_EDI}"]\n[inbox]\nenabled = false\n'
        + _routes() + '[edi]\nacknowledge = false\nduplicates = "reject"\n'
        '[as2]\nid = "BETAAS2"\ncertificates = ["certs/beta.cert.pem"]\nrequire_signature = true\n'
        'async_mdn_hosts = ["127.0.0.1"]\n')

    # The partners' gateways: each knows hq as its partner HQ and sends it orders from its own document API.
    for home, as2_id, ident, port, edi_id, mdn in ((acme, "ACMEAS2", "acme", acme_http, ACME_EDI, "sync"),
                                                    (beta, "BETAAS2", "beta", beta_http, BETA_EDI, "async")):
        (home / "partners" / "ACME.toml").unlink()
        with (home / "gateway.toml").open("a") as fh:
            fh.write(f'\n[http]\nport = {port}\n{api}[edi]\nidentifiers = {{ edifact = "{edi_id}" }}\n'
                     f'[as2]\nas2_id = "{as2_id}"\nidentities = ["certs/{ident}.pem"]\nmdn_timeout = 20\n')
        (home / "partners" / "HQ.toml").write_text(
            f'name = "Headquarters"\n[identifiers]\nedifact = ["{HQ_EDI}"]\n[inbox]\nenabled = false\n'
            '[mappings]\norder = "out-edifact-orders"\n'
            '[[routes]]\ndocument = "invoice"\ntargets = ["erp"]\n'
            '[edi]\nformat = "edifact"\nacknowledge = false\n'
            f'[as2]\nid = "HQGW"\nurl = "http://127.0.0.1:{hq_http}/as2"\ntimeout = 10\n'
            f'certificates = ["certs/hq.cert.pem"]\nmdn = "{mdn}"\n{as2_send}async_mdn_hosts = ["127.0.0.1"]\n')

    env = {"SOAK_API_TOKEN": API_TOKEN}
    return World(hq=GatewayProcess(hq, env=env), acme=GatewayProcess(acme, env=env), beta=GatewayProcess(beta, env=env),
                 hq_api=f"http://127.0.0.1:{hq_http}/api/v1", acme_api=f"http://127.0.0.1:{acme_http}/api/v1",
                 beta_api=f"http://127.0.0.1:{beta_http}/api/v1", sftp_port=sftp_port, sftp_key=sftp_key,
                 sftp_known_hosts=known_hosts, store_url=store_url or f"sqlite:///{hq / 'var' / 'gateway.db'}")
