"""Transmission search (every filter, keyset paging) and the overview figures, on SQLite and PostgreSQL.

One scripted set of messages (``scripted``) is built through the store's own writes: received,
processed, failed, duplicate, submitted outbound, delivered, dead-lettered, MDNs, an overdue
acknowledgment. Each test names what it expects from it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gateway.errors import MappingError, StoreError
from gateway.model import Channel, Document, Received
from gateway.store import Store
from gateway.store.edi import Built
from gateway.store import stats
from gateway.store.stats import StatsMixin

# The Store gets StatsMixin as one of its parts; until then the tests add it themselves.
StatsStore = Store if issubclass(Store, StatsMixin) else type("StatsStore", (Store, StatsMixin), {})

T0 = 1_800_000_000.0          # on the hour: hourly buckets start at T0
HOUR = 3600.0


@pytest.fixture
def s(store_url: str, blob_dir: Path) -> Iterator[Store]:
    store = StatsStore.open(store_url, blob_dir)
    yield store
    store.close()


def document(key: str, doc_type: str, number: str, partner: str, targets: tuple[str, ...]) -> Document:
    envelope = {"type": doc_type, "version": 1, "id": f"doc-{key}", "idempotency_key": key, "partner": partner,
                "document": {"number": number}}
    return Document(type=doc_type, partner=partner, idempotency_key=key, envelope=envelope, number=number,
                    targets=list(targets))


def receive(store: Store, raw: bytes, partner: str, channel: Channel, at: float, ref: str = "") -> str:
    return store.receive(Received(raw, channel, partner, f"{ref or 'f'}.edi", source_ref=ref), now=at).message.id


def deliver(store: Store, target: str, at: float, *, dead: bool = False) -> None:
    """Claim the due delivery to ``target`` and deliver it (or dead-letter it) at ``at``.

    The lease is one second: deliveries to other targets claimed alongside stay queued and are
    due again for the next call.
    """
    [claimed] = [c for c in store.claim("w", limit=100, lease_seconds=1, now=at) if c.target == target]
    if dead:
        store.bury(claimed.delivery_id, "w", error="HTTP 400", now=at)
    else:
        store.complete(claimed.delivery_id, "w", duration_ms=1, now=at)


def x12_build(next_number: Callable[[str], int]) -> Built:
    icn, gcn, ref = next_number("interchange"), next_number("group"), next_number("message")
    return Built(f"ISA*{icn:09d}~GS*{gcn}~ST*850*{ref:04d}~".encode(), f"{icn:09d}", [str(gcn)], [f"{ref:04d}"])


@dataclass
class Scripted:
    order: str        # ACME inbox, order PO-100 to erp (delivered after 4 s) and archive (still queued)
    invoice: str      # ACME as2, invoice INV-7, erp dead-lettered; our MDN <in-1@acme>
    failed: str       # ACME sftp, rejected by the pipeline, in the second hour
    beta: str         # BETA poll, order PO-100, interchange 000000042, delivered after 10 s
    outbound: str     # BETA api interchange 000000001 to as2:BETA, delivered after 2 s, their MDN <out-1@us>; ack overdue
    duplicate: str    # ACME inbox, the same bytes as ``order``
    old: str          # ACME inbox two days before the window, order PO-OLD, delivered
    cli: str          # ACME cli file for outbox:ACME, queued

    def newest_first(self, *names: str) -> list[str]:
        order = ["failed", "cli", "duplicate", "outbound", "beta", "invoice", "order", "old"]
        return [getattr(self, n) for n in order if n in names]


def scripted(s: Store) -> Scripted:
    old = receive(s, b"UNB old", "ACME", Channel.INBOX, T0 - 2 * 86_400)
    s.record_processed(old, format="edifact", standard="ORDERS D96A", interchange="000000007",
                       documents=[document("k-old", "order", "PO-OLD", "ACME", ("erp",))], now=T0 - 2 * 86_400)
    deliver(s, "erp", T0 - 2 * 86_400 + 30)

    order = receive(s, b"UNB order", "ACME", Channel.INBOX, T0 + 10)
    s.record_processed(order, format="edifact", standard="ORDERS D96A", interchange="000000008",
                       documents=[document("k-order", "order", "PO-100", "ACME", ("erp", "archive"))], now=T0 + 10)
    deliver(s, "erp", T0 + 14)

    invoice = receive(s, b"UNB invoice", "ACME", Channel.AS2, T0 + 20, ref="as2:<in-1@acme>")
    s.add_receipt(direction="sent", partner="ACME", as2_message_id="<in-1@acme>", message_id=invoice,
                  disposition="processed", signed=True, mode="sync", now=T0 + 20)
    s.record_processed(invoice, format="edifact", standard="INVOIC D96A", interchange="000000009",
                       documents=[document("k-invoice", "invoice", "INV-7", "ACME", ("erp",))], now=T0 + 20)
    deliver(s, "erp", T0 + 25, dead=True)

    beta = receive(s, b"ISA beta", "BETA", Channel.POLL, T0 + 30)
    s.record_processed(beta, format="x12", standard="850 004010", interchange="000000042",
                       documents=[document("k-beta", "order", "PO-100", "BETA", ("erp",))], now=T0 + 30)
    deliver(s, "erp", T0 + 40)

    outbound, delivery = s.submit_interchange(partner="BETA", target="as2:BETA", format="x12", build=x12_build,
                                              filename="out.x12", idempotency_key=None, channel=Channel.API,
                                              expect_ack_within=HOUR, now=T0 + 40)
    deliver(s, "as2:BETA", T0 + 42)
    s.add_receipt(direction="received", partner="BETA", as2_message_id="<out-1@us>", delivery_id=delivery,
                  disposition="processed", signed=True, mode="sync", now=T0 + 42)
    assert len(s.overdue_acks(now=T0 + 40 + HOUR)) == 2   # the interchange and its one message

    duplicate = receive(s, b"UNB order", "ACME", Channel.INBOX, T0 + 50)
    cli, _ = s.submit_outbound(b"file", partner="ACME", target="outbox:ACME", filename="a.txt", now=T0 + 60)

    failed = receive(s, b"UNB broken", "ACME", Channel.SFTP, T0 + HOUR + 5)
    s.record_failed(failed, MappingError("no such segment"), now=T0 + HOUR + 5)
    return Scripted(order, invoice, failed, beta, outbound.id, duplicate, old, cli.id)


def ids(found: list) -> list[str]:
    return [m.id for m in found]


# ----------------------------------------------------------------------------- search filters


def test_no_filter_lists_every_message_newest_first(s: Store) -> None:
    x = scripted(s)
    assert ids(s.search_transmissions()) == x.newest_first(*vars(x))


FILTER_CASES = [
    ({"partner": "ACME"}, ("failed", "cli", "duplicate", "invoice", "order", "old")),
    ({"partner": "BETA"}, ("outbound", "beta")),
    ({"partner": "NOBODY"}, ()),
    ({"direction": "inbound"}, ("failed", "duplicate", "beta", "invoice", "order", "old")),
    ({"direction": "outbound"}, ("cli", "outbound")),
    ({"channel": "as2"}, ("invoice",)),
    ({"channel": Channel.POLL}, ("beta",)),
    ({"channel": "inbox"}, ("duplicate", "order", "old")),
    ({"document_type": "order"}, ("beta", "order", "old")),
    ({"document_type": "invoice"}, ("invoice",)),
    ({"document_type": "edi"}, ("cli", "outbound")),
    ({"status": "failed"}, ("failed",)),
    ({"status": "duplicate"}, ("duplicate",)),
    ({"status": "processed", "partner": "BETA"}, ("outbound", "beta")),
    ({"since": T0}, ("failed", "cli", "duplicate", "outbound", "beta", "invoice", "order")),
    ({"since": T0 + 20, "until": T0 + 50}, ("outbound", "beta", "invoice")),
    ({"until": T0 + 20}, ("order", "old")),
    ({"as2_message_id": "<in-1@acme>"}, ("invoice",)),
    ({"as2_message_id": "<out-1@us>"}, ("outbound",)),
    ({"as2_message_id": "<nope@x>"}, ()),
    ({"interchange": "000000042"}, ("beta",)),
    ({"interchange": "000000001"}, ("outbound",)),
    ({"document_number": "PO-100"}, ("beta", "order")),
    ({"document_number": " PO-100 ", "partner": "BETA"}, ("beta",)),
    ({"document_number": "INV-7", "status": "processed", "direction": "inbound", "channel": "as2",
      "document_type": "invoice", "as2_message_id": "<in-1@acme>", "interchange": "000000009",
      "since": T0, "until": T0 + HOUR}, ("invoice",)),
    ({"document_number": "PO-100", "direction": "outbound"}, ()),
    ({"direction": "outbound", "channel": "inbox"}, ()),
]


def test_each_filter_finds_exactly_its_messages(s: Store) -> None:
    x = scripted(s)   # built once for every case: the cases only read
    for filters, expected in FILTER_CASES:
        assert ids(s.search_transmissions(**filters)) == x.newest_first(*expected), filters


@pytest.mark.parametrize(("filters", "message"), [
    ({"status": "lost"}, "unknown status 'lost' (one of received, processed, failed, duplicate)"),
    ({"channel": "fax"}, "unknown channel 'fax' (one of inbox, as2, sftp, poll, api, cli)"),
    ({"direction": "sideways"}, "unknown direction 'sideways' (one of inbound, outbound)"),
    ({"partner": ""}, "partner must be non-empty text"),
    ({"document_number": 42}, "document number must be non-empty text, not 42"),
    ({"since": "yesterday"}, "since must be epoch seconds, not 'yesterday'"),
    ({"until": float("nan")}, "until must be epoch seconds"),
    ({"since": T0 + 1, "until": T0}, "since is after until"),
    ({"limit": 0}, "limit must be a whole number from 1 to 10000, not 0"),
    ({"limit": 10_001}, "limit must be a whole number from 1 to 10000"),
    ({"before_id": "msg_nope"}, "unknown message 'msg_nope' (paging cursor)"),
])
def test_bad_filters_are_a_store_error_naming_them(s: Store, filters: dict, message: str) -> None:
    with pytest.raises(StoreError) as raised:
        s.search_transmissions(**filters)
    assert message in str(raised.value)


# ----------------------------------------------------------------------------- paging


@pytest.mark.parametrize("common_type", [False, True], ids=["rare-type-plan", "common-type-plan"])
def test_keyset_paging_returns_every_match_once_in_order_also_across_equal_times(
        s: Store, common_type: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    # The two ways a document type is searched (from its documents, or walking messages) page alike.
    monkeypatch.setattr(stats, "RARE_TYPE_DOCUMENTS", 0 if common_type else 1_000)
    # 23 messages, in groups of three sharing a received_at: the cursor must order ties by id.
    made = []
    for n in range(23):
        at = T0 + n // 3
        made.append(receive(s, f"m{n}".encode(), "ACME" if n % 4 else "BETA", Channel.INBOX, at))
        s.record_processed(made[-1], format="edifact", standard="", interchange="",
                           documents=[document(f"k{n}", "order" if n % 5 else "invoice", f"PO-{n % 2}",
                                               "ACME" if n % 4 else "BETA", ("erp",))], now=at)
    cases = ({}, {"partner": "ACME"}, {"direction": "inbound", "since": T0 + 2}, {"document_number": "PO-1"},
             {"document_number": "PO-0", "partner": "ACME", "until": T0 + 6}, {"document_type": "order"},
             {"document_type": "order", "partner": "ACME", "status": "processed"})
    for filters in cases:
        expected = ids(s.search_transmissions(**filters, limit=100))
        assert len(expected) > 3, filters
        seen: list[str] = []
        before = None
        while True:
            page = ids(s.search_transmissions(**filters, limit=3, before_id=before))
            seen += page
            if len(page) < 3:
                break
            before = page[-1]
        assert seen == expected, filters
        matching = [m for m in s.search_transmissions(limit=100) if all(
            _matches(s, m, name, value) for name, value in filters.items())]
        assert expected == [m.id for m in matching], filters
    everything = ids(s.search_transmissions(limit=100))
    assert everything == sorted(made, key=lambda i: (s.message(i).received_at, i), reverse=True)


def _matches(s: Store, message, name: str, value) -> bool:  # noqa: ANN001
    """Whether one message passes one filter, judged in Python from its record and documents."""
    docs = s.documents_of(message.id)
    return {"partner": lambda: message.partner == value, "status": lambda: message.status.value == value,
            "direction": lambda: message.channel in stats.DIRECTIONS[value],
            "since": lambda: message.received_at >= value, "until": lambda: message.received_at < value,
            "document_number": lambda: any(d.number == value for d in docs),
            "document_type": lambda: any(d.type == value for d in docs)}[name]()


def test_a_message_arriving_while_paging_does_not_shift_the_pages(s: Store) -> None:
    for n in range(6):
        receive(s, f"m{n}".encode(), "ACME", Channel.INBOX, T0 + n)
    first = ids(s.search_transmissions(limit=3))
    receive(s, b"late", "ACME", Channel.INBOX, T0 + 100)
    second = ids(s.search_transmissions(limit=3, before_id=first[-1]))
    assert len(set(first + second)) == 6 and s.message(second[0]).received_at == T0 + 2


# ----------------------------------------------------------------------------- overview


def test_overview_counts_match_the_scripted_traffic(s: Store) -> None:
    x = scripted(s)
    view = s.overview(since=T0, until=T0 + 2 * HOUR, bucket_seconds=HOUR)
    assert view.bucket_starts == (T0, T0 + HOUR)
    assert [(t.start, t.partner, t.channel, t.messages, t.failed) for t in view.traffic] == [
        (T0, "ACME", "as2", 1, 0),
        (T0, "ACME", "cli", 1, 0),
        (T0, "ACME", "inbox", 2, 0),              # the order and its duplicate; the old one is outside
        (T0, "BETA", "api", 1, 0),
        (T0, "BETA", "poll", 1, 0),
        (T0 + HOUR, "ACME", "sftp", 1, 1),
    ]
    assert [(o.partner, o.document_type, o.processed, o.failed, o.success_rate) for o in view.outcomes] == [
        ("ACME", "", 0, 1, 0.0),                   # rejected before any document existed
        ("ACME", "edi", 1, 0, 1.0),
        ("ACME", "invoice", 0, 1, 0.0),            # its delivery is dead
        ("ACME", "order", 1, 0, 1.0),
        ("BETA", "edi", 1, 0, 1.0),
        ("BETA", "order", 1, 0, 1.0),
    ]
    assert [(q.partner, q.target, q.queued, q.retrying, q.dead) for q in view.queues] == [
        ("ACME", "archive", 1, 0, 0), ("ACME", "erp", 0, 0, 1), ("ACME", "outbox:ACME", 1, 0, 0)]
    acme, beta = view.partners
    assert (acme.partner, acme.messages, acme.failed, acme.documents, acme.dead_documents, acme.delivered,
            acme.p95_latency, acme.overdue_acks, acme.last_activity) == (
        "ACME", 5, 1, 3, 1, 1, 4.0, 0, T0 + HOUR + 5)
    assert acme.success_rate == pytest.approx(2 / 4)
    assert (beta.partner, beta.messages, beta.failed, beta.documents, beta.dead_documents, beta.delivered,
            beta.p95_latency, beta.overdue_acks, beta.last_activity) == (
        "BETA", 2, 0, 2, 0, 2, 10.0, 1, T0 + 40)
    assert beta.success_rate == 1.0
    assert x.old not in ids(s.search_transmissions(since=T0))


def test_overview_of_a_quiet_window_keeps_the_current_state(s: Store) -> None:
    scripted(s)
    view = s.overview(since=T0 + 10 * HOUR, until=T0 + 11 * HOUR, bucket_seconds=600)
    assert view.traffic == () and view.outcomes == ()
    assert len(view.bucket_starts) == 6
    assert {q.target for q in view.queues} == {"archive", "erp", "outbox:ACME"}
    assert [(p.partner, p.messages, p.delivered, p.p95_latency, p.overdue_acks, p.success_rate)
            for p in view.partners] == [("ACME", 0, 0, None, 0, None), ("BETA", 0, 0, None, 1, None)]


def test_p95_latency_is_the_nearest_rank_of_receipt_to_delivery(s: Store) -> None:
    # 20 orders delivered 1..20 s after receipt (in shuffled order): nearest rank ceil(0.95 * 20) = 19.
    for n, seconds in enumerate([7, 3, 19, 1, 20, 12, 5, 16, 2, 9, 14, 4, 18, 6, 11, 8, 17, 10, 15, 13]):
        at = T0 + 100 * n
        message = receive(s, f"o{n}".encode(), "ACME", Channel.INBOX, at)
        s.record_processed(message, format="edifact", standard="", interchange="",
                           documents=[document(f"k{n}", "order", f"PO-{n}", "ACME", ("erp",))], now=at)
        deliver(s, "erp", at + seconds)
    [acme] = s.overview(since=T0, until=T0 + HOUR, bucket_seconds=HOUR).partners
    assert (acme.delivered, acme.p95_latency) == (20, 19.0)
    [acme] = s.overview(since=T0, until=T0 + 100, bucket_seconds=HOUR).partners   # only the first: 7 s
    assert (acme.delivered, acme.p95_latency) == (1, 7.0)


@pytest.mark.parametrize(("window", "message"), [
    ({"since": T0, "until": T0, "bucket_seconds": HOUR}, "since must be before until"),
    ({"since": T0, "until": T0 + HOUR, "bucket_seconds": 0}, "bucket_seconds must be positive"),
    ({"since": T0, "until": T0 + 86_400, "bucket_seconds": 1}, "at most 10000 buckets"),
    ({"since": None, "until": T0, "bucket_seconds": HOUR}, "since must be epoch seconds"),
])
def test_a_bad_overview_window_is_a_store_error(s: Store, window: dict, message: str) -> None:
    with pytest.raises(StoreError, match=message):
        s.overview(**window)
