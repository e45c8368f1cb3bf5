"""Operators' queries over the whole log: transmission search with every filter, and the overview statistics."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from gateway.errors import StoreError
from gateway.model import Channel, DeliveryStatus, MessageStatus
from gateway.store.base import MESSAGE_COLUMNS, StoreBase, constant, constant_in
from gateway.store.records import MessageRecord, message_record
from gateway.store.tables import ack_expectations, deliveries, documents, messages, receipts

# Channels by direction: what partners sent us, and what our own systems handed us to send.
DIRECTIONS: dict[str, tuple[str, ...]] = {
    "inbound": (Channel.INBOX.value, Channel.AS2.value, Channel.SFTP.value, Channel.POLL.value),
    "outbound": (Channel.API.value, Channel.CLI.value),
}
MAX_PAGE = 10_000
# A document type with fewer documents than this is searched from the documents' type index
# (the matches are few enough to sort); a commoner one by walking messages newest first.
RARE_TYPE_DOCUMENTS = 20_000
P95 = 95   # percent, nearest-rank

_FAILED = MessageStatus.FAILED.value
_DEAD = DeliveryStatus.DEAD.value

# ----------------------------------------------------------------------------- search

# Bound parameters of the search, by filter name; a statement exists per set of filters given.
_EQUALS = {
    "partner": messages.c.partner,
    "channel": messages.c.channel,
    "status": messages.c.status,
    "interchange": messages.c.interchange,
}
_DIRECTION_OF_CHANNEL = sa.case(
    {channel: constant(direction) for direction, channels in DIRECTIONS.items() for channel in channels},
    value=messages.c.channel, else_=constant("unknown"))
_TYPE_IS_COMMON = (sa.select(documents.c.id).where(documents.c.type == sa.bindparam("p_document_type"))
                   .limit(1).offset(sa.bindparam("p_rare", type_=sa.Integer)))
_SELECT_CURSOR = sa.select(messages.c.received_at).where(messages.c.id == sa.bindparam("p_before"))


def _as2_messages() -> sa.Select:
    """Ids of messages an AS2 Message-ID belongs to: ours for an MDN we sent, or the delivery's for one we got."""
    as2 = sa.bindparam("p_as2")
    ours = sa.select(receipts.c.message_id).where(receipts.c.as2_message_id == as2, receipts.c.message_id.is_not(None))
    theirs = (sa.select(documents.c.message_id)
              .select_from(receipts.join(deliveries, deliveries.c.id == receipts.c.delivery_id)
                           .join(documents, documents.c.id == deliveries.c.document_id))
              .where(receipts.c.as2_message_id == as2))
    return sa.union(ours, theirs)


# Filters that find few messages through their own index: with one of them given, the search starts there.
_SELECTIVE = frozenset({"document_number", "as2_message_id", "interchange"})


