"""CMS layer and certificates: our DER against independent encoders (asn1crypto, cryptography's PKCS7)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import zlib

import pytest
from asn1crypto import algos as a_algos
from asn1crypto import cms as a_cms
from asn1crypto import core as a_core
from asn1crypto import x509 as a_x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import pkcs7, pkcs12
from fixtures.as2.pki import pki

from gateway.as2 import cms, der
from gateway.as2.certs import (expires_in_days, fingerprint, generate_identity, load_certificates, load_identity)
from gateway.errors import (AuthenticationFailed, ConfigError, DecompressionFailed, DecryptionFailed,
                            IntegrityCheckFailed, UnexpectedProcessingError)

CONTENT = b"Content-Type: application/edi-x12\r\n\r\nISA*00*          *00*\nGS*PO~\r\n"


@pytest.fixture(scope="session")
def keys():
    return pki()


# ----------------------------------------------------------------------------- certificates


def test_generate_and_load_identity_pem(keys):
    key_pem, cert_pem = keys.pem["ours"]
    assert b"PRIVATE KEY" in key_pem and b"CERTIFICATE" in cert_pem
    ident = load_identity(cert_pem + key_pem)  # order does not matter
    assert ident.certificate == keys.ours.certificate
    assert ident.chain == ()


def test_load_identity_with_chain_and_password(keys):
    key = keys.ours.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.BestAvailableEncryption(b"s3cret"))
    bundle = keys.pem["partner"][1] + key + keys.pem["ours"][1]
    ident = load_identity(bundle, b"s3cret")
    assert ident.certificate == keys.ours.certificate
    assert ident.chain == (keys.partner.certificate,)
    with pytest.raises(ConfigError):
        load_identity(bundle, b"wrong")


def test_load_identity_pkcs12(keys):
    p12 = pkcs12.serialize_key_and_certificates(b"ours", keys.ours.key, keys.ours.certificate, None,
                                                serialization.BestAvailableEncryption(b"pw"))
    ident = load_identity(p12, b"pw")
    assert ident.certificate == keys.ours.certificate


def test_load_identity_key_cert_mismatch(keys):
    with pytest.raises(ConfigError, match="matches the private key"):
        load_identity(keys.pem["ours"][0] + keys.pem["partner"][1], source="ours.pem")


def test_load_certificates_pem_many_and_der(keys):
    both = keys.pem["ours"][1] + keys.pem["partner"][1]
    assert load_certificates(both) == [keys.ours.certificate, keys.partner.certificate]
    der_bytes = keys.partner.certificate.public_bytes(serialization.Encoding.DER)
    assert load_certificates(der_bytes) == [keys.partner.certificate]
    with pytest.raises(ConfigError, match="partner.cer"):
        load_certificates(b"not a certificate", source="partner.cer")


def test_fingerprint_and_expiry(keys):
    cert = keys.ours.certificate
    fp = fingerprint(cert)
    assert fp.startswith("SHA256:") and len(fp.split(":")) == 33
    assert fp[7:].replace(":", "").lower() == cert.fingerprint(hashes.SHA256()).hex()
    now = dt.datetime.now(dt.UTC)
    assert 729 < expires_in_days(cert, now) <= 730
    assert expires_in_days(cert, now + dt.timedelta(days=731)) < 0
    assert abs(expires_in_days(cert, now.replace(tzinfo=None)) - expires_in_days(cert, now)) < 1e-3


def test_generate_identity_options():
    key_pem, cert_pem = generate_identity("SHORT", days=10, key_size=2048)
    ident = load_identity(key_pem + cert_pem)
    assert ident.key.key_size == 2048
    assert expires_in_days(ident.certificate, dt.datetime.now(dt.UTC)) < 10.01


# ----------------------------------------------------------------------------- SignedData


@pytest.mark.parametrize("digest", sorted(cms.DIGESTS))
@pytest.mark.parametrize("protection", [True, False])
def test_sign_verify_round_trip(keys, digest, protection):
    sig = cms.sign(CONTENT, keys.partner, digest, algorithm_protection=protection)
    assert cms.verify(CONTENT, sig, [keys.stranger.certificate, keys.partner.certificate]) == digest
    info = a_cms.ContentInfo.load(sig)  # asn1crypto reads what we wrote
    attrs = {a["type"].native for a in info["content"]["signer_infos"][0]["signed_attrs"]}
    assert ("cms_algorithm_protection" in attrs) is protection
    assert info["content"]["encap_content_info"]["content"].native is None  # detached


def test_ec_signature(keys):
    sig = cms.sign(CONTENT, keys.partner_ec, "sha384")
    assert cms.verify(CONTENT, sig, [keys.partner_ec.certificate]) == "sha384"


def test_verify_tampered_content(keys):
    sig = cms.sign(CONTENT, keys.partner, "sha256")
    with pytest.raises(IntegrityCheckFailed) as e:
        cms.verify(CONTENT.replace(b"PO", b"IN"), sig, [keys.partner.certificate])
    assert e.value.disposition == "integrity-check-failed"


def test_verify_unknown_signer(keys):
    sig = cms.sign(CONTENT, keys.stranger, "sha256")
    with pytest.raises(AuthenticationFailed, match="not trusted") as e:
        cms.verify(CONTENT, sig, [keys.partner.certificate])
    assert e.value.disposition == "authentication-failed"


def test_verify_same_subject_other_key(keys):
    """A certificate with the partner's name and serial but another key must not verify."""
    sig = bytearray(cms.sign(CONTENT, keys.partner, "sha256"))
    sig[-5] ^= 0x01  # inside the signature value
    with pytest.raises(AuthenticationFailed, match="does not verify"):
        cms.verify(CONTENT, bytes(sig), [keys.partner.certificate])


