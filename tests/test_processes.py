"""`[server] processes = 2`: both processes take AS2 messages on one port; secondaries die with the primary."""

from __future__ import annotations

import asyncio
import json
import os
import signal

import aiohttp

from gateway.as2 import build, load_certificates, load_identity
from harness import GatewayProcess, edifact_order, wait_for
from test_as2_e2e import as2_pair


def log_lines(gw: GatewayProcess) -> list[dict]:
    lines = []
    for line in gw.log().splitlines():
        if line.startswith("{"):
            lines.append(json.loads(line))
    return lines


async def post_all(url: str, bodies: list[tuple[str, bytes, str]]) -> list[int]:
    async def one(message_id: str, body: bytes, content_type: str) -> int:
        # A connection per message, as many AS2 servers send: the kernel spreads connections, not requests.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as client:
            headers = {"AS2-Version": "1.2", "AS2-From": "ACMEAS2", "AS2-To": "HQGW", "Message-ID": message_id,
                       "Content-Type": content_type, "Disposition-Notification-To": "edi@acme.example"}
            async with client.post(url, data=body, headers=headers) as resp:
                await resp.read()
                return resp.status

    return list(await asyncio.gather(*(one(*b) for b in bodies)))


def test_two_processes_share_the_as2_port_and_the_work(tmp_path, target):
    hq_home, acme_home = as2_pair(tmp_path, target.url, mdn="sync", signed=True, compress="")
    config = hq_home / "gateway.toml"
    config.write_text(config.read_text().replace("[server]\n", "[server]\nprocesses = 2\n", 1))
    port = int(next(line for line in config.read_text().splitlines() if line.startswith("port =")).split("=")[1])
    acme = load_identity((acme_home / "certs" / "acme.pem").read_bytes())
    [hq_cert] = load_certificates((acme_home / "certs" / "hq.cert.pem").read_bytes())
    gw = GatewayProcess(hq_home).start()
    try:
        wait_for(lambda: any(r.get("event") == "gateway started" and r.get("process") == 1 for r in log_lines(gw)),
                 30, "the secondary to start")
        bodies = []
        for n in range(40):
            out = build(edifact_order(f"PO-MP-{n:02d}", icr=str(n + 1)), sign=acme, encrypt=[hq_cert])
            bodies.append((f"<mp-{n}@ACMEAS2>", out.body, out.content_type))
        statuses = asyncio.run(post_all(f"http://127.0.0.1:{port}/as2", bodies))
        assert statuses == [200] * 40
        wait_for(lambda: len(target.received) >= 40, 60, "all 40 orders at the target")
        numbers = sorted(r["document"]["document"]["number"] for r in target.received)
        assert numbers == [f"PO-MP-{n:02d}" for n in range(40)]   # each once: nothing lost, nothing doubled
        takers = {r.get("process") for r in log_lines(gw) if r.get("event") == "AS2 message received"}
        assert takers == {0, 1}, "both processes should have received messages"

        [secondary] = [r["pid"] for r in log_lines(gw) if r.get("event") == "secondary started"]
        gw.kill()   # kill -9 of the primary: the secondary must not live on as an orphan
        wait_for(lambda: not os.path.exists(f"/proc/{secondary}") or _zombie(secondary), 15,
                 "the secondary to end with the primary")
    finally:
        if gw.proc is not None and gw.proc.poll() is None:
            gw.proc.send_signal(signal.SIGTERM)
            gw.proc.wait(30)


def _zombie(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] == "Z"
    except OSError:
        return True
