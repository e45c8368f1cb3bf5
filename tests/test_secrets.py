"""Secrets never reach logs, the store or CLI output: a full run with every kind of secret configured, then a grep.

One `gateway serve` (JSON logs) with: a signing secret, a bearer token, basic auth and a custom header by
reference on REST targets whose server echoes every request header back in its error answer; API tokens (and
callers presenting wrong ones); an SFTP password for a partner server that cannot be reached; dashboard
passwords (and a failed login with a wrong one). Traffic makes every path fail at least once. Then the serve log, every byte of the SQLite database and the operator CLI's output are
searched for each secret value.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import asyncssh
from aiohttp import web

from harness import SECRET, GatewayProcess, ThreadedServer, drop, edifact_order, make_deployment, wait_for

SECRETS = {
    "GW_BEARER": "bearer-secret-7f3a9c1e5b",
    "GW_BASIC_PASSWORD": "basic-secret-42d9e8a7c6",
    "GW_HEADER_KEY": "header-secret-b1c2d3e4f5",
    "GW_API_TOKEN": "api-token-secret-0a1b2c3d4e5f",
    "GW_SFTP_PASSWORD": "sftp-secret-9e8d7c6b5a",
}
WEB_PASSWORD = "dashboard-secret-5a6b7c8d"
WRONG = {"api": "wrong-api-token-8899aabbccdd", "web": "wrong-dashboard-password-3344"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EchoingTarget(ThreadedServer):
    """A REST target that refuses everything with 401 and puts every request header in its answer."""

    path = "/{tail:.*}"

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        super().__init__()

    async def _handle(self, request: web.Request) -> web.Response:
        headers = dict(request.headers)
        self.seen.append(headers)
        return web.Response(status=401, text=f"denied: {json.dumps(headers)}")


def deployment(tmp_path: Path, echo_port: int, http_port: int) -> Path:
    home = make_deployment(tmp_path / "gw", f"http://127.0.0.1:{echo_port}/signed")
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    (home / "certs").mkdir(exist_ok=True)
    host_key.write_private_key(str(home / "certs" / "host_key"))
    pinned = host_key.export_public_key().decode().strip()
    with (home / "gateway.toml").open("a") as fh:
        fh.write(
            f'\n[targets.bearer]\ntype = "rest"\nurl = "http://127.0.0.1:{echo_port}/bearer"\ntimeout = 3\n'
            'bearer_token = "env:GW_BEARER"\nheaders = { X-Api-Key = "env:GW_HEADER_KEY" }\n'
            f'\n[targets.basic]\ntype = "rest"\nurl = "http://127.0.0.1:{echo_port}/basic"\ntimeout = 3\n'
            'basic_user = "gateway"\nbasic_password = "env:GW_BASIC_PASSWORD"\n'
            f'\n[http]\nport = {http_port}\n[api]\nenabled = true\ntokens = ["env:GW_API_TOKEN"]\n'
            '[web]\nenabled = true\n'
            '[edi]\nidentifiers = { edifact = "14:4000001000005", x12 = "ZZ:MYCOMPANY" }\n')
    acme = home / "partners" / "ACME.toml"
    text = acme.read_text().replace('[[routes]]\ndocument = "order"\ntargets = ["erp"]\n',
                                    '[[routes]]\ndocument = "order"\ntargets = ["erp", "bearer", "basic"]\n')
    acme.write_text(text + (
        # Their SFTP server: nothing listens there, so every push fails and says why.
        f'\n[sftp_remote]\nhost = "127.0.0.1"\nport = {free_port()}\nusername = "us"\n'
        f'password = "env:GW_SFTP_PASSWORD"\nhost_key = "{pinned}"\nupload_dir = "/in"\n'))
    return home


def test_no_configured_secret_appears_in_logs_store_or_cli_output(tmp_path, monkeypatch):
    echo = EchoingTarget()
    http_port = free_port()
    home = deployment(tmp_path, echo.port, http_port)
    env = {**SECRETS}
    gw = GatewayProcess(home, env=env)
    try:
        users = subprocess.run([sys.executable, "-m", "gateway.cli", "--home", str(home), "users", "add", "olivia",
                                "--role", "operator", "--password-stdin"], input=WEB_PASSWORD + "\n",
                               capture_output=True, text=True, env=gw.env(), timeout=60)
        assert users.returncode == 0, users.stderr
        gw.start()
        drop(home / "var" / "inbox" / "ACME", "po.edi", edifact_order("PO-SECRETS"))
        base = f"http://127.0.0.1:{http_port}"
        invoice = json.loads((Path(__file__).resolve().parents[1] / "mappings" / "golden" / "out-edifact-invoic"
                              / "basic.input.json").read_text())
        for token in (SECRETS["GW_API_TOKEN"], WRONG["api"]):
            request = urllib.request.Request(
                f"{base}/api/v1/documents", method="POST", headers={"Authorization": f"Bearer {token}",
                                                                    "Content-Type": "application/json"},
                data=json.dumps({"partner": "ACME", "type": "invoice", "document": invoice}).encode())
            try:
                urllib.request.urlopen(request, timeout=10).read()
            except urllib.error.HTTPError as exc:
                assert exc.code in (401, 422), exc.read()
        for password in (WRONG["web"], WEB_PASSWORD):   # a failed dashboard login, then a good one
            opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
            form = opener.open(f"{base}/ui/login", timeout=10).read().decode()
            token = form.split('name="login_token" value="', 1)[1].split('"', 1)[0]
            data = urllib.parse.urlencode({"login_token": token, "username": "olivia", "password": password,
                                           "next": "/ui/"}).encode()
            try:
                opener.open(f"{base}/ui/login", data=data, timeout=10).read()
            except urllib.error.HTTPError as exc:
                assert exc.code == 401
        # Every path failed at least once: the echoing targets, the unreachable SFTP server.
        wait_for(lambda: len(echo.seen) >= 3, 30, "the refused deliveries")
        wait_for(lambda: "sftp:ACME" in gw.cli("queue", "list", "--json").stdout
                 or "sftp:ACME" in gw.cli("dlq", "list", "--json").stdout, 30, "the failed SFTP push")
        # The secrets were really used (so a leak had every chance to show).
        assert any(h.get("Authorization") == f"Bearer {SECRETS['GW_BEARER']}" for h in echo.seen)
        assert any(h.get("X-Api-Key") == SECRETS["GW_HEADER_KEY"] for h in echo.seen)
        assert any(h.get("Authorization", "").startswith("Basic ") for h in echo.seen)
        outputs = [gw.cli(*args).stdout for args in (("log", "list", "--json"), ("queue", "list", "--json"),
                                                     ("dlq", "list", "--json"), ("stats", "--json"),
                                                     ("partners", "show", "ACME", "--json"), ("check",))]
        outputs += [gw.cli("log", "show", m["id"], "--json").stdout
                    for m in json.loads(gw.cli("log", "list", "--json").stdout)]
    finally:
        gw.stop()
        echo.close()
    log = gw.log()
    database = (home / "var" / "gateway.db").read_bytes()
    for path in (home / "var").glob("gateway.db-*"):   # WAL leftovers, if any
        database += path.read_bytes()
    assert "dead-lettered" in log or "retry scheduled" in log, "the run did not exercise failing deliveries"
    secrets = {**SECRETS, "web password": WEB_PASSWORD, "wrong api token": WRONG["api"],
               "wrong web password": WRONG["web"], "signing secret": SECRET}
    leaks = [(name, where) for name, value in secrets.items()
             for where, text in (("serve log", log), ("cli output", "\n".join(outputs)))
             if value in text]
    leaks += [(name, "database") for name, value in secrets.items() if value.encode() in database]
    assert leaks == [], leaks
