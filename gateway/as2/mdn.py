"""AS2 receipts (RFC 4130 §7, RFC 3798): build and read MDNs, parse Disposition-Notification-Options."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from gateway.as2 import cms, mime
from gateway.as2.certs import Identity
from gateway.as2.message import open_signed, sign_entity
from gateway.as2.mime import Span
from gateway.errors import As2Error, InsufficientMessageSecurity, UnexpectedProcessingError

REPORTING_UA = "edi-gateway"
_ERROR_MODIFIERS = frozenset({
    "decryption-failed", "authentication-failed", "integrity-check-failed", "decompression-failed",
    "insufficient-message-security", "unexpected-processing-error",
})
_FIELD = re.compile(r"^([A-Za-z0-9-]+)\s*:\s*(.*)$")


@dataclass(frozen=True)
class Mdn:
    """A received receipt. ``disposition`` is ``processed`` or ``failed``; ``modifier`` e.g.
    ``error: decryption-failed`` or ``warning: duplicate-document`` (None when plainly processed)."""

    original_message_id: str | None
    disposition: str
    modifier: str | None
    mic: str | None
    mic_algorithm: str | None
    signed: bool
    text: str

    @property
    def ok(self) -> bool:
        """True for a positive receipt: processed, without an error or failure modifier."""
        return self.disposition == "processed" and (self.modifier is None or self.modifier.startswith("warning"))

    def mic_matches(self, mic: str, mic_algorithm: str) -> bool:
        """Does the receipt's Received-Content-MIC equal the MIC we computed when sending?"""
        if self.mic is None or self.mic_algorithm is None:
            return False
        same_alg = cms.digest_name(self.mic_algorithm) == cms.digest_name(mic_algorithm)
        return same_alg and "".join(self.mic.split()) == "".join(mic.split())


def _disposition_line(disposition: str) -> str:
    d = disposition.strip()
    low = d.lower()
    if low.startswith(("processed", "failed")):
        return d
    if low.startswith(("error:", "warning:", "failure:")):
        return f"processed/{d}"
    return f"processed/error: {d}"


def _clean(value: str, what: str) -> str:
    if mime.unsafe(value):
        raise UnexpectedProcessingError(f"control character in MDN {what}")
    return value.strip()


def build_mdn(
    *,
    original_message_id: str,
    our_as2_id: str,
    partner_as2_id: str,
    mic: str | None,
    mic_algorithm: str | None,
    disposition: str = "processed",
    text: str = "",
    sign: Identity | None = None,
    digest: str = "sha256",
) -> tuple[str, bytes]:
    """Build an MDN for a message we received; returns ``(content_type, body)``.

    ``disposition`` is ``processed``, an error modifier (``decryption-failed``, i.e. an
    As2Error's ``disposition``: becomes ``processed/error: decryption-failed``), or a full
    value such as ``processed/warning: duplicate-document``. ``mic``/``mic_algorithm`` fill
    Received-Content-MIC (omitted when None). ``text`` is the human-readable part (a default
    naming both AS2 IDs when empty). Signed (multipart/signed) when ``sign`` is given.
    Partner-supplied values with control characters are refused (header injection).
    """
    message_id = _clean(original_message_id, "Original-Message-ID")
    ours = _clean(our_as2_id, "AS2 id")
    theirs = _clean(partner_as2_id, "AS2 id")
    line = _clean(_disposition_line(disposition), "disposition")
    if not text:
        outcome = "was received and processed" if line == "processed" else f"could not be processed ({line})"
        text = f"The AS2 message {message_id} sent by {theirs} to {ours} {outcome}."
    fields = [
        f"Reporting-UA: {REPORTING_UA}",
        f"Original-Recipient: rfc822; {ours}",
        f"Final-Recipient: rfc822; {ours}",
        f"Original-Message-ID: {message_id}",
    ]
    if mic is not None and mic_algorithm is not None:
        fields.append(f"Received-Content-MIC: {_clean(mic, 'MIC')}, {cms.mic_name(_clean(mic_algorithm, 'MIC'))}")
    fields.append(f"Disposition: automatic-action/MDN-sent-automatically; {line}")
    human = mime.canonicalize(text.encode("utf-8")).rstrip(b"\r\n") + b"\r\n"
    boundary = mime.new_boundary()
    delim = f"--{boundary}".encode()
    body = b"".join([
        delim, b"\r\n",
        mime.header_block([("Content-Type", "text/plain; charset=utf-8"),
                           ("Content-Transfer-Encoding", "7bit" if human.isascii() else "8bit")]),
        human,
        b"\r\n", delim, b"\r\n",
        mime.header_block([("Content-Type", "message/disposition-notification"),
                           ("Content-Transfer-Encoding", "7bit")]),
        "\r\n".join(fields).encode("utf-8"), b"\r\n",
        b"\r\n", delim, b"--\r\n",
    ])
    content_type = f'multipart/report; report-type=disposition-notification; boundary="{boundary}"'
    if sign is None:
        return content_type, body
    entity = mime.header_block([("Content-Type", content_type)]) + body
    return sign_entity(entity, sign, cms.digest_name(digest) or digest)


