"""Store: outbound EDI control numbers, inbound interchange duplicates, expected acks (SQLite and PostgreSQL)."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from gateway.errors import MappingError, StoreError
from gateway.model import Channel, DeliveryStatus, MessageStatus, Received
from gateway.store import Store
from gateway.store.edi import AckResult, Built

T0 = 1_800_000_000.0
HOUR = 3600.0


@pytest.fixture
def s(store: Store) -> Store:
    """The store with this module's tables empty (conftest's PostgreSQL clean-up predates them)."""
    with store.engine.begin() as conn:
        for table in ("control_numbers", "interchanges_seen", "ack_expectations"):
            conn.execute(sa.text(f"DELETE FROM {table}"))
    return store


def x12(messages: int = 1) -> Callable[[Callable[[str], int]], Built]:
    """A build callback writing a skeleton X12 interchange: one group of ``messages`` transaction sets."""
    def build(next_number: Callable[[str], int]) -> Built:
        icn, gcn = next_number("interchange"), next_number("group")
        refs = [f"{next_number('message'):04d}" for _ in range(messages)]
        body = "".join(f"ST*850*{ref}~SE*2*{ref}~" for ref in refs)
        raw = f"ISA*{icn:09d}~GS*PO*{gcn}~{body}GE*{messages}*{gcn}~IEA*1*{icn:09d}~".encode()
        return Built(raw, f"{icn:09d}", [str(gcn)], refs)
    return build


def submit(store: Store, *, partner: str = "ACME", fmt: str = "x12", messages: int = 1, key: str | None = None,
           within: float | None = None, now: float = T0, **kwargs):  # noqa: ANN003, ANN201
    return store.submit_interchange(partner=partner, target=f"as2:{partner}", format=fmt, build=x12(messages),
                                    filename="out.x12", idempotency_key=key, expect_ack_within=within, now=now,
                                    **kwargs)


def inbound(store: Store, raw: bytes = b"ISA*ack~", *, now: float = T0) -> str:
    return store.receive(Received(raw, Channel.AS2, "ACME", "ack.x12"), now=now).message.id


def steps(store: Store, message_id: str) -> list[tuple[str, str]]:
    return [(e.step, e.outcome) for e in store.timeline(message_id)]


# ------------------------------------------------------------------ control numbers


def test_numbers_are_sequential_from_1_per_partner_format_and_level(s: Store) -> None:
    first, delivery_id = submit(s, messages=2)
    second, _ = submit(s, messages=1)
    other_partner, _ = submit(s, partner="BETA")
    assert (first.interchange, second.interchange, other_partner.interchange) == ("000000001", "000000002",
                                                                                  "000000001")
    # 2 messages then 1: ST02 0001, 0002, then 0003; the group counter went 1, 2.
    assert s.raw(second.id) == b"ISA*000000002~GS*PO*2~ST*850*0003~SE*2*0003~GE*1*2~IEA*1*000000002~"
    assert [s.peek_control_number("ACME", "x12", level) for level in ("interchange", "group", "message")] == [2, 2, 3]
    assert s.peek_control_number("ACME", "edifact", "interchange") == 0
    assert (first.status, first.format, first.partner) == (MessageStatus.PROCESSED, "x12", "ACME")
    assert s.delivery(delivery_id).status is DeliveryStatus.QUEUED
    assert s.pending_messages() == []
    detail = s.timeline(first.id)[0].detail
    assert steps(s, first.id) == [("submitted", "ok"), ("queued", "ok")]
    assert "interchange 000000001, group(s) 1, message(s) 0001, 0002" in detail


def test_a_build_that_raises_gives_its_numbers_back(s: Store) -> None:
    submit(s)

    def half_then_fail(next_number: Callable[[str], int]) -> Built:
        next_number("interchange")
        next_number("message")
        raise MappingError("value too long", segment=3, tag="BEG", element="03")

    with pytest.raises(MappingError, match="value too long"):
        s.submit_interchange(partner="ACME", target="as2:ACME", format="x12", build=half_then_fail,
                             filename="f", idempotency_key=None, now=T0 + 1)
    assert s.peek_control_number("ACME", "x12", "interchange") == 1
    assert s.peek_control_number("ACME", "x12", "message") == 1
    again, _ = submit(s, now=T0 + 2)
    assert again.interchange == "000000002"
    assert s.raw(again.id).startswith(b"ISA*000000002~GS*PO*2~ST*850*0002~")
    assert len(s.search_messages(partner="ACME")) == 2


def test_next_number_is_refused_outside_its_transaction_and_for_unknown_levels(s: Store) -> None:
    kept: list[Callable[[str], int]] = []

    def keep(next_number: Callable[[str], int]) -> Built:
        kept.append(next_number)
        return x12()(next_number)

    s.submit_interchange(partner="ACME", target="as2:ACME", format="x12", build=keep, filename="f",
                         idempotency_key=None, now=T0)
    with pytest.raises(StoreError, match="after submit_interchange's transaction ended"):
        kept[0]("interchange")
    with pytest.raises(StoreError, match="unknown control number level 'segment'"):
        s.submit_interchange(partner="ACME", target="as2:ACME", format="x12", build=lambda n: n("segment"),
                             filename="f", idempotency_key=None, now=T0)
    with pytest.raises(StoreError, match="no control numbers for format 'xml'"):
        submit(s, fmt="xml")
    assert s.peek_control_number("ACME", "x12", "interchange") == 1


def test_counters_wrap_to_1_after_the_maximum(s: Store) -> None:
    s.set_control_number("ACME", "x12", "interchange", 999_999_998, now=T0)
    s.set_control_number("ACME", "edifact", "message", 99_999_999_999_999, now=T0)
    assert [submit(s, now=T0 + n)[0].interchange for n in range(3)] == ["999999999", "000000001", "000000002"]
    message, _ = s.submit_interchange(partner="ACME", target="as2:ACME", format="edifact", filename="o.edi",
                                      build=lambda n: Built(b"UNB", str(n("interchange")), [], [str(n("message"))]),
                                      idempotency_key=None, now=T0)
    assert s.raw(message.id) == b"UNB" and s.peek_control_number("ACME", "edifact", "message") == 1
    with pytest.raises(StoreError, match=r"0\.\.999999999"):
        s.set_control_number("ACME", "x12", "group", 1_000_000_000)


def test_a_repeated_idempotency_key_returns_the_first_submission_without_new_numbers(s: Store) -> None:
    first, delivery_id = submit(s, key="INV-7", within=HOUR)
    again, same = submit(s, key="INV-7", within=HOUR, now=T0 + 5)
    assert (again.id, same) == (first.id, delivery_id)
    assert s.peek_control_number("ACME", "x12", "interchange") == 1
    assert len(s.acks_of(first.id)) == 2
    assert steps(s, first.id)[-1] == ("submitted", "duplicate")
    # The same key from another partner is another submission.
    assert submit(s, partner="BETA", key="INV-7")[0].id != first.id
    with pytest.raises(StoreError, match="another target"):
        s.submit_interchange(partner="ACME", target="sftp:ACME", format="x12", build=x12(), filename="f",
                             idempotency_key="INV-7", now=T0)


def test_a_built_filename_overrides_the_given_one_and_lands_on_the_delivery(s: Store) -> None:
    def named(next_number: Callable[[str], int]) -> Built:
        icn = next_number("interchange")
        return Built(b"UNB+...'", str(icn), [], [], filename=f"INVOIC_{icn}.edi")

    message, _ = s.submit_interchange(partner="ACME", target="as2:ACME", format="edifact", build=named,
                                      filename="ignored", idempotency_key=None, standard="INVOIC D96A", now=T0)
    assert (message.filename, message.standard, message.interchange) == ("INVOIC_1.edi", "INVOIC D96A", "1")
    [claimed] = s.claim("node", lease_seconds=30, limit=5, now=T0)
    assert claimed.document_number == "INVOIC_1.edi"


def test_render_from_the_serializer_numbers_an_edifact_interchange(s: Store) -> None:
    serialize = pytest.importorskip("gateway.edi.serialize")
    from gateway.edi.model import Party, Segment

    envelope = serialize.Envelope(format="edifact", sender=Party("GATEWAY", "14"), recipient=Party("ACME", "14"),
                                  at=datetime(2027, 1, 2, 3, 4), una=False, line_break="")
    body = [Segment("BGM", [("380",), ("INV1",)])]
    msgs = [serialize.OutMessage("INVOIC", "D96A", body), serialize.OutMessage("INVOIC", "D96A", body)]
    s.set_control_number("ACME", "edifact", "message", 41, now=T0)
    message, _ = s.submit_interchange(partner="ACME", target="as2:ACME", format="edifact", filename="i.edi",
                                      build=lambda n: serialize.render(envelope, msgs, n), idempotency_key=None,
                                      expect_ack_within=HOUR, now=T0)
    raw = s.raw(message.id).decode()
    assert raw.startswith("UNB+UNOC:3+GATEWAY:14+ACME:14+270102:0304+1'UNH+42+INVOIC:D:96A:UN'")
    assert "UNH+43+INVOIC:D:96A:UN'" in raw and raw.endswith("UNZ+2+1'")
    assert [(e.level, e.message_ref) for e in s.acks_of(message.id)] == [
        ("interchange", ""), ("message", "42"), ("message", "43")]


def _submit_many(store: Store, count: int, out: list[str], errors: list[BaseException]) -> None:
    try:
        for n in range(count):
            message, _ = submit(store, messages=1, now=T0 + n)
            out.append(message.interchange)
    except BaseException as e:  # reported by the test thread
        errors.append(e)


def test_threads_share_the_counter_without_gaps_or_repeats(s: Store) -> None:
    numbers: list[str] = []
    errors: list[BaseException] = []
    threads = [threading.Thread(target=_submit_many, args=(s, 50, numbers, errors)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(int(n) for n in numbers) == list(range(1, 201))
    assert s.peek_control_number("ACME", "x12", "message") == 200
    with s.engine.connect() as conn:
        refs = conn.execute(sa.text("SELECT number FROM documents")).scalars().all()
    assert len(refs) == 200


def _process_main(url: str, blob_dir: str, count: int, queue: multiprocessing.Queue, start) -> None:  # noqa: ANN001
    store = Store(url, Path(blob_dir))
    try:
        store.peek_control_number("ACME", "x12", "interchange")   # connected: now wait for the other one
        start.wait(timeout=60)
        out: list[str] = []
        errors: list[BaseException] = []
        _submit_many(store, count, out, errors)
        queue.put((out, [repr(e) for e in errors]))
    finally:
        store.close()


def test_processes_with_their_own_stores_share_the_counter(s: Store, store_url: str, blob_dir: Path) -> None:
    spawn = multiprocessing.get_context("spawn")
    queue, start = spawn.Queue(), spawn.Barrier(2)
    workers = [spawn.Process(target=_process_main, args=(store_url, str(blob_dir), 50, queue, start))
               for _ in range(2)]
    for w in workers:
        w.start()
    results = [queue.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    assert [errors for _, errors in results] == [[], []]
    assert sorted(int(n) for numbers, _ in results for n in numbers) == list(range(1, 101))


# ------------------------------------------------------------------ inbound duplicates


def test_an_interchange_number_seen_within_the_window_is_reported_with_its_carrier(s: Store) -> None:
    s.record_interchanges("ACME", "edifact", "5412345000013", ["ICR1", "ICR2"], "msg_a", now=T0)
    assert s.seen_interchanges("ACME", "edifact", "5412345000013", ["ICR1", "ICR3"], window=HOUR,
                               now=T0 + 100) == {"ICR1": "msg_a"}
    assert s.seen_interchanges("ACME", "edifact", "5412345000013", ["ICR1"], window=HOUR, now=T0 + HOUR + 1) == {}
    assert s.seen_interchanges("ACME", "edifact", "OTHER", ["ICR1"], window=HOUR, now=T0) == {}
    assert s.seen_interchanges("BETA", "edifact", "5412345000013", ["ICR1"], window=HOUR, now=T0) == {}
    assert s.seen_interchanges("ACME", "x12", "5412345000013", ["ICR1"], window=HOUR, now=T0) == {}
    # A replay of the carrier itself is not its own duplicate.
    assert s.seen_interchanges("ACME", "edifact", "5412345000013", ["ICR1"], window=HOUR,
                               exclude_message_id="msg_a", now=T0) == {}
    # Recording again refreshes the carrier and the time: the window starts over.
    s.record_interchanges("ACME", "edifact", "5412345000013", ["ICR1"], "msg_b", now=T0 + HOUR)
    assert s.seen_interchanges("ACME", "edifact", "5412345000013", ["ICR1", "ICR2"], window=HOUR,
                               now=T0 + HOUR + 10) == {"ICR1": "msg_b"}


def test_record_processed_remembers_control_numbers_in_its_transaction(s: Store) -> None:
    message_id = inbound(s, b"ISA*000000905~")
    s.record_processed(message_id, format="x12", standard="850 004010", interchange="000000905", documents=[],
                       control_numbers=[("ZZ:ACMEUS", "000000905"), ("ZZ:ACMEUS", "000000905")], now=T0 + 1)
    assert s.seen_interchanges("ACME", "x12", "ZZ:ACMEUS", ["000000905"], window=HOUR,
                               now=T0 + 2) == {"000000905": message_id}


def test_a_duplicate_interchange_is_a_visible_event_on_both_messages(s: Store) -> None:
    earlier, later = inbound(s, b"one"), inbound(s, b"two", now=T0 + 1)
    s.note_duplicate_interchange(later, "ACME", "ICR1", earlier, "rejected", now=T0 + 2)
    assert steps(s, later)[-1] == ("duplicate-interchange", "rejected")
    assert s.timeline(later)[-1].detail == f"interchange ICR1 was already received in {earlier} (rejected)"
    assert s.timeline(earlier)[-1].detail == f"interchange ICR1 received again in {later} (rejected)"
    with pytest.raises(StoreError, match="unknown duplicate action 'dropped'"):
        s.note_duplicate_interchange(later, "ACME", "ICR1", earlier, "dropped")


# ------------------------------------------------------------------ acknowledgments


def statuses(s: Store, message_id: str) -> list[tuple[str, str, str]]:
    return [(e.level, e.message_ref, e.status) for e in s.acks_of(message_id)]


def test_expectations_are_one_per_message_and_one_for_the_interchange(s: Store) -> None:
    message, _ = submit(s, messages=2, within=HOUR)
    rows = s.acks_of(message.id)
    assert [(e.level, e.interchange, e.group_ref, e.message_ref, e.status, e.due_at) for e in rows] == [
        ("interchange", "000000001", "", "", "pending", T0 + HOUR),
        ("message", "000000001", "1", "0001", "pending", T0 + HOUR),
        ("message", "000000001", "1", "0002", "pending", T0 + HOUR)]
    assert s.acks_of(submit(s)[0].id) == []       # no expect_ack_within: nothing expected


def test_an_interchange_level_acceptance_accepts_everything_in_it(s: Store) -> None:
    message, _ = submit(s, messages=2, within=HOUR)
    ack = inbound(s)
    matches = s.match_ack(partner="ACME", format="x12", interchange="000000001",
                          results=[AckResult(None, None, "accepted")], ack_message_id=ack, now=T0 + 60)
    assert [(m.level, m.message_ref, m.status, m.late) for m in matches] == [
        ("interchange", "", "accepted", False), ("message", "0001", "accepted", False),
        ("message", "0002", "accepted", False)]
    assert {m.message_id for m in matches} == {message.id}
    assert statuses(s, message.id) == [("interchange", "", "accepted"), ("message", "0001", "accepted"),
                                       ("message", "0002", "accepted")]
    assert all(e.ack_message_id == ack and e.acked_at == T0 + 60 for e in s.acks_of(message.id))
    assert steps(s, message.id)[-1] == ("acknowledged", "ok")
    assert s.timeline(message.id)[-1].detail.startswith(f"by {ack}: interchange 000000001 accepted")
    assert steps(s, ack)[-1] == ("ack-matched", "ok")


def test_a_997_rejecting_one_set_makes_the_interchange_partially_accepted(s: Store) -> None:
    message, _ = submit(s, messages=2, within=HOUR)
    results = [AckResult("1", "0001", "accepted"), AckResult("1", "0002", "rejected", "AK304=3 mandatory missing"),
               AckResult("1", None, "partially_accepted")]
    s.match_ack(partner="ACME", format="x12", interchange=None, results=results, ack_message_id="msg_997",
                now=T0 + 60)
    assert statuses(s, message.id) == [("interchange", "", "partially_accepted"), ("message", "0001", "accepted"),
                                       ("message", "0002", "rejected")]
    assert s.acks_of(message.id)[2].detail == "AK304=3 mandatory missing"
    last = s.timeline(message.id)[-1]
    assert (last.step, last.outcome) == ("acknowledged", "failed")
    assert "message 0002 rejected: AK304=3 mandatory missing" in last.detail


def test_a_rejected_group_rejects_its_messages_and_the_interchange(s: Store) -> None:
    message, _ = submit(s, messages=2, within=HOUR)
    s.match_ack(partner="ACME", format="x12", interchange=None, results=[AckResult("1", None, "rejected", "AK905")],
                ack_message_id="msg_997", now=T0 + 60)
    assert statuses(s, message.id) == [("interchange", "", "rejected"), ("message", "0001", "rejected"),
                                       ("message", "0002", "rejected")]


def test_a_group_ack_finds_the_interchange_that_used_the_group_number(s: Store) -> None:
    older, _ = submit(s, within=HOUR)        # group 1, set 0001
    newer, _ = submit(s, within=HOUR)        # group 2, set 0002
    matches = s.match_ack(partner="ACME", format="x12", interchange=None,
                          results=[AckResult("2", None, "accepted")], ack_message_id="msg_997", now=T0 + 60)
    assert {m.message_id for m in matches} == {newer.id}
    assert statuses(s, older.id) == [("interchange", "", "pending"), ("message", "0001", "pending")]
    assert statuses(s, newer.id) == [("interchange", "", "accepted"), ("message", "0002", "accepted")]


def test_groups_of_a_two_group_interchange_are_acknowledged_separately(s: Store) -> None:
    def two_groups(next_number: Callable[[str], int]) -> Built:
        icn, g1, m1, g2, m2 = (next_number(level) for level in ("interchange", "group", "message", "group", "message"))
        return Built(b"ISA~", str(icn), [str(g1), str(g2)], [str(m1), str(m2)], message_groups=[str(g1), str(g2)])

    message, _ = s.submit_interchange(partner="ACME", target="as2:ACME", format="x12", build=two_groups,
                                      filename="f", idempotency_key=None, expect_ack_within=HOUR, now=T0)
    assert [(e.group_ref, e.message_ref) for e in s.acks_of(message.id)] == [("", ""), ("1", "1"), ("2", "2")]
    s.match_ack(partner="ACME", format="x12", interchange=None, results=[AckResult("2", None, "rejected")],
                ack_message_id="msg_a", now=T0 + 1)
    # Group 1 has no verdict yet: the interchange waits for it.
    assert statuses(s, message.id) == [("interchange", "", "pending"), ("message", "1", "pending"),
                                       ("message", "2", "rejected")]
    s.match_ack(partner="ACME", format="x12", interchange=None, results=[AckResult("1", None, "accepted")],
                ack_message_id="msg_b", now=T0 + 2)
    assert statuses(s, message.id)[:2] == [("interchange", "", "partially_accepted"), ("message", "1", "accepted")]


def test_an_ack_naming_only_a_message_ref_finds_it(s: Store) -> None:
    older, _ = submit(s, within=HOUR)
    newer, _ = submit(s, messages=2, within=HOUR)     # sets 0002 and 0003
    [match] = s.match_ack(partner="ACME", format="x12", interchange=None,
                          results=[AckResult(None, "0003", "rejected", "bad")], ack_message_id="msg_a", now=T0 + 1)
    assert (match.message_id, match.message_ref, match.status) == (newer.id, "0003", "rejected")
    assert statuses(s, older.id) == [("interchange", "", "pending"), ("message", "0001", "pending")]


def test_an_ack_matching_nothing_is_logged_on_the_ack_message(s: Store) -> None:
    submit(s, within=HOUR)
    ack = inbound(s)
    assert s.match_ack(partner="ACME", format="x12", interchange="000000077",
                       results=[AckResult(None, None, "accepted")], ack_message_id=ack, now=T0) == []
    assert s.match_ack(partner="BETA", format="x12", interchange=None,
                       results=[AckResult("1", "0001", "accepted")], ack_message_id=ack, now=T0) == []
    assert steps(s, ack)[-2:] == [("ack-unmatched", "failed"), ("ack-unmatched", "failed")]
    with pytest.raises(StoreError, match="unknown acknowledgment status 'ok'"):
        s.match_ack(partner="ACME", format="x12", interchange=None, results=[AckResult(None, None, "ok")],
                    ack_message_id=ack)


def test_overdue_fires_once_and_a_late_ack_still_matches(s: Store) -> None:
    message, _ = submit(s, messages=1, within=HOUR)
    assert s.overdue_acks(now=T0 + HOUR - 1) == []
    overdue = s.overdue_acks(now=T0 + HOUR)
    assert [(e.level, e.message_ref, e.status) for e in overdue] == [("interchange", "", "overdue"),
                                                                    ("message", "0001", "overdue")]
    assert s.overdue_acks(now=T0 + 2 * HOUR) == []
    assert steps(s, message.id).count(("ack-overdue", "failed")) == 1
    matches = s.match_ack(partner="ACME", format="x12", interchange="000000001",
                          results=[AckResult(None, None, "accepted")], ack_message_id="msg_late", now=T0 + 3 * HOUR)
    assert [(m.status, m.late) for m in matches] == [("accepted", True), ("accepted", True)]
    assert s.timeline(message.id)[-1].detail.startswith("by msg_late (late): ")
    assert s.overdue_acks(now=T0 + 4 * HOUR) == []


def test_overdue_respects_the_limit(s: Store) -> None:
    submit(s, messages=3, within=HOUR)
    assert len(s.overdue_acks(now=T0 + HOUR, limit=2)) == 2
    assert len(s.overdue_acks(now=T0 + HOUR, limit=10)) == 2


def test_a_less_specific_ack_never_overrides_a_message_verdict(s: Store) -> None:
    message, _ = submit(s, messages=2, within=HOUR)
    s.match_ack(partner="ACME", format="x12", interchange=None,
                results=[AckResult("1", "0002", "rejected", "AK502=5")], ack_message_id="msg_997", now=T0 + 10)
    # A TA1 arriving afterwards judges only the envelope.
    s.match_ack(partner="ACME", format="x12", interchange="000000001", results=[AckResult(None, None, "accepted")],
                ack_message_id="msg_ta1", now=T0 + 20)
    assert statuses(s, message.id) == [("interchange", "", "accepted"), ("message", "0001", "accepted"),
                                       ("message", "0002", "rejected")]
    # A corrected 997 naming the set again does win.
    s.match_ack(partner="ACME", format="x12", interchange=None, results=[AckResult("1", "0002", "accepted")],
                ack_message_id="msg_997b", now=T0 + 30)
    assert statuses(s, message.id)[2] == ("message", "0002", "accepted")


def test_a_sent_ack_shows_on_the_inbound_messages_it_answers(s: Store) -> None:
    first, second = inbound(s, b"one"), inbound(s, b"two")
    message, _ = submit(s, related=[first, second], document_type="997")
    assert steps(s, first)[-1] == ("ack-sent", "ok") and steps(s, second)[-1] == ("ack-sent", "ok")
    assert s.timeline(first)[-1].detail == f"997 interchange 000000001 ({message.id}) queued for as2:ACME"
    with pytest.raises(StoreError, match="related messages not all known"):
        submit(s, related=["msg_nope"])
    assert s.peek_control_number("ACME", "x12", "interchange") == 1


# ------------------------------------------------------------------ migration


def test_migration_0003_downgrades_and_upgrades_again_even_over_existing_tables(tmp_path: Path) -> None:
    from alembic import command

    from gateway.store.engine import _alembic_config

    with Store.open(f"sqlite:///{tmp_path / 'g.sqlite'}", tmp_path / "blobs") as store:
        tables = {"control_numbers", "interchanges_seen", "ack_expectations"}
        with store.engine.begin() as conn:
            command.downgrade(_alembic_config(conn), "0002")
        assert store.schema_revision() == "0002"
        assert not tables & set(sa.inspect(store.engine).get_table_names())
        store.migrate()
        assert store.schema_revision() == "0005" and tables <= set(sa.inspect(store.engine).get_table_names())
        # Tables already there (an interrupted run, a hand-made schema): upgrade completes, not fails.
        with store.engine.begin() as conn:
            conn.execute(sa.text("DROP INDEX ix_ack_expectations_message_id"))
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '0002'"))
        store.migrate()
        assert "ix_ack_expectations_message_id" in {
            ix["name"] for ix in sa.inspect(store.engine).get_indexes("ack_expectations")}
