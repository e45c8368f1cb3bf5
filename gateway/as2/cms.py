"""CMS (RFC 5652) for AS2, one import away: sign/verify, encrypt/decrypt, compress/decompress; DER in and out.

Built on `cryptography` primitives (RSA, AES/3DES-CBC, hashes) with the CMS structures written
and read directly in DER (gateway.as2.der): cryptography's PKCS7 builders cannot add the RFC
6211 algorithm-protection attribute, encrypt with 3DES or AES-192, or verify a detached
signature against a pinned partner certificate; asn1crypto copies the payload at every nesting
level and costs ~1 ms per SignedData parse, so it is kept for rare parameters (RSASSA-PSS,
RSAES-OAEP) and issuer-name comparison only. Implementation: signing.py, envelope.py,
cmsbase.py.

Errors are As2Error subclasses only: AuthenticationFailed / IntegrityCheckFailed (verify),
DecryptionFailed (decrypt: one message whatever step failed, no padding oracle),
DecompressionFailed (decompress), UnexpectedProcessingError (unsupported algorithm or setting).
"""

from gateway.as2.cmsbase import CIPHERS, DIGESTS, digest_name, mic_name
from gateway.as2.envelope import compress, decompress, decrypt, decrypt_view, encrypt
from gateway.as2.signing import content_kind, sign, sign_digest, signed_content, verify

__all__ = [
    "CIPHERS", "DIGESTS", "compress", "content_kind", "decompress", "decrypt", "decrypt_view", "digest_name",
    "encrypt", "mic_name", "sign", "sign_digest", "signed_content", "verify",
]
