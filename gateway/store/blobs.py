"""Content-addressed, durably written payload files: ``root/ab/<sha256>``."""

from __future__ import annotations

import errno
import hashlib
import mmap
import os
import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from gateway.errors import BlobError

Buffer = bytes | bytearray | memoryview | mmap.mmap

_SHA256 = re.compile(r"[0-9a-f]{64}")


def sha256_hex(data: bytes) -> str:
    """The lowercase hex SHA-256 of ``data``: the blob id under which it is stored."""
    return hashlib.sha256(data).hexdigest()


def _fsync_dir(path: Path) -> None:
    # A rename or a new directory entry is only durable once its directory is synced.
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BlobStore:
    """Immutable blobs named by their SHA-256, written with fsync + atomic rename.

    One level of 256 fan-out directories (created once, so the hot path never makes one)
    keeps directories to a few thousand entries per million blobs. Writers in
    several threads or processes may store the same blob at once: each writes its own temp
    file and the renames replace identical bytes, so readers never see a partial file.
    """

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def path(self, sha: str) -> Path:
        """Where the blob ``sha`` lives; raises BlobError unless ``sha`` is 64 lowercase hex."""
        if not isinstance(sha, str) or not _SHA256.fullmatch(sha):
            raise BlobError(f"invalid blob id {sha!r}: expected 64 lowercase hex digits")
        return self.root / sha[:2] / sha

    def put(self, data: bytes | Sequence[Buffer], *, durable: bool = True) -> str:
        """Store ``data`` and return its SHA-256; an existing copy of the right size is kept.

        ``data`` may be a sequence of buffers (e.g. a header block and an mmap'd body), stored
        as their concatenation without ever joining them in memory. ``durable`` False skips the
        fsyncs, for copies nothing is acknowledged on (the AS2 request as it came over the wire).
        An existing file of another size (truncated by a crash or damaged on disk) is replaced,
        since we hold the right bytes now. Same-size damage is caught by :meth:`get`, which
        verifies every read; re-hashing here would make storing a large file cost twice.
        """
        parts = [data] if isinstance(data, (bytes, bytearray, memoryview, mmap.mmap)) else list(data)
        digest = hashlib.sha256()
        for part in parts:
            digest.update(part)
        sha = digest.hexdigest()
        size = sum(memoryview(part).nbytes for part in parts)
        path = self.path(sha)
        if self._has(path, size):
            return sha
        try:
            self._make_dirs(path.parent)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{sha[:8]}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    for part in parts:
                        f.write(part)
                    f.flush()
                    if durable:
                        os.fsync(f.fileno())
                os.replace(tmp, path)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
            if durable:
                _fsync_dir(path.parent)
        except OSError as exc:
            raise BlobError(f"cannot write blob {sha} to {path}: {exc.strerror or exc}") from exc
        return sha

    def get(self, sha: str) -> bytes:
        """The bytes of blob ``sha``; raises BlobError (naming sha and path) if missing or corrupt."""
        path = self.path(sha)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise BlobError(f"blob {sha} is missing: {path}") from None
        except OSError as exc:
            raise BlobError(f"cannot read blob {sha} at {path}: {exc.strerror or exc}") from exc
        actual = sha256_hex(data)
        if actual != sha:
            raise BlobError(f"blob {sha} is corrupt: {path} has SHA-256 {actual}")
        return data

    def adopt(self, path: Path) -> tuple[str, int]:
        """Store the finished file at ``path`` as a blob without copying it; returns ``(sha256, size)``.

        The file is read once (hashed, never held in memory) and fsync'd, then hard-linked under
        its blob name (copied when the blob store is on another file system). The caller must
        never write to ``path`` again: from now on the blob and the file share their bytes.
        """
        digest, size = hashlib.sha256(), 0
        try:
            with open(path, "rb") as fh:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
                    size += len(chunk)
                os.fsync(fh.fileno())
            sha = digest.hexdigest()
            target = self.path(sha)
            if self._has(target, size):
                return sha, size
            self._make_dirs(target.parent)
            temp = target.parent / f".{sha[:8]}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
            try:
                os.link(path, temp)
            except OSError as exc:
                if exc.errno != errno.EXDEV:
                    raise
                shutil.copyfile(path, temp)
                with open(temp, "rb") as fh:
                    os.fsync(fh.fileno())
            os.replace(temp, target)
            _fsync_dir(target.parent)
        except OSError as exc:
            raise BlobError(f"cannot store {path.name} as a blob: {exc.strerror or exc}") from exc
        return sha, size

    def holds(self, sha: str, size: int) -> bool:
        """Whether blob ``sha`` is stored with ``size`` bytes (content verified on read, not here)."""
        return self._has(self.path(sha), size)

    def exists(self, sha: str) -> bool:
        """Whether a file for blob ``sha`` exists (its content is not verified)."""
        return self.path(sha).is_file()

    @staticmethod
    def _has(path: Path, size: int) -> bool:
        try:
            return path.stat().st_size == size
        except OSError:
            return False

    def _make_dirs(self, directory: Path) -> None:
        if directory.is_dir():
            return
        # Create root/ab one level at a time so every new entry's parent gets synced.
        missing = []
        d = directory
        while not d.is_dir():
            missing.append(d)
            d = d.parent
        for d in reversed(missing):
            d.mkdir(exist_ok=True)
            _fsync_dir(d.parent)
