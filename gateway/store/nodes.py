"""State several gateway nodes share: schedule leases (one node runs the periodic jobs) and the MICs AS2 sends expect."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql as pg_dialect
from sqlalchemy.dialects import sqlite as sqlite_dialect

from gateway.store.base import StoreBase, now_or
from gateway.store.tables import as2_sent, schedule_leases


def _take_lease() -> dict[str, sa.Insert]:
    """Per dialect: create the lease, or take it over when it is ours or has lapsed; returns the owner if we hold it."""
    built = {}
    for name, insert in (("postgresql", pg_dialect.insert(schedule_leases)),
                         ("sqlite", sqlite_dialect.insert(schedule_leases))):
        built[name] = insert.on_conflict_do_update(
            index_elements=[schedule_leases.c.name],
            set_={"owner": insert.excluded.owner, "expires_at": insert.excluded.expires_at,
                  "updated_at": insert.excluded.updated_at},
            where=sa.or_(schedule_leases.c.owner == insert.excluded.owner,
                         schedule_leases.c.expires_at <= insert.excluded.updated_at),
        ).returning(schedule_leases.c.owner)
    return built


_TAKE_LEASE = _take_lease()
_RELEASE_LEASE = (
    schedule_leases.update()
    .where(schedule_leases.c.name == sa.bindparam("lease"))
    .where(schedule_leases.c.owner == sa.bindparam("holder"))
    .values(expires_at=0.0, updated_at=sa.bindparam("at", type_=sa.Double))
)
_LEASE_HOLDER = sa.select(schedule_leases.c.owner, schedule_leases.c.expires_at).where(
    schedule_leases.c.name == sa.bindparam("lease"))


def _remember_mic() -> dict[str, sa.Insert]:
    built = {}
    for name, insert in (("postgresql", pg_dialect.insert(as2_sent)), ("sqlite", sqlite_dialect.insert(as2_sent))):
        built[name] = insert.on_conflict_do_update(
            index_elements=[as2_sent.c.partner, as2_sent.c.as2_message_id],
            set_={"mic": insert.excluded.mic, "mic_algorithm": insert.excluded.mic_algorithm,
                  "delivery_id": insert.excluded.delivery_id, "created_at": insert.excluded.created_at})
    return built


_REMEMBER_MIC = _remember_mic()
_SENT_MIC = sa.select(as2_sent.c.mic, as2_sent.c.mic_algorithm, as2_sent.c.delivery_id).where(
    as2_sent.c.partner == sa.bindparam("p_partner")).where(as2_sent.c.as2_message_id == sa.bindparam("p_message"))


class NodesMixin(StoreBase):
    """hold_lease / release_lease / lease_holder / remember_sent_mic / sent_mic / forget_sent_mics."""

    def hold_lease(self, name: str, owner: str, *, seconds: float, now: float | None = None) -> bool:
        """Take or renew the lease ``name`` for ``seconds``: True when ``owner`` holds it now.

        The lease is free when nobody took it yet or its holder let it lapse (a node that died
        stops renewing it); one statement decides, so two nodes never both get it.
        """
        at = now_or(now)
        with self._write("taking a schedule lease") as conn:
            held = conn.execute(_TAKE_LEASE[conn.dialect.name], {
                "name": name, "owner": owner, "expires_at": at + seconds, "updated_at": at}).first()
        return held is not None

    def release_lease(self, name: str, owner: str, *, now: float | None = None) -> None:
        """Give the lease up (a clean stop): another node may take it at once."""
        with self._write("releasing a schedule lease") as conn:
            conn.execute(_RELEASE_LEASE, {"lease": name, "holder": owner, "at": now_or(now)})

    def lease_holder(self, name: str, *, now: float | None = None) -> str | None:
        """Who holds the lease now (None when nobody does)."""
        with self._read("reading a schedule lease") as conn:
            row = conn.execute(_LEASE_HOLDER, {"lease": name}).first()
        return row[0] if row is not None and row[1] > now_or(now) else None

    def remember_sent_mic(self, partner: str, as2_message_id: str, *, mic: str, mic_algorithm: str,
                          delivery_id: str | None, now: float | None = None) -> None:
        """Before an AS2 send: the MIC its MDN must return, for whichever node receives an async MDN."""
        with self._write("remembering an AS2 MIC") as conn:
            conn.execute(_REMEMBER_MIC[conn.dialect.name], {
                "partner": partner, "as2_message_id": as2_message_id, "mic": mic, "mic_algorithm": mic_algorithm,
                "delivery_id": delivery_id, "created_at": now_or(now)})

    def sent_mic(self, partner: str, as2_message_id: str) -> tuple[str, str, str | None] | None:
        """(MIC, algorithm, delivery id) a send to ``partner`` with this Message-ID expects, if one was remembered."""
        with self._read("reading an AS2 MIC") as conn:
            row = conn.execute(_SENT_MIC, {"p_partner": partner, "p_message": as2_message_id}).first()
        return (row[0], row[1], row[2]) if row is not None else None

    def forget_sent_mics(self, older_than: float) -> int:
        """Drop the MICs of sends made before ``older_than`` (epoch seconds; their MDNs are long settled)."""
        with self._write("pruning AS2 MICs") as conn:
            return conn.execute(as2_sent.delete().where(as2_sent.c.created_at < older_than)).rowcount
