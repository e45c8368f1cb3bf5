"""Bytes in, canonical documents out: detect, parse, check the sender, validate, map, route. Pure and synchronous."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from typing import Any

from . import canonical, edi
from .config import Deployment, Partner
from .config_routes import sequence_key
from .edi.acks import Checked, issue_from_error
from .edi.acks_read import AckReport, read_ack
from .edi.detect import detect
from .edi.model import Interchange, Issue, Message
from .edi.validate import validate
from .edi.xml import identify, parse_xml
from .errors import GatewayError, MappingError, PartnerError, RoutingError, ValidationError
from .mapping.xml import require_xml_mapping
from .model import Document

ENVELOPE_VERSION = 1
# Acknowledgments a partner sends about what we sent: matched, never mapped or routed.
ACK_TYPES = frozenset({"997", "999", "CONTRL", "APERAK", "TA1"})
# How many issues the error text of a wholly rejected file spells out (all are in the acknowledgment).
SHOWN_ISSUES = 5


@dataclass(frozen=True)
class Outcome:
    """What the pipeline made of one received message."""

    partner: str
    format: str
    standard: str        # e.g. "ORDERS D96A" or "850 004010"; several kinds joined by ", "
    interchange: str     # control number(s) of the interchange(s)
    documents: list[Document]
    checked: list[Checked] = field(default_factory=list)    # per interchange: drives our acknowledgment
    acks: list[AckReport] = field(default_factory=list)     # the partner's acknowledgments of what we sent
    interchanges: list[Interchange] = field(default_factory=list)

    @property
    def rejected(self) -> list[tuple[Message, list[Issue]]]:
        """Messages refused (structure, partner rules or mapping) while others went through."""
        return [(m, c.issues[c.key(m)]) for c in self.checked for m in c.messages
                if c.status(m) == "rejected" and c.key(m) in c.issues]


def idempotency_key(partner: str, raw_sha256: str, position: int) -> str:
    """Stable across retries and replays: the same stored bytes always give the same keys."""
    return hashlib.sha256(f"{partner}\0{raw_sha256}\0{position}".encode()).hexdigest()[:32]


def _partner(deployment: Deployment, partner_id: str | None, format: str, sender_qualifier: str, sender_id: str) -> Partner:
    if partner_id is None:
        partner = deployment.partner_for_sender(format, sender_qualifier, sender_id)
        if partner is None:
            raise PartnerError(f"unknown partner: no partner file lists {format} sender {sender_qualifier}:{sender_id}")
    else:
        partner = _known(deployment, partner_id)
        if not partner.owns(format, sender_qualifier, sender_id):
            # A file in one partner's inbox/account claiming another sender is refused: isolation.
            raise PartnerError(f"interchange sender {sender_qualifier}:{sender_id} is not an identifier of partner "
                               f"{partner.id} (add it to [identifiers] {format} in {partner.file})", partner=partner.id)
    if not partner.enabled:
        raise PartnerError(f"partner {partner.id} is disabled in {partner.file}", partner=partner.id)
    return partner


def _known(deployment: Deployment, partner_id: str) -> Partner:
    partner = deployment.partners.get(partner_id)
    if partner is None:
        raise PartnerError(f"unknown partner {partner_id!r}: no valid partners/{partner_id}.toml")
    return partner


@dataclass
class _Run:
    """One run's fixed context: who sent it, how, and the raw bytes' identity for idempotency keys."""

    deployment: Deployment
    channel: str
    message_id: str
    raw_sha256: str

    def document(self, partner: Partner, mapping: Any, body: dict, position: int, source: dict[str, str],
                 at: Message | None) -> Document:
        """The routed, schema-checked canonical document for one mapped message."""
        where = {"segment": at.segments[0].number, "tag": at.segments[0].tag} if at is not None else {}
        targets = partner.targets_for(mapping.document, body)
        if not targets:
            if any(route.document in (mapping.document, "*") for route in partner.routes):
                raise RoutingError(f"no route in {partner.file} takes {mapping.document} {body.get('number') or ''}: "
                                   f"the `when` conditions of its routes do not match and none is a fallback", **where)
            raise RoutingError(f"no route for {mapping.document} documents in {partner.file}", **where)
        key = idempotency_key(partner.id, self.raw_sha256, position)
        envelope = {
            "type": mapping.document,
            "version": ENVELOPE_VERSION,
            "id": f"doc_{key[:24]}",
            "idempotency_key": key,
            "partner": partner.id,
            "source": {"channel": self.channel, "message_id": self.message_id, **source, "mapping": mapping.name},
            "document": body,
        }
        try:
            canonical.check(envelope)
        except MappingError as exc:
            # The mapping produced something the published schema refuses: a mapping bug, not the partner's.
            raise MappingError(f"mapping {mapping.name!r} produced an invalid {mapping.document}: {exc.problem}",
                               **where) from None
        number = str(body.get("number") or "")
        flows = {t: self.deployment.settings.targets[t].flow for t in targets if t in self.deployment.settings.targets}
        sequence = {t: k for t, flow in flows.items() if (k := sequence_key(flow, partner.id, number)) is not None}
        return Document(type=mapping.document, partner=partner.id, idempotency_key=key, envelope=envelope,
                        number=number, targets=list(targets), sequence=sequence)


def process(raw: bytes, deployment: Deployment, *, partner_id: str | None, channel: str,
            message_id: str, raw_sha256: str | None = None, filename: str | None = None) -> Outcome:
    """Turn one received message into routed canonical documents, or raise a typed InputError.

    Each message is validated (structure and the partner's [validation] rules) and mapped on its
    own: a message with issues is left out and reported in ``Outcome.checked`` (it drives the
    negative acknowledgment) while the others go through. A file in which no message survives
    raises ValidationError; envelope errors, unknown partners and missing routes fail the whole
    file. The raw bytes stay stored for replay either way.
    """
    run = _Run(deployment, channel, message_id, raw_sha256 or hashlib.sha256(raw).hexdigest())
    try:
        format = detect(raw)
        if format == "xml":
            return _process_xml(raw, run, partner_id)
        return _process_edi(format, edi.iter_messages(io.BytesIO(raw)), run, partner_id)
    except GatewayError as exc:
        raise exc.located(file=filename, partner=partner_id)


def _process_edi(format: str, stream: Iterator[tuple[Interchange, Message]], run: _Run,
                 partner_id: str | None) -> Outcome:
    """Map the messages one at a time as the streaming reader yields them (a big file is never held parsed)."""
    partner: Partner | None = None
    documents: list[Document] = []
    standards: list[str] = []
    checks: list[Checked] = []
    interchanges: list[Interchange] = []
    reports: list[AckReport] = []
    mapping_errors: list[MappingError] = []
    position = 0
    for interchange, message in stream:
        if not interchanges or interchange is not interchanges[-1]:
            if interchanges:
                reports.extend(_acks_in(interchanges[-1]))
            partner = _partner(run.deployment, partner_id if partner is None else partner.id, format,
                               interchange.sender.qualifier, interchange.sender.id)
            interchanges.append(interchange)
            checks.append(Checked(interchange))
        checked = checks[-1]
        if message.type in ACK_TYPES:
            interchange.messages.append(message)   # read whole below: acknowledgments are small
            continue
        position += 1
        standard = f"{message.type} {message.version}".strip()
        if standard not in standards:
            standards.append(standard)
        try:
            document = _map_message(run, partner, format, interchange, message, standard, position, checked)
            if document is not None:
                documents.append(document)
        except MappingError as exc:
            checked.add(message, [issue_from_error(exc, message)])
            mapping_errors.append(exc)
        # The interchange keeps what its acknowledgment needs: a rejected message whole (positions),
        # an accepted one as its header and trailer only.
        kept = message if checked.key(message) in checked.issues else replace(
            message, segments=[message.segments[0], message.segments[-1]])
        interchange.messages.append(kept)
    if interchanges:
        reports.extend(_acks_in(interchanges[-1]))
    if partner is None:
        raise MappingError("the interchange holds no message")
    if not documents and not reports:
        rejected = [issue for c in checks for found in c.issues.values() for issue in found]
        if not rejected:
            raise MappingError("the interchange holds no message")
        if len(mapping_errors) == len(rejected):   # nothing but mapping errors: the first one says it best
            mapping_errors[0].checked = checks
            raise mapping_errors[0]
        shown = "; ".join(str(i) for i in rejected[:SHOWN_ISSUES])
        more = f" (and {len(rejected) - SHOWN_ISSUES} more)" if len(rejected) > SHOWN_ISSUES else ""
        first = rejected[0]
        raise ValidationError(f"every message was rejected: {shown}{more}", issues=rejected, checked=checks,
                              partner=partner.id, segment=first.segment, tag=first.tag)
    if reports:
        standards.extend(s for s in dict.fromkeys(f"{m.type} {m.version}".strip() for i in interchanges
                                                  for m in i.messages if m.type in ACK_TYPES) if s not in standards)
    return Outcome(partner=partner.id, format=format, standard=", ".join(standards),
                   interchange=", ".join(dict.fromkeys(i.control_number for i in interchanges)),
                   documents=documents, checked=checks, acks=reports, interchanges=interchanges)


def _acks_in(interchange: Interchange) -> list[AckReport]:
    """The partner's verdicts in a finished interchange's 997/999/CONTRL/APERAK/TA1 messages, if any."""
    return read_ack(interchange) if any(m.type in ACK_TYPES for m in interchange.messages) else []


def _map_message(run: _Run, partner: Partner, format: str, interchange: Interchange, message: Message,
                 standard: str, position: int, checked: Checked) -> Document | None:
    """The message's document; None when it breaks its structure or the partner's rules (noted in ``checked``)."""
    mapping = run.deployment.mappings.find(format, message.type, message.version,
                                           override=partner.mappings.get(message.type))
    if mapping is None:
        raise MappingError(f"no mapping in mappings/ for {format} {standard}",
                           segment=message.segments[0].number, tag=message.segments[0].tag)
    issues = validate(message, interchange, rules=partner.edi.rules, strict=partner.edi.strict)
    if issues:
        checked.add(message, issues)
        return None
    body = mapping.apply(message, interchange.delimiters)
    source = {"format": format, "standard": standard, "interchange": interchange.control_number,
              "message": message.reference}
    return run.document(partner, mapping, body, position, source, message)


def _process_xml(raw: bytes, run: _Run, partner_id: str | None) -> Outcome:
    """One XML document: found by its root element and namespace, checked against the mapping's XSD."""
    if partner_id is None:
        raise PartnerError("an XML document names no sender: it must arrive on a partner's channel "
                           "(inbox, AS2, SFTP) or be processed with --partner")
    partner = _known(run.deployment, partner_id)
    if not partner.enabled:
        raise PartnerError(f"partner {partner.id} is disabled in {partner.file}", partner=partner.id)
    tree = parse_xml(raw)
    namespace, local = identify(tree)
    mapping = require_xml_mapping(run.deployment.mappings.of_format("xml"), namespace, local,
                                  override=partner.mappings.get(local))
    problems = mapping.validate_xsd(tree)
    if problems:
        raise ValidationError(f"the document does not match {mapping.xsd}: " + "; ".join(problems[:SHOWN_ISSUES])
                              + (f" (and {len(problems) - SHOWN_ISSUES} more)" if len(problems) > SHOWN_ISSUES else ""),
                              partner=partner.id)
    body = mapping.apply_xml(tree)
    standard = f"{local} {namespace}".strip()
    source = {"format": "xml", "standard": standard, "interchange": "", "message": ""}
    document = run.document(partner, mapping, body, 1, source, None)
    return Outcome(partner=partner.id, format="xml", standard=standard, interchange="", documents=[document])
