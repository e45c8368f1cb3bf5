"""CMS SignedData for AS2: write a detached signature, verify one against pinned partner certificates."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass

from asn1crypto import algos as a_algos
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from gateway.as2 import der
from gateway.as2.certs import Identity
from gateway.as2.cmsbase import (DIGEST_BY_OID, DIGEST_OIDS, DIGESTS, ECDSA_OIDS, INT_1, NULL,
                                 OID_ATTR_ALGORITHM_PROTECTION, OID_ATTR_CONTENT_TYPE, OID_ATTR_MESSAGE_DIGEST,
                                 OID_ATTR_SIGNING_TIME, OID_COMPRESSED_DATA, OID_DATA, OID_ENVELOPED_DATA, OID_RSA,
                                 OID_SIGNED_DATA, SIGNATURE_KIND, Rid, cert_ids, digest_name, hash_of, is_oid,
                                 read_rid)
from gateway.errors import AuthenticationFailed, IntegrityCheckFailed, UnexpectedProcessingError

BytesLike = der.BytesLike


def _signing_time(now: dt.datetime) -> bytes:
    if now.year < 2050:
        return der.tlv(0x17, now.strftime("%y%m%d%H%M%SZ").encode())
    return der.tlv(0x18, now.strftime("%Y%m%d%H%M%SZ").encode())


def sign(content: BytesLike, identity: Identity, digest: str, *, algorithm_protection: bool = True) -> bytes:
    """Sign ``content`` with ``identity``; returns a detached CMS SignedData (DER) carrying our certificate.

    ``digest`` is one of DIGESTS. Signed attributes: content-type, signing-time, message-digest
    and, unless ``algorithm_protection`` is False (a per-partner quirk), RFC 6211 CMS algorithm
    protection.
    """
    if digest not in DIGESTS:
        raise UnexpectedProcessingError(f"unsupported signing digest {digest!r} (use one of {sorted(DIGESTS)})")
    content_digest = hashlib.new(digest, content).digest()
    return sign_digest(content_digest, identity, digest, algorithm_protection=algorithm_protection)


def sign_digest(content_digest: bytes, identity: Identity, digest: str, *, algorithm_protection: bool = True) -> bytes:
    """Like ``sign`` for content already hashed with ``digest`` (lets callers hash a message in pieces)."""
    if digest not in DIGESTS:
        raise UnexpectedProcessingError(f"unsupported signing digest {digest!r} (use one of {sorted(DIGESTS)})")
    key = identity.key
    digest_alg = der.tlv(der.SEQUENCE, der.oid(DIGEST_OIDS[digest]))
    if isinstance(key, rsa.RSAPrivateKey):
        sig_alg = der.tlv(der.SEQUENCE, OID_RSA, NULL)
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        sig_alg = der.tlv(der.SEQUENCE, der.oid(ECDSA_OIDS[digest]))
    else:
        raise UnexpectedProcessingError(f"unsupported signing key {type(key).__name__}")
    attrs = [
        der.tlv(der.SEQUENCE, OID_ATTR_CONTENT_TYPE, der.tlv(der.SET, OID_DATA)),
        der.tlv(der.SEQUENCE, OID_ATTR_SIGNING_TIME, der.tlv(der.SET, _signing_time(dt.datetime.now(dt.UTC)))),
        der.tlv(der.SEQUENCE, OID_ATTR_MESSAGE_DIGEST, der.tlv(der.SET, der.tlv(der.OCTET_STRING, content_digest))),
    ]
    if algorithm_protection:
        # CMSAlgorithmProtection ::= SEQUENCE { digestAlgorithm, signatureAlgorithm [1] IMPLICIT ... }
        protection = der.tlv(der.SEQUENCE, digest_alg, b"\xa1" + sig_alg[1:])
        attrs.append(der.tlv(der.SEQUENCE, OID_ATTR_ALGORITHM_PROTECTION, der.tlv(der.SET, protection)))
    attrs_content = b"".join(sorted(attrs))  # DER: a SET OF is sorted by encoding
    to_sign = der.header(der.SET, len(attrs_content)) + attrs_content
    if isinstance(key, rsa.RSAPrivateKey):
        signature = key.sign(to_sign, padding.PKCS1v15(), hash_of(digest))
    else:
        signature = key.sign(to_sign, ec.ECDSA(hash_of(digest)))
    signer_info = der.tlv(
        der.SEQUENCE,
        INT_1,
        cert_ids(identity.certificate).issuer_and_serial,
        digest_alg,
        der.header(0xA0, len(attrs_content)) + attrs_content,  # signedAttrs [0] IMPLICIT
        sig_alg,
        der.tlv(der.OCTET_STRING, signature),
    )
    certs = b"".join(cert_ids(c).der for c in (identity.certificate, *identity.chain))
    signed_data = der.tlv(
        der.SEQUENCE,
        INT_1,
        der.tlv(der.SET, digest_alg),
        der.tlv(der.SEQUENCE, OID_DATA),  # detached: no eContent
        der.tlv(0xA0, certs),
        der.tlv(der.SET, signer_info),
    )
    return der.tlv(der.SEQUENCE, OID_SIGNED_DATA, der.tlv(0xA0, signed_data))


# ----------------------------------------------------------------------------- reading SignedData


@dataclass(frozen=True)
class _SignerInfo:
    rid: Rid
    digest_oid: bytes  # OID content octets
    attrs: bytes | None  # signedAttrs re-tagged as the universal SET OF the signature covers
    attr_values: dict[bytes, list[tuple[int, bytes, bytes]]]  # attr OID -> [(tag, content, full encoding)]
    sig_oid: bytes
    sig_params: bytes | None  # full encoding of the parameters (RSASSA-PSS)
    signature: bytes


@dataclass(frozen=True)
class _SignedData:
    e_content_type: bytes  # OID content octets
    e_content: bytes | None
    signers: list[_SignerInfo]


def _algorithm(mv: memoryview, tlv: der.Tlv) -> tuple[bytes, bytes | None]:
    """(OID content octets, full encoding of the parameters or None) of an AlgorithmIdentifier."""
    parts = der.children(mv, der.expect(tlv, der.SEQUENCE, "AlgorithmIdentifier"))
    if not parts or parts[0].tag != der.OID:
        raise der.BerError("AlgorithmIdentifier without OID")
    params = bytes(mv[parts[0].next : parts[1].next]) if len(parts) > 1 and parts[1].tag != 0x05 else None
    return bytes(mv[parts[0].start : parts[0].stop]), params


def _read_signer(mv: memoryview, tlv: der.Tlv) -> _SignerInfo:
    f = der.children(mv, der.expect(tlv, der.SEQUENCE, "SignerInfo"))
    rid = read_rid(mv, f[1])
    digest_oid, _ = _algorithm(mv, f[2])
    i = 3
    attrs = None
    values: dict[bytes, list[tuple[int, bytes, bytes]]] = {}
    if f[i].tag == 0xA0:
        begin = f[i - 1].next  # where the [0] element's identifier byte is
        attrs = b"\x31" + bytes(mv[begin + 1 : f[i].next])  # the signature covers them as a universal SET OF
        for attr in der.children(mv, f[i]):
            oid_tlv, value_set = der.children(mv, der.expect(attr, der.SEQUENCE, "Attribute"))[:2]
            values[bytes(mv[oid_tlv.start : oid_tlv.stop])] = [
                (v.tag, bytes(mv[v.start : v.stop]), bytes(mv[pos : v.next]))
                for pos, v in _with_pos(mv, value_set)
            ]
        i += 1
    sig_oid, sig_params = _algorithm(mv, f[i])
    signature = b"".join(bytes(c) for c in der.octets(mv, der.expect(f[i + 1], der.OCTET_STRING, "signature")))
    return _SignerInfo(rid, digest_oid, attrs, values, sig_oid, sig_params, signature)


def _with_pos(mv: memoryview, tlv: der.Tlv) -> list[tuple[int, der.Tlv]]:
    out = []
    pos = tlv.start
    for child in der.children(mv, tlv):
        out.append((pos, child))
        pos = child.next
    return out


def _read_signed_data(data: BytesLike) -> _SignedData:
    mv = memoryview(data)
    ci = der.children(mv, der.expect(der.read(mv, 0), der.SEQUENCE, "ContentInfo"))
    if len(ci) < 2 or not is_oid(mv, ci[0], OID_SIGNED_DATA):
        raise AuthenticationFailed("signature is not CMS SignedData")
    f = der.children(mv, der.expect(der.children(mv, ci[1])[0], der.SEQUENCE, "SignedData"))
    eci = der.children(mv, der.expect(f[2], der.SEQUENCE, "EncapsulatedContentInfo"))
    e_content = None
    if len(eci) > 1:
        e_content = b"".join(bytes(c) for c in der.octets(mv, der.children(mv, eci[1])[0]))
    signer_set = der.expect(f[-1], der.SET, "SignerInfos")
    signers = [_read_signer(mv, s) for s in der.children(mv, signer_set)]
    return _SignedData(bytes(mv[eci[0].start : eci[0].stop]), e_content, signers)


def _verify_raw(public_key: object, signature: bytes, data: BytesLike, kind: str, params: bytes | None,
                digest: str) -> None:
    """Check one raw signature; InvalidSignature on mismatch."""
    if kind == "rsa" and isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, data, padding.PKCS1v15(), hash_of(digest))
    elif kind == "pss" and isinstance(public_key, rsa.RSAPublicKey) and params:
        p = a_algos.RSASSAPSSParams.load(params)
        pss_hash = digest_name(p["hash_algorithm"]["algorithm"].native) or digest
        mgf_hash = digest_name(p["mask_gen_algorithm"]["parameters"]["algorithm"].native) or pss_hash
        pad = padding.PSS(mgf=padding.MGF1(hash_of(mgf_hash)), salt_length=p["salt_length"].native)
        public_key.verify(signature, data, pad, hash_of(pss_hash))
    elif kind == "ecdsa" and isinstance(public_key, ec.EllipticCurvePublicKey):
        public_key.verify(signature, data, ec.ECDSA(hash_of(digest)))
    else:
        key_type = type(public_key).__name__
        raise UnexpectedProcessingError(f"signature algorithm {kind} does not fit the signer's {key_type}")


def verify(content: BytesLike, signature: BytesLike, trusted: Sequence[x509.Certificate]) -> str:
    """Verify a detached CMS SignedData over ``content`` against the partner's certificate(s).

    The signer must be one of ``trusted`` (matched by issuer+serial or subject key id: the
    partner's certificates are pinned, not chain-validated); the message-digest attribute must
    equal the content's digest; the signature must verify over the signed attributes; an RFC
    6211 algorithm-protection attribute, when present, must name the algorithms used. Returns
    the digest name (``sha256``...). Raises AuthenticationFailed (unreadable signature, unknown
    signer, bad signature), IntegrityCheckFailed (content changed) or UnexpectedProcessingError
    (unsupported algorithm).
    """
    try:
        sd = _read_signed_data(signature)
    except der.BerError as e:
        raise AuthenticationFailed(f"signature is not a readable CMS SignedData: {e}") from None
    except (ValueError, IndexError) as e:
        raise AuthenticationFailed(f"signature is not a readable CMS SignedData: {e}") from None
    if not sd.signers:
        raise AuthenticationFailed("SignedData has no signer")
    unknown = []
    for si in sd.signers:
        cert = next((c for c in trusted if si.rid.matches(c)), None)
        if cert is None:
            unknown.append(str(si.rid))
            continue
        return _verify_signer(si, cert, content, sd.e_content_type)
    raise AuthenticationFailed(f"signer certificate is not trusted for this partner: {'; '.join(unknown)}")


def _verify_signer(si: _SignerInfo, cert: x509.Certificate, content: BytesLike, e_content_type: bytes) -> str:
    digest = DIGEST_BY_OID.get(si.digest_oid)
    if digest is None:
        raise UnexpectedProcessingError(f"unsupported digest algorithm {der.oid_text(si.digest_oid)}")
    kind = SIGNATURE_KIND.get(si.sig_oid)
    if kind is None:
        raise UnexpectedProcessingError(f"unsupported signature algorithm {der.oid_text(si.sig_oid)}")
    if si.attrs is None:
        data: BytesLike = content
    else:
        md = si.attr_values.get(OID_ATTR_MESSAGE_DIGEST[2:])
        ct = si.attr_values.get(OID_ATTR_CONTENT_TYPE[2:])
        if not md or not ct:
            raise AuthenticationFailed("signed attributes lack message-digest or content-type")
        if ct[0][1] != e_content_type:
            raise AuthenticationFailed("content-type attribute does not match the signed content type")
        protection = si.attr_values.get(OID_ATTR_ALGORITHM_PROTECTION[2:])
        if protection:
            _check_protection(protection[0][2], si)
        if not hmac.compare_digest(md[0][1], hashlib.new(digest, content).digest()):
            raise IntegrityCheckFailed("content does not match the signed message digest (altered in transit)")
        data = si.attrs
    try:
        _verify_raw(cert.public_key(), si.signature, data, kind, si.sig_params, digest)
    except InvalidSignature:
        raise AuthenticationFailed("signature does not verify with the partner's certificate") from None
    except (UnsupportedAlgorithm, ValueError, TypeError, KeyError) as e:
        raise UnexpectedProcessingError(f"cannot verify the signature: {e}") from None
    return digest


def _check_protection(encoded: bytes, si: _SignerInfo) -> None:
    """RFC 6211: the protected algorithm identifiers must be the ones the SignerInfo uses."""
    mv = memoryview(encoded)
    try:
        fields = der.children(mv, der.read(mv, 0))
        digest_oid, _ = _algorithm(mv, fields[0])
        sig = next((f for f in fields[1:] if f.tag == 0xA1), None)
        sig_oid = bytes(mv[der.children(mv, sig)[0].start : der.children(mv, sig)[0].stop]) if sig else None
    except (der.BerError, IndexError) as e:
        raise AuthenticationFailed(f"unreadable CMS algorithm-protection attribute: {e}") from None
    if digest_oid != si.digest_oid or (sig_oid is not None and sig_oid != si.sig_oid):
        raise AuthenticationFailed("CMS algorithm-protection attribute does not match the algorithms used")


def signed_content(signed_data: BytesLike) -> bytes:
    """The encapsulated content of a non-detached (opaque) SignedData, for ``verify`` to check."""
    try:
        sd = _read_signed_data(signed_data)
    except (der.BerError, ValueError, IndexError) as e:
        raise AuthenticationFailed(f"signature is not a readable CMS SignedData: {e}") from None
    if sd.e_content is None:
        raise AuthenticationFailed("SignedData carries no content")
    return sd.e_content


def content_kind(data: BytesLike) -> str | None:
    """The smime-type a CMS ContentInfo holds (``enveloped-data``, ``signed-data``, ``compressed-data``), if any."""
    try:
        mv = memoryview(data)
        outer = der.read(mv, 0)
        if not outer.constructed:
            return None
        first = der.read(mv, outer.start, outer.stop)
    except (der.BerError, ValueError):
        return None
    for encoded, kind in ((OID_ENVELOPED_DATA, "enveloped-data"), (OID_SIGNED_DATA, "signed-data"),
                          (OID_COMPRESSED_DATA, "compressed-data")):
        if is_oid(mv, first, encoded):
            return kind
    return None
