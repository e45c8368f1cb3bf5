"""The ``sftp`` connector: pushes files to a partner's own SFTP server; and the pinned login that polling shares.

Every connection pins the partner's host key (``[sftp_remote] host_key``): asyncssh is given
that one key as the only trusted one, no known_hosts file, no ~/.ssh/config and no agent, so
an unknown or changed host key fails the handshake before we authenticate. Errors come out as
delivery errors: a changed host key, a refused login, our unreadable key file and a missing
or forbidden folder are permanent (retrying cannot fix them, a human must); timeouts, lost
connections and other server failures are retried through the partner's queue.

A push uploads to a hidden temporary name in ``upload_dir`` and renames it to the final name
only when complete, so the partner never picks up half a file. An existing final name is
never overwritten: partners expect unique names and may not have collected the earlier file.
If that file holds exactly our bytes, an earlier attempt's rename landed before its connection
broke, and the delivery counts as done.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import posixpath
from collections.abc import AsyncIterator
from typing import Any

import asyncssh
import structlog

from ..config_sftp import PartnerSftpRemote
from ..errors import DeliveryError, GatewayError, PermanentDeliveryError, RetryableDeliveryError
from ..model import DeliveryJob

__all__ = ["SftpConnector", "check_login", "remote_failure", "safe_name", "sftp_session"]

log = structlog.get_logger("gateway.outbound.sftp")

CHUNK = 1 << 20   # transfers go in chunks so that `timeout` bounds a stall, not a whole large file
LISTED_NAMES = 10

# SFTP answers that name a setting to fix (a path or a permission), not a passing condition.
_PERMANENT_SFTP = (asyncssh.SFTPNoSuchFile, asyncssh.SFTPNoSuchPath, asyncssh.SFTPPermissionDenied,
                   asyncssh.SFTPNotADirectory, asyncssh.SFTPFileIsADirectory, asyncssh.SFTPInvalidFilename)


class _PinnedHostKey(asyncssh.SSHClient):
    """Remembers the host key a server offered when it was not the pinned one (for the error text)."""

    offered: asyncssh.SSHKey | None = None

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.offered = key
        return False


def _shown(remote: PartnerSftpRemote) -> str:
    return f"{remote.username}@{remote.host}:{remote.port}" if remote.username else f"{remote.host}:{remote.port}"


def remote_failure(exc: BaseException, partner_id: str, remote: PartnerSftpRemote, *, doing: str = "",
                   offered: asyncssh.SSHKey | None = None) -> DeliveryError:
    """The typed, secret-free error for a failure talking to a partner's SFTP server (``doing``: the step)."""
    where = f"partner {partner_id}: SFTP {_shown(remote)}" + (f": {doing}" if doing else "")
    if isinstance(exc, asyncssh.HostKeyNotVerifiable):
        pinned = asyncssh.import_public_key(remote.host_key).get_fingerprint()
        got = f"offered host key {offered.get_fingerprint()}" if offered is not None else "its host key"
        return PermanentDeliveryError(
            f"{where}: {got} does not match the pinned host_key {pinned}; refusing to connect (if the partner "
            "changed its key, confirm the new one with them and update [sftp_remote] host_key)")
    if isinstance(exc, asyncssh.PermissionDenied):
        methods = " and ".join(m for m, used in (("key", remote.key), ("password", remote.password)) if used)
        return PermanentDeliveryError(f"{where}: login refused (tried {methods or 'no credentials'})")
    if isinstance(exc, TimeoutError):
        return RetryableDeliveryError(f"{where}: no answer within {remote.timeout:g} s")
    if isinstance(exc, _PERMANENT_SFTP):
        return PermanentDeliveryError(f"{where}: {exc.reason or type(exc).__name__}")
    if isinstance(exc, asyncssh.Error):
        return RetryableDeliveryError(f"{where}: {exc.reason or type(exc).__name__}")
    if isinstance(exc, OSError):
        return RetryableDeliveryError(f"{where}: cannot connect: {exc.strerror or exc}")
    return RetryableDeliveryError(f"{where}: {type(exc).__name__}: {exc}")