@pytest.mark.parametrize("garbage", [b"", b"\x30", b"\x30\x80", b"hello", b"\x30\x03\x06\x01\x00", os.urandom(64)])
def test_verify_garbage(keys, garbage):
    with pytest.raises(AuthenticationFailed):
        cms.verify(CONTENT, garbage, [keys.partner.certificate])


def _asn1_signed(content: bytes, ident, digest: str, *, sid: str = "ias", sig_alg: str = "rsassa_pkcs1v15",
                 attrs: bool = True, protect: str | None = None, content_type: str = "data") -> bytes:
    """A detached SignedData written by asn1crypto, independently of our DER code."""
    cert = a_x509.Certificate.load(ident.certificate.public_bytes(serialization.Encoding.DER))
    h = {"sha1": hashes.SHA1, "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512}[digest]
    pad = padding.PKCS1v15()
    sig_algorithm: dict = {"algorithm": sig_alg}
    if sig_alg == "rsassa_pss":
        pad = padding.PSS(mgf=padding.MGF1(h()), salt_length=32)
        sig_algorithm["parameters"] = a_algos.RSASSAPSSParams({
            "hash_algorithm": {"algorithm": digest},
            "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": digest}},
            "salt_length": 32,
        })
    signer = {
        "version": "v1" if sid == "ias" else "v3",
        "sid": a_cms.SignerIdentifier({"issuer_and_serial_number": {"issuer": cert.issuer,
                                                                     "serial_number": cert.serial_number}})
        if sid == "ias" else a_cms.SignerIdentifier({"subject_key_identifier": cert.key_identifier}),
        "digest_algorithm": {"algorithm": digest},
        "signature_algorithm": sig_algorithm,
    }
    if attrs:
        signed_attrs = [
            {"type": "message_digest", "values": [hashlib.new(digest, content).digest()]},
            {"type": "content_type", "values": [content_type]},
            {"type": "signing_time", "values": [a_cms.Time({"utc_time": dt.datetime.now(dt.UTC)})]},
        ]
        if protect:
            signed_attrs.append({"type": "cms_algorithm_protection", "values": [{
                "digest_algorithm": {"algorithm": protect}, "signature_algorithm": sig_algorithm}]})
        signer["signed_attrs"] = a_cms.CMSAttributes(signed_attrs)
        to_sign = signer["signed_attrs"].dump()
    else:
        to_sign = content
    signer["signature"] = ident.key.sign(to_sign, pad, h())
    sd = a_cms.SignedData({
        "version": "v1", "digest_algorithms": [{"algorithm": digest}],
        "encap_content_info": {"content_type": "data"}, "certificates": [cert], "signer_infos": [signer],
    })
    return a_cms.ContentInfo({"content_type": "signed_data", "content": sd}).dump()


