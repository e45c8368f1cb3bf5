"""Build and open one AS2 message body (RFC 4130): sign, compress, encrypt; decrypt, decompress, verify; MIC.

The HTTP headers (AS2-From, AS2-To, Message-ID...) are the caller's; this module owns the
Content-Type and everything inside the body. Payload bytes go out and come back exactly as
given (no line-ending or transfer-encoding changes with binary transfer).
"""

from __future__ import annotations

import base64
import hashlib
import mmap
import os
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509

from gateway.as2 import cms, mime
from gateway.as2.certs import Identity
from gateway.as2.der import BytesLike
from gateway.as2.mime import Span
from gateway.errors import (As2Error, AuthenticationFailed, DecryptionFailed, InsufficientMessageSecurity,
                            IntegrityCheckFailed, UnexpectedProcessingError)

COMPRESS_MODES = (None, "before-signing", "after-signing")
_PKCS7_MIME = ("application/pkcs7-mime", "application/x-pkcs7-mime")
_PKCS7_SIGNATURE = ("application/pkcs7-signature", "application/x-pkcs7-signature")
_MAX_NESTING = 6


@dataclass(frozen=True)
class Outbound:
    """A built AS2 body: POST ``body`` with ``content_type`` (plus ``headers``, if any, as HTTP headers).

    ``mic`` (base64 digest) and ``mic_algorithm`` (``sha-256``) are what the partner's MDN must
    return in Received-Content-MIC. ``headers`` holds the Content-Disposition (file name) when
    the outermost entity has one and is not encrypted: a plain message's file name travels in
    the HTTP headers.
    """

    content_type: str
    body: bytes
    mic: str
    mic_algorithm: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Inbound:
    """An opened AS2 message: the payload exactly as sent, how it was protected, and the MIC to return."""

    payload: bytes
    content_type: str
    filename: str | None
    signed: bool
    encrypted: bool
    compressed: bool
    digest: str | None  # the signer's digest (``sha256``), None when unsigned
    mic: str  # base64 digest for Received-Content-MIC
    mic_algorithm: str  # ``sha-256`` spelling


# ----------------------------------------------------------------------------- build


def _mic(parts: Sequence[BytesLike], digest: str) -> bytes:
    h = hashlib.new(digest)
    for p in parts:
        h.update(p)
    return h.digest()


@dataclass
class _Layer:
    """One MIME level while building: its Content-Type, other headers and raw body parts."""

    content_type: str
    parts: list[BytesLike]
    disposition: str | None = None
    encodable: bool = True  # a leaf (payload or CMS) that binary_transfer=False base64-encodes

    def entity(self, binary: bool) -> list[BytesLike]:
        """The layer as a MIME entity (header block + body), ready to sign, compress or encrypt."""
        headers = [("Content-Type", self.content_type)]
        body = self.parts
        if self.encodable:
            headers.append(("Content-Transfer-Encoding", "binary" if binary else "base64"))
            if not binary:
                body = [mime.encode_base64(b"".join(self.parts) if len(self.parts) > 1 else self.parts[0])]
        if self.disposition:
            headers.append(("Content-Disposition", self.disposition))
        return [mime.header_block(headers), *body]


def _compressed(entity: list[BytesLike]) -> _Layer:
    return _Layer('application/pkcs7-mime; smime-type=compressed-data; name="smime.p7z"', [cms.compress(entity)],
                  'attachment; filename="smime.p7z"')


def _contains(parts: Sequence[BytesLike], needle: bytes) -> bool:
    return any(needle in (p if not isinstance(p, memoryview) else p.tobytes()) for p in parts)


