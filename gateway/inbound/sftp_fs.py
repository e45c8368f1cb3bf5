"""The jailed file system one partner sees over SFTP: ``/inbox`` (they upload) and ``/outbox`` (they download).

Client paths are resolved lexically against the partner's home (``..`` stops at ``/``), reach at
most ``/<area>/<name>``, and may not pass through a symlink (checked with ``realpath``; files are
then opened with O_NOFOLLOW), so nothing -- not even a link an operator left behind -- leads
out of the home. Links, directories and attribute changes are refused. Names starting with
"." are reserved: never listed, never opened for reading, so whoever fills ``outbox/`` can
stage ``.name.tmp`` and rename it.

An upload is written to a temp file outside every home and becomes ``inbox/<name>`` only when
the client closes it: :attr:`Jail.commit` stores the bytes first, and if that fails the close
fails and nothing appears. A *staged* upload -- a hidden name or a temp suffix (``.part``,
``.filepart``, ``.tmp``: what WinSCP, our own sftp connector and many scripts write before
renaming) -- is not stored on close; it is the rename to its real name that stores it, under
that name, before the rename is answered. asyncssh also closes the handles of a session that is torn down
(client killed, network cut); such a close finds the channel already closing and discards
the temp file. A download read to the end and closed is reported to :attr:`Jail.downloaded`;
an outbox file is then kept, deleted or archived as the partner's ``after_download`` says.
"""

from __future__ import annotations

import asyncio
import io
import os
import re
import secrets
import stat
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncssh
import structlog
from asyncssh import (FXF_APPEND, FXF_CREAT, FXF_EXCL, FXF_READ, FXF_TRUNC, FXF_WRITE, SFTPAttrs, SFTPFailure,
                      SFTPFileAlreadyExists, SFTPName, SFTPNoSuchFile, SFTPOpUnsupported, SFTPPermissionDenied,
                      SFTPQuotaExceeded)

log = structlog.get_logger("gateway.sftp")

AREAS = ("inbox", "outbox")
TEMP_SUFFIX = ".part"
_MAX_NAME_BYTES = 255
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_STAGING = re.compile(r"^\.|\.(part|filepart|tmp)$", re.IGNORECASE)   # see the module docstring


def staging_name(name: str) -> bool:
    """Is ``name`` a client's staging name (stored only once renamed to its real name)?"""
    return bool(_STAGING.search(name))


MAX_OPEN_UPLOADS = 16   # per session: a partner cannot pile up descriptors and temp files

@dataclass(frozen=True)
class Jail:
    """One partner's home on our SFTP server and what happens when files arrive or leave."""

    partner: str
    home: Path                     # resolved (no symlinks); holds inbox/ and outbox/
    temp_dir: Path                 # uploads in progress: outside every home, on the same file system
    archive_dir: Path              # where after_download = "archive" moves picked-up outbox files
    after_download: str            # keep | delete | archive
    max_file_bytes: int
    commit: Callable[[str, Path], Awaitable[None]]          # (name, temp file): store it; raise SFTPError to refuse
    downloaded: Callable[[str, str, int], Awaitable[None]]  # (area, name, size): read to the end and closed
    touch: Callable[[], None] = lambda: None                # the session did something (idle timeout)


class _Upload(io.FileIO):
    """An upload in progress: bytes go to ``temp``; ``name`` is the file it becomes in inbox/."""

    def __init__(self, temp: Path, name: str) -> None:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        super().__init__(temp, "xb", opener=lambda path, _: os.open(path, flags, 0o600))
        self.temp = temp
        self.name = name
        self.staged = staging_name(name)   # stored when renamed to its real name, not on close
        self.size = 0
        self.refused = ""          # why the upload can no longer succeed (e.g. too large)


class _Download(io.FileIO):
    """A file opened for reading; counts what was served to tell a complete download from an aborted one."""

    def __init__(self, local: str, area: str, name: str) -> None:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        super().__init__(local, "rb", opener=lambda path, _: os.open(path, flags))
        self.local = local
        self.area = area
        self.name = name
        self.opened = os.fstat(self.fileno())
        self.served = 0
        self.end = 0
        if not stat.S_ISREG(self.opened.st_mode):
            self.close()
            raise SFTPNoSuchFile(f"/{area}/{name}: not a file")

    @property
    def complete(self) -> bool:
        return self.served >= self.opened.st_size and self.end >= self.opened.st_size


