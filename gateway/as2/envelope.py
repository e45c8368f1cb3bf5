"""CMS EnvelopedData (encrypt/decrypt) and CompressedData (RFC 3274) for AS2, streaming over the payload.

The payload-sized fields are written into one preallocated buffer and read through
memoryviews (gateway.as2.der), so a 100 MB message is not copied level by level.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Callable, Sequence

from asn1crypto import algos as a_algos
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, modes

from gateway.as2 import der
from gateway.as2.certs import Identity
from gateway.as2.cmsbase import (CIPHER_BY_OID, CIPHER_PARAMS, CIPHERS, INT_0, NULL, OID_COMPRESSED_DATA, OID_DATA,
                                 OID_ENVELOPED_DATA, OID_RSA, OID_RSAES_OAEP, OID_ZLIB, Rid, cert_ids, digest_name,
                                 hash_of, is_oid, read_rid, unsupported_name)
from gateway.errors import DecompressionFailed, DecryptionFailed, UnexpectedProcessingError

BytesLike = der.BytesLike


def _parts(content: BytesLike | Sequence[BytesLike]) -> list[BytesLike]:
    return [content] if isinstance(content, (bytes, bytearray, memoryview)) else list(content)


# ----------------------------------------------------------------------------- EnvelopedData


def _recipient_info(cert: x509.Certificate, key: bytes) -> bytes:
    public = cert.public_key()
    if not isinstance(public, rsa.RSAPublicKey):
        raise UnexpectedProcessingError("only RSA recipient certificates are supported for encryption")
    return der.tlv(
        der.SEQUENCE,
        INT_0,
        cert_ids(cert).issuer_and_serial,
        der.tlv(der.SEQUENCE, OID_RSA, NULL),
        der.tlv(der.OCTET_STRING, public.encrypt(key, padding.PKCS1v15())),
    )


def encrypt(content: BytesLike | Sequence[BytesLike], recipients: Sequence[x509.Certificate], cipher: str) -> bytes:
    """Encrypt ``content`` (bytes, or a sequence of parts taken as one) for each recipient certificate.

    Returns a CMS EnvelopedData (DER) with RSA PKCS#1 v1.5 key transport and ``cipher`` (one of
    CIPHERS) in CBC mode. Parts are encrypted straight into the output buffer: no joined copy.
    """
    if cipher not in CIPHER_PARAMS:
        raise UnexpectedProcessingError(f"unsupported cipher {cipher!r} (use one of {sorted(CIPHERS)})")
    if not recipients:
        raise UnexpectedProcessingError("encryption needs at least one recipient certificate")
    parts = _parts(content)
    oid, key_len, block, algorithm = CIPHER_PARAMS[cipher]
    key, iv = os.urandom(key_len), os.urandom(block)
    recipient_infos = der.tlv(der.SET, *sorted(_recipient_info(c, key) for c in recipients))
    n = der.total(parts)
    pad = block - n % block
    ct_len = n + pad
    alg_id = der.tlv(der.SEQUENCE, der.oid(oid), der.tlv(der.OCTET_STRING, iv))
    ct_header = der.header(0x80, ct_len)  # encryptedContent [0] IMPLICIT OCTET STRING
    eci_len = len(OID_DATA) + len(alg_id) + len(ct_header) + ct_len
    eci_header = der.header(der.SEQUENCE, eci_len)
    ed_len = len(INT_0) + len(recipient_infos) + len(eci_header) + eci_len
    ed_header = der.header(der.SEQUENCE, ed_len)
    explicit_header = der.header(0xA0, len(ed_header) + ed_len)
    ci_len = len(OID_ENVELOPED_DATA) + len(explicit_header) + len(ed_header) + ed_len
    head = b"".join([der.header(der.SEQUENCE, ci_len), OID_ENVELOPED_DATA, explicit_header, ed_header, INT_0,
                     recipient_infos, eci_header, OID_DATA, alg_id, ct_header])
    out = bytearray(len(head) + ct_len + block)  # slack: update_into wants len(data) + block - 1 of room
    out[: len(head)] = head
    view = memoryview(out)
    encryptor = Cipher(algorithm(key), modes.CBC(iv)).encryptor()
    pos = len(head)
    for part in [*parts, bytes([pad]) * pad]:
        if len(part):
            pos += encryptor.update_into(part, view[pos:])
    encryptor.finalize()  # the input was padded to whole blocks: nothing left to flush
    view.release()
    del out[pos:]
    return bytes(out)


def _cek(rid_alg: tuple[bytes, bytes | None], encrypted_key: bytes, identity: Identity) -> bytes | None:
    """Unwrap the content-encryption key with our RSA key; None if it is not ours."""
    key = identity.key
    if not isinstance(key, rsa.RSAPrivateKey):
        return None
    alg, params = rid_alg
    try:
        if alg == OID_RSAES_OAEP[2:]:
            p = a_algos.RSAESOAEPParams.load(params or b"\x30\x00")
            h = digest_name(p["hash_algorithm"]["algorithm"].native) or "sha1"
            mgf = digest_name(p["mask_gen_algorithm"]["parameters"]["algorithm"].native) or h
            oaep = padding.OAEP(mgf=padding.MGF1(hash_of(mgf)), algorithm=hash_of(h), label=None)
            return key.decrypt(encrypted_key, oaep)
        if alg == OID_RSA[2:]:
            # cryptography's OpenSSL does implicit rejection: a wrong key yields random bytes, which the
            # key-length, padding and plausibility checks of the caller turn into "not ours".
            return key.decrypt(encrypted_key, padding.PKCS1v15())
    except (ValueError, TypeError, KeyError, UnsupportedAlgorithm):
        return None
    return None


def decrypt(enveloped: BytesLike, identities: Sequence[Identity]) -> bytes:
    """Decrypt a CMS EnvelopedData (DER/BER) with the first of ``identities`` that can.

    Several identities cover key rollover (two active key pairs). Supports RSA PKCS#1 v1.5 and
    OAEP key transport and 3DES/AES-128/192/256-CBC. Raises DecryptionFailed.
    """
    return bytes(decrypt_view(enveloped, identities))


def _read_enveloped(mv: memoryview) -> tuple[list[tuple[Rid, tuple[bytes, bytes | None], bytes]], bytes,
                                             bytes | None, list[memoryview]]:
    """(key-transport recipients, cipher OID, cipher params, encrypted content chunks) of an EnvelopedData."""
    ci = der.children(mv, der.expect(der.read(mv, 0), der.SEQUENCE, "ContentInfo"))
    if len(ci) < 2 or not is_oid(mv, ci[0], OID_ENVELOPED_DATA) or ci[1].tag != 0xA0:
        raise DecryptionFailed("not a CMS EnvelopedData")
    fields = der.children(mv, der.expect(der.children(mv, ci[1])[0], der.SEQUENCE, "EnvelopedData"))
    i = 2 if fields[1].tag == 0xA0 else 1  # skip version and the optional originatorInfo
    recipients = []
    for ri in der.children(mv, der.expect(fields[i], der.SET, "RecipientInfos")):
        if ri.tag != der.SEQUENCE:  # only KeyTransRecipientInfo (kari/kekri/pwri are tagged)
            continue
        f = der.children(mv, ri)
        kea = der.children(mv, der.expect(f[2], der.SEQUENCE, "KeyEncryptionAlgorithm"))
        params = bytes(mv[kea[0].next : kea[1].next]) if len(kea) > 1 else None
        encrypted_key = der.content(mv, der.expect(f[3], der.OCTET_STRING, "encryptedKey"))
        recipients.append((read_rid(mv, f[1]), (bytes(mv[kea[0].start : kea[0].stop]), params), encrypted_key))
    eci = der.children(mv, der.expect(fields[i + 1], der.SEQUENCE, "EncryptedContentInfo"))
    alg = der.children(mv, der.expect(eci[1], der.SEQUENCE, "ContentEncryptionAlgorithm"))
    iv = der.content(mv, alg[1]) if len(alg) > 1 and alg[1].number == 4 else None
    if len(eci) < 3 or eci[2].number != 0:
        raise DecryptionFailed("EnvelopedData without encrypted content")
    return recipients, bytes(mv[alg[0].start : alg[0].stop]), iv, der.octets(mv, eci[2])


def decrypt_view(enveloped: BytesLike, identities: Sequence[Identity],
                 plausible: Callable[[memoryview], bool] | None = None) -> memoryview:
    """Like ``decrypt`` but returns a view on the plaintext (no trimming copy; ``.obj`` is the bytes).

    ``plausible`` rejects a decryption that only looks right (a wrong key passes the CBC padding
    check about one time in 256): the next candidate key is then tried.
    """
    try:
        recipients, cipher_oid, iv, chunks = _read_enveloped(memoryview(enveloped))
    except (der.BerError, ValueError, IndexError) as e:
        raise DecryptionFailed(f"malformed EnvelopedData: {e}") from None
    cipher = CIPHER_BY_OID.get(cipher_oid)
    if cipher is None:
        raise DecryptionFailed(f"unsupported content encryption {unsupported_name(cipher_oid)}")
    _, key_len, block, algorithm = CIPHER_PARAMS[cipher]
    if iv is None or len(iv) != block:
        raise DecryptionFailed("bad content-encryption IV")
    total = der.total(chunks)
    if total == 0 or total % block:
        raise DecryptionFailed("encrypted content length is not a whole number of cipher blocks")
    # Recipients naming one of our certificates first; then every pair, for senders that name us oddly.
    pairs = [(r, ident) for r in recipients for ident in identities]
    hit = [r[0].matches(ident.certificate) for r, ident in pairs]
    ordered = [p for p, h in zip(pairs, hit, strict=True) if h] + [p for p, h in zip(pairs, hit, strict=True) if not h]
    implausible = False
    for (_, key_alg, encrypted_key), ident in ordered:
        cek = _cek(key_alg, encrypted_key, ident)
        if cek is None or len(cek) != key_len:
            continue
        decryptor = Cipher(algorithm(cek), modes.CBC(iv)).decryptor()
        # Decrypt into one preallocated buffer: update() would build each output twice (once in
        # the library, once as the returned bytes), a third payload-sized allocation at the peak.
        # The buffer is never resized (a shrink may move it: another copy); the view trims it.
        plain = bytearray(total + block)
        done = 0
        for chunk in chunks:
            done += decryptor.update_into(chunk, memoryview(plain)[done:])
        tail = decryptor.finalize()
        plain[done:done + len(tail)] = tail
        done += len(tail)
        p = plain[done - 1] if done else 0
        if not 1 <= p <= block or plain[done - p:done] != bytes([p]) * p:
            continue
        view = memoryview(plain)[: done - p]
        if plausible is not None and not plausible(view):
            implausible = True
            continue
        return view
    if not recipients:
        raise DecryptionFailed("EnvelopedData has no key-transport recipient (only RSA key transport is supported)")
    if implausible:
        raise DecryptionFailed("decrypted content is not a MIME entity (wrong key or corrupt message)")
    names = "; ".join(str(r[0]) for r in recipients)
    raise DecryptionFailed(f"none of our private keys decrypts this message (encrypted for: {names})")


# ----------------------------------------------------------------------------- CompressedData


def compress(content: BytesLike | Sequence[BytesLike]) -> bytes:
    """Wrap ``content`` (bytes or parts taken as one) in a CMS CompressedData (RFC 3274, zlib), DER."""
    z = zlib.compressobj()
    out = [z.compress(p) for p in _parts(content) if len(p)]
    out.append(z.flush())
    packed_len = der.total(out)
    octets = der.header(der.OCTET_STRING, packed_len)
    explicit = der.header(0xA0, len(octets) + packed_len)
    eci_len = len(OID_DATA) + len(explicit) + len(octets) + packed_len
    eci = der.header(der.SEQUENCE, eci_len)
    alg = der.tlv(der.SEQUENCE, OID_ZLIB)
    cd_len = len(INT_0) + len(alg) + len(eci) + eci_len
    cd = der.header(der.SEQUENCE, cd_len)
    outer_explicit = der.header(0xA0, len(cd) + cd_len)
    ci_len = len(OID_COMPRESSED_DATA) + len(outer_explicit) + len(cd) + cd_len
    head = [der.header(der.SEQUENCE, ci_len), OID_COMPRESSED_DATA, outer_explicit, cd, INT_0, alg, eci, OID_DATA,
            explicit, octets]
    return b"".join(head + out)


def decompress(compressed: BytesLike, max_size: int) -> bytes:
    """Unwrap a CMS CompressedData, inflating with a hard cap of ``max_size`` output bytes.

    Raises DecompressionFailed on corrupt data or when the output would exceed ``max_size``
    (a compression bomb is stopped after at most ``max_size`` bytes, never inflated whole).
    """
    try:
        mv = memoryview(compressed)
        ci = der.children(mv, der.expect(der.read(mv, 0), der.SEQUENCE, "ContentInfo"))
        if len(ci) < 2 or not is_oid(mv, ci[0], OID_COMPRESSED_DATA) or ci[1].tag != 0xA0:
            raise DecompressionFailed("not a CMS CompressedData")
        cd = der.children(mv, der.expect(der.children(mv, ci[1])[0], der.SEQUENCE, "CompressedData"))
        alg = der.children(mv, der.expect(cd[1], der.SEQUENCE, "CompressionAlgorithm"))
        if not alg or not is_oid(mv, alg[0], OID_ZLIB):
            raise DecompressionFailed("compression algorithm is not zlib")
        eci = der.children(mv, der.expect(cd[2], der.SEQUENCE, "EncapsulatedContentInfo"))
        if len(eci) < 2 or eci[1].tag != 0xA0:
            raise DecompressionFailed("CompressedData without content")
        chunks = der.octets(mv, der.expect(der.children(mv, eci[1])[0], der.OCTET_STRING, "eContent"))
    except (der.BerError, ValueError, IndexError) as e:
        raise DecompressionFailed(f"malformed CompressedData: {e}") from None
    return _inflate(chunks, max_size)


def _inflate(chunks: list[memoryview], max_size: int) -> bytes:
    """zlib-inflate the chunks as one stream, never producing more than ``max_size`` bytes."""
    for wbits in (zlib.MAX_WBITS, -zlib.MAX_WBITS):  # zlib as RFC 3274 says; raw deflate from lax senders
        d = zlib.decompressobj(wbits)
        out: list[bytes] = []
        size = 0
        try:
            for chunk in [*chunks, b""]:
                data: BytesLike = chunk
                while not d.eof:
                    piece = d.decompress(data, max_size - size + 1)
                    size += len(piece)
                    if size > max_size:
                        raise DecompressionFailed(f"decompressed content exceeds the limit of {max_size} bytes")
                    out.append(piece)
                    data = d.unconsumed_tail
                    if not data and (chunk or not piece):
                        break
        except zlib.error as e:
            if wbits > 0 and size == 0:
                continue
            raise DecompressionFailed(f"corrupt compressed content: {e}") from None
        if not d.eof:
            raise DecompressionFailed("compressed content is truncated")
        return b"".join(out)
    raise DecompressionFailed("corrupt compressed content")
