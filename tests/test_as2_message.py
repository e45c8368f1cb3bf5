"""AS2 message bodies: byte identity, MIC, every layering, negative cases, and fuzzing (only As2Error)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import os
import random

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.serialization import pkcs7
from fixtures.as2.pki import pki
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.as2 import Inbound, Outbound, build, cms, mime, parse
from gateway.errors import (As2Error, AuthenticationFailed, DecompressionFailed, DecryptionFailed,
                            InsufficientMessageSecurity, IntegrityCheckFailed, UnexpectedProcessingError)

EDI_CRLF = (b"UNA:+.? '\r\nUNB+UNOA:2+SENDER+RECEIVER+200101:1200+1'\r\nUNH+1+ORDERS:D:96A:UN'\r\n"
            b"BGM+220+PO1+9'\r\nUNT+3+1'\r\nUNZ+1+1'\r\n")
EDI_LF = b"ISA*00*          *00*          *ZZ*A*ZZ*B*200101*1200*U*00401*1*0*P*>~\nGS*PO*A*B~\nST*850*1~\n"
BINARY = bytes(random.Random(7).randrange(256) for _ in range(20_000))
TRICKY = b"--boundary\r\n\r\nContent-Type: text/plain\r\n\r\n\r\n--\r\n\n\r\r\n"  # looks like MIME inside
PAYLOADS = {"edi-crlf": EDI_CRLF, "edi-lf": EDI_LF, "binary": BINARY, "tricky": TRICKY, "empty": b"",
            "no-final-newline": b"UNB+X'UNZ+1'", "trailing-cr": b"line\r"}
LAYERINGS = [
    {}, {"sign": True}, {"encrypt": True}, {"sign": True, "encrypt": True},
    {"compress": "before-signing"}, {"compress": "before-signing", "sign": True, "encrypt": True},
    {"compress": "after-signing", "sign": True}, {"compress": "after-signing", "sign": True, "encrypt": True},
    {"compress": "before-signing", "encrypt": True},
]


@pytest.fixture(scope="session")
def keys():
    return pki()


def _build(keys, payload: bytes, *, sign=False, encrypt=False, **kw) -> Outbound:
    return build(payload, sign=keys.partner if sign else None, encrypt=[keys.ours.certificate] if encrypt else (), **kw)


def _parse(keys, out: Outbound, **kw) -> Inbound:
    kw.setdefault("identities", [keys.ours])
    kw.setdefault("trusted", [keys.partner.certificate])
    kw.setdefault("max_size", 10_000_000)
    return parse(out.content_type, out.body, content_disposition=dict(out.headers).get("Content-Disposition"), **kw)


@pytest.mark.parametrize("layering", LAYERINGS, ids=lambda d: "+".join(f"{k}={v}" for k, v in d.items()) or "plain")
@pytest.mark.parametrize("name", PAYLOADS)
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "base64"])
def test_byte_identity(keys, layering, name, binary):
    payload = PAYLOADS[name]
    out = _build(keys, payload, filename="order.edi", content_type="application/EDIFACT", binary_transfer=binary,
                 **layering)
    got = _parse(keys, out)
    assert got.payload == payload
    assert got.mic == out.mic and got.mic_algorithm == out.mic_algorithm == "sha-256"
    assert got.signed is bool(layering.get("sign"))
    assert got.encrypted is bool(layering.get("encrypt"))
    assert got.compressed is bool(layering.get("compress"))
    assert got.digest == ("sha256" if layering.get("sign") else None)
    assert got.filename == "order.edi"
    assert got.content_type == "application/EDIFACT"


def test_plain_message_is_the_payload(keys):
    out = build(EDI_CRLF, content_type="application/edifact", filename="a.edi")
    assert out.body == EDI_CRLF and out.content_type == "application/edifact"
    assert out.headers == (("Content-Disposition", 'attachment; filename="a.edi"'),)
    assert out.mic == base64.b64encode(hashlib.sha256(EDI_CRLF).digest()).decode()  # RFC 4130 7.3.1: content only


def test_signed_mic_covers_the_signed_entity(keys):
    out = _build(keys, EDI_LF, sign=True, digest="sha512")
    boundary = mime.content_type(out.content_type)[1]["boundary"]
    first = mime.split_multipart(mime.Span.of(out.body), boundary)[0].tobytes()
    assert first.endswith(EDI_LF) and first.startswith(b"Content-Type: application/edi-consent\r\n")
    assert out.mic == base64.b64encode(hashlib.sha512(first).digest()).decode()
    assert out.mic_algorithm == "sha-512"
    assert "micalg=sha-512" in out.content_type


def test_unsigned_encrypted_mic_covers_the_decrypted_entity(keys):
    out = _build(keys, EDI_CRLF, encrypt=True)
    entity = cms.decrypt(out.body, [keys.ours])
    assert out.mic == base64.b64encode(hashlib.sha256(entity).digest()).decode()


@pytest.mark.parametrize("spelling,expected", [
    (("SHA256",), "sha-256"), (("sha1",), "sha1"), (("sha-512", "sha1"), "sha-512"), (("md5", "sha-384"), "sha-384"),
    (("md5",), "sha-256"),  # nothing we support: the signer's digest
])
def test_mic_algorithm_preference(keys, spelling, expected):
    out = _build(keys, EDI_CRLF, sign=True)
    got = _parse(keys, out, mic_algorithms=spelling)
    assert got.mic_algorithm == expected
    if expected == "sha-256":
        assert got.mic == out.mic


@pytest.mark.parametrize("digest", ["sha1", "sha256", "sha384", "sha512", "SHA-256"])
def test_digests(keys, digest):
    out = _build(keys, EDI_CRLF, sign=True, digest=digest, encrypt=True)
    got = _parse(keys, out, mic_algorithms=[digest])
    assert got.digest == cms.digest_name(digest) and got.mic == out.mic


@pytest.mark.parametrize("cipher", sorted(cms.CIPHERS))
def test_ciphers(keys, cipher):
    assert _parse(keys, _build(keys, BINARY, sign=True, encrypt=True, cipher=cipher)).payload == BINARY


def test_without_algorithm_protection(keys):
    out = _build(keys, EDI_CRLF, sign=True, algorithm_protection=False)
    assert _parse(keys, out).signed


def test_key_rollover(keys):
    out = build(EDI_CRLF, encrypt=[keys.ours_next.certificate], sign=keys.partner)
    assert _parse(keys, out, identities=[keys.ours, keys.ours_next]).payload == EDI_CRLF
    with pytest.raises(DecryptionFailed):
        _parse(keys, out, identities=[keys.ours])


def test_partner_signing_key_rollover(keys):
    out = build(EDI_CRLF, sign=keys.partner_ec)
    got = _parse(keys, out, trusted=[keys.partner.certificate, keys.partner_ec.certificate])
    assert got.signed


# ----------------------------------------------------------------------------- negative cases


def test_require_signature_and_encryption(keys):
    with pytest.raises(InsufficientMessageSecurity) as e:
        _parse(keys, _build(keys, EDI_CRLF, encrypt=True), require_signature=True)
    assert e.value.disposition == "insufficient-message-security"
    with pytest.raises(InsufficientMessageSecurity):
        _parse(keys, _build(keys, EDI_CRLF, sign=True), require_encryption=True)
    assert _parse(keys, _build(keys, EDI_CRLF, sign=True, encrypt=True), require_signature=True,
                  require_encryption=True).payload == EDI_CRLF


def test_unknown_signer(keys):
    out = build(EDI_CRLF, sign=keys.stranger, encrypt=[keys.ours.certificate])
    with pytest.raises(AuthenticationFailed):
        _parse(keys, out)


def test_tampered_signed_payload(keys):
    out = _build(keys, EDI_CRLF, sign=True)
    tampered = out.body.replace(b"PO1", b"PO2")
    assert tampered != out.body
    with pytest.raises(IntegrityCheckFailed):
        parse(out.content_type, tampered, identities=[], trusted=[keys.partner.certificate], max_size=10**6)


def test_wrong_recipient(keys):
    out = build(EDI_CRLF, encrypt=[keys.stranger.certificate])
    with pytest.raises(DecryptionFailed) as e:
        _parse(keys, out)
    assert e.value.disposition == "decryption-failed"


@pytest.mark.parametrize("cut", [1, 17, 100, 1000])
def test_truncated_body(keys, cut):
    out = _build(keys, BINARY, sign=True, encrypt=True)
    with pytest.raises(DecryptionFailed):
        parse(out.content_type, out.body[:-cut], identities=[keys.ours], trusted=[keys.partner.certificate],
              max_size=10**6)


def test_truncated_signed_body(keys):
    out = _build(keys, BINARY, sign=True)
    with pytest.raises(As2Error):
        parse(out.content_type, out.body[: len(out.body) // 2], identities=[], trusted=[keys.partner.certificate],
              max_size=10**6)


def test_compression_bomb(keys):
    out = _build(keys, bytes(20 * 1024 * 1024), sign=True, encrypt=True, compress="after-signing")
    assert len(out.body) < 100_000
    with pytest.raises(DecompressionFailed):
        _parse(keys, out, max_size=1024 * 1024)


def test_lf_mangled_in_transit_still_verifies(keys):
    """A text message whose CRLFs were turned into LFs by a relay: verified in canonical form."""
    out = _build(keys, EDI_CRLF, sign=True)
    mangled = out.body.replace(b"\r\n", b"\n")
    got = parse(out.content_type, mangled, identities=[], trusted=[keys.partner.certificate], max_size=10**6)
    assert got.signed and got.mic == out.mic
    assert got.payload == EDI_CRLF  # the canonical form is what was signed


def test_opaque_signed_data(keys):
    entity = b"Content-Type: application/edi-x12\r\n\r\n" + EDI_LF
    opaque = (pkcs7.PKCS7SignatureBuilder().set_data(entity)
              .add_signer(keys.partner.certificate, keys.partner.key, hashes.SHA256())
              .sign(serialization.Encoding.DER, [pkcs7.PKCS7Options.Binary]))
    got = parse("application/pkcs7-mime; smime-type=signed-data", opaque, identities=[],
                trusted=[keys.partner.certificate], max_size=10**6)
    assert got.payload == EDI_LF and got.signed and got.content_type == "application/edi-x12"
    assert got.mic == base64.b64encode(hashlib.sha256(entity).digest()).decode()


def test_base64_outer_body_and_missing_smime_type(keys):
    out = _build(keys, EDI_CRLF, sign=True, encrypt=True)
    got = parse("application/x-pkcs7-mime", base64.encodebytes(out.body), identities=[keys.ours],
                trusted=[keys.partner.certificate], max_size=10**6)
    assert got.payload == EDI_CRLF


def test_unsupported_smime_type(keys):
    with pytest.raises(UnexpectedProcessingError):
        parse("application/pkcs7-mime; smime-type=certs-only", b"\x30\x03\x02\x01\x00", identities=[],
              trusted=[], max_size=100)


def test_bad_build_settings(keys):
    with pytest.raises(UnexpectedProcessingError):
        build(b"x", compress="sometimes")
    with pytest.raises(UnexpectedProcessingError):
        build(b"x", encrypt=[keys.ours.certificate], cipher="rc2")
    with pytest.raises(UnexpectedProcessingError):
        build(b"x", content_type="text/plain\r\nX-Evil: 1")
    out = build(b"x", filename='../../etc/"passwd"\r\n', sign=keys.partner)
    assert b'filename="passwd"' in out.body


def test_body_may_be_a_memoryview(keys):
    out = _build(keys, EDI_CRLF, sign=True)
    got = parse(out.content_type, memoryview(out.body), identities=[], trusted=[keys.partner.certificate],
                max_size=10**6)
    assert got.payload == EDI_CRLF


# ----------------------------------------------------------------------------- fuzzing


def _corpus():
    keys = pki()
    out = []
    for layering, binary in itertools.product(LAYERINGS, [True, False]):
        o = _build(keys, EDI_CRLF, binary_transfer=binary, filename="f.edi", **layering)
        out.append((o.content_type, o.body))
    return out


CORPUS = _corpus()


@st.composite
def mutated(draw):
    content_type, body = draw(st.sampled_from(CORPUS))
    data = bytearray(body)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete", "dup"]))
        pos = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[pos] ^= draw(st.integers(1, 255))
        elif op == "cut":
            del data[pos:]
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=20))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(1, 50))]
        else:
            data[pos:pos] = data[pos : pos + draw(st.integers(1, 200))]
    if draw(st.booleans()):
        content_type = draw(st.sampled_from([
            content_type, "multipart/signed", "multipart/signed; boundary=", "application/pkcs7-mime",
            "application/pkcs7-mime; smime-type=compressed-data", "application/pkcs7-mime; smime-type=signed-data",
            'multipart/signed; boundary="' + "x" * 300 + '"', "", "text/plain; charset=\"", ";;;=",
        ]))
    return content_type, bytes(data)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_messages_raise_only_as2_errors(message):
    content_type, body = message
    keys = pki()
    try:
        got = parse(content_type, body, identities=[keys.ours], trusted=[keys.partner.certificate], max_size=100_000)
    except As2Error as e:
        assert e.disposition in {"decryption-failed", "authentication-failed", "integrity-check-failed",
                                 "decompression-failed", "insufficient-message-security",
                                 "unexpected-processing-error"}
        return
    assert isinstance(got.payload, bytes)
    if got.signed:  # a signature that still verifies vouches for the payload: mutations cannot get through
        assert got.payload == EDI_CRLF


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=80), st.binary(max_size=400))
def test_random_input_raises_only_as2_errors(content_type, body):
    try:
        parse(content_type, body, identities=[pki().ours], trusted=[pki().partner.certificate], max_size=1000)
    except As2Error:
        pass


@pytest.mark.parametrize("disposition,expected", [
    ('attachment; filename="../../etc/passwd"', "passwd"),
    ('attachment; filename="C:\\\\temp\\\\po.edi"', "po.edi"),
    ('attachment; filename=".."', None),
    ("attachment", None),
])
def test_received_filename_is_a_bare_name(keys, disposition, expected):
    got = parse("application/edi-x12", EDI_LF, identities=[], trusted=[], max_size=100,
                content_disposition=disposition)
    assert got.filename == expected


def test_body_may_be_an_mmap_of_the_stored_file(keys, tmp_path):
    """The receiver can hand over the stored raw file without reading it into memory."""
    import mmap

    out = _build(keys, BINARY, sign=True, encrypt=True)
    path = tmp_path / "raw.p7m"
    path.write_bytes(out.body)
    with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
        got = parse(out.content_type, mapped, identities=[keys.ours], trusted=[keys.partner.certificate],  # type: ignore[arg-type]
                    max_size=10**6)
    assert got.payload == BINARY and got.mic == out.mic


@pytest.mark.parametrize("layering", [{"sign": True, "encrypt": True}, {"sign": True, "compress": "after-signing"}])
def test_multi_megabyte_payload(keys, layering):
    payload = os.urandom(3 * 1024 * 1024 + 5)
    out = _build(keys, payload, **layering)
    got = _parse(keys, out, max_size=4 * 1024 * 1024)
    assert got.payload == payload and got.mic == out.mic
