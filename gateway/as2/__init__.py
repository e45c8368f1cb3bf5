"""Sans-I/O AS2 (RFC 4130): bytes and headers in, bytes and headers out; no sockets, asyncio or store.

Modules, bottom up:

    der      minimal BER reader / DER writer over memoryviews (the payload-sized CMS fields)
    certs    Identity (our key pair), load PEM/DER/PKCS#12, generate, fingerprint, expiry
    cmsbase  algorithm names and OIDs, matching certificates to CMS signer/recipient ids
    signing  detached SignedData: sign, verify against pinned partner certificates
    envelope EnvelopedData encrypt/decrypt (key rollover), CompressedData with a size cap
    cms      the CMS operations in one namespace (re-exports signing + envelope)
    mime     byte-exact MIME: header blocks, Content-Type parameters, multipart split
    message  build() / parse() one AS2 message body, with its MIC
    mdn      build_mdn() / parse_mdn() receipts, parse_disposition_options()

Every failure on received bytes is an ``As2Error`` subclass whose ``disposition`` is the MDN
modifier to send back (``decryption-failed``, ``authentication-failed``, ...).

Decision: the CMS layer does NOT use pyas2lib. pyas2lib 1.4.4 needs oscrypto, which does not
import on OpenSSL 3 here (its libcrypto version regex fails on "3.0.x"); even shimmed, its
measured cost (~60 build+parse+MDN round trips/s per core for 10 KB, ~20x the payload in
memory, dominated by asn1crypto re-serialization and the email package) blocks the goal of
150 msg/s on 2 cores, and it alters line endings of non-binary payloads. This package builds
on ``cryptography`` primitives (RSA, AES/3DES-CBC, hashes) with the CMS structures written
directly in DER, and ``asn1crypto`` only to read the small partner-supplied structures
(SignedData to verify a detached signature, RecipientInfos, AlgorithmIdentifiers).
Interoperability is proven against ``openssl cms`` in tests/test_as2_interop.py.

Measured on the 2-core project machine (RSA-2048: ~1,280 signs/s per core), 10 KB signed +
encrypted message with a signed MDN, build + parse + MDN build + MDN parse on one core: this
package ~300 round trips/s (three RSA private-key operations, ~2.2 ms, are two thirds of it);
pyas2lib 1.4.4 with oscrypto shimmed to import, same messages: 24-34 round trips/s. A 100 MB
signed + encrypted payload builds in ~0.4 s and parses in ~0.4 s, each allocating about twice
the payload on top of its input (the ciphertext or plaintext, and the one output copy).
"""

from gateway.as2.certs import (Identity, encryption_certificate, expires_in_days, fingerprint, generate_identity, load_certificates,
                               load_identity)
from gateway.as2.cms import CIPHERS, DIGESTS
from gateway.as2.mdn import Mdn, build_mdn, parse_disposition_options, parse_mdn
from gateway.as2.message import Inbound, Outbound, build, parse

__all__ = [
    "CIPHERS", "DIGESTS", "Identity", "encryption_certificate", "Inbound", "Mdn", "Outbound", "build", "build_mdn", "expires_in_days",
    "fingerprint", "generate_identity", "load_certificates", "load_identity", "parse", "parse_disposition_options",
    "parse_mdn",
]