@functools.lru_cache(maxsize=512)
def _search_statement(given: frozenset[str], direction: str | None, paged: bool, rare_type: bool = False,
                      rare_status: bool = False) -> sa.Select:
    """The search for one combination of filters (built once per combination, values bound).

    Selective filters (document number, AS2 Message-ID, interchange, a rare document type)
    find their few matches through their own index (``id IN (subquery)``), which are then
    sorted; the other filters then compare expressions (``partner || ''``, ``received_at + 0``)
    that no index serves, or SQLite would rather walk e.g. every message of a big partner in
    time order. Without a selective filter the search walks a ``received_at`` index
    (``partner``, ``status``, ``channel`` ones lead with the column) and stops after a page;
    ``rare_status`` (any but processed) makes it the status one, whatever else is given.
    """
    driven = bool(given & _SELECTIVE) or rare_type
    received_at = messages.c.received_at + 0 if driven else messages.c.received_at
    query = sa.select(*MESSAGE_COLUMNS)
    for name, column in _EQUALS.items():
        if name in given:
            unindexed = (driven and name != "interchange") or (rare_status and name in ("partner", "channel"))
            query = query.where((column.concat("") if unindexed else column) == sa.bindparam(f"p_{name}"))
    if direction is not None:
        # Matched on the direction derived from the channel, not as "channel IN (...)": SQLite would
        # read every such row through the channel index and sort them all, where walking the
        # received_at index stops after a page.
        query = query.where(_DIRECTION_OF_CHANNEL == constant(direction))
    if "document_type" in given and rare_type:
        query = query.where(messages.c.id.in_(
            sa.select(documents.c.message_id).where(documents.c.type == sa.bindparam("p_document_type"))))
    elif "document_type" in given:
        query = query.where(sa.exists().where(documents.c.message_id == messages.c.id,
                                              documents.c.type == sa.bindparam("p_document_type")))
    if "document_number" in given:
        query = query.where(messages.c.id.in_(
            sa.select(documents.c.message_id).where(documents.c.number == sa.bindparam("p_document_number"))))
    if "as2_message_id" in given:
        query = query.where(messages.c.id.in_(_as2_messages()))
    if "since" in given:
        query = query.where(received_at >= sa.bindparam("p_since", type_=sa.Double))
    if "until" in given:
        query = query.where(received_at < sa.bindparam("p_until", type_=sa.Double))
    if paged:
        # "<=" bounds the index range; the OR then drops the cursor's own row and its earlier-id peers.
        cursor = sa.bindparam("p_cursor", type_=sa.Double)
        query = query.where(received_at <= cursor).where(
            sa.or_(received_at < cursor, messages.c.id < sa.bindparam("p_before")))
    return (query.order_by(messages.c.received_at.desc(), messages.c.id.desc())
            .limit(sa.bindparam("p_limit", type_=sa.Integer)))


def _choice(kind: str, value: Any, allowed: tuple[str, ...]) -> str:
    """``value`` as one of ``allowed`` (enum members accepted), else a StoreError naming the choices."""
    text = getattr(value, "value", value)
    if text not in allowed:
        raise StoreError(f"unknown {kind} {text!r} (one of {', '.join(allowed)})")
    return text


