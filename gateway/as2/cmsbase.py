"""What the CMS modules share: algorithm names and OIDs, and matching certificates to CMS identifiers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from asn1crypto import x509 as a_x509
from cryptography import x509
from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.ciphers import algorithms

from gateway.as2 import der

DIGESTS = frozenset({"sha1", "sha256", "sha384", "sha512"})
CIPHERS = frozenset({"3des", "aes128-cbc", "aes192-cbc", "aes256-cbc"})

HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "sha1": hashes.SHA1, "sha224": hashes.SHA224, "sha256": hashes.SHA256,
    "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}
DIGEST_OIDS = {
    "sha1": "1.3.14.3.2.26", "sha224": "2.16.840.1.101.3.4.2.4", "sha256": "2.16.840.1.101.3.4.2.1",
    "sha384": "2.16.840.1.101.3.4.2.2", "sha512": "2.16.840.1.101.3.4.2.3",
}
ECDSA_OIDS = {
    "sha1": "1.2.840.10045.4.1", "sha224": "1.2.840.10045.4.3.1", "sha256": "1.2.840.10045.4.3.2",
    "sha384": "1.2.840.10045.4.3.3", "sha512": "1.2.840.10045.4.3.4",
}
_RSA_WITH = {"sha1": "1.2.840.113549.1.1.5", "sha224": "1.2.840.113549.1.1.14", "sha256": "1.2.840.113549.1.1.11",
             "sha384": "1.2.840.113549.1.1.12", "sha512": "1.2.840.113549.1.1.13"}


def _content(dotted: str) -> bytes:
    return der.oid(dotted)[2:]


# OID content octets -> digest name; senders that put sha256WithRSAEncryption in digestAlgorithm are tolerated.
DIGEST_BY_OID = {_content(v): k for k, v in DIGEST_OIDS.items()} | {_content(v): k for k, v in _RSA_WITH.items()}
# OID content octets -> "rsa" | "pss" | "ecdsa"
SIGNATURE_KIND = (
    {_content("1.2.840.113549.1.1.1"): "rsa", _content("1.2.840.113549.1.1.10"): "pss",
     _content("1.2.840.10045.2.1"): "ecdsa"}
    | {_content(v): "rsa" for v in _RSA_WITH.values()}
    | {_content(v): "ecdsa" for v in ECDSA_OIDS.values()}
)
# cipher name -> (OID, key bytes, block bytes, cryptography algorithm class)
CIPHER_PARAMS: dict[str, tuple[str, int, int, Callable]] = {
    "3des": ("1.2.840.113549.3.7", 24, 8, TripleDES),
    "aes128-cbc": ("2.16.840.1.101.3.4.1.2", 16, 16, algorithms.AES),
    "aes192-cbc": ("2.16.840.1.101.3.4.1.22", 24, 16, algorithms.AES),
    "aes256-cbc": ("2.16.840.1.101.3.4.1.42", 32, 16, algorithms.AES),
}
CIPHER_BY_OID = {_content(v[0]): k for k, v in CIPHER_PARAMS.items()}
_KNOWN_UNSUPPORTED = {_content("1.2.840.113549.3.2"): "RC2-CBC", _content("1.3.14.3.2.7"): "DES-CBC",
                      _content("1.2.840.113549.3.4"): "RC4"}

OID_DATA = der.oid("1.2.840.113549.1.7.1")
OID_SIGNED_DATA = der.oid("1.2.840.113549.1.7.2")
OID_ENVELOPED_DATA = der.oid("1.2.840.113549.1.7.3")
OID_COMPRESSED_DATA = der.oid("1.2.840.113549.1.9.16.1.9")
OID_ZLIB = der.oid("1.2.840.113549.1.9.16.3.8")
OID_RSA = der.oid("1.2.840.113549.1.1.1")
OID_RSAES_OAEP = der.oid("1.2.840.113549.1.1.7")
OID_ATTR_CONTENT_TYPE = der.oid("1.2.840.113549.1.9.3")
OID_ATTR_MESSAGE_DIGEST = der.oid("1.2.840.113549.1.9.4")
OID_ATTR_SIGNING_TIME = der.oid("1.2.840.113549.1.9.5")
OID_ATTR_ALGORITHM_PROTECTION = der.oid("1.2.840.113549.1.9.52")
NULL = b"\x05\x00"
INT_0 = b"\x02\x01\x00"
INT_1 = b"\x02\x01\x01"


def digest_name(name: str) -> str | None:
    """Our digest name (``sha256``) for any spelling partners use: ``sha-256``, ``SHA256``, ``sha_256``..."""
    key = name.strip().strip('"').lower().replace("-", "").replace("_", "")
    return key if key in HASHES else None


def mic_name(digest: str) -> str:
    """The RFC 5751 micalg / MDN spelling of a digest: ``sha1``, ``sha-256``, ``sha-384``, ``sha-512``."""
    d = digest_name(digest) or digest
    return "sha1" if d == "sha1" else f"sha-{d[3:]}"


def hash_of(name: str) -> hashes.HashAlgorithm:
    """The cryptography hash object for a digest name."""
    return HASHES[name]()


def unsupported_name(oid_content: bytes) -> str:
    """A readable name for an algorithm OID we do not support (RC2, DES...), else its dotted form."""
    return _KNOWN_UNSUPPORTED.get(oid_content) or der.oid_text(oid_content)


def is_oid(mv: memoryview, tlv: der.Tlv, encoded: bytes) -> bool:
    """Is the element an OBJECT IDENTIFIER equal to ``encoded`` (a full DER OID from der.oid)?"""
    return tlv.tag == der.OID and mv[tlv.start : tlv.stop] == encoded[2:]


# ----------------------------------------------------------------------------- certificate identifiers


@dataclass(frozen=True)
class CertIds:
    """How CMS can name a certificate: issuer+serial or subject key identifier; plus its DER."""

    issuer: bytes
    serial: int
    ski: bytes
    der: bytes

    @property
    def issuer_and_serial(self) -> bytes:
        """DER IssuerAndSerialNumber."""
        return der.tlv(der.SEQUENCE, self.issuer, der.tlv(der.INTEGER, self.serial.to_bytes(
            self.serial.bit_length() // 8 + 1, "big", signed=True)))


@lru_cache(maxsize=512)
def cert_ids(cert: x509.Certificate) -> CertIds:
    """The identifiers of a certificate (cached: certificates are hashable and immutable)."""
    try:
        ski = cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    except (x509.ExtensionNotFound, ValueError):
        ski = x509.SubjectKeyIdentifier.from_public_key(cert.public_key()).digest
    return CertIds(cert.issuer.public_bytes(), cert.serial_number, ski, cert.public_bytes(serialization.Encoding.DER))


@dataclass(frozen=True)
class Rid:
    """A SignerIdentifier / RecipientIdentifier read from a message."""

    issuer: bytes | None = None
    serial: int | None = None
    ski: bytes | None = None

    def matches(self, cert: x509.Certificate) -> bool:
        """Does this identifier name ``cert``? (Issuer names compared by DER, then RFC 5280 rules.)"""
        ids = cert_ids(cert)
        if self.ski is not None:
            return self.ski == ids.ski
        if self.serial != ids.serial or self.issuer is None:
            return False
        if self.issuer == ids.issuer:
            return True
        try:  # same name, other string types (PrintableString vs UTF8String...)
            return a_x509.Name.load(self.issuer) == a_x509.Name.load(ids.issuer)
        except (ValueError, TypeError):
            return False

    def __str__(self) -> str:
        if self.ski is not None:
            return f"subject key id {self.ski.hex()}"
        try:
            name = a_x509.Name.load(self.issuer or b"").human_friendly
        except (ValueError, TypeError):
            name = "?"
        return f"issuer {name!r} serial {self.serial:x}" if self.serial is not None else f"issuer {name!r}"


def read_rid(mv: memoryview, tlv: der.Tlv) -> Rid:
    """Read IssuerAndSerialNumber or ``[0] SubjectKeyIdentifier``."""
    if tlv.tag == der.SEQUENCE:
        name, serial = der.children(mv, tlv)[:2]
        if name.tag != der.SEQUENCE:
            raise der.BerError("issuer Name expected")
        return Rid(issuer=bytes(mv[tlv.start : name.next]), serial=der.integer(mv, serial))
    if tlv.number == 0 and tlv.tag & 0xC0 == 0x80:
        return Rid(ski=der.content(mv, tlv) if not tlv.constructed else b"".join(bytes(c) for c in der.octets(mv, tlv)))
    raise der.BerError("unknown signer/recipient identifier")