def _signed(entity: list[BytesLike], identity: Identity, digest: str,
            algorithm_protection: bool) -> tuple[_Layer, bytes]:
    """multipart/signed around ``entity``; returns the layer and the MIC (digest of the signed entity)."""
    mic = _mic(entity, digest)
    signature = cms.sign_digest(mic, identity, digest, algorithm_protection=algorithm_protection)
    boundary = mime.new_boundary()
    while _contains(entity, boundary.encode()):
        boundary = mime.new_boundary()
    delim = f"--{boundary}".encode()
    sig_part = mime.header_block([
        ("Content-Type", 'application/pkcs7-signature; name="smime.p7s"'),
        ("Content-Transfer-Encoding", "base64"),
        ("Content-Disposition", 'attachment; filename="smime.p7s"'),
    ]) + mime.encode_base64(signature)
    content_type = (f'multipart/signed; protocol="application/pkcs7-signature"; micalg={cms.mic_name(digest)}; '
                    f'boundary="{boundary}"')
    parts = [delim + b"\r\n", *entity, b"\r\n" + delim + b"\r\n" + sig_part + b"\r\n" + delim + b"--\r\n"]
    return _Layer(content_type, parts, encodable=False), mic


def sign_entity(entity: bytes, identity: Identity, digest: str = "sha256", *,
                algorithm_protection: bool = True) -> tuple[str, bytes]:
    """Wrap a complete MIME entity in multipart/signed; returns ``(content_type, body)`` (used for MDNs)."""
    layer, _ = _signed([entity], identity, digest, algorithm_protection)
    return layer.content_type, b"".join(layer.parts)


def build(
    payload: bytes,
    *,
    content_type: str = "application/edi-consent",
    filename: str | None = None,
    sign: Identity | None = None,
    digest: str = "sha256",
    encrypt: Sequence[x509.Certificate] = (),
    cipher: str = "aes256-cbc",
    compress: str | None = None,
    binary_transfer: bool = True,
    algorithm_protection: bool = True,
) -> Outbound:
    """Build an AS2 message body around ``payload``.

    Order: payload entity -> (compress "before-signing") -> sign (multipart/signed, detached
    CMS, base64 signature part) -> (compress "after-signing") -> encrypt (EnvelopedData for
    every certificate in ``encrypt``). ``binary_transfer`` False base64-encodes the payload
    and nested CMS parts (partners that cannot take binary MIME parts); the HTTP body itself
    is always binary. The MIC covers the signed entity when signing, else the entity that is
    encrypted, else the body. Raises UnexpectedProcessingError for bad settings.
    """
    digest = cms.digest_name(digest) or digest
    if digest not in cms.DIGESTS:
        raise UnexpectedProcessingError(f"unsupported digest {digest!r} (use one of {sorted(cms.DIGESTS)})")
    if compress not in COMPRESS_MODES:
        raise UnexpectedProcessingError(f"compress must be one of {COMPRESS_MODES}, not {compress!r}")
    if encrypt and cipher not in cms.CIPHERS:
        raise UnexpectedProcessingError(f"unsupported cipher {cipher!r} (use one of {sorted(cms.CIPHERS)})")
    if mime.unsafe(content_type):
        raise UnexpectedProcessingError("control character in content type")
    disposition = f'attachment; filename="{mime.safe_param(os.path.basename(filename))}"' if filename else None

    layer = _Layer(content_type, [payload], disposition)
    mic: bytes | None = None
    if compress == "before-signing":
        layer = _compressed(layer.entity(binary_transfer))
    if sign is not None:
        layer, mic = _signed(layer.entity(binary_transfer), sign, digest, algorithm_protection)
    if compress == "after-signing":
        layer = _compressed(layer.entity(binary_transfer))
    headers: tuple[tuple[str, str], ...] = ()
    if encrypt:
        entity = layer.entity(binary_transfer)
        if mic is None:
            mic = _mic(entity, digest)
        body = cms.encrypt(entity, encrypt, cipher)
        outer_type = 'application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"'
    else:
        body = layer.parts[0] if len(layer.parts) == 1 else b"".join(layer.parts)
        if mic is None:
            mic = _mic([body], digest)
        outer_type = layer.content_type
        headers = (("Content-Disposition", layer.disposition),) if layer.disposition else ()
    return Outbound(outer_type, bytes(body), base64.b64encode(mic).decode(), cms.mic_name(digest), headers)


