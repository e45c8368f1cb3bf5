"""Shared pieces for the SFTP server tests: a deployment with SFTP partners, the running server, real clients.

Clients are asyncssh's (per-operation errors for the attack matrix) and the OpenSSH ``sftp``
binary in batch mode (interoperability), both pinned to the server's host key.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncssh
from as2_helpers import eventually  # noqa: F401 - the shared polling helper, used by the SFTP tests too

from gateway.config import Deployment, load_deployment
from gateway.config_sftp import hash_password
from gateway.inbound.sftp import SftpServer
from gateway.store import Store
from gateway.writer import BatchWriter

PASSWORDS = {"ACME": "acme-Correct-Horse-7", "BETA": "beta-Battery-Staple-9"}
# partner id -> extra lines of its [sftp] table
PARTNERS = {
    "ACME": 'after_download = "keep"\n',
    "BETA": 'after_download = "archive"\nmax_connections = 1\n',
    "GAMMA": 'after_download = "delete"\n',
}


@dataclass
class Keys:
    """The server's host key and one client key per partner, as files OpenSSH can use."""

    host: asyncssh.SSHKey
    clients: dict[str, Path]

    def client(self, partner: str) -> asyncssh.SSHKey:
        return asyncssh.read_private_key(str(self.clients[partner]))


def write_deployment(home: Path, *, sftp: str = "") -> tuple[Deployment, Keys]:
    """A deployment in ``home`` whose partners ACME, BETA and GAMMA have accounts on our SFTP server.

    ``sftp``: extra lines for gateway.toml's [sftp] table.
    """
    (home / "certs").mkdir(parents=True)
    (home / "partners").mkdir()
    (home / "client").mkdir(mode=0o700)
    host = asyncssh.generate_private_key("ssh-ed25519")
    host.write_private_key(str(home / "certs" / "ssh_host_ed25519_key"))
    (home / "gateway.toml").write_text(
        '[sftp]\nhost = "127.0.0.1"\nport = 0\nhost_keys = ["certs/ssh_host_ed25519_key"]\n'
        f'root = "var/sftp"\n{sftp}')
    clients = {}
    for partner, extra in PARTNERS.items():
        key = asyncssh.generate_private_key("ssh-ed25519")
        clients[partner] = home / "client" / f"{partner.lower()}_ed25519"
        key.write_private_key(str(clients[partner]))
        os.chmod(clients[partner], 0o600)
        public = key.export_public_key().decode().strip()
        password = f'password_hash = "{hash_password(PASSWORDS[partner])}"\n' if partner in PASSWORDS else ""
        (home / "partners" / f"{partner}.toml").write_text(
            f'id = "{partner}"\n[inbox]\nenabled = false\n'
            f'[sftp]\nusername = "{partner.lower()}"\nauthorized_keys = ["{public}"]\n{password}{extra}')
    deployment = load_deployment(home)
    assert not deployment.problems, deployment.problems
    return deployment, Keys(host=host, clients=clients)


@dataclass
class Running:
    """The SFTP server under test, its store and what it handed to ``on_message``."""

    deployment: Deployment
    keys: Keys
    store: Store
    write: BatchWriter
    server: SftpServer
    received: list[str] = field(default_factory=list)

    def home(self, partner: str) -> Path:
        return self.deployment.settings.sftp.root / partner

    @property
    def temp_dir(self) -> Path:
        return self.server.temp_dir

    def events(self, outcome: str | None = None) -> list[Any]:
        """The "sftp" events recorded so far (optionally of one outcome), oldest first."""
        import sqlalchemy as sa

        from gateway.store.tables import events

        query = sa.select(events).where(events.c.step == "sftp").order_by(events.c.id)
        if outcome is not None:
            query = query.where(events.c.outcome == outcome)
        with self.store._engine.connect() as conn:
            return list(conn.execute(query).all())

    def known_hosts(self) -> tuple[list[asyncssh.SSHKey], list, list]:
        """asyncssh's known_hosts argument trusting exactly our host key."""
        return ([self.keys.host.convert_to_public()], [], [])

    async def connect(self, partner: str, *, key: bool = True, password: str | None = None,
                      username: str | None = None, source: str = "127.0.0.1") -> asyncssh.SSHClientConnection:
        """Log in as ``partner`` with its key (default) or a password, from the loopback address ``source``."""
        options: dict[str, Any] = {"client_keys": [self.keys.client(partner)] if key and password is None else None,
                                   "agent_path": None, "password": password,
                                   "preferred_auth": "password" if password is not None else "publickey"}
        return await asyncssh.connect("127.0.0.1", self.server.port, username=username or partner.lower(),
                                      known_hosts=self.known_hosts(), local_addr=(source, 0),
                                      config=None, **options)

    @contextlib.asynccontextmanager
    async def sftp(self, partner: str, **kwargs: Any) -> AsyncIterator[asyncssh.SFTPClient]:
        async with await self.connect(partner, **kwargs) as conn:
            async with conn.start_sftp_client() as client:
                yield client