def _client_key(partner_id: str, remote: PartnerSftpRemote) -> list[asyncssh.SSHKey] | None:
    """Our private key for this partner, or None (no public-key login; never ~/.ssh's keys)."""
    if remote.key is None:
        return None
    try:
        return [asyncssh.read_private_key(str(remote.key))]
    except (OSError, asyncssh.KeyImportError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else str(exc)
        raise PermanentDeliveryError(f"partner {partner_id}: cannot read our SFTP key {remote.key}: {reason}") \
            from None


@contextlib.asynccontextmanager
async def sftp_session(partner_id: str, remote: PartnerSftpRemote) -> AsyncIterator[asyncssh.SFTPClient]:
    """Log in to the partner's server with its host key pinned and yield an SFTP client.

    Connecting and logging in are bounded by ``remote.timeout``. asyncssh errors and timeouts
    raised inside the ``async with`` body come out as :func:`remote_failure` errors too.
    """
    client = _PinnedHostKey()
    keys = _client_key(partner_id, remote)
    try:
        async with asyncio.timeout(remote.timeout):
            conn = await asyncssh.connect(
                remote.host, remote.port, username=remote.username or None, client_factory=lambda: client,
                known_hosts=([asyncssh.import_public_key(remote.host_key)], [], []),
                client_keys=keys, password=remote.password or None, config=None, agent_path=None,
                preferred_auth="publickey,password,keyboard-interactive")
    except (asyncssh.Error, OSError, TimeoutError) as exc:
        raise remote_failure(exc, partner_id, remote, offered=client.offered) from None
    try:
        async with asyncio.timeout(remote.timeout):
            sftp = await conn.start_sftp_client()
        try:
            yield sftp
        finally:
            sftp.exit()
    except (asyncssh.Error, TimeoutError) as exc:
        raise remote_failure(exc, partner_id, remote) from None
    finally:
        conn.close()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(remote.timeout):
                await conn.wait_closed()


async def read_file(sftp: asyncssh.SFTPClient, path: str, limit: int, timeout: float) -> bytes:
    """Up to ``limit + 1`` bytes of a remote file (so a caller can tell "too big"); ``timeout`` per chunk."""
    data = bytearray()
    async with asyncio.timeout(timeout):
        handle = await sftp.open(path, "rb")
    try:
        while len(data) <= limit:
            async with asyncio.timeout(timeout):
                chunk = await handle.read(min(CHUNK, limit + 1 - len(data)), len(data))
            if not chunk:
                break
            data += chunk
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(timeout):
                await handle.close()
    return bytes(data)


def safe_name(name: str) -> bool:
    """Is ``name`` a plain file name (no folder part, not hidden, no control characters)?"""
    return (0 < len(name) <= 255 and not name.startswith(".") and "/" not in name and "\\" not in name
            and all(ch.isprintable() for ch in name))


async def check_login(partner_id: str, remote: PartnerSftpRemote, *,
                      timeout: float | None = None) -> tuple[list[str], bool]:
    """``gateway partners test``: log in and list ``upload_dir`` and ``poll_dir``; returns (lines, all ok).

    Raises the :func:`remote_failure` error when the login itself fails.
    """
    if timeout is not None:
        remote = dataclasses.replace(remote, timeout=timeout)
    pinned = asyncssh.import_public_key(remote.host_key).get_fingerprint()
    lines = [f"sftp: logged in to {_shown(remote)} (host key {pinned} matches the pin)"]
    ok = True
    async with sftp_session(partner_id, remote) as sftp:
        for setting, folder in (("upload_dir", remote.upload_dir), ("poll_dir", remote.poll_dir)):
            if not folder:
                continue
            try:
                async with asyncio.timeout(remote.timeout):
                    names = sorted(n for n in await sftp.listdir(folder) if n not in (".", ".."))
            except (asyncssh.SFTPError, TimeoutError) as exc:
                lines.append(f"sftp: {setting} {folder}: cannot list it: {remote_failure(exc, partner_id, remote)}")
                ok = False
                continue
            shown = ", ".join(names[:LISTED_NAMES]) + (", ..." if len(names) > LISTED_NAMES else "")
            lines.append(f"sftp: {setting} {folder}: {len(names)} entries" + (f": {shown}" if names else ""))
    return lines, ok


class SftpConnector:
    """Delivers files to one partner's SFTP server (target ``sftp:<ID>``): upload, then rename into place.

    One connection per delivery: pushes are infrequent, and a fresh login per file keeps a
    dead connection from ever failing a delivery.
    """

    def __init__(self, partner: Any, deployment: Any) -> None:
        remote = partner.sftp_remote
        if remote is None or not remote.upload_dir:
            raise GatewayError(f"partner {partner.id} has no [sftp_remote] upload_dir to send to")
        self.partner_id: str = partner.id
        self.remote: PartnerSftpRemote = remote

    def file_name(self, job: DeliveryJob) -> str:
        """The name the partner sees: the submitted file name, else ``<document id>.<type>``."""
        name = job.filename or f"{job.document_id}.{job.document_type}"
        if not safe_name(name):
            raise PermanentDeliveryError(f"partner {self.partner_id}: {name!r} is not a safe file name for their "
                                         "SFTP server (no folders, hidden names or control characters)")
        return name

    async def send(self, job: DeliveryJob) -> int | None:
        """Upload the file under a temporary name, then rename it; raises a typed DeliveryError."""
        remote = self.remote
        name = self.file_name(job)
        final = posixpath.join(remote.upload_dir, name)
        # Named after the delivery, so a retry reuses (truncates) its own leftover, never another's.
        temp = posixpath.join(remote.upload_dir, f".{name}.{job.idempotency_key[:16]}.part")
        bound = log.bind(partner=self.partner_id, delivery_id=job.delivery_id, file=final)
        async with sftp_session(self.partner_id, remote) as sftp:
            step, wrote = f"looking up {final}", False
            try:
                if await self._already_there(sftp, final, job.body):
                    bound.info("the file is already on the partner's server (an earlier attempt); not sent again")
                    return None
                step, wrote = f"writing {temp}", True
                await self._upload(sftp, temp, job.body)
                step = f"renaming {temp} to {name}"
                await self._publish(sftp, temp, final, job.body)
            except Exception as exc:   # a cancelled push leaves its temp file for the retry to reuse
                if wrote:
                    await self._discard(sftp, temp)
                if isinstance(exc, (asyncssh.Error, TimeoutError)):
                    raise remote_failure(exc, self.partner_id, remote, doing=step) from None
                raise
        bound.info("sent over SFTP", size=len(job.body))
        return None

    async def _discard(self, sftp: asyncssh.SFTPClient, temp: str) -> None:
        """Remove our temporary file, if the connection still allows it (a retry would reuse it anyway)."""
        with contextlib.suppress(Exception):
            async with asyncio.timeout(self.remote.timeout):
                await sftp.remove(temp)

    async def _already_there(self, sftp: asyncssh.SFTPClient, final: str, body: bytes) -> bool:
        """True when ``final`` holds exactly ``body``; PermanentDeliveryError when it holds something else."""
        try:
            async with asyncio.timeout(self.remote.timeout):
                attrs = await sftp.stat(final)
        except asyncssh.SFTPNoSuchFile:
            return False
        if attrs.size == len(body) and await read_file(sftp, final, len(body), self.remote.timeout) == body:
            return True
        raise PermanentDeliveryError(f"partner {self.partner_id}: {final} already exists on their SFTP server with "
                                     "other content; refusing to overwrite it (resend under another name)")

    async def _upload(self, sftp: asyncssh.SFTPClient, temp: str, body: bytes) -> None:
        timeout = self.remote.timeout
        async with asyncio.timeout(timeout):
            handle = await sftp.open(temp, "wb")
        try:
            for offset in range(0, len(body), CHUNK):
                async with asyncio.timeout(timeout):
                    await handle.write(body[offset:offset + CHUNK], offset)
            with contextlib.suppress(asyncssh.SFTPOpUnsupported):   # fsync@openssh.com is an extension
                async with asyncio.timeout(timeout):
                    await handle.fsync()
        finally:
            async with asyncio.timeout(timeout):
                await handle.close()

    async def _publish(self, sftp: asyncssh.SFTPClient, temp: str, final: str, body: bytes) -> None:
        """Rename without overwriting (plain SFTP rename fails on an existing name, unlike posix-rename)."""
        try:
            async with asyncio.timeout(self.remote.timeout):
                await sftp.rename(temp, final)
        except asyncssh.SFTPError:
            # The name appeared since we looked: identical bytes mean done, anything else is refused.
            if await self._already_there(sftp, final, body):
                await self._discard(sftp, temp)
                return
            raise

    async def close(self) -> None:
        """Nothing held between deliveries."""
