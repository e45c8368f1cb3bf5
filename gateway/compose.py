"""Pure: the EDI we write to a partner (outbound documents, acknowledgments) as envelopes and messages for serialize.render."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from . import canonical
from .config import Deployment, Partner
from .config_edi import FORMATS, parse_identifier
from .edi.model import Party
from .edi.serialize import Envelope, OutMessage
from .errors import MappingError, RoutingError, ValidationError
from .mapping.outbound import select_outbound

__all__ = ["Composed", "compose_documents", "envelope_to", "partner_format"]


@dataclass(frozen=True)
class Composed:
    """An outbound interchange ready to render: who to, the messages, and what it is (for the log)."""

    envelope: Envelope
    messages: list[OutMessage]
    standard: str           # e.g. "INVOIC D96A"
    mapping: str
    numbers: list[str]      # document numbers (invoice numbers...) carried, in order


def partner_format(partner: Partner) -> str:
    """The format we write to a partner: [edi] format, else the first format in [identifiers]."""
    if partner.edi.format:
        return partner.edi.format
    for fmt in partner.identifiers:
        if fmt in FORMATS:
            return fmt
    raise RoutingError(f"partner {partner.id} has no EDI format: set [edi] format or [identifiers] in {partner.file}",
                       partner=partner.id)


def envelope_to(deployment: Deployment, partner: Partner, fmt: str, at: datetime, *,
                recipient: Party | None = None, sender: Party | None = None, ack_requested: bool | None = None) -> Envelope:
    """The envelope of an interchange for ``partner``: we are the sender, they the recipient.

    ``recipient``/``sender`` default to the partner's first identifier for the format and our
    identity (partner [edi] our_ids, else gateway.toml [edi] identifiers); an acknowledgment
    passes the inbound interchange's parties swapped instead, so it reaches whoever sent it.
    """
    if sender is None:
        sender = deployment.our_identity(partner, fmt)
        if sender is None:
            raise RoutingError(f"we have no {fmt} identity to write to {partner.id}: set gateway.toml [edi] "
                               f"identifiers.{fmt} (or [edi] our_ids in {partner.file})", partner=partner.id)
    if recipient is None:
        ids = partner.identifiers.get(fmt, ())
        if not ids:
            raise RoutingError(f"partner {partner.id} has no {fmt} identifier to address: add one to [identifiers] "
                               f"{fmt} in {partner.file}", partner=partner.id)
        recipient = parse_identifier(ids[0])
    if ack_requested is None:
        ack_requested = deployment.expect_ack_seconds(partner) is not None
    return Envelope(fmt, sender, recipient, at, test=partner.edi.test, syntax=partner.edi.syntax,
                    ack_requested=ack_requested, groups=partner.edi.groups and fmt == "edifact")


def compose_documents(deployment: Deployment, partner: Partner, document_type: str, documents: list[dict[str, Any]],
                      at: datetime, *, version: str = "") -> Composed:
    """Check canonical ``documents`` (bodies of one type) and map them for ``partner``.

    Raises ValidationError listing every schema problem of every document (``issues``: one
    ``path: reason`` line each, paths from ``document`` or ``documents[N]``), RoutingError when
    nothing can write them for this partner, MappingError when the mapping cannot.

    The mapping is the one the partner file names for the document type ([mappings] invoice =
    "out-..."), else the automatic outbound mapping for the partner's format.
    """
    if not documents:
        raise MappingError("nothing to send: no documents")
    fmt = partner_format(partner)
    mapping = select_outbound(deployment.mappings, fmt, document_type, version,
                              override=partner.mappings.get(document_type))
    if mapping is None:
        named = partner.mappings.get(document_type)
        raise RoutingError(f"no outbound mapping writes {document_type} documents as {fmt}"
                           + (f" (partner file names {named!r}: it must be an outbound {fmt} {document_type} mapping)"
                              if named else " in mappings/"), partner=partner.id)
    paths = ["document"] if len(documents) == 1 else [f"documents[{n}]" for n in range(len(documents))]
    problems: list[str] = []
    for body, path in zip(documents, paths):
        if not isinstance(body, dict):
            problems.append(f"{path}: must be a JSON object (a canonical {document_type})")
            continue
        # document_problems names paths from "document"; a list item is "documents[N]".
        problems += [path + line[len("document"):] if line.startswith("document") else f"{path}: {line}"
                     for line in canonical.document_problems(document_type, body)]
    if problems:
        raise ValidationError(f"not a valid canonical {document_type}: " + "; ".join(problems), issues=problems,
                              partner=partner.id)
    messages = [mapping.build(body, version=version or None) for body in documents]
    numbers = [str(body.get("number") or "") for body in documents]
    standard = f"{mapping.message} {messages[0].version}"
    return Composed(envelope_to(deployment, partner, fmt, at), messages, standard, mapping.name, numbers)