# ----------------------------------------------------------------------------- parse


def _looks_like_mime(view: memoryview) -> bool:
    try:
        mime.split_entity(Span.of(bytes(view[: mime.MAX_HEADER_BLOCK])))
    except mime.NotMime:
        return False
    return True


def _cms_der(span: Span, transfer_encoding: str | None) -> Span:
    """The DER of a pkcs7-mime body: base64-decoded when so labelled, or when it plainly is not DER."""
    if transfer_encoding and transfer_encoding.strip().lower() == "base64":
        return mime.decode_body(span, "base64")
    if len(span) and span.base[span.start] != 0x30:
        try:
            return mime.decode_body(span, "base64")
        except mime.NotMime:
            return span
    return span


def _verify_part(part: Span, signature: bytes, trusted: Sequence[x509.Certificate]) -> tuple[str, Span]:
    """Verify the signed part as sent; if that fails and it has bare LFs, as canonical CRLF text.

    (Text-mode signers sign the CRLF form; relays and some senders then write bare LFs.)
    Returns the signer's digest and the bytes that verified (the MIC covers exactly those).
    """
    try:
        return cms.verify(part.view(), signature, trusted), part
    except (IntegrityCheckFailed, AuthenticationFailed):
        raw = part.tobytes()
        canonical = mime.canonicalize(raw)
        if canonical != raw:
            try:
                return cms.verify(canonical, signature, trusted), Span.of(canonical)
            except As2Error:
                pass
        raise


def open_signed(span: Span, boundary: str, trusted: Sequence[x509.Certificate]) -> tuple[str, Span]:
    """Verify a multipart/signed body; returns the signer's digest and the signed entity's bytes.

    Shared by messages and MDNs. Raises AuthenticationFailed / IntegrityCheckFailed /
    UnexpectedProcessingError (or mime.NotMime for a broken multipart).
    """
    parts = mime.split_multipart(span, boundary)
    if len(parts) != 2:
        raise UnexpectedProcessingError(f"multipart/signed has {len(parts)} parts, 2 expected")
    sig_headers, sig_body = mime.split_entity(parts[1])
    if mime.content_type(sig_headers.get("content-type"))[0] not in _PKCS7_SIGNATURE:
        raise UnexpectedProcessingError("second part of multipart/signed is not application/pkcs7-signature")
    signature = _cms_der(sig_body, sig_headers.get("content-transfer-encoding")).tobytes()
    return _verify_part(parts[0], signature, trusted)


def parse(
    content_type: str,
    body: bytes,
    *,
    identities: Sequence[Identity],
    trusted: Sequence[x509.Certificate],
    max_size: int,
    require_signature: bool = False,
    require_encryption: bool = False,
    mic_algorithms: Sequence[str] = ("sha-256",),
    content_disposition: str | None = None,
) -> Inbound:
    """Open a received AS2 body: decrypt, decompress and verify in whatever order the sender used.

    ``identities`` are our key pairs (several during key rollover), ``trusted`` the partner's
    signing certificates, ``max_size`` the cap on decompressed content. ``mic_algorithms``
    is the partner's preference from Disposition-Notification-Options (any spelling); the
    first we support is used, else the signer's digest. ``body`` may be bytes or an mmap.
    Raises only As2Error subclasses, whatever the input bytes.
    """
    try:
        return _parse(content_type, body, identities, trusted, max_size, require_signature, require_encryption,
                      mic_algorithms, content_disposition)
    except As2Error:
        raise
    except mime.NotMime as e:
        raise UnexpectedProcessingError(f"malformed MIME: {e}") from None
    except Exception as e:  # noqa: BLE001 - any input must end in a typed AS2 error, never a traceback
        raise UnexpectedProcessingError(f"cannot process the AS2 message: {type(e).__name__}: {e}") from None


