"""The partner-facing SFTP server (asyncssh): one account per partner, jailed homes, bans, limits, events.

A partner logs in with a key from its ``authorized_keys`` (``from="..."`` options are honoured)
or its password (checked against the scrypt hash in a thread) and sees only its home
``<[sftp] root>/<ID>`` with ``inbox/`` and ``outbox/`` (:mod:`gateway.inbound.sftp_fs`). An
upload closed cleanly is committed to the store -- and handed to the pipeline through
``on_message`` -- before the close is answered; a store failure fails the close.

Protection: failed logins are counted per address and per account; ``max_failures`` of them
ban the address (every login) or the account (password logins only, so guessing at an account
cannot lock out its keys) for ``ban_seconds``, doubling with every further ban. Connections are
limited server-wide and per partner, idle ones are closed, and uploads are capped at
``max_file_bytes``. Every login, failed login, refusal, upload and download is an "sftp" event
in the transmission log; passwords never reach a log or an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import mmap
import os
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncssh
import structlog

from ..config import Deployment, Partner
from ..config_sftp import check_password, hash_password
from ..errors import GatewayError
from ..model import Channel, MessageStatus, Received
from ..store import BlobStore, Store
from .sftp_fs import AREAS, TEMP_SUFFIX, Jail, JailedSftp

log = structlog.get_logger("gateway.sftp")

Write = Callable[..., Awaitable[Any]]
OnMessage = Callable[[str], None]

_PASSWORD_CHECKS = 2          # scrypt checks at once: a login storm must not starve the store's threads
_STOP_GRACE_SECONDS = 30.0    # how long stop() lets uploads being committed finish


def _shown(value: str, limit: int = 64) -> str:
    """A client-supplied string for the log: repr() (no control characters), cut to ``limit``."""
    return repr(value if len(value) <= limit else value[:limit] + "...")


@dataclass
class _Record:
    failures: int = 0
    bans: int = 0
    banned_until: float = 0.0
    last: float = 0.0


class Bans:
    """Failed logins per key (an address or an account); ``max_failures`` in a row start a ban.

    The first ban lasts ``ban_seconds``, each further one twice as long as the one before; a
    key quiet for ``forget_after`` seconds starts over. ``clock`` is injectable for tests.
    """

    def __init__(self, max_failures: int, ban_seconds: float, *, forget_after: float = 86400.0,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 100_000) -> None:
        self.max_failures = max_failures
        self.ban_seconds = ban_seconds
        self.forget_after = forget_after
        self.clock = clock
        self.max_keys = max_keys
        self._records: dict[str, _Record] = {}

    def banned_for(self, key: str) -> float:
        """Seconds left of the key's ban (0 when not banned)."""
        record = self._records.get(key)
        return max(0.0, record.banned_until - self.clock()) if record else 0.0

    def failed(self, key: str) -> float:
        """Count a failed login; returns the length of the ban it started, or 0."""
        now = self.clock()
        record = self._records.get(key)
        if record is None or now - record.last > self.forget_after:
            if len(self._records) >= self.max_keys:
                self._prune(now)
            record = self._records[key] = _Record()
        record.last = now
        record.failures += 1
        if record.failures < self.max_failures:
            return 0.0
        length = self.ban_seconds * 2 ** min(record.bans, 20)
        record.failures = 0
        record.bans += 1
        record.banned_until = now + length
        return length

    def succeeded(self, key: str) -> None:
        """A good login: failures so far are forgiven (the ban history stays until forgotten)."""
        record = self._records.get(key)
        if record is not None:
            record.failures = 0

    def _prune(self, now: float) -> None:
        """Bound memory under an address-spraying attack: drop keys not banned and quiet for a minute."""
        for key in [k for k, r in self._records.items() if r.banned_until <= now and now - r.last > 60]:
            del self._records[key]


