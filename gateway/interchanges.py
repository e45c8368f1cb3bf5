"""Around the pipeline, with the store: duplicate interchanges, partners' acknowledgments matched, ours queued.

Blocking (call off the event loop). Acknowledgments are written only after the inbound
message's outcome is committed, and go out through the partner's channel as an outbound
interchange with gap-free control numbers (``Store.submit_interchange``).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, Callable

import structlog

from .config import Deployment, Partner
from .edi.acks import Checked, ack_envelope, contrl, failed, x12_acks
from .edi.acks_read import Fault
from .edi.serialize import render
from .errors import DuplicateError, GatewayError, ParseError
from .model import Channel
from .pipeline import ACK_TYPES, Outcome
from .store import AckResult, Store

log = structlog.get_logger("gateway.interchanges")
Write = Callable[..., Any]


def _sender(interchange: Any) -> str:
    return f"{interchange.sender.qualifier}:{interchange.sender.id}"


def control_numbers(outcome: Outcome) -> list[tuple[str, str]]:
    """(sender, interchange control number) of every interchange, for the duplicate register."""
    return [(_sender(i), i.control_number) for i in outcome.interchanges]


def check_duplicates(store: Store, deployment: Deployment, message_id: str, outcome: Outcome,
                     write: Write) -> DuplicateError | None:
    """Note every interchange this partner already sent within its window; the error when the partner rejects them."""
    partner = deployment.partners[outcome.partner]
    window = deployment.duplicate_window_seconds(partner)
    if window <= 0:
        return None
    action = "rejected" if partner.edi.duplicates == "reject" else "processed"
    repeated: list[tuple[str, Any]] = []
    for interchange in outcome.interchanges:
        seen = store.seen_interchanges(partner.id, outcome.format, _sender(interchange), [interchange.control_number],
                                       window=window, exclude_message_id=message_id)
        for number, earlier in seen.items():
            write(store.note_duplicate_interchange, message_id, partner.id, number, earlier, action)
            repeated.append((f"interchange {number} from {_sender(interchange)} (first in message {earlier})",
                             interchange))
    if not repeated or action != "rejected":
        return None
    error = DuplicateError("duplicate interchange control number: " + "; ".join(i for i, _ in repeated)
                           + f" — set [edi] duplicates = \"process\" in {partner.file} to accept repeats",
                           partner=partner.id)
    # Answered like an envelope fault: TA1 025 / CONTRL UCI 4 with 0085 code 26 "duplicate detected".
    error.checked = [Checked(interchange, error=ParseError(text), fault=Fault("interchange", "duplicate", text))
                     for text, interchange in repeated]
    return error


def match_acknowledgments(store: Store, message_id: str, outcome: Outcome, write: Write) -> int:
    """Settle what we sent with the partner's 997/999/CONTRL/APERAK/TA1 verdicts; returns how many matched."""
    by_interchange: dict[str | None, list[AckResult]] = {}
    for report in outcome.acks:
        by_interchange.setdefault(report.interchange, []).append(
            AckResult(report.group, report.message, report.status, report.detail))
    matched = 0
    for interchange, results in by_interchange.items():
        matched += len(write(store.match_ack, partner=outcome.partner, format=outcome.format, interchange=interchange,
                             results=results, ack_message_id=message_id))
    return matched


def _ta1(partner: Partner, checked: Checked) -> bool | None:
    """True/False force a TA1; None lets the builder write one only when the envelope is at fault."""
    if partner.edi.ta1 == "always":
        return True
    if partner.edi.ta1 == "requested" and checked.interchange is not None and checked.interchange.ack_requested:
        return True
    return None


def send_acknowledgments(store: Store, deployment: Deployment, message_id: str, partner_id: str | None,
                         checked: list[Checked], write: Write) -> list[str]:
    """Queue our acknowledgment of each checked interchange when the partner file asks for them; delivery ids."""
    partner = deployment.partners.get(partner_id or "")
    if partner is None or not partner.edi.acknowledge:
        return []
    target = deployment.reply_target(partner)
    if target is None:
        write(store.event, "acknowledgment", "error", message_id=message_id, partner=partner.id,
              detail=f"not sent: {partner.id} has no channel to reach them (AS2 url, SFTP upload_dir or an outbox)")
        return []
    queued: list[str] = []
    at = datetime.now(timezone.utc)
    for check in checked:
        interchange = check.interchange
        if interchange is None or interchange.format not in ("edifact", "x12"):
            continue
        if check.messages and all(m.type in ACK_TYPES for m in check.messages) and check.error is None:
            continue   # acknowledgments are never acknowledged: two gateways would answer each other forever
        statuses = [check.status(m) for m in check.messages]
        if not partner.edi.acknowledge_accepted and check.error is None and all(s == "accepted" for s in statuses):
            continue
        if interchange.format == "x12":
            acks = x12_acks(check, kind=partner.edi.x12_acknowledgment, ta1=_ta1(partner, check))
            first = check.messages[0] if check.messages else None
            envelope = ack_envelope(check, at, leading=acks.leading,   # GS02/GS03 answer theirs, swapped
                                    application_sender=first.group_recipient if first else "",
                                    application_recipient=first.group_sender if first else "")
            messages = acks.messages
            if not acks.leading and not messages:
                continue
        else:
            message = contrl(check)
            if message is None:
                continue
            envelope, messages = ack_envelope(check, at), [message]
        kinds = ", ".join(dict.fromkeys([m.type for m in messages] + (["TA1"] if envelope.leading else [])))
        verdict = "error" if check.error is not None else ",".join(statuses)
        key = hashlib.sha256(f"ack\0{message_id}\0{interchange.control_number}\0{verdict}".encode()).hexdigest()[:32]
        try:
            _message, delivery_id = write(
                store.submit_interchange, partner=partner.id, target=target, format=interchange.format,
                build=lambda next_number, e=envelope, m=messages: render(e, m, next_number),
                filename=f"ack-{interchange.control_number}.{'x12' if interchange.format == 'x12' else 'edi'}",
                document_type="acknowledgment", idempotency_key=key, channel=Channel.API, related=[message_id],
                standard=kinds)
        except GatewayError as exc:   # an ack that cannot be written must not undo the inbound outcome
            write(store.event, "acknowledgment", "error", message_id=message_id, partner=partner.id,
                  detail=f"{kinds} for interchange {interchange.control_number} not sent: {exc}")
            log.warning("acknowledgment not sent", message_id=message_id, partner=partner.id, error=str(exc))
            continue
        queued.append(delivery_id)
    return queued


def checked_of_failure(raw: bytes, error: GatewayError) -> list[Checked]:
    """What a refused file can still be acknowledged with: the validator's findings, or the envelope around a parse error."""
    found = getattr(error, "checked", None)
    if found:
        return list(found)
    if isinstance(error, ParseError):
        return failed(raw, error)
    return []


def overdue(store: Store, write: Write) -> int:
    """Report acknowledgments that did not arrive in time (each once, as an event); returns how many."""
    rows = write(store.overdue_acks)
    for row in rows:
        log.warning("acknowledgment overdue", message_id=row.message_id, partner=row.partner,
                    interchange=row.interchange, message_ref=row.message_ref)
    return len(rows)
