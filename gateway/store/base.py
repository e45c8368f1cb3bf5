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
from gateway.store.records import DeliveryRecord, DocumentRecord, EventRecord, MessageRecord, field_names
from gateway.store.tables import deliveries, documents, events, messages

DEFAULT_DUPLICATE_WINDOW = 30 * 24 * 3600.0

# Statements are built once, here and at the top of each mixin's module, with bindparam()
# placeholders, and executed with a parameter dict: building an expression per call (and
# generating its cache key from scratch) costs as much as running the SQL. Hot paths build
# no SQL expressions at all; variants a call may need are prebuilt side by side.

# Columns selected in each record's field order, for the positional builders in records.py.
MESSAGE_COLUMNS = tuple(messages.c[name] for name in field_names(MessageRecord))
DOCUMENT_COLUMNS = tuple(documents.c[name] for name in field_names(DocumentRecord))
DELIVERY_COLUMNS = tuple(deliveries.c[name] for name in field_names(DeliveryRecord))
EVENT_COLUMNS = tuple(events.c[name] for name in field_names(EventRecord))


def constant(value: str) -> sa.ColumnElement:
    """The SQL literal ``'value'``, inlined: for our own enum values only (checked), never input."""
    if not value.replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"not a plain constant: {value!r}")
    return sa.literal_column(f"'{value}'")


def constant_in(column: sa.ColumnElement, values: tuple[str, ...]) -> sa.ColumnElement[bool]:
    """``column IN ('a', 'b')`` with the constants inlined: no per-execution IN-list expansion."""
    return column.in_([constant(value) for value in values])


_INSERT_EVENT = events.insert()
_EVENT_IDS_OF_DELIVERY = (
    sa.select(deliveries.c.document_id, documents.c.message_id, deliveries.c.partner)
    .join(documents, documents.c.id == deliveries.c.document_id)
    .where(deliveries.c.id == sa.bindparam("delivery_id"))
)
_EVENT_IDS_OF_DOCUMENT = sa.select(documents.c.message_id, documents.c.partner).where(
    documents.c.id == sa.bindparam("document_id"))
_PARTNER_OF_MESSAGE = sa.select(messages.c.partner).where(messages.c.id == sa.bindparam("message_id"))
# PostgreSQL advisory locks, one or two keys per round trip (taken left to right).
_ADVISORY_LOCKS = {
    1: sa.select(sa.func.pg_advisory_xact_lock(sa.bindparam("k0", type_=sa.BigInteger))),
    2: sa.select(sa.func.pg_advisory_xact_lock(sa.bindparam("k0", type_=sa.BigInteger)),
                 sa.func.pg_advisory_xact_lock(sa.bindparam("k1", type_=sa.BigInteger))),
}