@pytest.mark.parametrize("variant", [
    {}, {"sid": "ski"}, {"sig_alg": "sha256_rsa"}, {"attrs": False}, {"sig_alg": "rsassa_pss"},
    {"protect": "sha256"},
])
def test_verify_foreign_signed_data(keys, variant):
    sig = _asn1_signed(CONTENT, keys.partner, "sha256", **variant)
    assert cms.verify(CONTENT, sig, [keys.partner.certificate]) == "sha256"


def test_verify_foreign_without_attributes_tampered(keys):
    sig = _asn1_signed(CONTENT, keys.partner, "sha256", attrs=False)
    with pytest.raises(AuthenticationFailed):
        cms.verify(CONTENT + b"x", sig, [keys.partner.certificate])


def test_verify_algorithm_protection_mismatch(keys):
    sig = _asn1_signed(CONTENT, keys.partner, "sha256", protect="sha512")
    with pytest.raises(AuthenticationFailed, match="algorithm-protection"):
        cms.verify(CONTENT, sig, [keys.partner.certificate])


def test_verify_content_type_attribute_mismatch(keys):
    sig = _asn1_signed(CONTENT, keys.partner, "sha256", content_type="signed_data")
    with pytest.raises(AuthenticationFailed, match="content-type"):
        cms.verify(CONTENT, sig, [keys.partner.certificate])


@pytest.mark.parametrize("digest", [hashes.SHA256, hashes.SHA512])
def test_verify_cryptography_pkcs7_builder(keys, digest):
    """cryptography's PKCS7SignatureBuilder (OpenSSL underneath) as an independent signer."""
    sig = (pkcs7.PKCS7SignatureBuilder().set_data(CONTENT)
           .add_signer(keys.partner.certificate, keys.partner.key, digest())
           .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary]))
    assert cms.verify(CONTENT, sig, [keys.partner.certificate]) == digest.name


def test_sign_rejects_unknown_digest(keys):
    with pytest.raises(UnexpectedProcessingError):
        cms.sign(CONTENT, keys.ours, "md5")


def test_opaque_signed_content(keys):
    opaque = (pkcs7.PKCS7SignatureBuilder().set_data(CONTENT)
              .add_signer(keys.partner.certificate, keys.partner.key, hashes.SHA256())
              .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))
    assert cms.content_kind(opaque) == "signed-data"
    content = cms.signed_content(opaque)
    assert content == CONTENT
    assert cms.verify(content, opaque, [keys.partner.certificate]) == "sha256"


# ----------------------------------------------------------------------------- EnvelopedData


@pytest.mark.parametrize("cipher", sorted(cms.CIPHERS))
def test_encrypt_decrypt_round_trip(keys, cipher):
    data = os.urandom(1000) + CONTENT
    env = cms.encrypt([data[:333], memoryview(data)[333:]], [keys.ours.certificate], cipher)
    assert cms.content_kind(env) == "enveloped-data"
    assert cms.decrypt(env, [keys.ours]) == data
    info = a_cms.ContentInfo.load(env)  # asn1crypto reads what we wrote
    alg = info["content"]["encrypted_content_info"]["content_encryption_algorithm"]
    assert alg["algorithm"].native == {"3des": "tripledes_3key", "aes128-cbc": "aes128_cbc",
                                       "aes192-cbc": "aes192_cbc", "aes256-cbc": "aes256_cbc"}[cipher]


@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 4096])
def test_encrypt_sizes(keys, size):
    data = os.urandom(size)
    assert cms.decrypt(cms.encrypt(data, [keys.ours.certificate], "aes128-cbc"), [keys.ours]) == data


def test_several_recipients_and_key_rollover(keys):
    env = cms.encrypt(CONTENT, [keys.partner.certificate, keys.ours_next.certificate], "aes256-cbc")
    assert cms.decrypt(env, [keys.ours, keys.ours_next]) == CONTENT  # the new key, while the old is still active
    assert cms.decrypt(env, [keys.partner]) == CONTENT


def test_decrypt_wrong_key(keys):
    env = cms.encrypt(CONTENT, [keys.partner.certificate], "aes256-cbc")
    with pytest.raises(DecryptionFailed, match="none of our private keys") as e:
        cms.decrypt(env, [keys.ours])
    assert e.value.disposition == "decryption-failed"