def parse_mdn(content_type: str, body: bytes, *, trusted: Sequence[x509.Certificate], require_signature: bool) -> Mdn:
    """Read a received MDN (signed multipart/signed or plain multipart/report).

    A signed MDN must verify against ``trusted``; an unsigned one is refused with
    InsufficientMessageSecurity when ``require_signature``. Raises only As2Error subclasses.
    """
    try:
        return _parse_mdn(content_type, body, trusted, require_signature)
    except As2Error:
        raise
    except mime.NotMime as e:
        raise UnexpectedProcessingError(f"malformed MDN: {e}") from None
    except Exception as e:  # noqa: BLE001 - any input must end in a typed AS2 error
        raise UnexpectedProcessingError(f"cannot read the MDN: {type(e).__name__}: {e}") from None


def _parse_mdn(content_type: str, body: bytes, trusted: Sequence[x509.Certificate], require_signature: bool) -> Mdn:
    ctype, params = mime.content_type(content_type)
    span = Span.of(body)
    signed = False
    if ctype == "multipart/signed":
        _, verified = open_signed(span, params.get("boundary", ""), trusted)
        signed = True
        headers, span = mime.split_entity(verified)
        ctype, params = mime.content_type(headers.get("content-type"))
    elif require_signature:
        raise InsufficientMessageSecurity("the MDN is not signed, but a signed MDN was requested")
    if ctype != "multipart/report":
        raise UnexpectedProcessingError(f"MDN is {ctype}, multipart/report expected")
    text = ""
    fields: dict[str, str] = {}
    for part in mime.split_multipart(span, params.get("boundary", "")):
        part_headers, part_body = mime.split_entity(part)
        part_type, part_params = mime.content_type(part_headers.get("content-type"))
        decoded = mime.decode_body(part_body, part_headers.get("content-transfer-encoding")).tobytes()
        if part_type == "message/disposition-notification":
            fields = _fields(decoded)
        elif part_type == "text/plain" and not text:
            try:
                text = decoded.decode(part_params.get("charset", "utf-8"), errors="replace").strip()
            except LookupError:   # a charset Python does not know: the human-readable text is only informative
                text = decoded.decode("utf-8", errors="replace").strip()
    if "disposition" not in fields:
        raise UnexpectedProcessingError("MDN has no Disposition field")
    action, _, value = fields["disposition"].partition(";")
    kind, _, modifier = (value or action).partition("/")
    mic = mic_algorithm = None
    if fields.get("received-content-mic"):
        mic, _, alg = fields["received-content-mic"].partition(",")
        mic = mic.strip() or None
        mic_algorithm = cms.mic_name(alg.strip()) if cms.digest_name(alg) else (alg.strip() or None)
    return Mdn(
        original_message_id=fields.get("original-message-id"),
        disposition=kind.strip().lower(),
        modifier=" ".join(modifier.split()).lower() or None,
        mic=mic,
        mic_algorithm=mic_algorithm,
        signed=signed,
        text=text,
    )


def _fields(data: bytes) -> dict[str, str]:
    """The ``Name: value`` fields of a disposition notification (unfolded, lower-cased names)."""
    out: dict[str, str] = {}
    name = None
    for raw in data.decode("utf-8", errors="replace").splitlines():
        if raw[:1] in (" ", "\t") and name:
            out[name] += " " + raw.strip()
            continue
        m = _FIELD.match(raw.strip())
        if m:
            name = m.group(1).lower()
            out[name] = m.group(2).strip()
    return out


def parse_disposition_options(header: str) -> tuple[bool, list[str]]:
    """Read Disposition-Notification-Options: ``(signed MDN requested, MIC algorithms in preference order)``.

    E.g. ``signed-receipt-protocol=optional, pkcs7-signature; signed-receipt-micalg=optional, sha-256, sha1``
    -> ``(True, ["sha-256", "sha1"])``. Tolerant of case, spacing, quotes and the ``sha256``/``SHA256``
    spellings; algorithms we cannot compute are dropped (the list may come back empty).
    """
    signed = False
    algorithms: list[str] = []
    for item in (header or "").split(";"):
        name, _, value = item.partition("=")
        name = name.strip().strip('"').lower()
        values = [v.strip().strip('"').lower() for v in value.split(",")]
        if values and values[0] in ("required", "optional"):
            values = values[1:]
        if name == "signed-receipt-protocol":
            signed = any(v in ("pkcs7-signature", "pkcs7", "application/pkcs7-signature") for v in values)
        elif name == "signed-receipt-micalg":
            for v in values:
                d = cms.digest_name(v)
                if d and cms.mic_name(d) not in algorithms:
                    algorithms.append(cms.mic_name(d))
    return signed, algorithms
