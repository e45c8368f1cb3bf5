"""EDI control in the store: gap-free outbound control numbers, inbound interchange duplicates, expected acks."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from gateway.errors import IdempotencyConflict, StoreError
from gateway.model import Channel, DeliveryStatus, MessageStatus
from gateway.store.base import StoreBase, event_row, iso, new_id, now_or
from gateway.store.messages import _SELECT_MESSAGE, UPSERT_SEEN
from gateway.store.records import MessageRecord, message_record
from gateway.store.submissions import Submission, insert_submission
from gateway.store.tables import (
    CONTROL_LEVELS,
    ack_expectations,
    control_numbers,
    deliveries,
    documents,
    interchanges_seen,
    messages,
)

# The largest control number each format's envelopes can carry; the next one is 1 again.
# X12: ISA13 and GS06 are 9 digits; ST02 allows 4..9 characters, so its counter runs to 9 digits too.
# EDIFACT: 0020, 0048 and 0062 are an..14.
CONTROL_MAXIMUM = {"x12": 999_999_999, "edifact": 99_999_999_999_999}
ACK_OUTCOMES = ("accepted", "rejected", "partially_accepted")
DUPLICATE_ACTIONS = ("rejected", "processed")
_OPEN = ("pending", "overdue")


@dataclass(frozen=True, slots=True)
class Built:
    """What a ``build(next_number)`` callback returns: the interchange and the numbers it carries.

    ``message_groups`` (optional) is the group control number of each message, in the order of
    ``messages``; without it every message belongs to the only group, or to no known group.
    ``filename`` overrides the file name given to ``submit_interchange`` (it may hold a number).
    ``gateway.edi.serialize.Rendered`` has the same first four fields and may be returned as is.
    """

    raw: bytes
    interchange: str
    groups: list[str]
    messages: list[str]
    filename: str | None = None
    message_groups: list[str] | None = None


@dataclass(frozen=True, slots=True)
class AckResult:
    """One verdict of an inbound acknowledgment: on a message, a whole group (message None) or
    the whole interchange (group and message None)."""

    group: str | None
    message: str | None
    status: str          # accepted | rejected | partially_accepted
    detail: str = ""


@dataclass(frozen=True, slots=True)
class AckMatch:
    """An expectation an acknowledgment settled: ``late`` when it had already been reported overdue."""

    expectation_id: str
    message_id: str
    level: str
    interchange: str
    group_ref: str
    message_ref: str
    status: str
    late: bool


@dataclass(frozen=True, slots=True)
class AckExpectation:
    """An acknowledgment we expect (a row of ``ack_expectations``).

    status: pending, overdue, accepted, rejected or partially_accepted; ``ack_level`` is the
    level of the ack verdict that settled it (interchange, group or message).
    """

    id: str
    message_id: str
    partner: str
    format: str
    level: str
    interchange: str
    group_ref: str
    message_ref: str
    status: str
    due_at: float
    ack_message_id: str | None
    ack_level: str | None
    detail: str
    acked_at: float | None
    created_at: float
    updated_at: float


# -- statements, built once (see gateway.store.base) -------------------------------------

def _next_number_statements() -> dict[str, sa.Insert]:
    """Per dialect: create the counter at 1 or advance it (1 again after the maximum), returning it.

    ON CONFLICT DO UPDATE locks the counter row until the transaction ends, and a rolled-back
    transaction takes its increments with it: numbers are gap-free and never issued twice.
    """
    c = control_numbers.c
    built = {}
    for name, insert in (("postgresql", pg_dialect.insert(control_numbers)),
                         ("sqlite", sqlite_dialect.insert(control_numbers))):
        built[name] = insert.on_conflict_do_update(
            index_elements=[c.partner, c.format, c.level],
            set_={"last": sa.case((c.last >= sa.bindparam("maximum", type_=sa.BigInteger), 1), else_=c.last + 1),
                  "updated_at": insert.excluded.updated_at},
        ).returning(c.last)
    return built


def _set_number_statements() -> dict[str, sa.Insert]:
    built = {}
    for name, insert in (("postgresql", pg_dialect.insert(control_numbers)),
                         ("sqlite", sqlite_dialect.insert(control_numbers))):
        built[name] = insert.on_conflict_do_update(
            index_elements=[control_numbers.c.partner, control_numbers.c.format, control_numbers.c.level],
            set_={"last": insert.excluded["last"], "updated_at": insert.excluded.updated_at})
    return built


_NEXT_NUMBER = _next_number_statements()
_SET_NUMBER = _set_number_statements()
_PEEK_NUMBER = sa.select(control_numbers.c.last).where(
    control_numbers.c.partner == sa.bindparam("partner"), control_numbers.c.format == sa.bindparam("format"),
    control_numbers.c.level == sa.bindparam("level"))

_SUBMITTED = (
    sa.select(documents.c.message_id, deliveries.c.id)
    .select_from(documents.outerjoin(deliveries, sa.and_(deliveries.c.document_id == documents.c.id,
                                                         deliveries.c.target == sa.bindparam("target"))))
    .where(documents.c.idempotency_key == sa.bindparam("key"))
)
_COUNT_MESSAGES = sa.select(sa.func.count()).select_from(messages).where(
    messages.c.id.in_(sa.bindparam("ids", expanding=True)))

_SEEN = sa.select(interchanges_seen.c.control_number, interchanges_seen.c.message_id).where(
    interchanges_seen.c.partner == sa.bindparam("partner"), interchanges_seen.c.format == sa.bindparam("format"),
    interchanges_seen.c.sender == sa.bindparam("sender"),
    interchanges_seen.c.control_number.in_(sa.bindparam("numbers", expanding=True)),
    interchanges_seen.c.seen_at >= sa.bindparam("since"))

_ACK_COLUMNS = tuple(ack_expectations.c[name] for name in AckExpectation.__slots__)  # type: ignore[attr-defined]
_ACK_SELECT = sa.select(*_ACK_COLUMNS)
_ACKS_OF = _ACK_SELECT.where(ack_expectations.c.message_id == sa.bindparam("message_id")).order_by(
    ack_expectations.c.created_at, ack_expectations.c.id)
_ACKS_OF_INTERCHANGES = _ACK_SELECT.where(
    ack_expectations.c.partner == sa.bindparam("partner"), ack_expectations.c.format == sa.bindparam("format"),
    ack_expectations.c.interchange.in_(sa.bindparam("interchanges", expanding=True)))
# An ack that does not name our interchange (a 997 names only GS06 and ST02): find the
# interchanges its groups (else its messages) belong to, then read those whole.
_INTERCHANGES_BY = {column: sa.select(ack_expectations.c.interchange).distinct().where(
    ack_expectations.c.partner == sa.bindparam("partner"), ack_expectations.c.format == sa.bindparam("format"),
    ack_expectations.c[column].in_(sa.bindparam("refs", expanding=True))) for column in ("group_ref", "message_ref")}
_SETTLE = ack_expectations.update().where(ack_expectations.c.id == sa.bindparam("e_id")).values(
    status=sa.bindparam("e_status"), detail=sa.bindparam("e_detail"), ack_message_id=sa.bindparam("e_ack"),
    ack_level=sa.bindparam("e_level"), acked_at=sa.bindparam("e_at"), updated_at=sa.bindparam("e_at"))
_DUE = (_ACK_SELECT.where(ack_expectations.c.status == "pending", ack_expectations.c.due_at <= sa.bindparam("now"))
        .order_by(ack_expectations.c.due_at, ack_expectations.c.id).limit(sa.bindparam("limit")))
_MARK_OVERDUE = (ack_expectations.update()
                 .where(ack_expectations.c.id.in_(sa.bindparam("ids", expanding=True)),
                        ack_expectations.c.status == "pending")
                 .values(status="overdue", updated_at=sa.bindparam("at"))
                 .returning(ack_expectations.c.id))


def _refs(values: Sequence[str], limit: int = 10) -> str:
    """A short list for event details: thousands of message refs would drown the log."""
    shown = ", ".join(values[:limit])
    return shown + (f" (+{len(values) - limit} more)" if len(values) > limit else "") if values else "-"


def _rank(level: str, source: str) -> int:
    """How specific a verdict from ``source`` is for a row of ``level``: more specific ones win.

    A message row: its own verdict (message) > its group's > its interchange's. The
    interchange row: a verdict on the interchange > one implied by its messages' verdicts.
    """
    if level == "message":
        return {"interchange": 0, "group": 1, "message": 2}[source]
    return 1 if source == "interchange" else 0


class _Counter:
    """The ``next_number`` handed to a build callback: valid only inside its transaction."""

    def __init__(self, conn: sa.Connection, partner: str, fmt: str, at: float) -> None:
        self._conn, self._partner, self._format, self._at = conn, partner, fmt, at
        self._statement = _NEXT_NUMBER[conn.dialect.name]
        self.issued: list[tuple[str, int]] = []
        self.open = True

    def __call__(self, level: str) -> int:
        if not self.open:
            raise StoreError("next_number used after submit_interchange's transaction ended")
        if level not in CONTROL_LEVELS:
            raise StoreError(f"unknown control number level {level!r} (known: {', '.join(CONTROL_LEVELS)})")
        value = self._conn.execute(self._statement, {
            "partner": self._partner, "format": self._format, "level": level, "last": 1,
            "updated_at": self._at, "maximum": CONTROL_MAXIMUM[self._format]}).scalar_one()
        self.issued.append((level, value))
        return int(value)


def _maximum(fmt: str) -> int:
    try:
        return CONTROL_MAXIMUM[fmt]
    except KeyError:
        raise StoreError(f"no control numbers for format {fmt!r} (known: {', '.join(CONTROL_MAXIMUM)})") from None


def _check_built(built: Any) -> tuple[bytes, str, list[str], list[str], str | None, list[str] | None]:
    try:
        raw, interchange = built.raw, built.interchange
        groups, refs = [str(g) for g in built.groups], [str(m) for m in built.messages]
    except (AttributeError, TypeError) as e:
        raise StoreError(f"build() must return a Built (raw, interchange, groups, messages): {e}") from None
    if not isinstance(raw, bytes) or not raw or not isinstance(interchange, str) or not interchange:
        raise StoreError("build() returned no bytes or no interchange control number")
    message_groups = getattr(built, "message_groups", None)
    if message_groups is not None and len(message_groups) != len(refs):
        raise StoreError(f"build() gave {len(message_groups)} message group(s) for {len(refs)} message(s)")
    return raw, interchange, groups, refs, getattr(built, "filename", None), message_groups


class EdiMixin(StoreBase):
    """submit_interchange / control numbers / seen_interchanges / record_interchanges / match_ack / overdue_acks."""

    # ---------------------------------------------------------------- outbound interchanges

    def submit_interchange(
        self,
        *,
        partner: str,
        target: str,
        format: str,  # noqa: A002 - the column's name
        build: Callable[[Callable[[str], int]], Built],
        filename: str,
        document_type: str = "edi",
        idempotency_key: str | None,
        channel: Channel = Channel.API,
        expect_ack_within: float | None = None,
        related: Iterable[str] = (),
        standard: str = "",
        submission: Submission | None = None,
        number: str = "",
        now: float | None = None,
    ) -> tuple[MessageRecord, str]:
        """Number, store and queue an outbound interchange in one transaction; ``(message, delivery_id)``.

        ``build(next_number)`` runs inside the write transaction; ``next_number(level)`` (level
        interchange, group or message) advances this partner's counter for ``format``, so the
        numbers are gap-free across threads, processes and nodes, and an exception from
        ``build`` rolls them back. A repeated ``idempotency_key`` returns the first submission
        (no new numbers). ``expect_ack_within`` (seconds): expect an acknowledgment for the
        interchange and each message by then (see ``overdue_acks``). ``related``: ids of the
        inbound messages this one answers (an acknowledgment); each gets an "ack-sent" event.
        ``submission``: the API request it came from, recorded with it (gateway/store/submissions.py).
        ``number``: the document number(s) it carries (searched by operators; default the file name).
        """
        at = now_or(now)
        _maximum(format)
        if expect_ack_within is not None and not expect_ack_within > 0:
            raise StoreError(f"expect_ack_within must be positive seconds, not {expect_ack_within!r}")
        related = list(dict.fromkeys(related))
        channel_value = Channel(channel).value
        # Namespaced: the documents' idempotency keys are unique across every partner and source.
        key = (hashlib.sha256(f"interchange\0{partner}\0{idempotency_key}".encode()).hexdigest()[:32]
               if idempotency_key else None)
        with self._write("queueing an outbound interchange", durable=True) as conn:
            if key is not None:
                self._lock(conn, ("outbound", partner, key))
                found = conn.execute(_SUBMITTED, {"key": key, "target": target}).first()
                if found is not None:
                    if found[1] is None:
                        raise IdempotencyConflict(f"idempotency key {idempotency_key!r} was used for another target "
                                                  f"than {target!r} (message {found[0]})", partner=partner)
                    self._insert_events(conn, event_row(
                        "submitted", "duplicate", at, found[0], None, found[1], partner,
                        detail=f"{filename}: already queued (idempotency key {idempotency_key})"))
                    return message_record(conn.execute(_SELECT_MESSAGE, {"message_id": found[0]}).one()), found[1]
            if related and conn.execute(_COUNT_MESSAGES, {"ids": related}).scalar_one() != len(related):
                raise StoreError(f"related messages not all known: {', '.join(related)}", partner=partner)
            # Serialises every build for this partner and format (PostgreSQL) before the first
            # counter row is touched: callbacks may ask for levels in any order without deadlocks.
            self._lock(conn, ("control-numbers", partner, format))
            counter = _Counter(conn, partner, format, at)
            try:
                built = build(counter)
            finally:
                counter.open = False
            raw, interchange, groups, refs, override, message_groups = _check_built(built)
            filename = override or filename
            sha = self.blobs.put(raw)
            message_id, delivery_id = new_id("msg", at), new_id("dlv", at)
            document_id = "out_" + (key[:24] if key else message_id[4:])
            conn.execute(messages.insert(), {
                "id": message_id, "partner": partner, "channel": channel_value, "filename": filename,
                "source_ref": f"out:{key or message_id}", "raw_sha256": sha, "size": len(raw),
                "status": MessageStatus.PROCESSED.value, "duplicate_of": None, "format": format,
                "standard": standard, "interchange": interchange, "received_at": at, "updated_at": at, "error": None,
            })
            conn.execute(documents.insert(), {
                "id": document_id, "message_id": message_id, "partner": partner, "type": document_type,
                "number": number or filename, "position": 0, "idempotency_key": key or f"interchange:{message_id}",
                "blob_sha256": sha, "created_at": at, "updated_at": at,
            })
            if submission is not None:
                insert_submission(conn, message_id, submission, at)
            conn.execute(deliveries.insert(), {
                "id": delivery_id, "document_id": document_id, "partner": partner, "target": target,
                "status": DeliveryStatus.QUEUED.value, "attempts": 0, "next_attempt_at": at, "lease_owner": None,
                "lease_expires_at": None, "delivered_at": None, "created_at": at, "updated_at": at,
            })
            detail = (f"{channel_value} {filename} ({len(raw)} bytes) for {target}: {format} interchange "
                      f"{interchange}, group(s) {_refs(groups)}, message(s) {_refs(refs)}")
            if expect_ack_within is not None:
                due = at + expect_ack_within
                self._expect(conn, message_id, partner, format, interchange, groups, refs, message_groups, due, at)
                detail += f"; acknowledgment expected by {iso(due)}"
            if related:
                detail += f"; answers {_refs(related)}"
            logged = [event_row("submitted", "ok", at, message_id, document_id, None, partner, detail=detail),
                      event_row("queued", "ok", at, message_id, document_id, delivery_id, partner,
                                detail=f"target {target}")]
            logged += [event_row("ack-sent", "ok", at, inbound, None, None, partner,
                                 detail=f"{document_type} interchange {interchange} ({message_id}) queued for {target}")
                       for inbound in related]
            self._insert_events(conn, logged)
            return message_record(conn.execute(_SELECT_MESSAGE, {"message_id": message_id}).one()), delivery_id

    @staticmethod
    def _expect(conn: sa.Connection, message_id: str, partner: str, fmt: str, interchange: str, groups: list[str],
                refs: list[str], message_groups: list[str] | None, due: float, at: float) -> None:
        """One pending expectation for the interchange and one per message."""
        if message_groups is None:
            message_groups = [groups[0] if len(groups) == 1 else ""] * len(refs)
        rows = [("interchange", "", "")] + [("message", str(g), r) for g, r in zip(message_groups, refs)]
        conn.execute(ack_expectations.insert(), [{
            "id": new_id("ack", at), "message_id": message_id, "partner": partner, "format": fmt, "level": level,
            "interchange": interchange, "group_ref": group, "message_ref": ref, "status": "pending", "due_at": due,
            "ack_message_id": None, "ack_level": None, "detail": "", "acked_at": None, "created_at": at,
            "updated_at": at} for level, group, ref in rows])

    def peek_control_number(self, partner: str, format: str, level: str) -> int:  # noqa: A002
        """The last control number issued for this partner, format and level (0: none yet)."""
        with self._read("reading a control number") as conn:
            value = conn.execute(_PEEK_NUMBER, {"partner": partner, "format": format, "level": level}).scalar()
        return int(value or 0)

    def set_control_number(self, partner: str, format: str, level: str, last: int, *,  # noqa: A002
                           now: float | None = None) -> None:
        """Make ``last`` the last number issued (the next is ``last + 1``), e.g. when moving from another
        system; logged as a "control-number-set" event for the partner."""
        at = now_or(now)
        maximum = _maximum(format)
        if level not in CONTROL_LEVELS or not 0 <= int(last) <= maximum:
            raise StoreError(f"cannot set the {level!r} control number to {last!r} (0..{maximum})", partner=partner)
        with self._write("setting a control number") as conn:
            self._lock(conn, ("control-numbers", partner, format))
            before = conn.execute(_PEEK_NUMBER, {"partner": partner, "format": format, "level": level}).scalar()
            conn.execute(_SET_NUMBER[conn.dialect.name], {"partner": partner, "format": format, "level": level,
                                                          "last": int(last), "updated_at": at})
            self._insert_events(conn, event_row("control-number-set", "ok", at, None, None, None, partner,
                                                detail=f"{format} {level}: last issued {before or 0} -> {last}"))

    # ---------------------------------------------------------------- inbound duplicates

    def seen_interchanges(self, partner: str, format: str, sender: str,  # noqa: A002
                          control_numbers: Sequence[str], *, window: float, exclude_message_id: str | None = None,
                          now: float | None = None) -> dict[str, str]:
        """Control numbers already received from this sender within ``window`` seconds -> the message id
        that carried them last. ``exclude_message_id``: the message being (re)processed itself."""
        if not control_numbers:
            return {}
        at = now_or(now)
        with self._read("looking up interchange control numbers") as conn:
            rows = conn.execute(_SEEN, {"partner": partner, "format": format, "sender": sender,
                                        "numbers": list(dict.fromkeys(control_numbers)), "since": at - window}).all()
        return {number: carrier for number, carrier in rows if carrier != exclude_message_id}

    def record_interchanges(self, partner: str, format: str, sender: str,  # noqa: A002
                            control_numbers: Sequence[str], message_id: str, *, now: float | None = None) -> None:
        """Remember control numbers as received in ``message_id`` now (insert or refresh).

        ``record_processed(control_numbers=...)`` does the same inside its own transaction;
        prefer that on the inbound path (one commit instead of two).
        """
        if not control_numbers:
            return
        at = now_or(now)
        with self._write("recording interchange control numbers") as conn:
            conn.execute(UPSERT_SEEN[conn.dialect.name], [
                {"partner": partner, "format": format, "sender": sender, "control_number": number,
                 "message_id": message_id, "seen_at": at} for number in dict.fromkeys(control_numbers)])

    def note_duplicate_interchange(self, message_id: str, partner: str, control_number: str,
                                   earlier_message_id: str, action: str, *, now: float | None = None) -> None:
        """Log a "duplicate-interchange" event on the message (outcome = ``action``: rejected or
        processed) and on the earlier message that carried the same control number."""
        if action not in DUPLICATE_ACTIONS:
            raise StoreError(f"unknown duplicate action {action!r} (known: {', '.join(DUPLICATE_ACTIONS)})")
        at = now_or(now)
        with self._write("logging a duplicate interchange") as conn:
            self._insert_events(conn, [
                event_row("duplicate-interchange", action, at, message_id, None, None, partner,
                          detail=f"interchange {control_number} was already received in {earlier_message_id} "
                          f"({action})"),
                event_row("duplicate-interchange", action, at, earlier_message_id, None, None, partner,
                          detail=f"interchange {control_number} received again in {message_id} ({action})"),
            ])

    # ---------------------------------------------------------------- acknowledgments

    def acks_of(self, message_id: str) -> list[AckExpectation]:
        """The acknowledgments expected for an outbound message: its interchange first, then its messages."""
        with self._read("listing expected acknowledgments") as conn:
            return [AckExpectation(*r) for r in conn.execute(_ACKS_OF, {"message_id": message_id}).all()]

    def overdue_acks(self, *, now: float | None = None, limit: int = 100) -> list[AckExpectation]:
        """Mark pending expectations past their due time ``overdue`` and return them (each only once).

        Logs one "ack-overdue" event (outcome failed) per outbound message. An overdue row
        still matches a late acknowledgment.
        """
        at = now_or(now)
        with self._write("marking overdue acknowledgments") as conn:
            self._lock(conn, ("ack-overdue",))
            due = [AckExpectation(*r) for r in conn.execute(_DUE, {"now": at, "limit": limit}).all()]
            if not due:
                return []
            marked = {r[0] for r in conn.execute(_MARK_OVERDUE, {"ids": [e.id for e in due], "at": at}).all()}
            overdue = [replace(e, status="overdue", updated_at=at) for e in due if e.id in marked]
            by_message: dict[str, list[AckExpectation]] = {}
            for e in overdue:
                by_message.setdefault(e.message_id, []).append(e)
            self._insert_events(conn, [
                event_row("ack-overdue", "failed", at, message_id, None, None, rows[0].partner,
                          detail=f"no acknowledgment by {iso(min(e.due_at for e in rows))} for "
                          + "; ".join(_describe(e) for e in rows[:10])
                          + (f" (+{len(rows) - 10} more)" if len(rows) > 10 else ""))
                for message_id, rows in by_message.items()])
            return overdue

    def match_ack(self, *, partner: str, format: str, interchange: str | None,  # noqa: A002
                  results: Sequence[AckResult], ack_message_id: str, now: float | None = None) -> list[AckMatch]:
        """Settle the expectations an inbound acknowledgment answers; returns what it settled.

        ``interchange``: our interchange control number the ack names (None when it names
        only groups and messages, as a 997 does). A verdict on a group or an interchange also
        settles the messages in it that have no verdict of their own (rejected if it is
        rejected, else accepted); the interchange row follows its messages when the ack
        does not judge it directly. A more specific verdict is never overwritten by a less
        specific one, so a TA1 after a 997 keeps the 997's verdicts. Pending and overdue rows
        match (a late ack); a repeated ack settles again. Logs "acknowledged" (ok when all it
        settled was accepted, else failed) on each outbound message and "ack-matched" on the
        ack message, or "ack-unmatched" (failed) on the ack message when nothing matched.
        """
        at = now_or(now)
        for r in results:
            if r.status not in ACK_OUTCOMES:
                raise StoreError(f"unknown acknowledgment status {r.status!r} (known: {', '.join(ACK_OUTCOMES)})")
        with self._write("matching an acknowledgment") as conn:
            self._lock(conn, ("acks", partner, format))
            rows = self._ack_candidates(conn, partner, format, interchange, results)
            plan = _plan(rows, interchange, results)
            matches = [AckMatch(e.id, e.message_id, e.level, e.interchange, e.group_ref, e.message_ref, status,
                                e.status == "overdue") for e, (status, _, _) in plan.items()]
            if not plan:
                wanted = "; ".join(f"group {r.group or '-'} message {r.message or '-'} {r.status}" for r in results)
                self._insert_events(conn, event_row(
                    "ack-unmatched", "failed", at, ack_message_id, None, None, partner,
                    detail=f"{format} interchange {interchange or '-'}: no expected acknowledgment matches "
                    f"({wanted or 'no verdicts'})"))
                return []
            conn.execute(_SETTLE, [{"e_id": e.id, "e_status": status, "e_detail": detail, "e_ack": ack_message_id,
                                    "e_level": source, "e_at": at} for e, (status, detail, source) in plan.items()])
            self._insert_events(conn, self._ack_events(plan, ack_message_id, partner, at))
        return sorted(matches, key=lambda m: (m.message_id, m.level != "interchange", m.message_ref, m.expectation_id))

    @staticmethod
    def _ack_candidates(conn: sa.Connection, partner: str, fmt: str, interchange: str | None,
                        results: Sequence[AckResult]) -> list[AckExpectation]:
        """Every expectation row of the interchanges the ack can be about (whole, for the aggregate)."""
        if interchange:
            interchanges = [interchange]
        else:
            interchanges = []
            for column, refs in (("group_ref", {r.group for r in results if r.group}),
                                 ("message_ref", {r.message for r in results if r.message})):
                if refs and not interchanges:   # messages only when the groups found nothing
                    interchanges = list(conn.execute(_INTERCHANGES_BY[column], {
                        "partner": partner, "format": fmt, "refs": sorted(refs)}).scalars())
            if not interchanges:
                return []
        return [AckExpectation(*r) for r in conn.execute(_ACKS_OF_INTERCHANGES, {
            "partner": partner, "format": fmt, "interchanges": interchanges}).all()]

    @staticmethod
    def _ack_events(plan: dict[AckExpectation, tuple[str, str, str]], ack_message_id: str, partner: str,
                    at: float) -> list[dict]:
        by_message: dict[str, list[tuple[AckExpectation, str, str]]] = {}
        for e, (status, detail, _) in plan.items():
            by_message.setdefault(e.message_id, []).append((e, status, detail))
        logged = []
        for message_id, settled in by_message.items():
            settled.sort(key=lambda item: (item[0].level != "interchange", item[0].message_ref))
            late = any(e.status == "overdue" for e, _, _ in settled)
            accepted = [e.message_ref for e, s, _ in settled if e.level == "message" and s == "accepted"]
            parts = [f"interchange {e.interchange} {s}" + (f": {d}" if d else "")
                     for e, s, d in settled if e.level == "interchange"]
            if accepted:
                parts.append(f"message(s) {_refs(accepted)} accepted")
            parts += [f"message {e.message_ref} {s}" + (f": {d}" if d else "")
                      for e, s, d in settled if e.level == "message" and s != "accepted"][:20]
            ok = all(s == "accepted" for _, s, _ in settled)
            logged.append(event_row("acknowledged", "ok" if ok else "failed", at, message_id, None, None, partner,
                                    detail=f"by {ack_message_id}{' (late)' if late else ''}: " + "; ".join(parts)))
        interchanges = sorted({(e.message_id, e.interchange) for e in plan})
        logged.append(event_row("ack-matched", "ok", at, ack_message_id, None, None, partner,
                                detail="acknowledges " + ", ".join(f"{m} (interchange {i})" for m, i in interchanges)))
        return logged


def _describe(e: AckExpectation) -> str:
    if e.level == "interchange":
        return f"interchange {e.interchange}"
    return f"message {e.message_ref}" + (f" (group {e.group_ref})" if e.group_ref else "")


def _plan(rows: list[AckExpectation], interchange: str | None,
          results: Sequence[AckResult]) -> dict[AckExpectation, tuple[str, str, str]]:
    """Which rows an ack settles: row -> (status, detail, level of the verdict). Pure."""
    plan: dict[AckExpectation, tuple[str, str, str]] = {}

    def settle(row: AckExpectation, status: str, detail: str, source: str) -> None:
        # Within one ack the first verdict on a row stands; across acks the more specific wins.
        if row in plan:
            return
        if row.status not in _OPEN and row.ack_level and _rank(row.level, source) < _rank(row.level, row.ack_level):
            return
        plan[row] = (status, detail, source)

    message_rows = [e for e in rows if e.level == "message"]
    for r in results:
        if r.message is None:
            continue
        found = [e for e in message_rows if e.message_ref == r.message
                 and (r.group is None or not e.group_ref or e.group_ref == r.group)]
        if found:  # after a wrap several interchanges may share a ref: the exact group, then the newest
            best = max(found, key=lambda e: (r.group is not None and e.group_ref == r.group, e.created_at, e.id))
            settle(best, r.status, r.detail, "message")
    for r in results:
        if r.message is not None or r.group is None:
            continue
        in_group = [e for e in message_rows if e.group_ref == r.group]
        if in_group and interchange is None:  # the newest interchange that used this group number
            newest = max(in_group, key=lambda e: (e.created_at, e.id)).interchange
            in_group = [e for e in in_group if e.interchange == newest]
        for e in in_group:
            settle(e, "rejected" if r.status == "rejected" else "accepted", r.detail if r.status != "accepted" else "",
                   "group")
    for r in results:
        if r.message is not None or r.group is not None or not interchange:
            continue
        for e in rows:
            if e.level == "interchange":
                settle(e, r.status, r.detail, "interchange")
        for e in message_rows:
            settle(e, "rejected" if r.status == "rejected" else "accepted", r.detail if r.status != "accepted" else "",
                   "interchange")
    # The interchange row follows its messages once every one of them has a verdict.
    touched = {e.interchange for e in plan if e.level == "message"}
    for head in (e for e in rows if e.level == "interchange" and e.interchange in touched and e not in plan):
        statuses = [plan[e][0] if e in plan else e.status for e in message_rows if e.interchange == head.interchange
                    and e.message_id == head.message_id]
        if statuses and not any(s in _OPEN for s in statuses):
            status = (statuses[0] if len(set(statuses)) == 1 and statuses[0] != "partially_accepted"
                      else "partially_accepted")
            settle(head, status, "", "message")
    return plan