@contextlib.asynccontextmanager
async def serving(deployment: Deployment, keys: Keys, store: Store) -> AsyncIterator[Running]:
    """Run an SftpServer on 127.0.0.1 (port 0) with a real BatchWriter; stopped and closed after."""
    write = BatchWriter(store)
    received: list[str] = []
    server = SftpServer(deployment, store, write, on_message=received.append)
    await server.start()
    try:
        yield Running(deployment, keys, store, write, server, received)
    finally:
        await server.stop()
        write.close()


# ----------------------------------------------------------------------------- the OpenSSH client


@dataclass
class OpenSsh:
    """Runs the real ``sftp`` binary in batch mode against the server, pinned to its host key."""

    running: Running
    work: Path

    def __post_init__(self) -> None:
        self.work.mkdir(parents=True, exist_ok=True)
        host_line = self.running.keys.host.export_public_key().decode().strip()
        self.known_hosts = self.work / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.running.server.port} {host_line}\n")
        self.askpass = self.work / "askpass.sh"
        # The password comes from the environment: nothing partner-supplied reaches a shell.
        self.askpass.write_text('#!/bin/sh\nprintf \'%s\\n\' "$GW_TEST_SFTP_PASSWORD"\n')
        self.askpass.chmod(0o700)

    def command(self, partner: str, *, password: str | None = None) -> tuple[list[str], dict[str, str]]:
        """The argument list and environment for ``sftp -b -`` as ``partner`` (key, or password via askpass)."""
        args = ["sftp", "-F", "/dev/null", "-P", str(self.running.server.port),
                "-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes",
                "-o", "ConnectTimeout=10"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("SSH_")}
        if password is None:
            args += ["-i", str(self.running.keys.clients[partner]), "-o", "IdentitiesOnly=yes",
                     "-o", "PasswordAuthentication=no", "-o", "KbdInteractiveAuthentication=no"]
        else:
            # ssh uses the first value it sees: this comes before the "BatchMode yes" that -b adds.
            args += ["-o", "BatchMode=no", "-o", "PubkeyAuthentication=no",
                     "-o", "PreferredAuthentications=password,keyboard-interactive"]
            env.update(SSH_ASKPASS=str(self.askpass), SSH_ASKPASS_REQUIRE="force", DISPLAY=":0",
                       GW_TEST_SFTP_PASSWORD=password)
        return args + ["-b", "-", f"{partner.lower()}@127.0.0.1"], env

    async def start(self, partner: str, commands: str, *, password: str | None = None) -> asyncio.subprocess.Process:
        args, env = self.command(partner, password=password)
        process = await asyncio.create_subprocess_exec(
            *args, env=env, cwd=self.work, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE, start_new_session=True)
        assert process.stdin is not None
        process.stdin.write(commands.encode())
        process.stdin.close()
        return process

    async def run(self, partner: str, commands: str, *, password: str | None = None,
                  timeout: float = 60) -> tuple[int, str]:
        """Run the batch; returns (exit code, stdout + stderr)."""
        process = await self.start(partner, commands, password=password)
        try:
            out, err = await asyncio.wait_for(process.communicate(), timeout)
        except asyncio.TimeoutError:
            os.killpg(process.pid, signal.SIGKILL)
            await process.wait()
            raise AssertionError(f"sftp did not finish within {timeout} s") from None
        return process.returncode or 0, (out + err).decode(errors="replace")
