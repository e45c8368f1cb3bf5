"""Store: receiving, duplicates, processed/failed messages, the log, searches, engine, migrations.

Every test taking ``store`` runs on SQLite and on PostgreSQL (see conftest.py).
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.errors import MappingError, StoreError
from gateway.model import Channel, DeliveryStatus, Document, MessageStatus, Received
from gateway.store import Store, document_json
from gateway.store.engine import mask_url, normalize_url, open_engine

T0 = 1_700_000_000.0
DAY = 86_400.0


def received(raw: bytes = b"UNA:+.? 'UNB+UNOC:3+ACME+US'", *, partner: str | None = "ACME",
             source_ref: str = "", channel: Channel = Channel.INBOX, filename: str = "orders.edi") -> Received:
    return Received(raw=raw, channel=channel, partner=partner, filename=filename, source_ref=source_ref)


def document(key: str, *, targets: tuple[str, ...] = ("erp",), type: str = "order", number: str = "PO-1",
             partner: str = "ACME", doc_id: str | None = None, extra: dict | None = None) -> Document:
    envelope = {"type": type, "version": 1, "id": doc_id or f"doc-{key}", "idempotency_key": key,
                "partner": partner, "document": {"number": number, "total": "10.50", **(extra or {})}}
    return Document(type=type, partner=partner, idempotency_key=key, envelope=envelope, number=number,
                    targets=list(targets))


# ------------------------------------------------------------------------------ receive


def test_receive_stores_blob_message_and_event(store: Store) -> None:
    raw = b"UNB+UNOC:3+ACME:14+US:14+240101:1200+42'"
    result = store.receive(received(raw, source_ref="inbox/a.edi:1:40"), now=T0)
    msg = result.message
    assert result.should_process and not result.recovered and result.duplicate_of is None
    assert re.fullmatch(r"msg_[0-9a-f]{20}", msg.id)
    assert msg.id[4:16] == f"{int(T0 * 1000):012x}"
    assert (msg.partner, msg.channel, msg.filename, msg.size) == ("ACME", "inbox", "orders.edi", len(raw))
    assert msg.status is MessageStatus.RECEIVED and msg.received_at == T0
    assert store.message(msg.id) == msg
    assert store.raw(msg.id) == raw
    assert store.blobs.path(msg.raw_sha256).read_bytes() == raw
    [event] = store.timeline(msg.id)
    assert (event.step, event.outcome, event.partner, event.at) == ("received", "ok", "ACME", T0)
    assert "inbox" in event.detail and "orders.edi" in event.detail and str(len(raw)) in event.detail


def test_status_is_stored_as_spelled_out_word(store: Store) -> None:
    msg = store.receive(received(), now=T0).message
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT status FROM messages WHERE id = :i"), {"i": msg.id}).scalar() == "received"


def test_same_source_ref_is_recovered_not_stored_again(store: Store) -> None:
    first = store.receive(received(b"A", source_ref="as2:<id-1@acme>", channel=Channel.AS2), now=T0)
    # An AS2 resend is re-encrypted: different bytes, same Message-ID.
    again = store.receive(received(b"B", source_ref="as2:<id-1@acme>", channel=Channel.AS2), now=T0 + 5)
    assert again.recovered and not again.should_process
    assert again.message == first.message
    assert len(store.search_messages()) == 1
    steps = [(e.step, e.outcome) for e in store.timeline(first.message.id)]
    assert steps == [("received", "ok"), ("received", "recovered")]
    # Same reference on another channel or for another partner is a different message.
    assert not store.receive(received(b"A", source_ref="as2:<id-1@acme>", channel=Channel.SFTP), now=T0).recovered
    assert not store.receive(received(b"C", source_ref="as2:<id-1@acme>", channel=Channel.AS2, partner="BETA"),
                             now=T0).recovered


def test_same_bytes_are_a_visible_duplicate(store: Store) -> None:
    first = store.receive(received(b"same", source_ref="a"), now=T0).message
    dup = store.receive(received(b"same", source_ref="b"), now=T0 + 60)
    assert dup.duplicate_of == first.id and not dup.should_process and not dup.recovered
    assert dup.message.id != first.id
    assert dup.message.status is MessageStatus.DUPLICATE and dup.message.duplicate_of == first.id
    assert store.message(dup.message.id) == dup.message
    [event] = store.timeline(dup.message.id)
    assert (event.step, event.outcome) == ("received", "duplicate") and first.id in event.detail
    # A third copy still points at the original, not at the duplicate.
    assert store.receive(received(b"same"), now=T0 + 120).duplicate_of == first.id
    # Another partner sending the same bytes is not a duplicate.
    assert store.receive(received(b"same", partner="BETA"), now=T0 + 60).duplicate_of is None


def test_duplicate_window(open_store) -> None:  # noqa: ANN001
    store = open_store(duplicate_window=DAY)
    first = store.receive(received(b"same"), now=T0).message
    assert store.receive(received(b"same"), now=T0 + DAY - 1).duplicate_of == first.id
    assert store.receive(received(b"same"), now=T0 + DAY + 1).duplicate_of is None


def test_resend_of_a_failed_message_is_not_a_duplicate(store: Store) -> None:
    first = store.receive(received(b"bad"), now=T0).message
    store.record_failed(first.id, MappingError("no buyer"), now=T0 + 1)
    assert store.receive(received(b"bad"), now=T0 + 2).duplicate_of is None


def test_unknown_partner_messages(store: Store) -> None:
    first = store.receive(received(b"x", partner=None, source_ref="r"), now=T0)
    assert first.message.partner is None
    assert store.receive(received(b"y", partner=None, source_ref="r"), now=T0 + 1).recovered
    assert store.receive(received(b"x", partner=None), now=T0 + 1).duplicate_of == first.message.id


def test_pending_messages_oldest_first(store: Store) -> None:
    b = store.receive(received(b"b"), now=T0 + 2).message
    a = store.receive(received(b"a"), now=T0 + 1).message
    c = store.receive(received(b"c"), now=T0 + 3).message
    store.record_processed(c.id, format="x12", standard="850", interchange="1", documents=[], now=T0 + 4)
    store.receive(received(b"a"), now=T0 + 5)  # duplicate: not pending
    assert [m.id for m in store.pending_messages()] == [a.id, b.id]


def test_unknown_ids_raise_store_error(store: Store) -> None:
    for call in (lambda: store.message("msg_nope"), lambda: store.raw("msg_nope"),
                 lambda: store.delivery("dlv_nope"), lambda: store.document_body("nope"),
                 lambda: store.record_failed("msg_nope", MappingError("x")),
                 lambda: store.record_processed("msg_nope", format="", standard="", interchange="", documents=[])):
        with pytest.raises(StoreError, match="unknown"):
            call()


# ------------------------------------------------------------------- processed / failed


def test_record_processed_stores_documents_deliveries_and_events(store: Store) -> None:
    msg = store.receive(received(), now=T0).message
    docs = [document("k1", targets=("erp", "wms"), number="PO-1", extra={"note": "Grüße"}),
            document("k2", targets=("erp",), type="invoice", number="INV-9")]
    ids = store.record_processed(msg.id, format="edifact", standard="ORDERS D96A", interchange="42",
                                 documents=docs, now=T0 + 1)
    assert len(ids) == 3 and all(re.fullmatch(r"dlv_[0-9a-f]{20}", i) for i in ids)
    m = store.message(msg.id)
    assert (m.status, m.format, m.standard, m.interchange, m.updated_at) == (
        MessageStatus.PROCESSED, "edifact", "ORDERS D96A", "42", T0 + 1)
    stored = store.documents_of(msg.id)
    assert [(d.id, d.type, d.number, d.position, d.idempotency_key) for d in stored] == [
        ("doc-k1", "order", "PO-1", 0, "k1"), ("doc-k2", "invoice", "INV-9", 1, "k2")]
    body = store.document_body("doc-k1")
    assert body == document_json(docs[0].envelope)
    assert json.loads(body) == docs[0].envelope and "Grüße".encode() in body  # ensure_ascii=False
    deliveries = {d.id: d for d in store.deliveries()}
    assert set(deliveries) == set(ids)
    assert {(d.document_id, d.target) for d in deliveries.values()} == {
        ("doc-k1", "erp"), ("doc-k1", "wms"), ("doc-k2", "erp")}
    for d in deliveries.values():
        assert (d.status, d.attempts, d.next_attempt_at, d.lease_owner) == (DeliveryStatus.QUEUED, 0, T0 + 1, None)
    steps = [(e.step, e.outcome) for e in store.timeline(msg.id)]
    assert steps == [("received", "ok"), ("mapped", "ok"), ("queued", "ok"), ("queued", "ok"),
                     ("mapped", "ok"), ("queued", "ok"), ("processed", "ok")]


def test_record_processed_is_idempotent_on_replay(store: Store) -> None:
    msg = store.receive(received(), now=T0).message
    docs = [document("k1", targets=("erp", "wms"))]
    first = store.record_processed(msg.id, format="edifact", standard="ORDERS", interchange="1",
                                   documents=docs, now=T0)
    # The worker delivers one and is half-way through the other when an operator replays.
    claimed = {c.target: c for c in store.claim("w1", limit=10, lease_seconds=60, now=T0)}
    assert store.complete(claimed["erp"].delivery_id, "w1", duration_ms=5, http_status=200, now=T0 + 1)
    docs[0].envelope["document"]["number"] = "PO-1b"
    docs[0].number = "PO-1b"
    again = store.record_processed(msg.id, format="edifact", standard="ORDERS", interchange="1",
                                   documents=docs, now=T0 + 10)
    assert again == first  # same delivery rows, re-queued
    [doc] = store.documents_of(msg.id)
    assert (doc.number, doc.created_at, doc.updated_at) == ("PO-1b", T0, T0 + 10)
    assert json.loads(store.document_body(doc.id))["document"]["number"] == "PO-1b"
    rows = store.deliveries()
    assert len(rows) == 2
    for d in rows:
        assert (d.status, d.next_attempt_at, d.lease_owner, d.lease_expires_at, d.delivered_at) == (
            DeliveryStatus.QUEUED, T0 + 10, None, None, None)
        assert d.attempts == 1  # kept
    # The worker still holding the old lease cannot settle it any more.
    assert not store.complete(claimed["wms"].delivery_id, "w1", duration_ms=5, now=T0 + 11)
    outcomes = [(e.step, e.outcome) for e in store.timeline(msg.id) if e.step == "queued"]
    assert outcomes == [("queued", "ok"), ("queued", "ok"), ("queued", "requeued"), ("queued", "requeued")]


def test_record_processed_records_the_partner_the_pipeline_found(store: Store) -> None:
    msg = store.receive(received(partner=None), now=T0).message
    store.record_processed(msg.id, format="x12", standard="850", interchange="7",
                           documents=[document("k1", partner="ACME")], partner="ACME", now=T0 + 1)
    assert store.message(msg.id).partner == "ACME"
    assert store.timeline(msg.id)[-1].partner == "ACME"
    assert [m.id for m in store.search_messages(partner="ACME")] == [msg.id]


def test_record_processed_keeps_the_known_partner_when_the_pipeline_found_none(store: Store) -> None:
    first = store.receive(received(b"1", partner="ACME"), now=T0).message
    second = store.receive(received(b"2", partner="ACME"), now=T0).message
    store.record_processed(first.id, format="", standard="", interchange="", documents=[], now=T0 + 1)
    store.record_processed(second.id, format="", standard="", interchange="", documents=[], partner="", now=T0 + 1)
    for msg in (first, second):
        assert store.message(msg.id).partner == "ACME"
        assert store.timeline(msg.id)[-1].partner == "ACME"
    unknown = store.receive(received(b"3", partner=None), now=T0).message
    store.record_failed(unknown.id, MappingError("x"), now=T0 + 1)
    store.record_processed(unknown.id, format="", standard="", interchange="", documents=[], now=T0 + 2)
    assert store.message(unknown.id).partner is None
    assert [(e.step, e.partner) for e in store.timeline(unknown.id)] == [
        ("received", None), ("failed", None), ("processed", None)]


def test_same_idempotency_key_for_another_document_id_is_refused(store: Store) -> None:
    msg = store.receive(received(), now=T0).message
    store.record_processed(msg.id, format="", standard="", interchange="", documents=[document("k1")], now=T0)
    with pytest.raises(StoreError, match="already belongs to document"):
        store.record_processed(msg.id, format="", standard="", interchange="",
                               documents=[document("k1", doc_id="other-id")], now=T0)
    assert [d.id for d in store.documents_of(msg.id)] == ["doc-k1"]  # rolled back


def test_record_processed_rejects_a_document_without_id(store: Store) -> None:
    msg = store.receive(received(), now=T0).message
    doc = document("k1")
    del doc.envelope["id"]
    with pytest.raises(StoreError, match="no envelope id"):
        store.record_processed(msg.id, format="", standard="", interchange="", documents=[doc])
    assert store.message(msg.id).status is MessageStatus.RECEIVED


def test_record_failed_then_replay_succeeds(store: Store) -> None:
    msg = store.receive(received(), now=T0).message
    error = MappingError("missing buyer", file="orders.edi", partner="ACME", segment=4, tag="NAD")
    store.record_failed(msg.id, error, format="edifact", now=T0 + 1)
    m = store.message(msg.id)
    assert (m.status, m.error, m.format, m.updated_at) == (MessageStatus.FAILED, str(error), "edifact", T0 + 1)
    event = store.timeline(msg.id)[-1]
    assert (event.step, event.outcome, event.detail) == ("failed", "error", str(error))
    store.record_processed(msg.id, format="edifact", standard="ORDERS", interchange="1",
                           documents=[document("k1")], now=T0 + 2)
    m = store.message(msg.id)
    assert (m.status, m.error) == (MessageStatus.PROCESSED, None)


# --------------------------------------------------------------------------------- log


def test_event_fills_in_message_and_partner(store: Store) -> None:
    msg = store.receive(received(), now=T0).message
    [dlv] = store.record_processed(msg.id, format="", standard="", interchange="",
                                   documents=[document("k1", partner="ACME")], now=T0)
    store.event("parsed", "ok", message_id=msg.id, duration_ms=1.5, detail="3 segments", now=T0 + 1)
    store.event("sent", "ok", delivery_id=dlv, detail="by hand", now=T0 + 2)
    store.event("note", "ok", detail="unrelated", now=T0 + 3)
    events = store.timeline(msg.id)
    parsed, sent = events[-2:]
    assert (parsed.step, parsed.partner, parsed.duration_ms, parsed.at) == ("parsed", "ACME", 1.5, T0 + 1)
    assert (sent.step, sent.message_id, sent.document_id, sent.partner) == ("sent", msg.id, "doc-k1", "ACME")
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert "note" not in [e.step for e in events]


def test_search_filters_and_keyset_paging(store: Store) -> None:
    ids = {}
    for i in range(7):
        partner = "ACME" if i % 2 == 0 else "BETA"
        ids[i] = store.receive(received(f"m{i}".encode(), partner=partner), now=T0 + i).message.id
    store.record_processed(ids[2], format="x12", standard="810", interchange="7",
                           documents=[document("inv", type="invoice", partner="ACME")], now=T0 + 10)
    store.record_processed(ids[4], format="x12", standard="850", interchange="8",
                           documents=[document("ord", type="order", partner="ACME")], now=T0 + 10)
    store.record_failed(ids[3], MappingError("x"), now=T0 + 10)

    assert [m.id for m in store.search_messages()] == [ids[i] for i in range(6, -1, -1)]
    assert [m.id for m in store.search_messages(partner="BETA")] == [ids[5], ids[3], ids[1]]
    assert [m.id for m in store.search_messages(status="failed")] == [ids[3]]
    assert [m.id for m in store.search_messages(status=MessageStatus.PROCESSED)] == [ids[4], ids[2]]
    assert [m.id for m in store.search_messages(document_type="invoice")] == [ids[2]]
    assert [m.id for m in store.search_messages(since=T0 + 2, until=T0 + 5)] == [ids[4], ids[3], ids[2]]
    assert [m.id for m in store.search_messages(partner="ACME", status="received")] == [ids[6], ids[0]]

    pages, before = [], None
    while True:
        page = store.search_messages(limit=3, before_id=before)
        if not page:
            break
        pages.append([m.id for m in page])
        before = page[-1].id
    assert pages == [[ids[6], ids[5], ids[4]], [ids[3], ids[2], ids[1]], [ids[0]]]
    with pytest.raises(StoreError):
        store.search_messages(before_id="msg_unknown")


def test_paging_is_stable_for_equal_timestamps(store: Store) -> None:
    ids = sorted(store.receive(received(f"{i}".encode()), now=T0).message.id for i in range(5))
    first = store.search_messages(limit=2)
    rest = store.search_messages(limit=10, before_id=first[-1].id)
    assert [m.id for m in first + rest] == ids[::-1]


# ------------------------------------------------------------------ hot paths, batches


class StatementLog:
    """Records the data statements a store sends (transaction control left out)."""

    def __init__(self, store: Store) -> None:
        self.engine = store.engine
        self.statements: list[tuple[str, object]] = []
        sa.event.listen(self.engine, "before_cursor_execute", self._record)

    def _record(self, _conn, _cursor, statement: str, parameters, _context, _executemany) -> None:  # noqa: ANN001
        if statement.split(None, 1)[0].upper() in ("SELECT", "INSERT", "UPDATE", "DELETE"):
            self.statements.append((statement, parameters))

    def take(self) -> list[str]:
        """The statements since the last call, each shortened to its verb and table."""
        taken, self.statements = self.statements, []
        out = []
        for statement, _ in taken:
            words = statement.split()
            if "pg_advisory_xact_lock" in statement:
                out.append("LOCK")
            elif words[0].upper() == "SELECT":
                out.append("SELECT")
            else:
                out.append(f"{words[0].upper()} {words[2] if words[0].upper() == 'INSERT' else words[1]}")
        return out

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._record)


def test_hot_paths_send_no_lookups(store: Store) -> None:
    """receive -> record_processed -> claim -> complete: each statement does work, none looks ids up.

    (The events' ids come with the rows the same statements change; see the timelines.)
    """
    lock = ["LOCK"] if store.dialect == "postgresql" else []
    log = StatementLog(store)
    try:
        msg = store.receive(received(source_ref="inbox/a.edi"), now=T0).message
        assert log.take() == lock + ["SELECT", "INSERT messages", "INSERT events"]
        store.message(msg.id)
        store.raw(msg.id)
        assert log.take() == ["SELECT", "SELECT"]
        [dlv] = store.record_processed(msg.id, format="edifact", standard="ORDERS", interchange="1",
                                       documents=[document("k1")], now=T0 + 1)
        assert log.take() == ["UPDATE messages", "INSERT documents", "INSERT deliveries", "INSERT events"]
        [claimed] = store.claim("w1", limit=1, lease_seconds=30, now=T0 + 2)
        assert log.take() == ["SELECT", "UPDATE deliveries"]
        assert store.complete(dlv, "w1", duration_ms=3, http_status=200, now=T0 + 3)
        assert log.take() == ["UPDATE deliveries", "INSERT events"]
    finally:
        log.close()
    delivered = store.timeline(msg.id)[-1]
    assert (delivered.step, delivered.message_id, delivered.document_id, delivered.delivery_id, delivered.partner) == (
        "delivered", msg.id, "doc-k1", dlv, "ACME")
    assert claimed.message_id == msg.id


def test_receive_checks_use_the_selective_indexes(tmp_path: Path) -> None:
    """The recovered/duplicate checks find their rows by (partner, channel, source_ref) and
    (partner, raw_sha256), not by walking every message of the partner in received_at order."""
    with Store.open(f"sqlite:///{tmp_path / 'gw.sqlite'}", tmp_path / "blobs") as store:
        for n in range(3):
            store.receive(received(f"{n}".encode(), source_ref=f"r{n}"), now=T0 + n)
        log = StatementLog(store)
        try:
            store.receive(received(b"new", source_ref="r-new"), now=T0 + 10)
            [(check, params)] = [(st, p) for st, p in log.statements if st.lstrip().upper().startswith("SELECT")]
        finally:
            log.close()
        with store.engine.connect() as conn:
            plan = " / ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + check, params))
    assert "ix_messages_partner_channel_source_ref" in plan and "ix_messages_partner_raw_sha256" in plan, plan
    assert "ix_messages_partner_received_at" not in plan, plan


def test_batch_commits_its_writes_together(store: Store) -> None:
    with store.batch(durable=True):
        msg = store.receive(received(), now=T0).message
        assert store.message(msg.id) == msg  # reads inside the batch see its writes
        [dlv] = store.record_processed(msg.id, format="", standard="", interchange="",
                                       documents=[document("k1")], now=T0)
        [claimed] = store.claim("w1", limit=1, lease_seconds=30, now=T0)
        assert store.complete(claimed.delivery_id, "w1", duration_ms=1, now=T0)
    assert store.delivery(dlv).status is DeliveryStatus.DELIVERED
    assert [e.step for e in store.timeline(msg.id)] == ["received", "mapped", "queued", "processed", "delivered"]


def test_failed_batch_rolls_everything_back(store: Store) -> None:
    with pytest.raises(StoreError, match="already belongs to document"):
        with store.batch(durable=True):
            store.receive(received(b"a"), now=T0)
            msg = store.receive(received(b"b"), now=T0).message
            store.record_processed(msg.id, format="", standard="", interchange="",
                                   documents=[document("k1"), document("k1", doc_id="other")], now=T0)
    assert store.search_messages() == []
    with store.batch():
        with pytest.raises(RuntimeError, match="do not nest"):
            with store.batch():
                pass
        with pytest.raises(RuntimeError, match="durable write inside a non-durable batch"):
            store.receive(received(), now=T0)
    assert store.search_messages() == []


# ------------------------------------------------------------------------ engine, schema


def test_migrations_twice_are_a_no_op(store: Store) -> None:
    assert store.schema_revision() == "0005"
    before = sa.inspect(store.engine).get_table_names()
    store.migrate()
    store.migrate()
    assert store.schema_revision() == "0005"
    assert sa.inspect(store.engine).get_table_names() == before


def test_migrated_schema_matches_tables_py(store: Store) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from gateway.store.tables import metadata

    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True}), metadata)
    assert diff == []


def test_reopening_keeps_data(open_store) -> None:  # noqa: ANN001
    first = open_store()
    msg = first.receive(received(), now=T0).message
    first.close()
    assert open_store().message(msg.id) == msg


def test_sqlite_settings(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "dir" / "gw.sqlite"
    with Store.open(f"sqlite:///{path}", tmp_path / "blobs") as store:
        assert path.parent.is_dir()
        with store.engine.connect() as conn:
            pragma = lambda name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()  # noqa: E731
            assert pragma("journal_mode") == "wal"
            assert pragma("synchronous") == 2  # FULL
            assert pragma("foreign_keys") == 1
            assert pragma("busy_timeout") == 30_000
    # Foreign keys are enforced.
    with sqlite3.connect(path) as raw:
        raw.execute("PRAGMA foreign_keys = ON")
        with pytest.raises(sqlite3.IntegrityError):
            raw.execute("INSERT INTO documents (id, message_id, partner, type, number, position, idempotency_key,"
                        " blob_sha256, created_at, updated_at) VALUES ('d', 'nope', 'p', 't', '', 0, 'k', 's', 0, 0)")


def test_sqlite_write_transactions_begin_immediate(tmp_path: Path) -> None:
    engine = open_engine(f"sqlite:///{tmp_path / 'gw.sqlite'}")
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql("SELECT 1")
        with engine.connect().execution_options(gateway_read_only=True) as conn, conn.begin():
            conn.exec_driver_sql("SELECT 2")
    finally:
        engine.dispose()
    assert statements[statements.index("SELECT 1") - 1] == "BEGIN IMMEDIATE"
    assert statements[statements.index("SELECT 2") - 1] == "BEGIN"


def test_urls_are_normalised_and_passwords_masked() -> None:
    assert normalize_url("postgresql://u:pw@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgres://u:pw@h/db").drivername == "postgresql+psycopg"
    assert normalize_url("postgresql+psycopg://u@h/db").drivername == "postgresql+psycopg"
    assert "pw" not in mask_url("postgresql://u:pw@h/db") and "***" in mask_url("postgresql://u:pw@h/db")
    with pytest.raises(StoreError, match="unsupported database") as info:
        open_engine("mysql://u:s3cret@h/db")
    assert "s3cret" not in str(info.value)
    with pytest.raises(StoreError) as info:
        open_engine("::not a url s3cret")
    assert "s3cret" not in str(info.value)


def test_unreachable_database_is_a_store_error_without_password(tmp_path: Path) -> None:
    with pytest.raises(StoreError) as info:
        Store.open("postgresql://gw:s3cret@127.0.0.1:1/gw", tmp_path / "blobs")
    assert "s3cret" not in str(info.value) and "***" in str(info.value)
    assert "127.0.0.1" in str(info.value)


def test_receive_uses_a_blob_the_caller_stored_and_stores_it_when_missing(store: Store) -> None:
    import dataclasses
    import hashlib

    raw = b"UNA:+.? 'UNB+UNOC:3+ACME+US+PRESTORED'"
    sha = store.blobs.put(raw)
    message = store.receive(dataclasses.replace(received(raw), raw_sha256=sha), now=T0).message
    assert message.raw_sha256 == sha and store.raw(message.id) == raw
    # An id of a blob that is not there (or not of this size) is not trusted: the bytes are stored.
    other = b"UNA:+.? 'UNB+UNOC:3+ACME+US+NOT-PRESTORED'"
    missing = hashlib.sha256(b"something else").hexdigest()
    second = store.receive(dataclasses.replace(received(other), raw_sha256=missing), now=T0).message
    assert second.raw_sha256 == hashlib.sha256(other).hexdigest() and store.raw(second.id) == other
