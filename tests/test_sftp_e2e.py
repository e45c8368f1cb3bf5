"""`gateway serve` with a partner SFTP account: OpenSSH's `sftp` uploads an order and downloads a reply."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from pathlib import Path

import asyncssh
import pytest

from harness import GatewayProcess, edifact_order, make_deployment, wait_for
from test_as2_e2e import free_port

pytestmark = pytest.mark.skipif(shutil.which("sftp") is None, reason="the OpenSSH sftp client is not installed")


def sftp_batch(home: Path, port: int, key: Path, commands: str, cwd: Path) -> subprocess.CompletedProcess:
    """OpenSSH `sftp -b -` as ACME, pinned to the gateway's host key."""
    host_key = (home / "certs" / "ssh_host_ed25519_key.pub").read_text().strip()
    known = cwd / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_key}\n")
    args = ["sftp", "-F", "/dev/null", "-P", str(port), "-i", str(key), "-o", "IdentitiesOnly=yes",
            "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
            "-b", "-", "acme@127.0.0.1"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSH_")}
    return subprocess.run(args, input=commands, capture_output=True, text=True, cwd=cwd, env=env, timeout=60)


def test_partner_uploads_an_order_and_downloads_our_reply_over_sftp(tmp_path, target):
    home = make_deployment(tmp_path / "gw", target.url)
    port = free_port()
    host = asyncssh.generate_private_key("ssh-ed25519")
    (home / "certs").mkdir(exist_ok=True)
    (home / "certs" / "ssh_host_ed25519_key").write_bytes(host.export_private_key())
    (home / "certs" / "ssh_host_ed25519_key.pub").write_bytes(host.export_public_key())
    client = asyncssh.generate_private_key("ssh-ed25519")
    key = tmp_path / "acme_key"
    key.write_bytes(client.export_private_key())
    key.chmod(0o600)
    with (home / "gateway.toml").open("a") as fh:
        fh.write(f'\n[sftp]\nport = {port}\nhost_keys = ["certs/ssh_host_ed25519_key"]\n')
    with (home / "partners" / "ACME.toml").open("a") as fh:
        fh.write(f'\n[sftp]\nauthorized_keys = ["{client.export_public_key().decode().strip()}"]\n')
    gw = GatewayProcess(home)
    gw.cli("check")
    gw.start()
    try:
        work = tmp_path / "client"
        work.mkdir()
        order = edifact_order("PO-SFTP-1")
        (work / "order.edi").write_bytes(order)
        put = sftp_batch(home, port, key, "put order.edi inbox/order.edi\n", work)
        assert put.returncode == 0, put.stderr

        wait_for(lambda: target.received, 30, "the order at the target")
        assert target.received[0]["document"]["document"]["number"] == "PO-SFTP-1"
        [message] = gw.cli_json("log", "list")
        assert (message["channel"], message["partner"], message["status"]) == ("sftp", "ACME", "processed")
        assert gw.cli_json("log", "show", message["id"])["message"]["raw_sha256"] == hashlib.sha256(order).hexdigest()

        reply = b"UNA:+.? 'UNB+UNOC:3+8711111000007:14+5412345000013:14+261127:1000+R1'UNZ+0+R1'"
        (tmp_path / "reply.edi").write_bytes(reply)
        sent = gw.cli("send", str(tmp_path / "reply.edi"), "--partner", "ACME", "--channel", "outbox",
                      "--timeout", "30")
        assert "status      delivered" in sent.stdout, sent.stdout
        get = sftp_batch(home, port, key, "get outbox/reply.edi fetched.edi\n", work)
        assert get.returncode == 0, get.stderr
        assert (work / "fetched.edi").read_bytes() == reply
    finally:
        gw.stop()
