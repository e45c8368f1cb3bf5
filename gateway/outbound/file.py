"""The ``file`` connector: writes each canonical document atomically as JSON into a folder."""

from __future__ import annotations

import asyncio
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import PermanentDeliveryError, RetryableDeliveryError
from ..model import DeliveryJob

_SAFE_KEY = re.compile(r"^[A-Za-z0-9_-]{8,128}$")


def write_atomically(folder: Path, name: str, body: bytes, *, fsync: bool = True) -> None:
    """Write ``folder/name`` so that readers see the whole file or none (temp dotfile + rename).

    Raises RetryableDeliveryError: a full disk or a missing mount usually heals.
    """
    try:
        folder.mkdir(parents=True, exist_ok=True)
        temp = folder / f".{name}.{os.getpid()}.tmp"
        with temp.open("wb") as fh:
            fh.write(body)
            if fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(temp, folder / name)
        if fsync:
            dir_fd = os.open(folder, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
    except OSError as exc:
        raise RetryableDeliveryError(f"cannot write into {folder}: {exc.strerror}") from None


class FileConnector:
    """Drops ``<document type>-<idempotency key>.json`` into ``path``.

    The file name is the idempotency key, so a retry or a replay overwrites the same file
    instead of creating a second one: the folder holds each document exactly once.
    """

    @classmethod
    def check_options(cls, options: dict[str, Any], home: Path,
                      resolve_secret: Callable[[str], str]) -> Iterable[tuple[str, str]]:
        """Validate ``path`` (required, a string) and reject unknown keys."""
        for key in options:
            if key not in ("path", "fsync"):
                yield key, "unknown setting for a file target"
        if not isinstance(options.get("path"), str) or not options["path"]:
            yield "path", "a file target needs path = \"folder to write documents into\""
        if not isinstance(options.get("fsync", True), bool):
            yield "fsync", "must be true or false"

    def __init__(self, target: Any, home: Path) -> None:
        path = Path(target.options["path"]).expanduser()
        self.folder = path if path.is_absolute() else home / path
        self.fsync = target.options.get("fsync", True)

    async def send(self, job: DeliveryJob) -> int | None:
        """Write the document; the idempotency key is checked before it becomes a file name."""
        if not _SAFE_KEY.match(job.idempotency_key) or not re.match(r"^[a-z_]+$", job.document_type):
            raise PermanentDeliveryError(f"unsafe file name from key {job.idempotency_key!r}")
        await asyncio.to_thread(write_atomically, self.folder, f"{job.document_type}-{job.idempotency_key}.json",
                                job.body, fsync=self.fsync)
        return None

    async def close(self) -> None:
        """Nothing to release."""
