"""Bytes in, canonical documents out: detect, parse, check the sender, map, route. Pure and synchronous."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from . import edi
from .config import Deployment, Partner
from .errors import GatewayError, MappingError, PartnerError, RoutingError
from .model import Document

ENVELOPE_VERSION = 1


@dataclass(frozen=True)
class Outcome:
    """What the pipeline made of one received message."""

    partner: str
    format: str
    standard: str        # e.g. "ORDERS D96A" or "850 004010"; several kinds joined by ", "
    interchange: str     # control number(s) of the interchange(s)
    documents: list[Document]


def idempotency_key(partner: str, raw_sha256: str, position: int) -> str:
    """Stable across retries and replays: the same stored bytes always give the same keys."""
    return hashlib.sha256(f"{partner}\0{raw_sha256}\0{position}".encode()).hexdigest()[:32]


def _partner(deployment: Deployment, partner_id: str | None, format: str, sender_qualifier: str, sender_id: str) -> Partner:
    if partner_id is None:
        partner = deployment.partner_for_sender(format, sender_qualifier, sender_id)
        if partner is None:
            raise PartnerError(f"unknown partner: no partner file lists {format} sender {sender_qualifier}:{sender_id}")
        return partner
    partner = deployment.partners.get(partner_id)
    if partner is None:
        raise PartnerError(f"unknown partner {partner_id!r}: no valid partners/{partner_id}.toml")
    if not partner.owns(format, sender_qualifier, sender_id):
        # A file in one partner's inbox/account claiming another sender is refused: isolation.
        raise PartnerError(f"interchange sender {sender_qualifier}:{sender_id} is not an identifier of partner "
                           f"{partner.id} (add it to [identifiers] {format} in {partner.file})", partner=partner.id)
    return partner


def process(raw: bytes, deployment: Deployment, *, partner_id: str | None, channel: str,
            message_id: str, raw_sha256: str | None = None, filename: str | None = None) -> Outcome:
    """Turn one received message into routed canonical documents, or raise a typed InputError.

    All or nothing: a file whose any message cannot be mapped or routed produces no documents,
    so a partner's interchange is never half-delivered; the raw bytes stay stored for replay.
    """
    raw_sha256 = raw_sha256 or hashlib.sha256(raw).hexdigest()
    try:
        format, interchanges = edi.read(raw)
        if format == "xml":
            raise MappingError("XML documents are recognised, but no XML mapping exists in mappings/ yet")
        if not interchanges:
            raise MappingError("the file holds no interchange")
        partner: Partner | None = None
        documents: list[Document] = []
        standards: list[str] = []
        position = 0
        for interchange in interchanges:
            this = _partner(deployment, partner_id if partner is None else partner.id, format,
                            interchange.sender.qualifier, interchange.sender.id)
            if not this.enabled:
                raise PartnerError(f"partner {this.id} is disabled in {this.file}", partner=this.id)
            partner = this
            for message in interchange.messages:
                position += 1
                standard = f"{message.type} {message.version}".strip()
                if standard not in standards:
                    standards.append(standard)
                mapping = deployment.mappings.find(format, message.type, message.version,
                                                   override=partner.mappings.get(message.type))
                if mapping is None:
                    raise MappingError(f"no mapping in mappings/ for {format} {standard}",
                                       segment=message.segments[0].number, tag=message.segments[0].tag)
                body = mapping.apply(message, interchange.delimiters)
                targets = partner.targets_for(mapping.document)
                if not targets:
                    raise RoutingError(f"no route for {mapping.document} documents in {partner.file}",
                                       segment=message.segments[0].number, tag=message.segments[0].tag)
                key = idempotency_key(partner.id, raw_sha256, position)
                envelope = {
                    "type": mapping.document,
                    "version": ENVELOPE_VERSION,
                    "id": f"doc_{key[:24]}",
                    "idempotency_key": key,
                    "partner": partner.id,
                    "source": {
                        "channel": channel,
                        "message_id": message_id,
                        "format": format,
                        "standard": standard,
                        "interchange": interchange.control_number,
                        "message": message.reference,
                        "mapping": mapping.name,
                    },
                    "document": body,
                }
                documents.append(Document(type=mapping.document, partner=partner.id, idempotency_key=key,
                                          envelope=envelope, number=str(body.get("number") or ""),
                                          targets=list(targets)))
        if partner is None or not documents:
            raise MappingError("the interchange holds no message")
        return Outcome(partner=partner.id, format=format, standard=", ".join(standards),
                       interchange=", ".join(dict.fromkeys(i.control_number for i in interchanges)),
                       documents=documents)
    except GatewayError as exc:
        raise exc.located(file=filename, partner=partner_id)
