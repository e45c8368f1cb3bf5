"""Shared plumbing of the Store's parts: engine, blob store, transactions, ids, event rows."""

from __future__ import annotations

import contextlib
import hashlib
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from gateway.store.blobs import BlobStore
from gateway.store.engine import open_engine, store_errors
from gateway.store.tables import deliveries, documents, events, messages

DEFAULT_DUPLICATE_WINDOW = 30 * 24 * 3600.0
# Built once: statements executed with a parameter dict skip per-call construction and
# cache-key work, which otherwise costs as much as the SQL itself.
_INSERT_EVENT = events.insert()


def now_or(now: float | None) -> float:
    """``now`` if the caller controls time (tests), else the current epoch seconds."""
    return time.time() if now is None else float(now)


_id_lock = threading.Lock()
_last_id: tuple[int, int] = (-1, 0)


def new_id(prefix: str, now: float) -> str:
    """``prefix_`` + 12 hex digits of epoch milliseconds + 8 random hex: sortable by time.

    Within one millisecond of one process the random part counts up from its first value
    (as monotonic ULIDs do), so ids made in a row sort in the order they were made.
    """
    global _last_id
    ms = int(now * 1000)
    with _id_lock:
        last_ms, last_rand = _last_id
        rand = last_rand + 1 if ms == last_ms and last_rand < 0xFFFF_FFFF else secrets.randbits(31)
        _last_id = (ms, rand)
    return f"{prefix}_{ms:012x}{rand:08x}"


def iso(at: float) -> str:
    """Epoch seconds as a compact UTC ISO 8601 string, for event details."""
    return datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def advisory_key(*parts: str | None) -> int:
    """A signed 64-bit PostgreSQL advisory-lock key derived from ``parts``."""
    digest = hashlib.sha256("\x1f".join(p or "" for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class StoreBase:
    """Holds the engine and blob store; opens read and write transactions."""

    def __init__(self, url: str, blob_dir: Path, *, duplicate_window: float = DEFAULT_DUPLICATE_WINDOW) -> None:
        self._engine: Engine = open_engine(url)
        self.blobs = BlobStore(Path(blob_dir))
        self.duplicate_window = float(duplicate_window)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for migrations and tests; callers use the methods)."""
        return self._engine

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    @contextlib.contextmanager
    def _write(self, action: str) -> Iterator[sa.Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE); commits on success."""
        with store_errors(action), self._engine.begin() as conn:
            yield conn

    @contextlib.contextmanager
    def _read(self, action: str) -> Iterator[sa.Connection]:
        """One read-only transaction (SQLite: deferred BEGIN, never waits for writers)."""
        with store_errors(action), self._engine.connect() as conn:
            conn.execution_options(gateway_read_only=True)
            with conn.begin():
                yield conn

    def _lock(self, conn: sa.Connection, *parts: str | None) -> None:
        """PostgreSQL: serialise transactions on the same ``parts`` (SQLite already is)."""
        if conn.dialect.name == "postgresql":
            conn.execute(sa.select(sa.func.pg_advisory_xact_lock(advisory_key(*parts))))

    @staticmethod
    def _add_event(
        conn: sa.Connection,
        step: str,
        outcome: str,
        *,
        at: float,
        message_id: str | None = None,
        document_id: str | None = None,
        delivery_id: str | None = None,
        partner: str | None = None,
        duration_ms: float | None = None,
        detail: str = "",
    ) -> None:
        """Append one event row; a missing message/document/partner is looked up from the ids.

        Stamping every event with its message id is what lets ``timeline`` read one index.
        """
        if delivery_id is not None and (document_id is None or message_id is None or partner is None):
            row = conn.execute(
                sa.select(deliveries.c.document_id, documents.c.message_id, deliveries.c.partner)
                .join(documents, documents.c.id == deliveries.c.document_id)
                .where(deliveries.c.id == delivery_id)
            ).first()
            if row is not None:
                document_id = document_id or row.document_id
                message_id = message_id or row.message_id
                partner = partner or row.partner
        if document_id is not None and (message_id is None or partner is None):
            row = conn.execute(
                sa.select(documents.c.message_id, documents.c.partner).where(documents.c.id == document_id)
            ).first()
            if row is not None:
                message_id = message_id or row.message_id
                partner = partner or row.partner
        if message_id is not None and partner is None:
            partner = conn.execute(sa.select(messages.c.partner).where(messages.c.id == message_id)).scalar()
        conn.execute(
            _INSERT_EVENT,
            dict(at=at, message_id=message_id, document_id=document_id, delivery_id=delivery_id, partner=partner,
                 step=step, outcome=outcome, duration_ms=duration_ms, detail=detail),
        )
