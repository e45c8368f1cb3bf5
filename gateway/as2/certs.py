"""Certificates and key pairs for AS2: load PEM/DER/PKCS#12, generate self-signed, fingerprint, expiry."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

from gateway.errors import ConfigError, ConfigProblem

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

_PEM_CERT = re.compile(rb"-----BEGIN (?:X509 |TRUSTED )?CERTIFICATE-----.+?"
                       rb"-----END (?:X509 |TRUSTED )?CERTIFICATE-----", re.S)
_PEM_KEY = re.compile(rb"-----BEGIN (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----.+?"
                      rb"-----END (?:RSA |EC |ENCRYPTED )?PRIVATE KEY-----", re.S)


@dataclass(frozen=True)
class Identity:
    """One of our key pairs: the private key, its certificate and the certificates that issued it."""

    key: PrivateKey
    certificate: x509.Certificate
    chain: tuple[x509.Certificate, ...] = ()


def _problem(source: str, key: str, problem: str) -> ConfigError:
    return ConfigError([ConfigProblem(file=source, key=key, problem=problem)])


def load_certificates(data: bytes, *, source: str = "<certificate>") -> list[x509.Certificate]:
    """Load every certificate in ``data``: one or many PEM blocks, a DER certificate, or a PKCS#7 bundle.

    Raises ConfigError naming ``source`` when nothing usable is found.
    """
    try:
        if b"-----BEGIN" in data:
            blocks = _PEM_CERT.findall(data)
            if blocks:
                return [x509.load_pem_x509_certificate(b) for b in blocks]
            if b"-----BEGIN PKCS7-----" in data:
                from cryptography.hazmat.primitives.serialization import pkcs7

                return list(pkcs7.load_pem_pkcs7_certificates(data))
            raise ValueError("no CERTIFICATE block in PEM data")
        try:
            return [x509.load_der_x509_certificate(data)]
        except ValueError:
            from cryptography.hazmat.primitives.serialization import pkcs7

            return list(pkcs7.load_der_pkcs7_certificates(data))
    except (ValueError, TypeError) as e:
        raise _problem(source, "certificate", f"not a PEM/DER certificate: {e}") from None


def load_identity(data: bytes, password: bytes | None = None, *, source: str = "<identity>") -> Identity:
    """Load our key pair: a PEM file holding the private key and its certificate (plus chain), or PKCS#12.

    The certificate whose public key matches the private key is the identity's certificate; the
    other certificates become the chain. Raises ConfigError naming ``source``.
    """
    try:
        if b"-----BEGIN" in data:
            keys = _PEM_KEY.findall(data)
            if len(keys) != 1:
                raise ValueError(f"expected one PRIVATE KEY block, found {len(keys)}")
            key = serialization.load_pem_private_key(keys[0], password=password)
            certs = load_certificates(data, source=source)
        else:
            key, cert, extra = pkcs12.load_key_and_certificates(data, password)
            if key is None or cert is None:
                raise ValueError("PKCS#12 file without a private key and its certificate")
            certs = [cert, *extra]
    except ConfigError:
        raise
    except (ValueError, TypeError) as e:
        raise _problem(source, "identity", f"cannot load private key/certificate: {e}") from None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        raise _problem(source, "identity", f"unsupported key type {type(key).__name__} (RSA or EC expected)")
    ours = _spki(key.public_key())
    for cert in certs:
        if _spki(cert.public_key()) == ours:
            return Identity(key=key, certificate=cert, chain=tuple(c for c in certs if c is not cert))
    raise _problem(source, "identity", "no certificate in the file matches the private key")


def _spki(public_key: object) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                                   serialization.PublicFormat.SubjectPublicKeyInfo)


def generate_identity(common_name: str, *, days: int = 730, key_size: int = 2048) -> tuple[bytes, bytes]:
    """Generate an RSA key and a self-signed certificate for AS2 signing and encryption.

    Returns ``(key PEM (unencrypted PKCS#8), certificate PEM)``.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=days))
        # A self-signed partner certificate is its own trust anchor: CA:TRUE lets
        # `openssl cms -verify -CAfile cert.pem` and other strict verifiers accept it.
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=True, key_encipherment=True, data_encipherment=False,
                key_agreement=False, key_cert_sign=True, crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return key_pem, cert.public_bytes(serialization.Encoding.PEM)


def fingerprint(cert: x509.Certificate) -> str:
    """The certificate's SHA-256 fingerprint as ``SHA256:AB:CD:...`` (what partners compare by phone)."""
    return "SHA256:" + cert.fingerprint(hashes.SHA256()).hex(":").upper()


def expires_in_days(cert: x509.Certificate, now: dt.datetime) -> float:
    """Days (fractional, negative once expired) from ``now`` until the certificate's notAfter.

    A naive ``now`` is taken as UTC.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    return (cert.not_valid_after_utc - now).total_seconds() / 86400.0


def encryption_certificate(certificates: tuple[x509.Certificate, ...] | list[x509.Certificate],
                           now: dt.datetime) -> x509.Certificate | None:
    """Of a partner's certificates, the one we encrypt to: the newest that is valid now (key rollover)."""
    valid = [c for c in certificates if c.not_valid_before_utc <= now < c.not_valid_after_utc]
    return max(valid, key=lambda c: c.not_valid_before_utc, default=None)
