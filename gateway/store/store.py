"""The Store facade: one object the app holds for messages, documents, queue, log and blobs."""

from __future__ import annotations

from pathlib import Path

from gateway.store.accounts import AccountsMixin
from gateway.store.alerts import AlertsMixin
from gateway.store.base import DEFAULT_DUPLICATE_WINDOW
from gateway.store.edi import EdiMixin
from gateway.store.engine import migrate, mask_url, schema_revision
from gateway.store.log import LogMixin
from gateway.store.messages import MessagesMixin
from gateway.store.nodes import NodesMixin
from gateway.store.queue import QueueMixin
from gateway.store.stats import StatsMixin
from gateway.store.submissions import SubmissionsMixin
from gateway.store.transfers import TransfersMixin


class Store(MessagesMixin, QueueMixin, LogMixin, TransfersMixin, EdiMixin, NodesMixin,
            SubmissionsMixin, AccountsMixin, StatsMixin, AlertsMixin):
    """Durable state of the gateway on SQLite or PostgreSQL, plus content-addressed blobs.

    A synchronous API, safe to share between threads (the asyncio app calls it through a
    thread executor) and between processes on the same database. Every method that needs
    the current time takes ``now`` (epoch seconds) so tests can control time. Errors are
    :class:`gateway.errors.StoreError` (``BlobError`` for damaged or missing payloads).

    Parts: :class:`MessagesMixin` (receive, documents), :class:`QueueMixin` (claims and
    leases), :class:`LogMixin` (events and operator queries), :class:`TransfersMixin` (outbound
    submissions, AS2 receipts), :class:`EdiMixin` (EDI control numbers, interchange duplicates,
    expected acknowledgments), :class:`NodesMixin` (schedule leases, AS2 MICs expected),
    :class:`SubmissionsMixin` (API submissions and their status callbacks), :class:`AccountsMixin`
    (dashboard users and sessions), :class:`StatsMixin` (transmission search, overview figures),
    :class:`AlertsMixin` (alert statistics and the alerts table).
    """

    def __init__(self, url: str, blob_dir: Path, *, duplicate_window: float = DEFAULT_DUPLICATE_WINDOW) -> None:
        """Create the engine and blob store without touching the schema (see :meth:`open`).

        ``duplicate_window``: seconds within which the same bytes from the same partner
        count as a duplicate.
        """
        super().__init__(url, blob_dir, duplicate_window=duplicate_window)
        self._url = url

    @classmethod
    def open(cls, url: str, blob_dir: Path, *, duplicate_window: float = DEFAULT_DUPLICATE_WINDOW) -> "Store":
        """Create the store and bring its schema up to date (migrations are idempotent)."""
        store = cls(url, blob_dir, duplicate_window=duplicate_window)
        try:
            store.migrate()
        except BaseException:
            store.close()
            raise
        return store

    def migrate(self) -> None:
        """Run pending schema migrations (alembic upgrade head)."""
        migrate(self._engine)

    def schema_revision(self) -> str | None:
        """The schema revision the database is at (None before the first migration)."""
        return schema_revision(self._engine)

    def close(self) -> None:
        """Release every database connection; the Store must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({mask_url(self._url)!r}, {str(self.blobs.root)!r})"
