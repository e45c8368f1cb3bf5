"""The ``outbox`` channel: files for a partner that downloads them from its home on our SFTP server."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from ..model import DeliveryJob
from .file import write_atomically

_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,199}$")


def outbox_name(job: DeliveryJob) -> str:
    """The file name the partner sees: the submitted name when it is plain, else one from the document id."""
    name = Path(job.filename).name if job.filename else ""
    return name if _SAFE_NAME.match(name) else f"{job.document_id}.{job.document_type}"


class OutboxConnector:
    """Writes each file atomically into ``<sftp root>/<ID>/outbox/`` (hidden temp name, then rename).

    A file of that name already there with other bytes (an earlier document the partner has
    not fetched yet) is never overwritten: this one gets the idempotency key in its name. A
    retry finds its own bytes there and is done, so the outbox holds each document once.
    """

    def __init__(self, partner: Any, deployment: Any) -> None:
        self.folder = deployment.settings.sftp.root / partner.id / "outbox"

    async def send(self, job: DeliveryJob) -> int | None:
        await asyncio.to_thread(self._place, job)
        return None

    def _place(self, job: DeliveryJob) -> None:
        name = outbox_name(job)
        final = self.folder / name
        if final.is_file() and not final.is_symlink() and final.read_bytes() != job.body:
            stem, dot, suffix = name.partition(".")
            name = f"{stem}-{job.idempotency_key[:12]}{dot}{suffix}"
            final = self.folder / name
        if final.is_file() and not final.is_symlink() and final.read_bytes() == job.body:
            return   # a retry after the write: already there
        write_atomically(self.folder, name, job.body)

    async def close(self) -> None:
        """Nothing to release."""
