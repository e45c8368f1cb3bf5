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
from gateway.store.base import StoreBase, iso, now_or
from gateway.store.records import ClaimedDelivery
from gateway.store.tables import deliveries, documents

log = logging.getLogger(__name__)

_DUE_STATUSES = (DeliveryStatus.QUEUED.value, DeliveryStatus.RETRYING.value)


def _detail(target: str, attempt: int, http_status: int | None, error: str | None = None,
            next_attempt_at: float | None = None) -> str:
    parts = [f"target {target}", f"attempt {attempt}"]
    if http_status is not None:
        parts.append(f"HTTP {http_status}")
    if next_attempt_at is not None:
        parts.append(f"next attempt {iso(next_attempt_at)}")
    text = ", ".join(parts)
    return f"{text}: {error}" if error else text


class QueueMixin(StoreBase):
    """claim / complete / reschedule / bury / retry_dead."""

    def claim(
        self,
        owner: str,
        *,
        limit: int,
        lease_seconds: float,
        exclude_targets: Collection[str] = (),
        per_target: Mapping[str, int] | None = None,
        now: float | None = None,
    ) -> list[ClaimedDelivery]:
        """Lease up to ``limit`` due deliveries to ``owner`` for ``lease_seconds``.

        Due means queued or retrying, ``next_attempt_at <= now`` and no lease or an expired
        one; the longest-waiting come first; targets in ``exclude_targets`` (e.g. with an
        open circuit breaker) are skipped, and a target named in ``per_target`` gets at most
        that many (targets not named there are not capped). Each claim increments
        ``attempts``. A delivery whose document blob is missing or corrupt cannot be sent:
        it is dead-lettered with the BlobError as its error and left out of the result.
        """
        if limit <= 0:
            return []
        at = now_or(now)
        caps = dict(per_target or {})
        excluded = set(exclude_targets) | {t for t, n in caps.items() if n <= 0}
        picked: list[str] = []
        taken: Counter[str] = Counter()
        with self._write("claiming deliveries") as conn:
            # Each round asks for the slots still free; when a capped target overflows, its
            # extra rows are dropped and the next round excludes it. Rounds <= capped targets + 1.
            while len(picked) < limit:
                query = (
                    sa.select(deliveries.c.id, deliveries.c.target)
                    .where(deliveries.c.status.in_(_DUE_STATUSES))
                    .where(deliveries.c.next_attempt_at <= at)
                    .where(sa.or_(deliveries.c.lease_expires_at.is_(None), deliveries.c.lease_expires_at <= at))
                    .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
                    .limit(limit - len(picked))
                    .with_for_update(skip_locked=True)
                )
                if excluded:
                    query = query.where(deliveries.c.target.not_in(sorted(excluded)))
                if picked:
                    query = query.where(deliveries.c.id.not_in(picked))
                rows = conn.execute(query).all()
                overflowed = False
                for delivery_id, target in rows:
                    if target in excluded:  # reached its cap earlier in this round
                        overflowed = True
                        continue
                    picked.append(delivery_id)
                    taken[target] += 1
                    if target in caps and taken[target] >= caps[target]:
                        excluded.add(target)
                if not overflowed:  # got every row offered: the slots are full or nothing is due
                    break
            if not picked:
                return []
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id.in_(picked))
                .values(lease_owner=owner, lease_expires_at=at + lease_seconds,
                        attempts=deliveries.c.attempts + 1, updated_at=at)
            )
            rows = conn.execute(
                sa.select(
                    deliveries.c.id, deliveries.c.document_id, documents.c.message_id, deliveries.c.partner,
                    deliveries.c.target, documents.c.type, documents.c.idempotency_key, deliveries.c.attempts,
                    deliveries.c.created_at, documents.c.blob_sha256, deliveries.c.next_attempt_at,
                )
                .join(documents, documents.c.id == deliveries.c.document_id)
                .where(deliveries.c.id.in_(picked))
                .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
            ).all()
        claimed: list[ClaimedDelivery] = []
        for r in rows:
            try:
                body = self.blobs.get(r.blob_sha256)
            except BlobError as e:
                log.error("delivery %s: %s", r.id, e, extra={"partner": r.partner, "message_id": r.message_id})
                self.bury(r.id, owner, error=str(e), now=at)
                continue
            claimed.append(ClaimedDelivery(
                delivery_id=r.id, document_id=r.document_id, message_id=r.message_id, partner=r.partner,
                target=r.target, document_type=r.type, idempotency_key=r.idempotency_key, attempts=r.attempts,
                created_at=r.created_at, body=body,
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
        at = now_or(now)
        return self._settle(
            delivery_id, owner, step="delivered", outcome="ok", at=at, duration_ms=duration_ms,
            values=dict(status=DeliveryStatus.DELIVERED.value, delivered_at=at, last_http_status=http_status),
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
            values=dict(status=DeliveryStatus.RETRYING.value, next_attempt_at=next_attempt_at,
                        last_error=error, last_http_status=http_status),
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
            values=dict(status=DeliveryStatus.DEAD.value, last_error=error, last_http_status=http_status),
            http_status=http_status, error=error,
        )

    def retry_dead(self, delivery_id: str, *, now: float | None = None) -> None:
        """Move a dead-lettered delivery back to the queue: due now, attempt count reset to 0.

        StoreError if the delivery does not exist or is not dead.
        """
        at = now_or(now)
        with self._write("retrying a dead delivery") as conn:
            row = conn.execute(
                sa.select(deliveries.c.status, deliveries.c.target)
                .where(deliveries.c.id == delivery_id)
                .with_for_update()
            ).first()
            if row is None:
                raise StoreError(f"unknown delivery {delivery_id!r}")
            if row.status != DeliveryStatus.DEAD.value:
                raise StoreError(f"delivery {delivery_id} is {row.status}, not dead: only dead deliveries are retried")
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id == delivery_id)
                .values(status=DeliveryStatus.QUEUED.value, next_attempt_at=at, attempts=0,
                        lease_owner=None, lease_expires_at=None, updated_at=at)
            )
            self._add_event(conn, "dlq-retry", "ok", at=at, delivery_id=delivery_id,
                            detail=f"target {row.target}: back in the queue")

    def _settle(
        self,
        delivery_id: str,
        owner: str,
        *,
        step: str,
        outcome: str,
        at: float,
        duration_ms: float | None,
        values: dict,
        http_status: int | None,
        error: str | None = None,
        next_attempt_at: float | None = None,
    ) -> bool:
        """Apply ``values`` (and release the lease) only while ``owner`` holds the lease."""
        with self._write(f"recording {step}") as conn:
            row = conn.execute(
                sa.select(deliveries.c.status, deliveries.c.lease_owner, deliveries.c.target, deliveries.c.attempts)
                .where(deliveries.c.id == delivery_id)
                .with_for_update()
            ).first()
            if row is None:
                raise StoreError(f"unknown delivery {delivery_id!r}")
            detail = _detail(row.target, row.attempts, http_status, error, next_attempt_at)
            if row.lease_owner != owner or row.status not in _DUE_STATUSES:
                held = f"leased to {row.lease_owner}" if row.lease_owner else "not leased"
                self._add_event(conn, step, "lease-lost", at=at, delivery_id=delivery_id, duration_ms=duration_ms,
                                detail=f"{detail} (by {owner}; the delivery is {row.status}, {held})")
                log.warning("delivery %s: %s lost its lease before %s", delivery_id, owner, step)
                return False
            conn.execute(
                deliveries.update()
                .where(deliveries.c.id == delivery_id)
                .values(**values, lease_owner=None, lease_expires_at=None, updated_at=at)
            )
            self._add_event(conn, step, outcome, at=at, delivery_id=delivery_id, duration_ms=duration_ms,
                            detail=detail)
        return True
