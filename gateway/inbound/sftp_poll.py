"""Poll partners' own SFTP servers: fetch each complete new file once, commit it, then delete or move it there.

One task per enabled partner with ``[sftp_remote] poll_dir`` lists that folder every
``poll_seconds``. A file is taken only when its size and mtime are the same as in the
previous listing (the first listing only records them), so a file still being written is
left for a later poll. Its identity is ``sftp-poll:<name>:<size>:<mtime>``: a file already
stored under it (this run, or a run before a restart) is not downloaded again. The bytes are
committed durably before the remote file is deleted or moved (``after_poll``); a crash in
between leaves it in place, and the next poll only finishes the clean-up.

Failures (login, host key, network, a file we cannot read) become "poll" events and log lines,
never the end of the loop. A problem becomes an event when the previous poll did not have it,
so an unreachable server adds one event, not one a minute, and "polling works again" when it
is back.
"""

from __future__ import annotations

import asyncio
import hashlib
import datetime as dt
import posixpath
import stat
from collections.abc import Callable
from typing import Any

import asyncssh
import structlog

from ..errors import GatewayError
from ..model import Channel, MessageStatus, Received
from ..outbound.sftp import read_file, remote_failure, sftp_session
from .watch import is_temporary

__all__ = ["SftpPoller"]

log = structlog.get_logger("gateway.inbound.sftp_poll")

# (size, mtime) of a listed file
Listing = dict[str, tuple[int, int]]