class SftpServer:
    """Our SFTP server for partners' uploads (``inbox/``) and downloads (``outbox/``)."""

    def __init__(self, deployment: Deployment, store: Store, write: Write, *, on_message: OnMessage) -> None:
        self.deployment = deployment
        self.settings = deployment.settings.sftp
        self.store = store
        self.write = write
        self.on_message = on_message
        self.root = Path(self.settings.root)
        self.temp_dir = self.root / ".partial"     # outside every home: never visible to a partner
        self.archive_root = self.root / ".archive"
        self.bans = Bans(self.settings.max_failures, self.settings.ban_seconds)
        self.port = 0
        self._partners = {p.id: p for p in deployment.partners.values() if p.enabled and p.sftp is not None}
        self._authorized = {pid: asyncssh.import_authorized_keys("\n".join(p.sftp.authorized_keys))
                            for pid, p in self._partners.items() if p.sftp and p.sftp.authorized_keys}
        self._connections: set[_Connection] = set()
        self._logged_in: Counter[str] = Counter()
        self._events: set[asyncio.Task] = set()
        self._commits = 0
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._decoy_hash = ""
        self._password_checks: asyncio.Semaphore | None = None
        self._stopping = False

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Create the partners' homes, then listen (``self.port`` is the bound port)."""
        if not self.settings.host_keys:
            raise GatewayError("gateway.toml [sftp] host_keys is empty: the SFTP server needs a host key "
                               "(`gateway init` makes certs/ssh_host_ed25519_key)")
        self._password_checks = asyncio.Semaphore(_PASSWORD_CHECKS)
        # Unknown users get a real (decoy) scrypt check too, so timing does not reveal accounts.
        self._decoy_hash = await asyncio.to_thread(hash_password, os.urandom(16).hex())
        await asyncio.to_thread(self._prepare_directories)
        try:
            self._acceptor = await asyncssh.create_server(
                lambda: _Connection(self), self.settings.host, self.settings.port,
                server_host_keys=[str(path) for path in self.settings.host_keys],
                sftp_factory=self._sftp_session, allow_scp=False, agent_forwarding=False,
                x11_forwarding=False, gss_host=None, login_timeout=self.settings.login_timeout,
                keepalive_interval=min(60.0, self.settings.idle_timeout))
        except (OSError, asyncssh.KeyImportError) as exc:
            raise GatewayError(f"SFTP server cannot start on {self.settings.host}:{self.settings.port}: "
                               f"{getattr(exc, 'strerror', None) or exc}") from None
        self.port = self._acceptor.get_port()
        log.info("sftp server listening", host=self.settings.host, port=self.port, partners=len(self._partners))

    @property
    def not_ready(self) -> str | None:
        """Why the server is not taking connections (None while it listens): for /ready."""
        return "not listening" if self._stopping or self._acceptor is None else None

    def _prepare_directories(self) -> None:
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        stale = list(self.temp_dir.glob(f"*{TEMP_SUFFIX}"))
        for temp in stale:   # uploads cut off by a crash: never closed, so never committed
            temp.unlink(missing_ok=True)
        if stale:
            log.info("removed unfinished uploads", count=len(stale))
        for partner_id, partner in self._partners.items():
            for area in AREAS:
                (self.root / partner_id / area).mkdir(parents=True, exist_ok=True)
            if partner.sftp and partner.sftp.after_download == "archive":
                (self.archive_root / partner_id).mkdir(parents=True, exist_ok=True)

    async def stop(self) -> None:
        """Stop listening, let uploads being committed finish, close every connection."""
        self._stopping = True
        if self._acceptor is not None:
            self._acceptor.close()
        deadline = time.monotonic() + _STOP_GRACE_SECONDS
        while self._commits and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        connections = [c.conn for c in self._connections if c.conn is not None]
        for conn in connections:
            conn.close()
        if connections:
            await asyncio.wait([asyncio.ensure_future(conn.wait_closed()) for conn in connections], timeout=10)
        if self._acceptor is not None:
            await self._acceptor.wait_closed()
            self._acceptor = None
        if self._events:
            await asyncio.gather(*self._events, return_exceptions=True)
        log.info("sftp server stopped")

    # ------------------------------------------------------------------ sessions

    def _sftp_session(self, chan: asyncssh.SSHServerChannel) -> JailedSftp:
        owner = chan.get_connection().get_owner()
        if not isinstance(owner, _Connection) or owner.jail is None:
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, "not logged in")
        owner.touch()
        return JailedSftp(chan, owner.jail)

    def _jail(self, connection: "_Connection", partner: Partner) -> Jail:
        assert partner.sftp is not None
        home = Path(os.path.realpath(self.root / partner.id))

        async def commit(name: str, temp: Path) -> None:
            await self._commit(connection, partner, name, temp)

        async def downloaded(area: str, name: str, size: int) -> None:
            after = partner.sftp.after_download if area == "outbox" else "keep"
            self.event("picked-up" if area == "outbox" else "download", partner.id,
                       f"/{area}/{name} ({size} bytes) by {connection.address}"
                       + ("" if after == "keep" else f"; {after}d after download"))

        return Jail(partner=partner.id, home=home, temp_dir=self.temp_dir,
                    archive_dir=self.archive_root / partner.id, after_download=partner.sftp.after_download,
                    max_file_bytes=self.settings.max_file_bytes, commit=commit, downloaded=downloaded,
                    touch=connection.touch)

    async def _commit(self, connection: "_Connection", partner: Partner, name: str, temp: Path) -> None:
        """A cleanly closed upload: bytes to the blob store, then the durable message row."""
        self._commits += 1
        connection.busy += 1
        try:
            # The upload becomes the blob itself (linked, not copied or held in memory); the
            # message row gets a read-only map of it, which the store only measures.
            sha, size, mtime_ns = await asyncio.to_thread(_adopt_upload, self.store.blobs, temp)
            with _mapped(temp, size) as raw:
                result = await self.write(self.store.receive, Received(
                    raw=raw, channel=Channel.SFTP, partner=partner.id, filename=name,
                    source_ref=f"sftp:{name}:{size}:{mtime_ns}", raw_sha256=sha), durable=True)
        except Exception as exc:   # StoreError, OSError: the partner must upload again
            log.error("sftp upload not stored", partner=partner.id, file=name, error=str(exc))
            raise asyncssh.SFTPFailure(f"/inbox/{name} was not stored: the gateway cannot take files right now, "
                                       "upload it again later") from None
        finally:
            self._commits -= 1
            connection.busy -= 1
            connection.touch()
        message = result.message
        detail = f"/inbox/{name} ({size} bytes) from {connection.address}: message {message.id}"
        if result.duplicate_of:
            detail += f", same content as {result.duplicate_of}"
        self.event("upload", partner.id, detail, message_id=message.id)
        if not result.recovered and message.status == MessageStatus.RECEIVED:
            self.on_message(message.id)

    # ------------------------------------------------------------------ the transmission log

    def event(self, outcome: str, partner: str | None, detail: str, *, message_id: str | None = None) -> None:
        """Log and record an "sftp" event without holding up the caller (often a sync asyncssh callback)."""
        level = log.warning if outcome in ("login-failed", "refused") else log.info
        level(f"sftp {outcome}", partner=partner, detail=detail)
        task = asyncio.get_running_loop().create_task(self._record(outcome, partner, detail, message_id))
        self._events.add(task)
        task.add_done_callback(self._events.discard)

    async def _record(self, outcome: str, partner: str | None, detail: str, message_id: str | None) -> None:
        try:
            await self.write(self.store.event, "sftp", outcome, partner=partner, detail=detail,
                             message_id=message_id)
        except Exception as exc:
            log.error("sftp event not recorded", outcome=outcome, partner=partner, error=str(exc))