def _text(kind: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise StoreError(f"{kind} must be non-empty text, not {value!r}")
    return value.strip()


def _seconds(kind: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise StoreError(f"{kind} must be epoch seconds, not {value!r}")
    return float(value)


# ----------------------------------------------------------------------------- overview records


@dataclass(frozen=True, slots=True)
class TrafficPoint:
    """Messages of one partner on one channel received in one time bucket (``start`` = bucket start)."""

    start: float
    partner: str | None
    channel: str
    messages: int
    failed: int


@dataclass(frozen=True, slots=True)
class TypeOutcome:
    """Outcomes per partner and document type in the window.

    ``processed``: documents produced with no dead delivery; ``failed``: documents with a dead
    delivery, plus (document type "") messages the pipeline rejected before any document existed.
    """

    partner: str | None
    document_type: str
    processed: int
    failed: int

    @property
    def success_rate(self) -> float | None:
        """processed / (processed + failed), None when there was nothing."""
        total = self.processed + self.failed
        return self.processed / total if total else None


@dataclass(frozen=True, slots=True)
class QueueDepth:
    """Undelivered deliveries of one partner to one target, now."""

    partner: str
    target: str
    queued: int
    retrying: int
    dead: int


@dataclass(frozen=True, slots=True)
class PartnerSummary:
    """One partner's row of the SLA table.

    ``messages``/``failed`` count messages received in the window (failed: rejected by the
    pipeline); ``dead_documents`` documents of those messages with a dead delivery;
    ``p95_latency`` the nearest-rank 95th percentile of receipt -> delivery seconds over the
    ``delivered`` deliveries of those messages; ``overdue_acks`` outbound interchanges whose
    acknowledgment is overdue now; ``last_activity`` the last message received or sent ever.
    """

    partner: str | None
    messages: int
    failed: int
    documents: int
    dead_documents: int
    delivered: int
    p95_latency: float | None
    overdue_acks: int
    last_activity: float | None

    @property
    def success_rate(self) -> float | None:
        """Documents not dead-lettered and messages not rejected, over both; None when there was nothing."""
        total = self.documents + self.failed
        return (self.documents - self.dead_documents) / total if total else None


@dataclass(frozen=True, slots=True)
class Overview:
    """The dashboard's figures for ``[since, until)``; queues, overdue acks and last activity are as of now."""

    since: float
    until: float
    bucket_seconds: float
    traffic: tuple[TrafficPoint, ...]
    outcomes: tuple[TypeOutcome, ...]
    queues: tuple[QueueDepth, ...]
    partners: tuple[PartnerSummary, ...]

    @property
    def bucket_starts(self) -> tuple[float, ...]:
        """Every bucket start of the window (aligned to multiples of ``bucket_seconds``), empty ones too."""
        first = math.floor(self.since / self.bucket_seconds)
        last = math.ceil(self.until / self.bucket_seconds)
        return tuple(n * self.bucket_seconds for n in range(first, last))


# ----------------------------------------------------------------------------- overview SQL

_SINCE = sa.bindparam("since", type_=sa.Double)
_UNTIL = sa.bindparam("until", type_=sa.Double)
_IN_WINDOW = (messages.c.received_at >= _SINCE, messages.c.received_at < _UNTIL)


def _count_if(condition: sa.ColumnElement[bool]) -> sa.ColumnElement[int]:
    return sa.func.coalesce(sa.func.sum(sa.case((condition, 1), else_=0)), 0)


def _traffic(dialect: str) -> sa.Select:
    # SQLite has no floor() without its math extension; CAST truncates, the same for positive times.
    ratio = messages.c.received_at / sa.bindparam("bucket", type_=sa.Double)
    bucket = sa.func.floor(ratio) if dialect == "postgresql" else sa.cast(ratio, sa.Integer)
    bucket = bucket.label("bucket")
    return (sa.select(bucket, messages.c.partner, messages.c.channel, sa.func.count(),
                      _count_if(messages.c.status == constant(_FAILED)))
            .where(*_IN_WINDOW)
            .group_by(bucket, messages.c.partner, messages.c.channel))


_TRAFFIC = {name: _traffic(name) for name in ("sqlite", "postgresql")}
def _document_figures() -> sa.CompoundSelect:
    """Per (partner, type): documents and dead ones; per partner: delivered count and P95 latency.

    One statement: the window's documents and deliveries are joined once (materialized) and
    both aggregates read that. Rows are ``(kind, partner, type, n, dead, seconds)`` with kind
    "type" or "latency". P95 is nearest-rank over delivered_at - received_at.
    """
    # A LEFT JOIN (not a correlated EXISTS) so the delivery rows come from their (document_id, target)
    # index; materialized, or SQLite would rank by walking every delivery in partner order.
    rows = (
        sa.select(documents.c.partner, documents.c.type, documents.c.id.label("document_id"), deliveries.c.status,
                  (deliveries.c.delivered_at - messages.c.received_at).label("seconds"))
        .select_from(messages.join(documents, documents.c.message_id == messages.c.id)
                     .outerjoin(deliveries, deliveries.c.document_id == documents.c.id))
        .where(*_IN_WINDOW)
        .cte("window_documents").prefix_with("MATERIALIZED")
    )
    by_type = (
        sa.select(constant("type").label("kind"), rows.c.partner, rows.c.type,
                  sa.func.count(sa.distinct(rows.c.document_id)).label("n"),
                  sa.func.count(sa.distinct(sa.case((rows.c.status == constant(_DEAD), rows.c.document_id)))),
                  sa.cast(sa.null(), sa.Double))
        .group_by(rows.c.partner, rows.c.type)
    )
    # delivered_at is set only while delivered (a replay clears it): seconds is NULL otherwise.
    ranked = (
        sa.select(rows.c.partner, rows.c.seconds,
                  sa.func.row_number().over(partition_by=rows.c.partner, order_by=rows.c.seconds).label("rank"),
                  sa.func.count().over(partition_by=rows.c.partner).label("total"))
        .where(rows.c.seconds.is_not(None))
        .subquery("ranked")
    )
    # Ranks are ascending, so the smallest value at or past the P95 rank is the value at that rank.
    latency = (
        sa.select(constant("latency"), ranked.c.partner, sa.cast(sa.null(), sa.String), sa.func.max(ranked.c.total),
                  sa.cast(sa.null(), sa.BigInteger), sa.func.min(ranked.c.seconds))
        .where(ranked.c.rank * 100 >= ranked.c.total * P95)
        .group_by(ranked.c.partner)
    )
    return sa.union_all(by_type, latency)


_DOCUMENT_FIGURES = _document_figures()
_QUEUES = (
    sa.select(deliveries.c.partner, deliveries.c.target,
              *(_count_if(deliveries.c.status == constant(s.value))
                for s in (DeliveryStatus.QUEUED, DeliveryStatus.RETRYING, DeliveryStatus.DEAD)))
    .where(constant_in(deliveries.c.status, (DeliveryStatus.QUEUED.value, DeliveryStatus.RETRYING.value, _DEAD)))
    .group_by(deliveries.c.partner, deliveries.c.target)
    .order_by(deliveries.c.partner, deliveries.c.target)
)
_OVERDUE = (
    sa.select(ack_expectations.c.partner, sa.func.count(sa.distinct(ack_expectations.c.message_id)))
    .where(ack_expectations.c.status == constant("overdue"))
    .group_by(ack_expectations.c.partner)
)


def _last_activity() -> sa.Select:
    """Each partner's newest message, by a skip scan of the (partner, received_at) index.

    A plain GROUP BY would read every index entry; this takes two index probes per partner.
    """
    step = messages.alias("step")
    first = sa.select(sa.func.min(messages.c.partner).label("partner")).cte("active", recursive=True)
    following = (sa.select(sa.select(sa.func.min(step.c.partner)).where(step.c.partner > first.c.partner)
                           .scalar_subquery())
                 .where(first.c.partner.is_not(None)))
    active = first.union_all(following)
    newest = messages.alias("newest")
    return (sa.select(active.c.partner, sa.select(sa.func.max(newest.c.received_at))
                      .where(newest.c.partner == active.c.partner).scalar_subquery())
            .where(active.c.partner.is_not(None)))


_LAST_ACTIVITY = _last_activity()


class StatsMixin(StoreBase):
    """search_transmissions / overview."""

    def search_transmissions(
        self,
        *,
        partner: str | None = None,
        direction: str | None = None,
        channel: Channel | str | None = None,
        document_type: str | None = None,
        status: MessageStatus | str | None = None,
        since: float | None = None,
        until: float | None = None,
        as2_message_id: str | None = None,
        interchange: str | None = None,
        document_number: str | None = None,
        limit: int = 50,
        before_id: str | None = None,
    ) -> list[MessageRecord]:
        """Messages matching every filter given, newest first (received_at, then id), at most ``limit``.

        ``direction``: "inbound" (channels inbox, as2, sftp, poll) or "outbound" (api, cli).
        ``since``/``until`` bound ``received_at`` (since inclusive, until exclusive).
        ``as2_message_id``: the AS2 Message-ID of an MDN stored for the message, either way;
        ``interchange``: the interchange control number as stored on the message;
        ``document_number`` / ``document_type``: of any document the message produced.
        Next page: pass the last id of this page as ``before_id`` (keyset paging, stable under
        inserts). Bad values are a StoreError naming the filter.
        """
        params: dict[str, Any] = {}
        for name, value in (("partner", partner), ("interchange", interchange), ("document_type", document_type),
                            ("document_number", document_number), ("as2_message_id", as2_message_id)):
            if value is not None:
                params["p_as2" if name == "as2_message_id" else f"p_{name}"] = _text(name.replace("_", " "), value)
        if channel is not None:
            params["p_channel"] = _choice("channel", channel, tuple(c.value for c in Channel))
        if status is not None:
            params["p_status"] = _choice("status", status, tuple(s.value for s in MessageStatus))
        if direction is not None:
            direction = _choice("direction", direction, tuple(DIRECTIONS))
        if since is not None:
            params["p_since"] = _seconds("since", since)
        if until is not None:
            params["p_until"] = _seconds("until", until)
        if since is not None and until is not None and params["p_since"] > params["p_until"]:
            raise StoreError("since is after until")
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE:
            raise StoreError(f"limit must be a whole number from 1 to {MAX_PAGE}, not {limit!r}")
        params["p_limit"] = limit
        given = frozenset("as2_message_id" if key == "p_as2" else key[2:] for key in params) - {"limit"}
        if direction is not None and channel is not None and params["p_channel"] not in DIRECTIONS[direction]:
            return []   # e.g. outbound on the inbox channel: nothing, without reading every inbox message
        with self._read("searching transmissions") as conn:
            rare_type = (document_type is not None and conn.execute(
                _TYPE_IS_COMMON, {"p_document_type": params["p_document_type"], "p_rare": RARE_TYPE_DOCUMENTS},
            ).first() is None)
            if before_id is not None:
                cursor = conn.execute(_SELECT_CURSOR, {"p_before": before_id}).scalar()
                if cursor is None:
                    raise StoreError(f"unknown message {before_id!r} (paging cursor)")
                params.update(p_cursor=cursor, p_before=before_id)
            rare_status = status is not None and params["p_status"] != MessageStatus.PROCESSED.value
            statement = _search_statement(given, direction, before_id is not None, rare_type, rare_status)
            rows = conn.execute(statement, params).all()
        return [message_record(r) for r in rows]

    def overview(self, *, since: float, until: float, bucket_seconds: float) -> Overview:
        """Traffic, outcomes, latency and queues for messages received in ``[since, until)``.

        Five aggregate queries in one read transaction; buckets are aligned to multiples of
        ``bucket_seconds`` (epoch), so hourly buckets start on the hour.
        """
        since, until = _seconds("since", since), _seconds("until", until)
        bucket = _seconds("bucket_seconds", bucket_seconds)
        if since >= until:
            raise StoreError("since must be before until")
        if bucket <= 0 or (until - since) / bucket > 10_000:
            raise StoreError(f"bucket_seconds must be positive and give at most 10000 buckets, not {bucket_seconds!r}")
        window = {"since": since, "until": until}
        with self._read("computing the overview") as conn:
            traffic_rows = conn.execute(_TRAFFIC[conn.dialect.name], {**window, "bucket": bucket}).all()
            figures = conn.execute(_DOCUMENT_FIGURES, window).all()
            queue_rows = conn.execute(_QUEUES).all()
            overdue = dict(conn.execute(_OVERDUE).all())
            last_seen = dict(conn.execute(_LAST_ACTIVITY).all())
        traffic = tuple(sorted(
            (TrafficPoint(int(b) * bucket, p, c, int(n), int(f)) for b, p, c, n, f in traffic_rows),
            key=lambda t: (t.start, t.partner or "", t.channel)))
        failed_by_partner: dict[str | None, int] = {}
        messages_by_partner: dict[str | None, int] = {}
        for point in traffic:
            messages_by_partner[point.partner] = messages_by_partner.get(point.partner, 0) + point.messages
            failed_by_partner[point.partner] = failed_by_partner.get(point.partner, 0) + point.failed
        outcomes = [TypeOutcome(p, t, int(n) - int(d), int(d)) for kind, p, t, n, d, _ in figures if kind == "type"]
        outcomes += [TypeOutcome(p, "", 0, n) for p, n in failed_by_partner.items() if n]
        outcomes.sort(key=lambda o: (o.partner or "", o.document_type))
        latency = {p: (int(n), float(sec)) for kind, p, _, n, _, sec in figures if kind == "latency"}
        documents_by_partner: dict[str | None, list[int]] = {}
        for o in outcomes:
            if o.document_type:
                counts = documents_by_partner.setdefault(o.partner, [0, 0])
                counts[0] += o.processed + o.failed
                counts[1] += o.failed
        names = set(messages_by_partner) | set(documents_by_partner) | set(latency) | set(overdue) | set(last_seen)
        partners = tuple(
            PartnerSummary(
                partner=p, messages=messages_by_partner.get(p, 0), failed=failed_by_partner.get(p, 0),
                documents=documents_by_partner.get(p, [0, 0])[0], dead_documents=documents_by_partner.get(p, [0, 0])[1],
                delivered=latency.get(p, (0, None))[0], p95_latency=latency.get(p, (0, None))[1],
                overdue_acks=int(overdue.get(p, 0)), last_activity=last_seen.get(p))
            for p in sorted(names, key=lambda n: (n is None, n or "")))
        queues = tuple(QueueDepth(p, t, int(q), int(r), int(d)) for p, t, q, r, d in queue_rows)
        return Overview(since, until, bucket, traffic, tuple(outcomes), queues, partners)
