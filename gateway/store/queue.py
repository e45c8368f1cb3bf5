"""The durable delivery queue: leased claims, completion, retry scheduling, dead letters.

A claim gives a worker a lease (owner + expiry) and counts the attempt. Only the lease owner
may settle a delivery; a worker whose lease expired and was taken over gets ``False`` back
and a "lease-lost" event is logged. (A lease that expired but was not taken over yet still
counts: the work was done, and nobody else has started it.) On PostgreSQL claims use ``FOR UPDATE SKIP LOCKED`` so
several nodes claim side by side; on SQLite the BEGIN IMMEDIATE transaction serialises them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Mapping

import sqlalchemy as sa

from gateway.errors import BlobError, StoreError
from gateway.model import DeliveryStatus
from gateway.store.base import StoreBase, constant, constant_in, event_row, iso, now_or
from gateway.store.records import ClaimedDelivery
from gateway.store.tables import deliveries, documents, messages

log = logging.getLogger(__name__)

_DUE_STATUSES = (DeliveryStatus.QUEUED.value, DeliveryStatus.RETRYING.value)
DEFAULT_MAX_RETRY_DELAY = 86400.0   # claim(max_retry_delay=...): the worker passes its targets' real maximum
SKEW = 60.0                         # seconds nodes' clocks may differ before a horizon counts as a jump
_DEAD = DeliveryStatus.DEAD.value


def _detail(target: str, attempt: int, http_status: int | None, error: str | None = None,
            next_attempt_at: float | None = None) -> str:
    parts = [f"target {target}", f"attempt {attempt}"]
    if http_status is not None:
        parts.append(f"HTTP {http_status}")
    if next_attempt_at is not None:
        parts.append(f"next attempt {iso(next_attempt_at)}")
    text = ", ".join(parts)
    return f"{text}: {error}" if error else text


# -- statements, built once (see gateway.store.base) -------------------------------------
# Bind parameter names never equal a deliveries column: an UPDATE would take those as SET values.


_EARLIER = deliveries.alias("earlier")
# An ordered delivery waits while an earlier one (smaller id: ids sort by creation time) with the
# same target and sequence key is still queued or retrying; dead ones do not hold the line.
_IN_TURN = sa.or_(
    deliveries.c.sequence_key.is_(None),
    ~sa.exists().where(_EARLIER.c.target == deliveries.c.target)
    .where(_EARLIER.c.sequence_key == deliveries.c.sequence_key)
    .where(_EARLIER.c.id < deliveries.c.id)
    .where(constant_in(_EARLIER.c.status, _DUE_STATUSES)),
)


def _due_query(excluding_targets: bool, excluding_ids: bool) -> sa.Select:
    """Due deliveries in their turn, longest-waiting first, with what a claim returns (one row each).

    The inner query picks and locks the rows (``FOR UPDATE SKIP LOCKED`` on PostgreSQL;
    SQLite's BEGIN IMMEDIATE already serialises claims); only the rows picked are joined to
    their documents, however long the queue. A variant per optional filter.
    """
    due = (
        sa.select(deliveries.c.id, deliveries.c.document_id, deliveries.c.partner, deliveries.c.target,
                  deliveries.c.attempts, deliveries.c.created_at, deliveries.c.next_attempt_at)
        .where(constant_in(deliveries.c.status, _DUE_STATUSES))
        # Beyond the horizon (the furthest any retry or lease is set ahead) only a wall clock that
        # jumped back can have put it: due now rather than stranded for the size of the jump.
        .where(sa.or_(deliveries.c.next_attempt_at <= sa.bindparam("now", type_=sa.Double),
                      deliveries.c.next_attempt_at > sa.bindparam("retry_horizon", type_=sa.Double)))
        .where(sa.or_(deliveries.c.lease_expires_at.is_(None),
                      deliveries.c.lease_expires_at <= sa.bindparam("now", type_=sa.Double),
                      deliveries.c.lease_expires_at > sa.bindparam("lease_horizon", type_=sa.Double)))
        .where(_IN_TURN)
        .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
        .limit(sa.bindparam("slots", type_=sa.Integer))
        .with_for_update(skip_locked=True)
    )
    if excluding_targets:
        due = due.where(deliveries.c.target.not_in(sa.bindparam("excluded", expanding=True)))
    if excluding_ids:
        due = due.where(deliveries.c.id.not_in(sa.bindparam("picked", expanding=True)))
    due = due.subquery("due")
    return (
        sa.select(due.c.id, due.c.document_id, documents.c.message_id, due.c.partner, due.c.target,
                  documents.c.type, documents.c.idempotency_key, due.c.attempts, due.c.created_at,
                  documents.c.blob_sha256, due.c.next_attempt_at, documents.c.number, messages.c.received_at,
                  messages.c.filename)
        .join_from(due, documents, documents.c.id == due.c.document_id)
        .join(messages, messages.c.id == documents.c.message_id)
        .order_by(due.c.next_attempt_at, due.c.id)
    )


_DUE = {(t, i): _due_query(t, i) for t in (False, True) for i in (False, True)}
_LEASE = (
    deliveries.update()
    .where(deliveries.c.id == sa.bindparam("delivery_id"))
    .values(lease_owner=sa.bindparam("owner"), lease_expires_at=sa.bindparam("expires", type_=sa.Double),
            attempts=deliveries.c.attempts + 1, updated_at=sa.bindparam("at", type_=sa.Double))
)

# The message a delivery belongs to, for the event; SQLite renders RETURNING columns without
# their table, so the correlation is spelled out to stay unambiguous inside the subquery.
_MESSAGE_OF_DELIVERY = (
    sa.select(documents.c.message_id)
    .where(sa.literal_column("documents.id") == sa.literal_column("deliveries.document_id"))
    .scalar_subquery()
)


def _settle_update(**values: sa.ColumnElement) -> sa.Update:
    """Apply ``values`` and release the lease, only while ``:owner`` holds it (else no row).

    Returns what the event needs: target, attempts, partner, document id and message id.
    """
    return (
        deliveries.update()
        .where(deliveries.c.id == sa.bindparam("delivery_id"))
        .where(deliveries.c.lease_owner == sa.bindparam("owner"))
        .where(constant_in(deliveries.c.status, _DUE_STATUSES))
        .values(**values, lease_owner=sa.null(), lease_expires_at=sa.null(),
                updated_at=sa.bindparam("at", type_=sa.Double))
        .returning(deliveries.c.target, deliveries.c.attempts, deliveries.c.partner, deliveries.c.document_id,
                   _MESSAGE_OF_DELIVERY)
    )


_SETTLE = {
    "delivered": _settle_update(
        status=constant(DeliveryStatus.DELIVERED.value),
        delivered_at=sa.bindparam("at", type_=sa.Double),
        last_http_status=sa.bindparam("http_status", type_=sa.Integer)),
    "retry-scheduled": _settle_update(
        status=constant(DeliveryStatus.RETRYING.value),
        next_attempt_at=sa.bindparam("next_at", type_=sa.Double),
        last_error=sa.bindparam("error", type_=sa.Text),
        last_http_status=sa.bindparam("http_status", type_=sa.Integer)),
    "dead-lettered": _settle_update(
        status=constant(_DEAD),
        last_error=sa.bindparam("error", type_=sa.Text),
        last_http_status=sa.bindparam("http_status", type_=sa.Integer)),
}
# A delivery as the event log and the lease-lost / retry_dead checks see it.
_DELIVERY_STATE = (
    sa.select(deliveries.c.status, deliveries.c.lease_owner, deliveries.c.target, deliveries.c.attempts,
              deliveries.c.partner, deliveries.c.document_id, documents.c.message_id)
    .join(documents, documents.c.id == deliveries.c.document_id)
    .where(deliveries.c.id == sa.bindparam("delivery_id"))
)
_DELIVERY_STATE_FOR_UPDATE = _DELIVERY_STATE.with_for_update(of=deliveries)
_LEASE_EXPIRES = sa.select(deliveries.c.lease_expires_at).where(deliveries.c.id == sa.bindparam("delivery_id"))
_CANCEL = (
    deliveries.update()
    .where(deliveries.c.id == sa.bindparam("delivery_id"))
    .where(constant_in(deliveries.c.status, _DUE_STATUSES))
    .values(status=constant(_DEAD), last_error=sa.bindparam("error", type_=sa.Text), lease_owner=sa.null(),
            lease_expires_at=sa.null(), updated_at=sa.bindparam("at", type_=sa.Double))
)
_REQUEUE_DEAD = (
    deliveries.update()
    .where(deliveries.c.id == sa.bindparam("delivery_id"))
    .values(status=constant(DeliveryStatus.QUEUED.value),
            next_attempt_at=sa.bindparam("at", type_=sa.Double), attempts=0, lease_owner=sa.null(),
            lease_expires_at=sa.null(), updated_at=sa.bindparam("at", type_=sa.Double))
)


class QueueMixin(StoreBase):
    """claim / complete / reschedule / bury / retry_dead / cancel_delivery."""

    def claim(
        self,
        owner: str,
        *,
        limit: int,
        lease_seconds: float,
        exclude_targets: Collection[str] = (),
        per_target: Mapping[str, int] | None = None,
        max_retry_delay: float = DEFAULT_MAX_RETRY_DELAY,
        now: float | None = None,
    ) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due deliveries to ``owner`` for ``lease_seconds``.

        Due means queued or retrying, ``next_attempt_at <= now`` and no lease or an expired
        one; the longest-waiting come first; targets in ``exclude_targets`` (e.g. with an
        open circuit breaker) are skipped, and a target named in ``per_target`` gets at most
        that many (targets not named there are not capped). Each claim increments
        ``attempts``. A delivery whose document blob is missing or corrupt cannot be sent:
        it is dead-lettered with the BlobError as its error and left out of the result.
        ``max_retry_delay``: the furthest ahead any retry is scheduled; a delivery due later than
        that (or leased for longer than ``lease_seconds``) was scheduled before the wall clock
        jumped back, and is due now.
        """
        if limit <= 0:
            return []
        at = now_or(now)
        caps = dict(per_target or {})
        excluded = set(exclude_targets) | {t for t, n in caps.items() if n <= 0}
        picked: list[tuple] = []
        picked_ids: list[str] = []
        taken: Counter[str] = Counter()
        with self._write("claiming deliveries") as conn:
            # Each round asks for the slots still free; when a capped target overflows, its
            # extra rows are dropped and the next round excludes it. Rounds <= capped targets + 1.
            rounds = 0
            while len(picked) < limit:
                rounds += 1
                params = {"now": at, "slots": limit - len(picked), "retry_horizon": at + max_retry_delay + SKEW,
                          "lease_horizon": at + lease_seconds + SKEW}
                if excluded:
                    params["excluded"] = sorted(excluded)
                if picked_ids:
                    params["picked"] = picked_ids
                rows = conn.execute(_DUE[bool(excluded), bool(picked_ids)], params).all()
                overflowed = False
                for row in rows:
                    target = row[4]
                    if target in excluded:  # reached its cap earlier in this round
                        overflowed = True
                        continue
                    picked.append(row)
                    picked_ids.append(row[0])
                    taken[target] += 1
                    if target in caps and taken[target] >= caps[target]:
                        excluded.add(target)
                if not overflowed:  # got every row offered: the slots are full or nothing is due
                    break
            if not picked:
                return []
            if rounds > 1:  # a later round may see rows that were locked or not yet there before
                picked.sort(key=lambda row: (row[10], row[0]))
            lease = {"owner": owner, "expires": at + lease_seconds, "at": at}
            conn.execute(_LEASE, [{"delivery_id": delivery_id, **lease} for delivery_id in picked_ids]
                         if len(picked_ids) > 1 else {"delivery_id": picked_ids[0], **lease})
        claimed: list[ClaimedDelivery] = []
        for (delivery_id, document_id, message_id, partner, target, document_type, idempotency_key, attempts,
             created_at, blob_sha256, _next_attempt_at, number, received_at, filename) in picked:
            try:
                body = self.blobs.get(blob_sha256)
            except BlobError as e:
                log.error("delivery %s: %s", delivery_id, e, extra={"partner": partner, "message_id": message_id})
                self.bury(delivery_id, owner, error=str(e), now=at)
                continue
            claimed.append(ClaimedDelivery(
                delivery_id=delivery_id, document_id=document_id, message_id=message_id, partner=partner,
                target=target, document_type=document_type, idempotency_key=idempotency_key,
                attempts=attempts + 1,  # this claim's, as the UPDATE above counted it (the row is ours)
                created_at=created_at, body=body, document_number=number, received_at=received_at,
                filename=filename,
            ))
        return claimed

    def complete(
        self,
        delivery_id: str,
        owner: str,
        *,
        duration_ms: float,
        http_status: int | None = None,
        now: float | None = None,
    ) -> bool:
        """Mark a leased delivery delivered; False (and a "lease-lost" event) if ``owner`` lost it."""
        return self._settle(
            delivery_id, owner, step="delivered", outcome="ok", at=now_or(now), duration_ms=duration_ms,
            http_status=http_status,
        )

    def reschedule(
        self,
        delivery_id: str,
        owner: str,
        *,
        next_attempt_at: float,
        error: str,
        http_status: int | None = None,
        duration_ms: float | None = None,
        now: float | None = None,
    ) -> bool:
        """After a transient failure: status retrying, due at ``next_attempt_at``, lease released.

        False (and a "lease-lost" event) if ``owner`` no longer holds the lease.
        """
        return self._settle(
            delivery_id, owner, step="retry-scheduled", outcome="error", at=now_or(now), duration_ms=duration_ms,
            http_status=http_status, error=error, next_attempt_at=next_attempt_at,
        )

    def bury(
        self,
        delivery_id: str,
        owner: str,
        *,
        error: str,
        http_status: int | None = None,
        duration_ms: float | None = None,
        now: float | None = None,
    ) -> bool:
        """Dead-letter a leased delivery (permanent failure or retries exhausted).

        False (and a "lease-lost" event) if ``owner`` no longer holds the lease.
        """
        return self._settle(
            delivery_id, owner, step="dead-lettered", outcome="error", at=now_or(now), duration_ms=duration_ms,
            http_status=http_status, error=error,
        )

    def retry_dead(self, delivery_id: str, *, now: float | None = None) -> None:
        """Move a dead-lettered delivery back to the queue: due now, attempt count reset to 0.

        StoreError if the delivery does not exist or is not dead.
        """
        at = now_or(now)
        with self._write("retrying a dead delivery") as conn:
            row = conn.execute(_DELIVERY_STATE_FOR_UPDATE, {"delivery_id": delivery_id}).first()
            if row is None:
                raise StoreError(f"unknown delivery {delivery_id!r}")
            status, _lease_owner, target, _attempts, partner, document_id, message_id = row
            if status != _DEAD:
                raise StoreError(f"delivery {delivery_id} is {status}, not dead: only dead deliveries are retried")
            conn.execute(_REQUEUE_DEAD, {"delivery_id": delivery_id, "at": at})
            self._insert_events(conn, event_row("dlq-retry", "ok", at, message_id, document_id, delivery_id, partner,
                                                detail=f"target {target}: back in the queue"))

    def cancel_delivery(self, delivery_id: str, *, by: str, now: float | None = None) -> None:
        """Dead-letter a queued or retrying delivery by hand (error "cancelled by <by>").

        StoreError if it does not exist, is delivered or dead already, or a worker holds an
        unexpired lease on it (it is being sent right now: cancelling could not take it back).
        """
        at = now_or(now)
        with self._write("cancelling a delivery") as conn:
            row = conn.execute(_DELIVERY_STATE_FOR_UPDATE, {"delivery_id": delivery_id}).first()
            if row is None:
                raise StoreError(f"unknown delivery {delivery_id!r}")
            status, owner, target, _attempts, partner, document_id, message_id = row
            if status not in _DUE_STATUSES:
                raise StoreError(f"delivery {delivery_id} is {status}: only queued or retrying deliveries are cancelled")
            expires = conn.execute(_LEASE_EXPIRES, {"delivery_id": delivery_id}).scalar()
            if owner is not None and expires is not None and expires > at:
                raise StoreError(f"delivery {delivery_id} is being sent right now by {owner}: try again in a moment")
            error = f"cancelled by {by}"
            conn.execute(_CANCEL, {"delivery_id": delivery_id, "error": error, "at": at})
            self._insert_events(conn, event_row("dead-lettered", "cancelled", at, message_id, document_id,
                                                delivery_id, partner, detail=f"target {target}: {error}"))

    def _settle(
        self,
        delivery_id: str,
        owner: str,
        *,
        step: str,
        outcome: str,
        at: float,
        duration_ms: float | None,
        http_status: int | None,
        error: str | None = None,
        next_attempt_at: float | None = None,
    ) -> bool:
        """Record ``step`` (and release the lease) only while ``owner`` holds the lease.

        One UPDATE ... RETURNING does the check, the change and fetches what the event needs;
        only when it matches no row (lease lost, or no such delivery) is the row read.
        """
        with self._write(f"recording {step}") as conn:
            row = conn.execute(_SETTLE[step], {
                "delivery_id": delivery_id, "owner": owner, "at": at, "http_status": http_status,
                "error": error, "next_at": next_attempt_at,
            }).first()
            if row is not None:
                target, attempts, partner, document_id, message_id = row
                self._insert_events(conn, event_row(
                    step, outcome, at, message_id, document_id, delivery_id, partner, duration_ms,
                    _detail(target, attempts, http_status, error, next_attempt_at)))
                return True
            row = conn.execute(_DELIVERY_STATE, {"delivery_id": delivery_id}).first()
            if row is None:
                raise StoreError(f"unknown delivery {delivery_id!r}")
            status, lease_owner, target, attempts, partner, document_id, message_id = row
            held = f"leased to {lease_owner}" if lease_owner else "not leased"
            detail = _detail(target, attempts, http_status, error, next_attempt_at)
            self._insert_events(conn, event_row(
                step, "lease-lost", at, message_id, document_id, delivery_id, partner, duration_ms,
                f"{detail} (by {owner}; the delivery is {status}, {held})"))
        log.warning("delivery %s: %s lost its lease before %s", delivery_id, owner, step)
        return False