def _parse(content_type: str, body: bytes, identities: Sequence[Identity], trusted: Sequence[x509.Certificate],
           max_size: int, require_signature: bool, require_encryption: bool, mic_algorithms: Sequence[str],
           content_disposition: str | None) -> Inbound:
    headers: mime.Headers = {"content-type": content_type}
    if content_disposition:
        headers["content-disposition"] = content_disposition
    ctype, params = mime.content_type(content_type)
    span = Span.of(body)
    signed = encrypted = compressed = False
    digest: str | None = None
    mic_span: Span | None = None  # the signed entity, once seen
    decrypted: Span | None = None  # the first decrypted entity: the MIC of an unsigned encrypted message
    for _ in range(_MAX_NESTING):
        if ctype in _PKCS7_MIME:
            der_span = _cms_der(span, headers.get("content-transfer-encoding"))
            kind = params.get("smime-type", "").lower() or cms.content_kind(der_span.view())
            if kind == "enveloped-data":
                view = cms.decrypt_view(der_span.view(), identities, plausible=_looks_like_mime)
                if isinstance(body, mmap.mmap):
                    # The ciphertext has been read: drop its resident pages (re-read from the file if
                    # needed again) so a large message costs its plaintext, not its ciphertext too.
                    body.madvise(mmap.MADV_DONTNEED)
                inner = Span(view.obj, 0, len(view))  # type: ignore[arg-type]
                encrypted = True
                decrypted = inner if decrypted is None else decrypted
                try:
                    headers, span = mime.split_entity(inner)
                except mime.NotMime:
                    raise DecryptionFailed("decrypted content is not a MIME entity") from None
            elif kind == "compressed-data":
                inner = Span.of(cms.decompress(der_span.view(), max_size))
                compressed = True
                headers, span = mime.split_entity(inner)
            elif kind == "signed-data":
                content = Span.of(cms.signed_content(der_span.view()))
                found = cms.verify(content.view(), der_span.tobytes(), trusted)
                if not signed:
                    signed, digest, mic_span = True, found, content
                headers, span = mime.split_entity(content)
            else:
                raise UnexpectedProcessingError(f"unsupported S/MIME type {kind!r}")
        elif ctype == "multipart/signed":
            found, verified = open_signed(span, params.get("boundary", ""), trusted)
            if not signed:
                signed, digest, mic_span = True, found, verified
            try:
                headers, span = mime.split_entity(verified)
            except mime.NotMime:  # a bare payload signed without MIME headers: text/plain per RFC 2045
                headers, span = {}, verified
        else:
            break
        ctype, params = mime.content_type(headers.get("content-type"))
    else:
        raise UnexpectedProcessingError("message nests signing/encryption/compression too deeply")

    if require_encryption and not encrypted:
        raise InsufficientMessageSecurity("message is not encrypted, but the partner agreement requires it")
    if require_signature and not signed:
        raise InsufficientMessageSecurity("message is not signed, but the partner agreement requires it")
    payload = mime.decode_body(span, headers.get("content-transfer-encoding")).tobytes()
    supported = [d for d in (cms.digest_name(a) for a in mic_algorithms) if d]
    mic_digest = supported[0] if supported else (digest or "sha256")
    covered = mic_span if mic_span is not None else decrypted if decrypted is not None else Span.of(body)
    mic = base64.b64encode(hashlib.new(mic_digest, covered.view()).digest()).decode()
    return Inbound(
        payload=payload,
        content_type=headers.get("content-type", "text/plain"),
        filename=mime.filename(headers.get("content-disposition"), params),
        signed=signed,
        encrypted=encrypted,
        compressed=compressed,
        digest=digest,
        mic=mic,
        mic_algorithm=cms.mic_name(mic_digest),
    )