@pytest.mark.parametrize("cut", [1, 10, 100, 200])
def test_decrypt_truncated(keys, cut):
    env = cms.encrypt(CONTENT, [keys.ours.certificate], "aes256-cbc")
    with pytest.raises(DecryptionFailed):
        cms.decrypt(env[:-cut], [keys.ours])


def test_decrypt_plausibility_check(keys):
    env = cms.encrypt(CONTENT, [keys.ours.certificate], "aes128-cbc")
    with pytest.raises(DecryptionFailed, match="not a MIME entity"):
        cms.decrypt_view(env, [keys.ours], plausible=lambda view: False)


def test_decrypt_unsupported_cipher(keys):
    info = a_cms.ContentInfo.load(cms.encrypt(CONTENT, [keys.ours.certificate], "aes128-cbc"))
    info["content"]["encrypted_content_info"]["content_encryption_algorithm"] = {
        "algorithm": "rc2", "parameters": {"rc2_parameter_version": 58, "iv": b"12345678"}}
    with pytest.raises(DecryptionFailed, match="RC2"):
        cms.decrypt(info.dump(force=True), [keys.ours])


def test_cryptography_envelope_builder_to_us(keys):
    for alg in (algorithms.AES128, algorithms.AES256):
        env = (pkcs7.PKCS7EnvelopeBuilder().set_data(CONTENT).add_recipient(keys.ours.certificate)
               .set_content_encryption_algorithm(alg).encrypt(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))
        assert cms.decrypt(env, [keys.ours]) == CONTENT


@pytest.mark.parametrize("cipher", ["aes128-cbc", "aes256-cbc"])
def test_us_to_cryptography_decrypt(keys, cipher):
    env = cms.encrypt(CONTENT, [keys.ours.certificate], cipher)
    assert pkcs7.pkcs7_decrypt_der(env, keys.ours.certificate, keys.ours.key, []) == CONTENT


def test_oaep_key_transport(keys):
    """RSAES-OAEP recipients (some partners' default) decrypt too; built with asn1crypto."""
    cert = a_x509.Certificate.load(keys.ours.certificate.public_bytes(serialization.Encoding.DER))
    key, iv = os.urandom(16), os.urandom(16)
    padded = CONTENT + bytes([16 - len(CONTENT) % 16]) * (16 - len(CONTENT) % 16)
    enc = Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor()
    ct = enc.update(padded) + enc.finalize()
    wrapped = keys.ours.certificate.public_key().encrypt(
        key, padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None))
    ed = a_cms.EnvelopedData({
        "version": "v0",
        "recipient_infos": [a_cms.RecipientInfo({"ktri": {
            "version": "v0",
            "rid": {"issuer_and_serial_number": {"issuer": cert.issuer, "serial_number": cert.serial_number}},
            "key_encryption_algorithm": {"algorithm": "rsaes_oaep", "parameters": {
                "hash_algorithm": {"algorithm": "sha256"},
                "mask_gen_algorithm": {"algorithm": "mgf1", "parameters": {"algorithm": "sha256"}}}},
            "encrypted_key": wrapped}})],
        "encrypted_content_info": {"content_type": "data",
                                   "content_encryption_algorithm": {"algorithm": "aes128_cbc", "parameters": iv},
                                   "encrypted_content": ct},
    })
    env = a_cms.ContentInfo({"content_type": "enveloped_data", "content": ed}).dump()
    assert cms.decrypt(env, [keys.ours]) == CONTENT


def _ber_indefinite(tag: int, *children: bytes) -> bytes:
    return bytes([tag, 0x80]) + b"".join(children) + b"\x00\x00"


def _chunked(data: bytes, size: int) -> list[bytes]:
    return [der.tlv(der.OCTET_STRING, data[i : i + size]) for i in range(0, len(data), size)]