class SftpPoller:
    """Fetches files from partners' SFTP servers into the store (channel ``poll``)."""

    def __init__(self, deployment: Any, store: Any, write: Callable[..., Any], *,
                 on_message: Callable[[str], None], may_run: Callable[[], bool] = lambda: True) -> None:
        self.may_run = may_run          # False while another node runs the deployment's schedules
        self.partners = [p for p in deployment.partners.values()
                         if p.enabled and p.sftp_remote is not None and p.sftp_remote.poll_dir]
        self.store = store
        self.write = write
        self.on_message = on_message
        self.max_bytes: int = deployment.settings.sftp.max_file_bytes
        self._listed: dict[str, Listing] = {}           # partner -> the previous listing
        self._done: dict[str, set[str]] = {}            # partner -> source refs stored
        self._refused: dict[str, set[str]] = {}         # partner -> source refs too big to fetch (reported)
        self._reported: dict[str, set[str]] = {}        # partner -> the previous poll's problems (events written)
        self._failing: set[str] = set()                 # partners whose last poll could not log in or list
        self._tasks: list[asyncio.Task] = []

    async def start(self) -> None:
        """Start one polling task per partner."""
        for partner in self.partners:
            self._tasks.append(asyncio.create_task(self._run(partner), name=f"sftp-poll-{partner.id}"))

    async def stop(self) -> None:
        """Stop polling; a file being fetched stays on the server (or, if committed, is cleaned up next time)."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()

    async def _run(self, partner: Any) -> None:
        while True:
            try:
                if self.may_run():
                    await self.poll_once(partner)
            except Exception as exc:   # a bug or a store outage: report it and poll again later
                log.exception("SFTP poll failed unexpectedly", partner=partner.id)
                self._failing.add(partner.id)
                await self._report(partner.id, [f"partner {partner.id}: SFTP poll failed unexpectedly: "
                                                f"{type(exc).__name__}: {exc}"])
            await asyncio.sleep(partner.sftp_remote.poll_seconds)

    async def poll_once(self, partner: Any) -> list[str]:
        """List the partner's poll_dir once and fetch the files that are ready; returns the new messages' ids."""
        remote, pid = partner.sftp_remote, partner.id
        stored: list[str] = []
        problems: list[str] = []
        failure: str | None = None
        try:
            async with sftp_session(pid, remote) as sftp:
                try:
                    async with asyncio.timeout(remote.timeout):
                        # Names as bytes: one name that is not UTF-8 must not hide every other file.
                        entries = await sftp.readdir(remote.poll_dir.encode())
                except asyncssh.SFTPError as exc:
                    raise remote_failure(exc, pid, remote, doing=f"listing {remote.poll_dir}") from None
                for name, size, mtime in self._ready(pid, entries, problems):
                    try:
                        message_id = await self._fetch(partner, sftp, name, size, mtime, problems)
                    except asyncssh.SFTPError as exc:
                        if isinstance(exc, (asyncssh.SFTPConnectionLost, asyncssh.SFTPNoConnection)):
                            raise
                        # One unreadable file must not hold up the others.
                        problems.append(str(remote_failure(exc, pid, remote,
                                                           doing=posixpath.join(remote.poll_dir, name))))
                        continue
                    if message_id is not None:
                        stored.append(message_id)
        except GatewayError as exc:
            failure = str(exc)
        await self._report(pid, problems + ([failure] if failure else []))
        if failure is not None:
            self._failing.add(pid)
        elif pid in self._failing:
            self._failing.discard(pid)
            log.info("SFTP polling works again", partner=pid)
            await self.write(self.store.event, "poll", "ok", partner=pid, detail="polling works again")
        return stored

    def _ready(self, partner_id: str, entries: list[asyncssh.SFTPName],
               problems: list[str]) -> list[tuple[str, int, int]]:
        """Record this listing; return the regular files unchanged since the previous one, oldest first."""
        listing: Listing = {}
        for entry in entries:
            attrs = entry.attrs
            regular = attrs.permissions is not None and stat.S_ISREG(attrs.permissions)
            raw_name = entry.filename
            try:
                name = raw_name.decode("utf-8") if isinstance(raw_name, bytes) else raw_name
            except UnicodeDecodeError:
                if regular and partner_id not in self._failing:
                    problems.append(f"partner {partner_id}: SFTP file name {raw_name!r} is not UTF-8; left there")
                continue
            if regular and not is_temporary(name) and attrs.size is not None and attrs.mtime is not None:
                listing[name] = (attrs.size, int(attrs.mtime))
        previous = self._listed.get(partner_id)
        self._listed[partner_id] = listing
        # Forget refs of files that are gone: the sets stay as small as the remote folder.
        refs = {_source_ref(name, *facts) for name, facts in listing.items()}
        self._done[partner_id] = self._done.get(partner_id, set()) & refs
        self._refused[partner_id] = self._refused.get(partner_id, set()) & refs
        if previous is None:
            return []
        ready = [(name, size, mtime) for name, (size, mtime) in listing.items() if previous.get(name) == (size, mtime)]
        return sorted(ready, key=lambda item: (item[2], item[0]))

    async def _fetch(self, partner: Any, sftp: asyncssh.SFTPClient, name: str, size: int, mtime: int,
                     problems: list[str]) -> str | None:
        """Store one ready file (unless already stored), then clean it up remotely; the new message's id or None."""
        remote, pid = partner.sftp_remote, partner.id
        ref = listed = _source_ref(name, size, mtime)
        done = self._done.setdefault(pid, set())
        if ref in done:
            await self._clean_up(partner, sftp, name)   # the commit happened; the clean-up may not have
            return None
        stored = await asyncio.to_thread(self.store.source_sha256, pid, Channel.POLL, ref)
        if size > self.max_bytes:
            if ref in self._refused[pid]:
                return None
            self._refused[pid].add(ref)
            problems.append(f"partner {pid}: SFTP {posixpath.join(remote.poll_dir, name)} is {size} bytes, over the "
                            f"limit of {self.max_bytes} (gateway.toml [sftp] max_file_mb); left there")
            return None
        path = posixpath.join(remote.poll_dir, name)
        raw = await read_file(sftp, path, size, remote.timeout)
        async with asyncio.timeout(remote.timeout):
            now = await sftp.stat(path)
        if len(raw) != size or (now.size, int(now.mtime or 0)) != (size, mtime):
            # It changed while we read it: wait until it is stable again.
            self._listed[pid].pop(name, None)
            log.info("SFTP file changed while being fetched; left for a later poll", partner=pid, file=path)
            return None
        if stored is not None:
            # Stored in an earlier run (a crash between the commit and the clean-up), or another file
            # under the same name, size and mtime: only the bytes can tell, and only then may it go.
            if hashlib.sha256(raw).hexdigest() == stored:
                done.add(listed)
                await self._clean_up(partner, sftp, name)
                return None
            ref = f"{listed}:{hashlib.sha256(raw).hexdigest()[:16]}"
        sha = await asyncio.to_thread(self.store.blobs.put, raw)
        result = await self.write(self.store.receive, Received(raw=raw, channel=Channel.POLL, partner=pid,
                                                               filename=name, source_ref=ref, raw_sha256=sha),
                                  durable=True)
        done.add(listed)
        message = result.message
        log.info("received", partner=pid, message_id=message.id, file=path, size=size,
                 duplicate_of=result.duplicate_of, recovered=result.recovered, after_poll=remote.after_poll)
        new = not result.recovered and message.status == MessageStatus.RECEIVED.value
        if new:
            self.on_message(message.id)
        # Only now, with the bytes committed, may the file leave the partner's folder.
        await self._clean_up(partner, sftp, name)
        return message.id if new else None

    async def _clean_up(self, partner: Any, sftp: asyncssh.SFTPClient, name: str) -> None:
        """Delete the fetched file or move it to move_dir (never over an existing name); ``keep`` leaves it."""
        remote = partner.sftp_remote
        path = posixpath.join(remote.poll_dir, name)
        async with asyncio.timeout(remote.timeout):
            if remote.after_poll == "delete":
                await sftp.remove(path)
            elif remote.after_poll == "move":
                target = posixpath.join(remote.move_dir, name)
                if await sftp.exists(target):
                    stem, suffix = posixpath.splitext(name)
                    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
                    target = posixpath.join(remote.move_dir, f"{stem}.{stamp}{suffix}")
                await sftp.rename(path, target)   # plain SFTP rename refuses to overwrite

    async def _report(self, partner_id: str, problems: list[str]) -> None:
        """Log this poll's problems; write those that the previous poll did not have as "poll" events."""
        before = self._reported.get(partner_id, set())
        for detail in problems:
            log.warning("SFTP poll problem", partner=partner_id, problem=detail)
            if detail not in before:
                try:
                    await self.write(self.store.event, "poll", "error", partner=partner_id, detail=detail)
                except Exception:   # the store is down: the log line stands
                    log.exception("cannot record an SFTP poll problem", partner=partner_id)
        self._reported[partner_id] = set(problems)


def _source_ref(name: str, size: int, mtime: int) -> str:
    return f"sftp-poll:{name}:{size}:{mtime}"