class JailedSftp(asyncssh.SFTPServer):
    """An SFTP session confined to one partner's :class:`Jail` (one instance per session)."""

    def __init__(self, chan: asyncssh.SSHServerChannel, jail: Jail) -> None:
        super().__init__(chan)     # no chroot argument: every path is mapped (and checked) here
        self.jail = jail
        self._home = str(jail.home)
        self._uploads = 0          # open upload handles: each holds a descriptor and a temp file

    # ------------------------------------------------------------------ paths

    def _parts(self, path: bytes, *, staging: bool = False) -> tuple[str, ...]:
        """The client path as components under the home; ``..`` never climbs above ``/``.

        ``staging``: a hidden name may be given (an upload staged in /inbox, see the module docstring).
        """
        self.jail.touch()
        try:
            text = path.decode("utf-8")
        except UnicodeDecodeError:
            raise asyncssh.SFTPInvalidFilename("file names must be UTF-8") from None
        parts: list[str] = []
        for part in text.split("/"):
            if part in ("", "."):
                continue
            if part == "..":
                if parts:
                    parts.pop()
                continue
            if part.startswith(".") and not (staging and parts == ["inbox"]):
                raise SFTPPermissionDenied(f"{_shown(text)}: names starting with '.' are reserved")
            if _CONTROL.search(part) or len(part.encode()) > _MAX_NAME_BYTES:
                raise asyncssh.SFTPInvalidFilename(f"{_shown(text)}: not a valid file name")
            parts.append(part)
        if len(parts) > 2 or (parts and parts[0] not in AREAS):
            raise SFTPNoSuchFile(f"no such file: {_shown(text)} (only /inbox and /outbox exist)")
        return tuple(parts)

    def _resolve(self, path: bytes, *, staging: bool = False) -> tuple[tuple[str, ...], str]:
        """Components and local path; a path through any symlink does not exist for the partner."""
        parts = self._parts(path, staging=staging)
        local = os.path.join(self._home, *parts)
        if os.path.realpath(local) != local:
            raise SFTPNoSuchFile(f"no such file: {_virtual(parts)}")
        return parts, local

    def _file(self, path: bytes, doing: str, *, staging: bool = False) -> tuple[str, str, str]:
        """``(area, name, local path)`` of a file path: only ``/inbox/<name>`` and ``/outbox/<name>`` qualify."""
        parts, local = self._resolve(path, staging=staging)
        if len(parts) != 2:
            raise SFTPPermissionDenied(f"cannot {doing} {_virtual(parts)}: only files in /inbox and /outbox")
        return parts[0], parts[1], local

    def realpath(self, path: bytes) -> bytes:
        return _virtual(self._parts(path)).encode()

    # ------------------------------------------------------------------ reading the tree

    def lstat(self, path: bytes) -> os.stat_result:
        parts, local = self._resolve(path, staging=True)
        st = os.lstat(local)
        kind_ok = stat.S_ISDIR(st.st_mode) if len(parts) < 2 else stat.S_ISREG(st.st_mode)
        if not kind_ok:
            raise SFTPNoSuchFile(f"no such file: {_virtual(parts)}")
        return st

    def stat(self, path: bytes) -> os.stat_result:
        return self.lstat(path)   # symlinks are never followed, so stat and lstat agree

    async def scandir(self, path: bytes) -> AsyncIterator[SFTPName]:
        parts, local = self._resolve(path)
        if len(parts) == 2:
            raise asyncssh.SFTPNotADirectory(f"not a directory: {_virtual(parts)}")
        for name in await asyncio.to_thread(self._listing, parts, local):
            yield name

    def _listing(self, parts: tuple[str, ...], local: str) -> list[SFTPName]:
        here = SFTPAttrs.from_local(self.lstat(_virtual(parts).encode()))
        names = [SFTPName(b".", attrs=here), SFTPName(b"..", attrs=here if not parts else
                                                      SFTPAttrs.from_local(os.lstat(self._home)))]
        with os.scandir(local) as entries:
            for entry in entries:
                if entry.name.startswith(".") or (not parts and entry.name not in AREAS):
                    continue
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISDIR(st.st_mode) if not parts else stat.S_ISREG(st.st_mode):
                    names.append(SFTPName(entry.name.encode(), attrs=SFTPAttrs.from_local(st)))
        return names

    def format_user(self, uid: int | None) -> str:
        return self.jail.partner   # not the gateway's own account name

    def format_group(self, gid: int | None) -> str:
        return self.jail.partner

    # ------------------------------------------------------------------ files

    def open(self, path: bytes, pflags: int, attrs: SFTPAttrs) -> _Upload | _Download:
        if pflags & (FXF_WRITE | FXF_CREAT | FXF_TRUNC | FXF_APPEND):
            return self._begin_upload(path, pflags)
        area, name, local = self._file(path, "read")
        return _Download(local, area, name)

    def _begin_upload(self, path: bytes, pflags: int) -> _Upload:
        area, name, local = self._file(path, "upload", staging=True)
        shown = f"/{area}/{name}"
        if area != "inbox":
            raise SFTPPermissionDenied(f"cannot write {shown}: /{area} is read-only, upload to /inbox")
        if pflags & (FXF_READ | FXF_APPEND):
            raise SFTPPermissionDenied(f"cannot open {shown} for reading or appending while uploading it: "
                                       "upload the whole file")
        exists = os.path.lexists(local)
        if exists and pflags & FXF_EXCL:
            raise SFTPFileAlreadyExists(f"{shown} already exists")
        if exists and not pflags & FXF_TRUNC:
            raise SFTPPermissionDenied(f"cannot resume {shown}: upload the whole file again")
        if self._uploads >= MAX_OPEN_UPLOADS:
            raise SFTPFailure(f"cannot open {shown}: {MAX_OPEN_UPLOADS} uploads are already open in this session")
        temp = self.jail.temp_dir / f"{self.jail.partner}.{secrets.token_hex(8)}{TEMP_SUFFIX}"
        upload = _Upload(temp, name)
        self._uploads += 1
        return upload

    def read(self, file_obj: object, offset: int, size: int) -> bytes:
        self.jail.touch()
        if not isinstance(file_obj, _Download):
            raise SFTPPermissionDenied("this file was opened for upload, not for reading")
        data = os.pread(file_obj.fileno(), size, offset)
        file_obj.served += len(data)
        file_obj.end = max(file_obj.end, offset + len(data))
        return data

    def write(self, file_obj: object, offset: int, data: bytes) -> int:
        self.jail.touch()
        if not isinstance(file_obj, _Upload):
            raise SFTPPermissionDenied("this file was opened for reading, not for upload")
        if file_obj.refused:
            raise SFTPFailure(file_obj.refused)
        end = offset + len(data)
        if end > self.jail.max_file_bytes:
            file_obj.refused = (f"/inbox/{file_obj.name}: larger than the {self.jail.max_file_bytes} bytes "
                                "this server accepts; upload refused")
            raise SFTPQuotaExceeded(file_obj.refused)
        view = memoryview(data)
        while view:
            written = os.pwrite(file_obj.fileno(), view, offset)
            view, offset = view[written:], offset + written
        file_obj.size = max(file_obj.size, end)
        return len(data)

    def close(self, file_obj: object) -> Awaitable[None] | None:
        # asyncssh calls close() for the client's CLOSE request (SFTPServerHandler._process_close)
        # and again, from the handler's _cleanup, for every handle still open when the session ends
        # (client killed, network cut, EOF without CLOSE). Channel state cannot tell them apart -- a
        # client may send CLOSE and hang up at once -- only the caller can. Should asyncssh rename
        # it, every upload fails loudly (tests catch it) instead of a partial one being committed.
        requested = sys._getframe(1).f_code.co_name == "_process_close"
        if isinstance(file_obj, _Upload):
            return self._finish_upload(file_obj, requested)
        if isinstance(file_obj, _Download):
            return self._finish_download(file_obj, requested)
        return None

    async def _finish_upload(self, upload: _Upload, explicit: bool) -> None:
        upload.close()
        self._uploads -= 1
        try:
            if not explicit:
                log.info("upload abandoned", partner=self.jail.partner, file=upload.name, size=upload.size)
                return
            if upload.refused:
                raise SFTPFailure(upload.refused)
            if upload.staged:   # complete, but stored only when renamed to its real name
                await asyncio.to_thread(os.replace, upload.temp, self.jail.home / "inbox" / upload.name)
                return
            await self.jail.commit(upload.name, upload.temp)
            # Committed: only now does the file appear under its name. Past this point the bytes
            # are stored and will be processed, so a failed rename is logged, not reported.
            try:
                await asyncio.to_thread(os.replace, upload.temp, self.jail.home / "inbox" / upload.name)
            except OSError as exc:
                log.warning("stored upload not renamed", partner=self.jail.partner, file=upload.name,
                            error=exc.strerror)
        finally:
            upload.temp.unlink(missing_ok=True)

    async def _finish_download(self, download: _Download, explicit: bool) -> None:
        download.close()
        if not (explicit and download.complete):
            return
        size = download.opened.st_size
        await self.jail.downloaded(download.area, download.name, size)
        if download.area != "outbox" or self.jail.after_download == "keep":
            return
        try:
            now = os.lstat(download.local)
        except FileNotFoundError:
            return   # the partner removed it already
        if (now.st_ino, now.st_dev) != (download.opened.st_ino, download.opened.st_dev):
            return   # replaced by a newer file of the same name since: that one was not downloaded
        if self.jail.after_download == "delete":
            os.unlink(download.local)
        else:
            stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            os.replace(download.local, self.jail.archive_dir / f"{stamp}-{secrets.token_hex(3)}-{download.name}")

    def fsync(self, file_obj: object) -> Awaitable[None]:
        return asyncio.to_thread(os.fsync, file_obj.fileno())   # type: ignore[attr-defined]

    def fstatvfs(self, file_obj: object) -> os.statvfs_result:
        raise SFTPOpUnsupported("statvfs is not offered")

    # ------------------------------------------------------------------ changing the tree

    def remove(self, path: bytes) -> None:
        area, name, local = self._file(path, "remove", staging=True)
        if not stat.S_ISREG(os.lstat(local).st_mode):
            raise SFTPNoSuchFile(f"no such file: /{area}/{name}")
        os.unlink(local)

    def rename(self, oldpath: bytes, newpath: bytes) -> Awaitable[None] | None:
        return self._rename(oldpath, newpath, replace=False)

    def posix_rename(self, oldpath: bytes, newpath: bytes) -> Awaitable[None] | None:
        return self._rename(oldpath, newpath, replace=True)

    def _rename(self, oldpath: bytes, newpath: bytes, *, replace: bool) -> Awaitable[None] | None:
        area, name, local = self._file(oldpath, "rename", staging=True)
        new_area, new_name, new_local = self._file(newpath, "rename to", staging=True)
        if new_area != area:
            raise SFTPPermissionDenied(f"cannot move /{area}/{name} to /{new_area}: files stay in their folder")
        if not stat.S_ISREG(os.lstat(local).st_mode):
            raise SFTPNoSuchFile(f"no such file: /{area}/{name}")
        if not replace and os.path.lexists(new_local):
            raise SFTPFileAlreadyExists(f"/{new_area}/{new_name} already exists")
        if area == "inbox" and staging_name(name) and not staging_name(new_name):
            return self._store_staged(name, local, new_name, new_local)
        os.replace(local, new_local)
        return None

    async def _store_staged(self, name: str, local: str, new_name: str, new_local: str) -> None:
        """A staged upload renamed to its real name: store it under that name, then rename (answered after)."""
        size = os.lstat(local).st_size
        if size > self.jail.max_file_bytes:
            raise SFTPQuotaExceeded(f"/inbox/{name}: larger than the {self.jail.max_file_bytes} bytes "
                                    "this server accepts; upload refused")
        await self.jail.commit(new_name, Path(local))
        try:
            await asyncio.to_thread(os.replace, local, new_local)
        except OSError as exc:   # stored: it will be processed; the name is only cosmetic now
            log.warning("stored upload not renamed", partner=self.jail.partner, file=new_name, error=exc.strerror)

    def _refuse(self, *args: object) -> None:
        self.jail.touch()
        raise SFTPPermissionDenied("not allowed here: only uploading, downloading, listing, renaming and "
                                   "removing files in /inbox and /outbox")

    mkdir = rmdir = symlink = link = readlink = setstat = lsetstat = fsetstat = _refuse  # type: ignore[assignment]

    def statvfs(self, path: bytes) -> os.statvfs_result:
        raise SFTPOpUnsupported("statvfs is not offered")

    def open56(self, path: bytes, desired_access: int, flags: int, attrs: SFTPAttrs) -> object:
        raise SFTPOpUnsupported("this server speaks SFTP version 3")


def _virtual(parts: tuple[str, ...]) -> str:
    return "/" + "/".join(parts)


def _shown(text: str, limit: int = 120) -> str:
    """A client-supplied path for an error text: repr() (no control characters), cut to ``limit``."""
    return repr(text if len(text) <= limit else text[:limit] + "...")