def event_row(
    step: str,
    outcome: str,
    at: float,
    message_id: str | None,
    document_id: str | None,
    delivery_id: str | None,
    partner: str | None,
    duration_ms: float | None = None,
    detail: str = "",
) -> dict:
    """The parameters of one event row, every id given by the caller (no lookups)."""
    return {"at": at, "message_id": message_id, "document_id": document_id, "delivery_id": delivery_id,
            "partner": partner, "step": step, "outcome": outcome, "duration_ms": duration_ms, "detail": detail}


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
        # Engines sharing the one pool, preset with the options the "begin" hooks read (see
        # engine.py), so a transaction does not set options on its connection each time.
        self._write_engines = {durable: self._engine.execution_options(gateway_durable=durable)
                               for durable in (False, True)}
        read_options: dict = {"gateway_read_only": True}
        if self._engine.dialect.name == "postgresql":
            # Under READ COMMITTED each statement takes its own snapshot inside a transaction
            # too, so reads lose nothing outside one -- and save the BEGIN and COMMIT round trips.
            read_options["isolation_level"] = "AUTOCOMMIT"
        self._read_engine = self._engine.execution_options(**read_options)
        self.blobs = BlobStore(Path(blob_dir))
        self.duplicate_window = float(duplicate_window)
        self._batch = threading.local()   # .conn while this thread runs a batch()

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for migrations and tests; callers use the methods)."""
        return self._engine

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self._engine.dialect.name

    @contextlib.contextmanager
    def _write(self, action: str, *, durable: bool = False) -> Iterator[sa.Connection]:
        """One write transaction (SQLite: BEGIN IMMEDIATE); commits on success.

        ``durable``: the commit must survive a power loss before we return, because something
        is acknowledged to a partner on the strength of it (receiving). Other writes (claims,
        outcomes, processing results) may lose their last milliseconds to a power loss — never
        to a process crash — and are then redone at least once with the same idempotency key;
        skipping their fsync is what lets one SQLite writer keep up with the traffic.
        """
        batch = getattr(self._batch, "conn", None)
        if batch is not None:
            if durable and not self._batch.durable:
                raise RuntimeError(f"{action}: a durable write inside a non-durable batch")
            with store_errors(action):
                yield batch
            return
        with store_errors(action), self._write_engines[durable].connect() as conn, conn.begin():
            yield conn

    @contextlib.contextmanager
    def batch(self, *, durable: bool = False) -> Iterator[None]:
        """Run every write this thread makes inside the block as ONE transaction (group commit).

        One BEGIN/COMMIT (and at most one fsync) for many small writes is what lets a single
        SQLite writer keep up with bursts. All or nothing: if any write raises, everything in
        the block is rolled back and the exception propagates; callers re-run the writes one
        by one to learn which one failed (see ``gateway.app.BatchWriter``). ``durable`` must be
        true when any write in the block needs it (receiving).
        """
        if getattr(self._batch, "conn", None) is not None:
            raise RuntimeError("store batches do not nest")
        with store_errors("writing a batch"), self._write_engines[durable].connect() as conn, conn.begin():
            self._batch.conn, self._batch.durable = conn, durable
            try:
                yield
            finally:
                self._batch.conn = None

    @contextlib.contextmanager
    def _read(self, action: str) -> Iterator[sa.Connection]:
        """One read-only transaction (SQLite: deferred BEGIN, never waits for writers).

        PostgreSQL reads run in autocommit mode instead (see ``__init__``). Inside a batch the
        batch's connection is used, so a write sees what the batch wrote.
        """
        batch = getattr(self._batch, "conn", None)
        if batch is not None:
            with store_errors(action):
                yield batch
            return
        with store_errors(action), self._read_engine.connect() as conn, conn.begin():
            yield conn

    @staticmethod
    def _lock(conn: sa.Connection, *keys: tuple[str | None, ...]) -> None:
        """PostgreSQL: serialise transactions on each key (a tuple of parts), in the order given.

        SQLite already serialises writers. Up to two keys go in one round trip.
        """
        if conn.dialect.name == "postgresql":
            for start in range(0, len(keys), 2):
                chunk = keys[start:start + 2]
                conn.execute(_ADVISORY_LOCKS[len(chunk)],
                             {f"k{n}": advisory_key(*parts) for n, parts in enumerate(chunk)})

    @staticmethod
    def _insert_events(conn: sa.Connection, rows: dict | list[dict]) -> None:
        """Append event rows made by :func:`event_row` (a list is inserted in its order)."""
        conn.execute(_INSERT_EVENT, rows)

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
        For callers that cannot know the ids (``Store.event``); the store's own writes fetch
        them with the rows they change and call :meth:`_insert_events` directly.
        """
        if delivery_id is not None and (document_id is None or message_id is None or partner is None):
            row = conn.execute(_EVENT_IDS_OF_DELIVERY, {"delivery_id": delivery_id}).first()
            if row is not None:
                document_id = document_id or row[0]
                message_id = message_id or row[1]
                partner = partner or row[2]
        if document_id is not None and (message_id is None or partner is None):
            row = conn.execute(_EVENT_IDS_OF_DOCUMENT, {"document_id": document_id}).first()
            if row is not None:
                message_id = message_id or row[0]
                partner = partner or row[1]
        if message_id is not None and partner is None:
            partner = conn.execute(_PARTNER_OF_MESSAGE, {"message_id": message_id}).scalar()
        conn.execute(_INSERT_EVENT, event_row(step, outcome, at, message_id, document_id, delivery_id, partner,
                                              duration_ms, detail))