def _adopt_upload(blobs: BlobStore, path: Path) -> tuple[str, int, int]:
    """Store the upload as a blob: (sha256, size, mtime_ns); the mtime is part of its ``source_ref``."""
    mtime_ns = os.stat(path).st_mtime_ns
    sha, size = blobs.adopt(path)
    return sha, size, mtime_ns


@contextlib.contextmanager
def _mapped(path: Path, size: int) -> Iterator[bytes | mmap.mmap]:
    """The file as a read-only map (an empty file cannot be mapped: then ``b""``)."""
    if size == 0:
        yield b""
        return
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as view:
        yield view


class _Connection(asyncssh.SSHServer):
    """One client connection: who it is, how it logged in, and its idle timer."""

    def __init__(self, server: SftpServer) -> None:
        self.server = server
        self.conn: asyncssh.SSHServerConnection | None = None
        self.address = "?"
        self.username = ""
        self.partner: Partner | None = None
        self.method = ""                    # how the login succeeded, for the log
        self.rejected_keys: list[str] = []
        self.password_failures = 0
        self.counted = False                # holds one of the partner's max_connections
        self.jail: Jail | None = None
        self.busy = 0                       # uploads being committed: never idle
        self.last_active = time.monotonic()
        self._idle_timer: asyncio.TimerHandle | None = None

    # ---------------------------------------------------------------- connection

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self.conn = conn
        peer = conn.get_extra_info("peername")
        self.address = str(peer[0]) if peer else "?"
        self.server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        server = self.server
        server._connections.discard(self)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if self.counted and self.partner is not None:
            server._logged_in[self.partner.id] -= 1
        elif self.rejected_keys and not self.password_failures and not self.method:
            # Key-only attempts count once per connection: clients offer every key they hold.
            self._failed(f"public key {', '.join(self.rejected_keys[:3])} not accepted")

    def touch(self) -> None:
        self.last_active = time.monotonic()

    def _check_idle(self) -> None:
        timeout = self.server.settings.idle_timeout
        idle = time.monotonic() - self.last_active
        if self.busy or idle < timeout:
            self._idle_timer = asyncio.get_running_loop().call_later(max(1.0, timeout - idle), self._check_idle)
            return
        log.info("sftp idle timeout", partner=self.partner.id if self.partner else None, address=self.address)
        if self.conn is not None:
            self.conn.close()

    # ---------------------------------------------------------------- authentication

    def _refuse_if_banned(self) -> None:
        wait = self.server.bans.banned_for(f"address {self.address}")
        if wait:
            raise asyncssh.PermissionDenied(f"too many failed logins: try again in {math.ceil(wait)} s")

    async def begin_auth(self, username: str) -> bool:
        self.username = username
        self._refuse_if_banned()
        server = self.server
        if server._stopping:
            raise asyncssh.DisconnectError(asyncssh.DISC_BY_APPLICATION, "the server is shutting down")
        if len(server._connections) > server.settings.max_connections:
            log.warning("sftp connection refused: server full", address=self.address)
            raise asyncssh.DisconnectError(asyncssh.DISC_TOO_MANY_CONNECTIONS, "too many connections: try later")
        self.partner = server.deployment.partner_for_sftp_user(username)
        if self.partner is not None and self.partner.id not in server._partners:
            self.partner = None
        return True

    def public_key_auth_supported(self) -> bool:
        return True

    def password_auth_supported(self) -> bool:
        return True   # for unknown users too: the offered methods do not reveal which accounts exist

    def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        authorized = self.server._authorized.get(self.partner.id) if self.partner else None
        if authorized is not None and authorized.validate(key, self.address, self.address) is not None:
            self.method = f"key {key.get_fingerprint()}"
            return True
        fingerprint = key.get_fingerprint()
        if fingerprint not in self.rejected_keys:
            self.rejected_keys.append(fingerprint)
        return False

    async def validate_password(self, username: str, password: str) -> bool:
        self._refuse_if_banned()    # a ban may have started during this connection
        server = self.server
        partner = self.partner
        stored = partner.sftp.password_hash if partner is not None and partner.sftp is not None else ""
        if partner is not None and server.bans.banned_for(f"account {username}"):
            log.warning("sftp password login suspended", partner=partner.id, address=self.address)
            return False
        assert server._password_checks is not None
        async with server._password_checks:
            ok = await asyncio.to_thread(check_password, password, stored or server._decoy_hash)
        if ok and stored:
            self.method = "password"
            server.bans.succeeded(f"address {self.address}")
            server.bans.succeeded(f"account {username}")
            return True
        self.password_failures += 1
        self._failed("wrong password" if partner is not None else "unknown user")
        return False

    def _failed(self, reason: str) -> None:
        """Count a failed login against the address (and a real account) and log it."""
        server = self.server
        partner = self.partner.id if self.partner is not None else None
        server.event("login-failed", partner, f"user {_shown(self.username)} from {self.address}: {reason}")
        keys = [f"address {self.address}"] + ([f"account {self.username}"] if partner else [])
        for key in keys:
            if length := server.bans.failed(key):
                what = "logins from this address" if key.startswith("address") else "password logins"
                server.event("refused", partner, f"{key}: {what} banned for {length:g} s after "
                             f"{server.bans.max_failures} failed logins")

    def auth_completed(self) -> None:
        server = self.server
        partner = self.partner
        assert partner is not None and partner.sftp is not None and self.conn is not None
        if server._logged_in[partner.id] >= partner.sftp.max_connections:
            server.event("refused", partner.id, f"{self.address}: already {server._logged_in[partner.id]} "
                         f"connections, the partner's max_connections")
            self.conn.close()
            return
        server._logged_in[partner.id] += 1
        self.counted = True
        self.jail = server._jail(self, partner)
        self.touch()
        self._idle_timer = asyncio.get_running_loop().call_later(server.settings.idle_timeout, self._check_idle)
        server.event("login", partner.id, f"{self.username} from {self.address} with {self.method}")
