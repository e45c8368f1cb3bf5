"""Alerts in the store: the statistics the alert rules read, and the alerts table (open, resolve, notify)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa

from gateway.model import DeliveryStatus, MessageStatus
from gateway.store.base import StoreBase, constant, event_row, iso, new_id
from gateway.store.tables import alerts, deliveries, documents, messages

# Latency histogram bounds: 10 ms to ~2 days, each 25% above the last (bucket i holds <= bound i).
LATENCY_BOUNDS = tuple(0.01 * 1.25 ** i for i in range(math.ceil(math.log(2 * 86400 / 0.01, 1.25)) + 1))


@dataclass(frozen=True)
class Alert:
    """One row of the alerts table."""

    id: str
    rule: str
    subject: str
    severity: str
    state: str
    detail: str
    opened_at: float
    resolved_at: float | None
    notified_at: float | None
    updated_at: float



class Opening(Protocol):
    """What opens an alert (gateway.alerts.Finding)."""

    rule: str
    subject: str
    severity: str
    detail: str
    partner: str | None


_DEAD = DeliveryStatus.DEAD.value
_DEAD_DELIVERY = (
    sa.exists().where(documents.c.message_id == messages.c.id)
    .where(deliveries.c.document_id == documents.c.id)
    .where(deliveries.c.status == constant(_DEAD))
)
_FAILURE = sa.case((messages.c.status == constant(MessageStatus.FAILED.value), 1), (_DEAD_DELIVERY, 1), else_=0)
_SELECT_OUTCOMES = (
    sa.select(messages.c.partner, sa.func.count(), sa.func.sum(_FAILURE))
    .where(messages.c.received_at >= sa.bindparam("since", type_=sa.Double))
    .where(messages.c.partner.is_not(None))
    .where(messages.c.status != constant(MessageStatus.DUPLICATE.value))
    .group_by(messages.c.partner)
)
_LATENCY = deliveries.c.delivered_at - messages.c.received_at
# Our own constants inlined: PostgreSQL matches the GROUP BY expression to the selected one only
# when both are the same text, which separate bind parameters are not.
_BUCKET = sa.case(*((_LATENCY <= sa.literal_column(repr(bound)), sa.literal_column(str(index)))
                    for index, bound in enumerate(LATENCY_BOUNDS)),
                  else_=sa.literal_column(str(len(LATENCY_BOUNDS))))
_SELECT_LATENCIES = (
    sa.select(deliveries.c.partner, _BUCKET, sa.func.count())
    .select_from(deliveries.join(documents, documents.c.id == deliveries.c.document_id)
                 .join(messages, messages.c.id == documents.c.message_id))
    .where(deliveries.c.status == constant(DeliveryStatus.DELIVERED.value))
    .where(deliveries.c.delivered_at >= sa.bindparam("since", type_=sa.Double))
    .where(deliveries.c.delivered_at < sa.bindparam("until", type_=sa.Double))
    .group_by(deliveries.c.partner, _BUCKET)
)
_ALERT_COLUMNS = (alerts.c.id, alerts.c.rule, alerts.c.subject, alerts.c.severity, alerts.c.state, alerts.c.detail,
                  alerts.c.opened_at, alerts.c.resolved_at, alerts.c.notified_at, alerts.c.updated_at)
_SELECT_OPEN = sa.select(*_ALERT_COLUMNS).where(alerts.c.state == constant("open"))
_SELECT_OPEN_ONE = (sa.select(alerts.c.id).where(alerts.c.state == constant("open"))
                    .where(alerts.c.rule == sa.bindparam("rule")).where(alerts.c.subject == sa.bindparam("subject")))
_SELECT_UNNOTIFIED = (
    sa.select(*_ALERT_COLUMNS)
    .where(sa.or_(alerts.c.notified_at.is_(None), alerts.c.notified_at < alerts.c.updated_at))
    .where(alerts.c.updated_at >= sa.bindparam("since", type_=sa.Double))
    .order_by(alerts.c.updated_at, alerts.c.id)
)
_INSERT_ALERT = alerts.insert()
_RESOLVE = (
    alerts.update().where(alerts.c.id == sa.bindparam("alert_id")).where(alerts.c.state == constant("open"))
    .values(state=constant("resolved"), resolved_at=sa.bindparam("at", type_=sa.Double),
            updated_at=sa.bindparam("at", type_=sa.Double))
)
_MARK_NOTIFIED = (
    alerts.update().where(alerts.c.id == sa.bindparam("alert_id"))
    .values(notified_at=sa.bindparam("at", type_=sa.Double))
)


class AlertsMixin(StoreBase):
    """alert_statistics / open_alerts / record_alerts / unnotified_alerts / mark_alert_notified."""

    def alert_statistics(self, *, since: float, baseline_since: float, now: float, latency: bool) -> tuple[
            dict[str, tuple[int, int]], dict[str, dict[int, int]], dict[str, dict[int, int]]]:
        """Per partner since ``since``: (messages, failures); receipt-to-delivery histograms (bucket index of
        :data:`LATENCY_BOUNDS` -> deliveries) for ``since``..``now`` and ``baseline_since``..``since`` (when
        ``latency``)."""
        with self._read("reading alert statistics") as conn:
            outcomes = {p: (int(n), int(f or 0)) for p, n, f in conn.execute(_SELECT_OUTCOMES, {"since": since})}
            recent: dict[str, dict[int, int]] = {}
            baseline: dict[str, dict[int, int]] = {}
            if latency:
                for into, start, until in ((recent, since, now + 1), (baseline, baseline_since, since)):
                    for partner, bucket, count in conn.execute(_SELECT_LATENCIES, {"since": start, "until": until}):
                        into.setdefault(partner, {})[int(bucket)] = int(count)
        return outcomes, recent, baseline

    def open_alerts(self) -> dict[tuple[str, str], Alert]:
        """The open alerts by (rule, subject)."""
        with self._read("reading open alerts") as conn:
            return {(a.rule, a.subject): a for a in (Alert(*row) for row in conn.execute(_SELECT_OPEN))}

    def record_alerts(self, opening: Sequence[Opening], resolving: Sequence[tuple[Alert, str | None]],
                      now: float) -> list[str]:
        """Open and resolve alerts (resolving: with the partner each is about), each with its event, in one
        transaction; the ids of the rows changed. A (rule, subject) another node opened meanwhile is left
        alone, so it stays opened once."""
        changed: list[str] = []
        with self._write("recording alerts") as conn:
            for finding in opening:
                self._lock(conn, ("alert", finding.rule, finding.subject))
                if conn.execute(_SELECT_OPEN_ONE, {"rule": finding.rule, "subject": finding.subject}).first():
                    continue
                alert_id = new_id("alr", now)
                conn.execute(_INSERT_ALERT, {
                    "id": alert_id, "rule": finding.rule, "subject": finding.subject, "severity": finding.severity,
                    "state": "open", "detail": finding.detail, "opened_at": now, "resolved_at": None,
                    "notified_at": None, "updated_at": now})
                self._insert_events(conn, event_row("alert", finding.severity, now, None, None, None, finding.partner,
                                                    detail=f"{finding.rule} {finding.subject}: opened: {finding.detail}"))
                changed.append(alert_id)
            for alert, partner in resolving:
                if conn.execute(_RESOLVE, {"alert_id": alert.id, "at": now}).rowcount:
                    self._insert_events(conn, event_row(
                        "alert", alert.severity, now, None, None, None, partner,
                        detail=f"{alert.rule} {alert.subject}: resolved (open since {iso(alert.opened_at)})"))
                    changed.append(alert.id)
        return changed

    def unnotified_alerts(self, since: float) -> list[Alert]:
        """Changes since ``since`` the webhook has not taken yet, oldest first."""
        with self._read("reading alerts to notify") as conn:
            return [Alert(*row) for row in conn.execute(_SELECT_UNNOTIFIED, {"since": since})]

    def mark_alert_notified(self, alert_id: str, at: float) -> None:
        """The webhook took the alert's latest change."""
        with self._write("recording an alert notification") as conn:
            conn.execute(_MARK_NOTIFIED, {"alert_id": alert_id, "at": at})