def test_decrypt_ber_indefinite_chunked(keys):
    """Streaming senders (BouncyCastle...) write indefinite lengths and a chunked encryptedContent."""
    data = os.urandom(5000)
    info = a_cms.ContentInfo.load(cms.encrypt(data, [keys.ours.certificate], "3des"))
    ed = info["content"]
    eci = ed["encrypted_content_info"]
    ct = eci["encrypted_content"].native
    ber = _ber_indefinite(
        0x30, der.oid("1.2.840.113549.1.7.3"),
        _ber_indefinite(0xA0, _ber_indefinite(
            0x30, ed["version"].dump(), ed["recipient_infos"].dump(),
            _ber_indefinite(0x30, eci["content_type"].dump(), eci["content_encryption_algorithm"].dump(),
                            _ber_indefinite(0xA0, *_chunked(ct, 1000))))))
    assert cms.decrypt(ber, [keys.ours]) == data


# ----------------------------------------------------------------------------- CompressedData


def test_compress_round_trip_and_asn1crypto_reads_it():
    data = CONTENT * 100
    packed = cms.compress([data[:10], data[10:]])
    assert len(packed) < len(data) // 5
    assert cms.content_kind(packed) == "compressed-data"
    assert cms.decompress(packed, len(data)) == data
    info = a_cms.ContentInfo.load(packed)
    assert info["content"]["compression_algorithm"]["algorithm"].native == "zlib"
    assert zlib.decompress(info["content"]["encap_content_info"]["content"].native) == data


def _asn1_compressed(data: bytes, raw: bool = False) -> bytes:
    z = zlib.compressobj(wbits=-15 if raw else 15)
    packed = z.compress(data) + z.flush()
    cd = a_cms.CompressedData({
        "version": "v0", "compression_algorithm": {"algorithm": "zlib"},
        "encap_content_info": {"content_type": "data", "content": packed},
    })
    return a_cms.ContentInfo({"content_type": "compressed_data", "content": cd}).dump()


def test_decompress_asn1crypto_built():
    data = os.urandom(3000) + CONTENT
    assert cms.decompress(_asn1_compressed(data), 10_000) == data
    assert cms.decompress(_asn1_compressed(data, raw=True), 10_000) == data  # raw deflate, lax senders


def test_decompress_ber_chunked():
    data = CONTENT * 50
    packed = zlib.compress(data)
    ber = _ber_indefinite(
        0x30, der.oid("1.2.840.113549.1.9.16.1.9"),
        _ber_indefinite(0xA0, _ber_indefinite(
            0x30, b"\x02\x01\x00", der.tlv(0x30, der.oid("1.2.840.113549.1.9.16.3.8")),
            _ber_indefinite(0x30, der.oid("1.2.840.113549.1.7.1"),
                            _ber_indefinite(0xA0, _ber_indefinite(0x24, *_chunked(packed, 7)))))))
    assert cms.decompress(ber, len(data)) == data


def test_compression_bomb_is_stopped():
    bomb = cms.compress(bytes(64 * 1024 * 1024))  # 64 MiB of zeros -> ~64 KB
    assert len(bomb) < 100_000
    with pytest.raises(DecompressionFailed, match="exceeds the limit") as e:
        cms.decompress(bomb, 1024 * 1024)
    assert e.value.disposition == "decompression-failed"


def test_decompress_exact_limit():
    data = os.urandom(1000)
    assert cms.decompress(cms.compress(data), 1000) == data
    with pytest.raises(DecompressionFailed):
        cms.decompress(cms.compress(data), 999)


@pytest.mark.parametrize("mangle", [
    lambda b: b[:-10], lambda b: b[:40], lambda b: b[:-3] + b"\xff\xff\xff", lambda b: b"\x30\x00",
    lambda b: b.replace(der.oid("1.2.840.113549.1.9.16.3.8"), der.oid("1.2.840.113549.1.9.16.3.9")),
])
def test_decompress_corrupt(mangle):
    with pytest.raises(DecompressionFailed):
        cms.decompress(mangle(cms.compress(os.urandom(500))), 10_000)


def test_der_reader_rejects_bad_lengths():
    mv = memoryview(b"\x30\x85\x01\x00\x00\x00\x00")
    with pytest.raises(der.BerError):
        der.read(mv, 0)
    with pytest.raises(der.BerError):
        der.read(memoryview(b"\x04\x80\x00\x00"), 0)  # indefinite primitive
    assert a_core.OctetString.load(der.tlv(der.OCTET_STRING, b"x" * 300)).native == b"x" * 300
