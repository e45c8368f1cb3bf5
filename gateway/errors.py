"""The gateway's one exception tree; foreign exceptions are translated at the edges.

    GatewayError                    every error the gateway raises on purpose
    ├── ConfigError                 a deployment file is invalid (carries every problem found)
    ├── InputError                  received bytes cannot become documents (raw stays stored)
    │   ├── DetectError             empty, binary or unknown format
    │   ├── ParseError              EDI syntax/envelope problem at a segment/element
    │   ├── MappingError            a mapping cannot produce its document
    │   ├── PartnerError            unknown partner, or a sender id that is not the partner's
    │   ├── RoutingError            a document type the partner has no route for
    │   └── As2Error                an AS2 message cannot be opened; ``disposition`` is the MDN modifier
    │       ├── DecryptionFailed            no key of ours decrypts it ("decryption-failed")
    │       ├── AuthenticationFailed        bad signature, unknown/untrusted signer ("authentication-failed")
    │       ├── IntegrityCheckFailed        content changed after signing ("integrity-check-failed")
    │       ├── DecompressionFailed         corrupt zlib data or over the size cap ("decompression-failed")
    │       ├── InsufficientMessageSecurity unsigned/unencrypted where required ("insufficient-message-security")
    │       └── UnexpectedProcessingError   malformed MIME/DER, unsupported algorithm ("unexpected-processing-error")
    ├── StoreError                  the store cannot do what was asked
    │   └── BlobError               a blob is missing or its bytes do not match its hash
    └── DeliveryError               a connector failed to hand a document over
        ├── RetryableDeliveryError  timeouts, connection errors, 408/429/5xx: try again later
        └── PermanentDeliveryError  other 4xx and bad target config: dead-letter at once

Every error renders as one line: ``file: partner P: segment N (TAG) element E: problem``,
with only the parts that are known.
"""

from __future__ import annotations

from dataclasses import dataclass


class GatewayError(Exception):
    """Base of every error the gateway raises on purpose."""

    def __init__(
        self,
        problem: str,
        *,
        file: str | None = None,
        partner: str | None = None,
        segment: int | None = None,
        tag: str | None = None,
        element: str | None = None,
    ) -> None:
        super().__init__(problem)
        self.problem = problem
        self.file = file
        self.partner = partner
        self.segment = segment
        self.tag = tag
        self.element = element

    def located(self, *, file: str | None = None, partner: str | None = None) -> "GatewayError":
        """Fill in the file/partner context that a deeper layer did not know; returns self."""
        self.file = self.file or file
        self.partner = self.partner or partner
        return self

    @property
    def position(self) -> str:
        """Where in the input the problem is, e.g. ``segment 12 (NAD) element 2.1``."""
        parts = []
        if self.segment is not None:
            parts.append(f"segment {self.segment}" + (f" ({self.tag})" if self.tag else ""))
        elif self.tag:
            parts.append(f"segment {self.tag}")
        if self.element:
            parts.append(f"element {self.element}")
        return " ".join(parts)

    def __str__(self) -> str:
        parts = []
        if self.file:
            parts.append(self.file)
        if self.partner:
            parts.append(f"partner {self.partner}")
        if self.position:
            parts.append(self.position)
        parts.append(self.problem)
        return ": ".join(parts)


@dataclass(frozen=True)
class ConfigProblem:
    """One invalid setting: rendered ``file: key: problem`` by ``gateway check``."""

    file: str
    key: str
    problem: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key}: {self.problem}"


class ConfigError(GatewayError):
    """A deployment is invalid; ``problems`` lists every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        super().__init__("; ".join(str(p) for p in problems) or "invalid configuration")
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(str(p) for p in self.problems)


class InputError(GatewayError):
    """Received bytes cannot be turned into documents; the raw bytes stay stored for replay.

    ``checked`` (one ``gateway.edi.acks.Checked`` per interchange, when the pipeline got that
    far) lets the gateway answer with a negative acknowledgment although no document came out.
    """

    checked: list = []


class DetectError(InputError):
    """The input is empty, binary or in no format the gateway reads."""


class ParseError(InputError):
    """The EDI is malformed: syntax, envelope, counts or control references."""


class ValidationError(InputError):
    """Messages break their structure definition or the partner's rules; ``issues`` lists every problem."""

    def __init__(self, problem: str, *, issues: list | None = None, checked: list | None = None, **kw: object) -> None:
        super().__init__(problem, **kw)  # type: ignore[arg-type]
        self.issues = issues or []
        self.checked = checked or []


class DuplicateError(InputError):
    """An interchange control number the partner already sent within the duplicate window (partner rejects them)."""


class MappingError(InputError):
    """A mapping cannot produce its canonical document (missing required value, bad code...)."""


class PartnerError(InputError):
    """The partner is unknown, or the interchange names a sender that is not the partner's."""


class RoutingError(InputError):
    """The partner file routes no target for a document the partner sent."""


class StoreError(GatewayError):
    """The store cannot do what was asked."""


class IdempotencyConflict(StoreError):
    """An idempotency key already names a different submission (another channel or another request)."""


class BlobError(StoreError):
    """A stored blob is missing or its bytes no longer match their content hash."""


class DeliveryError(GatewayError):
    """A connector failed to hand a document to its target."""

    retryable = False

    def __init__(self, problem: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(problem)
        self.status = status
        self.retry_after = retry_after


class RetryableDeliveryError(DeliveryError):
    """Transient failure (timeout, connection error, 408/429/5xx): the queue retries later."""

    retryable = True


class PermanentDeliveryError(DeliveryError):
    """The target refused the document for good (other 4xx): dead-letter at once."""


class As2Error(InputError):
    """An AS2 message or MDN cannot be opened; ``disposition`` is the RFC 4130 modifier to report.

    The negative MDN reads ``processed/error: <disposition>``.
    """

    disposition = "unexpected-processing-error"


class DecryptionFailed(As2Error):
    """None of our private keys decrypts the message (wrong recipient, corrupt envelope)."""

    disposition = "decryption-failed"


class AuthenticationFailed(As2Error):
    """The signature does not verify, or the signer certificate is not one we trust."""

    disposition = "authentication-failed"


class IntegrityCheckFailed(As2Error):
    """The signed content changed after signing (message-digest/MIC mismatch)."""

    disposition = "integrity-check-failed"


class DecompressionFailed(As2Error):
    """Compressed content is corrupt or inflates past the size limit (compression bomb)."""

    disposition = "decompression-failed"


class InsufficientMessageSecurity(As2Error):
    """The message is unsigned or unencrypted although the partner agreement requires it."""

    disposition = "insufficient-message-security"


class UnexpectedProcessingError(As2Error):
    """Malformed MIME or CMS, or an algorithm we do not support."""

    disposition = "unexpected-processing-error"
