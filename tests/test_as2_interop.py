"""Interop with an independent AS2/S-MIME peer: `openssl cms` builds what we parse and opens what we build.

openssl is run with list arguments and temp files (never a shell). Debian's openssl has no
zlib, so compression interop runs only where `openssl cms -compress` works.
"""

from __future__ import annotations

import base64
import hashlib
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from fixtures.as2.pki import pki

from gateway.as2 import build, build_mdn, mime, parse, parse_mdn

if shutil.which("openssl") is None:
    pytest.skip("the `openssl` command is not on PATH: no independent CMS peer to test against",
                allow_module_level=True)

EDI_LF = b"ISA*00*          *00*          *ZZ*A*ZZ*B*200101*1200*U*00401*1*0*P*>~\nGS*PO*A*B~\nST*850*1~\n"
EDI_CRLF = b"UNB+UNOA:2+SENDER+RECEIVER+200101:1200+1'\r\nUNH+1+ORDERS:D:96A:UN'\r\nUNZ+1+1'\r\n"
BINARY = bytes(random.Random(11).randrange(256) for _ in range(30_000))
PAYLOADS = {"edi-lf": EDI_LF, "edi-crlf": EDI_CRLF, "binary": BINARY}
OPENSSL_CIPHERS = {"aes128-cbc": "-aes128", "aes192-cbc": "-aes192", "aes256-cbc": "-aes256", "3des": "-des3"}


@pytest.fixture(scope="session")
def keys():
    return pki()


@pytest.fixture(scope="session")
def pem(keys, tmp_path_factory):
    """name -> (key path, cert path) for openssl."""
    return keys.write(tmp_path_factory.mktemp("as2-pki"))


def openssl(*args: str | Path, data: bytes | None = None) -> bytes:
    """Run openssl with list arguments; returns stdout, raises on a non-zero exit.

    Reading S/MIME, openssl needs ``-binary -crlfeol`` to take a CRLF-delimited multipart
    byte-exact (with ``-binary`` alone it keeps the CR of the delimiter's line break in the
    content, and fails on its own ``-crlfeol`` output too).
    """
    return subprocess.run(["openssl", *map(str, args)], input=data, check=True, capture_output=True).stdout


def verify_smime(message: Path, ca: Path, out: Path) -> None:
    """``openssl cms -verify`` an S/MIME file against a trusted certificate, writing the signed entity."""
    openssl("cms", "-verify", "-binary", "-crlfeol", "-inform", "SMIME", "-in", message, "-CAfile", ca, "-out", out)


def _split_smime(message: bytes) -> tuple[str, bytes]:
    """The top-level Content-Type and the body of a full S/MIME message (what HTTP would carry)."""
    headers, body = mime.split_entity(mime.Span.of(message))
    return headers["content-type"], body.tobytes()


def _entity(payload: bytes, content_type: str = "application/edi-x12") -> bytes:
    headers = f'Content-Type: {content_type}\r\nContent-Disposition: attachment; filename="po.x12"\r\n\r\n'
    return headers.encode() + payload


def _b64_digest(path: Path, digest: str = "sha256") -> str:
    return base64.b64encode(openssl("dgst", f"-{digest}", "-binary", path)).decode()


# ----------------------------------------------------------------------------- openssl builds, we parse


@pytest.mark.parametrize("md", ["sha256", "sha512"])
@pytest.mark.parametrize("name", PAYLOADS)
def test_openssl_signed_to_us(keys, pem, tmp_path, md, name):
    entity = tmp_path / "entity"
    entity.write_bytes(_entity(PAYLOADS[name]))
    key, cert = pem["partner"]
    signed = openssl("cms", "-sign", "-binary", "-crlfeol", "-outform", "SMIME", "-md", md, "-signer", cert,
                     "-inkey", key, "-in", entity)
    content_type, body = _split_smime(signed)
    got = parse(content_type, body, identities=[], trusted=[keys.partner.certificate], max_size=10**6,
                mic_algorithms=[f"sha-{md[3:]}"])
    assert got.payload == PAYLOADS[name]
    assert got.signed and got.digest == md and got.filename == "po.x12"
    assert got.mic == _b64_digest(entity, md)


@pytest.mark.parametrize("name", PAYLOADS)
def test_openssl_signed_lf_structure_to_us(keys, pem, tmp_path, name):
    """``-binary`` without ``-crlfeol``: LF around the MIME structure, the content byte-exact."""
    entity = tmp_path / "entity"
    entity.write_bytes(_entity(PAYLOADS[name]))
    key, cert = pem["partner"]
    signed = openssl("cms", "-sign", "-binary", "-outform", "SMIME", "-signer", cert, "-inkey", key, "-in", entity)
    got = parse(*_split_smime(signed), identities=[], trusted=[keys.partner.certificate], max_size=10**6)
    assert got.payload == PAYLOADS[name] and got.mic == _b64_digest(entity)


def test_openssl_signed_without_attributes(keys, pem, tmp_path):
    entity = tmp_path / "entity"
    entity.write_bytes(_entity(EDI_LF))
    key, cert = pem["partner"]
    signed = openssl("cms", "-sign", "-binary", "-crlfeol", "-noattr", "-outform", "SMIME", "-signer", cert,
                     "-inkey", key, "-in", entity)
    got = parse(*_split_smime(signed), identities=[], trusted=[keys.partner.certificate], max_size=10**6)
    assert got.payload == EDI_LF and got.mic == _b64_digest(entity)


def test_openssl_text_mode_signature(keys, pem, tmp_path):
    """Without -binary openssl signs the canonical CRLF form and writes LF around it: still verifies."""
    entity = tmp_path / "entity"
    entity.write_bytes(b"Content-Type: application/edi-x12\n\n" + EDI_LF)
    key, cert = pem["partner"]
    signed = openssl("cms", "-sign", "-outform", "SMIME", "-signer", cert, "-inkey", key, "-in", entity)
    got = parse(*_split_smime(signed), identities=[], trusted=[keys.partner.certificate], max_size=10**6)
    assert got.payload == EDI_LF.replace(b"\n", b"\r\n")  # what was signed: the canonical text
    canonical = tmp_path / "canonical"
    canonical.write_bytes(entity.read_bytes().replace(b"\n", b"\r\n"))
    assert got.mic == _b64_digest(canonical)


def test_openssl_signed_by_untrusted(keys, pem, tmp_path):
    from gateway.errors import AuthenticationFailed

    entity = tmp_path / "entity"
    entity.write_bytes(_entity(EDI_LF))
    key, cert = pem["stranger"]
    signed = openssl("cms", "-sign", "-binary", "-crlfeol", "-outform", "SMIME", "-signer", cert, "-inkey", key,
                     "-in", entity)
    with pytest.raises(AuthenticationFailed):
        parse(*_split_smime(signed), identities=[], trusted=[keys.partner.certificate], max_size=10**6)


@pytest.mark.parametrize("cipher", OPENSSL_CIPHERS)
@pytest.mark.parametrize("name", PAYLOADS)
def test_openssl_encrypted_to_us(keys, pem, tmp_path, cipher, name):
    entity = tmp_path / "entity"
    entity.write_bytes(_entity(PAYLOADS[name]))
    enveloped = openssl("cms", "-encrypt", "-binary", OPENSSL_CIPHERS[cipher], "-outform", "DER", "-in", entity,
                        pem["ours"][1])
    got = parse('application/pkcs7-mime; smime-type=enveloped-data; name="smime.p7m"', enveloped,
                identities=[keys.ours], trusted=[], max_size=10**6)
    assert got.payload == PAYLOADS[name]
    assert got.encrypted and not got.signed
    assert got.mic == _b64_digest(entity)  # unsigned, encrypted: MIC over the decrypted entity


@pytest.mark.parametrize("cipher", ["aes128-cbc", "aes256-cbc", "3des"])
@pytest.mark.parametrize("md", ["sha256", "sha512"])
def test_openssl_signed_then_encrypted_to_us(keys, pem, tmp_path, cipher, md):
    entity = tmp_path / "entity"
    entity.write_bytes(_entity(EDI_CRLF))
    key, cert = pem["partner"]
    signed = tmp_path / "signed"
    signed.write_bytes(openssl("cms", "-sign", "-binary", "-crlfeol", "-outform", "SMIME", "-md", md, "-signer", cert,
                               "-inkey", key, "-in", entity))
    # Encrypted for our next key while the old one is still active (key rollover).
    enveloped = openssl("cms", "-encrypt", "-binary", OPENSSL_CIPHERS[cipher], "-outform", "DER", "-in", signed,
                        pem["ours_next"][1])
    got = parse("application/pkcs7-mime; smime-type=enveloped-data", enveloped, identities=[keys.ours, keys.ours_next],
                trusted=[keys.partner.certificate], max_size=10**6, require_signature=True, require_encryption=True)
    assert got.payload == EDI_CRLF and got.signed and got.encrypted and got.digest == md
    assert got.mic == _b64_digest(entity)


def test_openssl_opaque_signed_to_us(keys, pem, tmp_path):
    entity = tmp_path / "entity"
    entity.write_bytes(_entity(BINARY))
    key, cert = pem["partner"]
    opaque = openssl("cms", "-sign", "-binary", "-nodetach", "-outform", "DER", "-signer", cert, "-inkey", key,
                     "-in", entity)
    got = parse("application/pkcs7-mime; smime-type=signed-data", opaque, identities=[],
                trusted=[keys.partner.certificate], max_size=10**6)
    assert got.payload == BINARY and got.signed and got.mic == _b64_digest(entity)


def test_openssl_signed_mdn_to_us(keys, pem, tmp_path):
    report = (b'Content-Type: multipart/report; report-type=disposition-notification; boundary="r"\r\n\r\n'
              b"--r\r\nContent-Type: text/plain\r\n\r\nReceived.\r\n"
              b"--r\r\nContent-Type: message/disposition-notification\r\n\r\n"
              b"Original-Message-ID: <m1@gateway>\r\nReceived-Content-MIC: abc=, sha-256\r\n"
              b"Disposition: automatic-action/MDN-sent-automatically; processed\r\n\r\n--r--\r\n")
    entity = tmp_path / "report"
    entity.write_bytes(report)
    key, cert = pem["partner"]
    signed = openssl("cms", "-sign", "-binary", "-crlfeol", "-outform", "SMIME", "-signer", cert, "-inkey", key,
                     "-in", entity)
    mdn = parse_mdn(*_split_smime(signed), trusted=[keys.partner.certificate], require_signature=True)
    assert mdn.signed and mdn.ok and mdn.mic == "abc=" and mdn.original_message_id == "<m1@gateway>"


# ----------------------------------------------------------------------------- we build, openssl opens


def _smime_file(tmp_path: Path, content_type: str, body: bytes) -> Path:
    path = tmp_path / "message.smime"
    path.write_bytes(f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n\r\n".encode() + body)
    return path


@pytest.mark.parametrize("digest", ["sha1", "sha256", "sha384", "sha512"])
@pytest.mark.parametrize("protection", [True, False], ids=["alg-protection", "no-alg-protection"])
@pytest.mark.parametrize("name", PAYLOADS)
def test_our_signed_verified_by_openssl(keys, pem, tmp_path, digest, protection, name):
    out = build(PAYLOADS[name], content_type="application/edi-x12", sign=keys.ours, digest=digest,
                algorithm_protection=protection)
    smime = _smime_file(tmp_path, out.content_type, out.body)
    entity = tmp_path / "entity"
    verify_smime(smime, pem["ours"][1], entity)
    signed_entity = entity.read_bytes()
    assert signed_entity.endswith(PAYLOADS[name])
    assert signed_entity.startswith(b"Content-Type: application/edi-x12\r\n")
    assert out.mic == _b64_digest(entity, digest)


def test_our_signed_verified_by_openssl_noverify_certfile(keys, pem, tmp_path):
    out = build(EDI_LF, sign=keys.ours)
    smime = _smime_file(tmp_path, out.content_type, out.body)
    entity = tmp_path / "entity"
    openssl("cms", "-verify", "-binary", "-crlfeol", "-noverify", "-inform", "SMIME", "-in", smime,
            "-certfile", pem["ours"][1], "-out", entity)
    assert out.mic == _b64_digest(entity)


def test_openssl_rejects_our_tampered_message(keys, pem, tmp_path):
    out = build(EDI_LF, sign=keys.ours)
    smime = _smime_file(tmp_path, out.content_type, out.body.replace(b"GS*PO", b"GS*IN"))
    with pytest.raises(subprocess.CalledProcessError):
        verify_smime(smime, pem["ours"][1], tmp_path / "x")


@pytest.mark.parametrize("cipher", OPENSSL_CIPHERS)
@pytest.mark.parametrize("name", PAYLOADS)
def test_our_encrypted_decrypted_by_openssl(keys, pem, tmp_path, cipher, name):
    out = build(PAYLOADS[name], content_type="application/edi-x12", encrypt=[keys.partner.certificate], cipher=cipher)
    body = tmp_path / "body.p7m"
    body.write_bytes(out.body)
    key, cert = pem["partner"]
    entity = tmp_path / "entity"
    openssl("cms", "-decrypt", "-binary", "-inform", "DER", "-in", body, "-inkey", key, "-recip", cert, "-out", entity)
    assert entity.read_bytes().endswith(b"\r\n\r\n" + PAYLOADS[name])
    assert out.mic == _b64_digest(entity)


@pytest.mark.parametrize("cipher", ["aes128-cbc", "aes256-cbc", "3des"])
@pytest.mark.parametrize("digest", ["sha256", "sha512"])
def test_our_signed_encrypted_opened_by_openssl(keys, pem, tmp_path, cipher, digest):
    out = build(BINARY, content_type="application/octet-stream", sign=keys.ours, digest=digest,
                encrypt=[keys.partner.certificate], cipher=cipher)
    body = tmp_path / "body.p7m"
    body.write_bytes(out.body)
    key, cert = pem["partner"]
    signed = tmp_path / "signed"
    openssl("cms", "-decrypt", "-binary", "-inform", "DER", "-in", body, "-inkey", key, "-recip", cert, "-out", signed)
    assert signed.read_bytes().startswith(b"Content-Type: multipart/signed;")
    entity = tmp_path / "entity"
    verify_smime(signed, pem["ours"][1], entity)
    assert entity.read_bytes().endswith(b"\r\n\r\n" + BINARY)
    assert out.mic == _b64_digest(entity, digest)


def test_our_signed_mdn_verified_by_openssl(keys, pem, tmp_path):
    content_type, body = build_mdn(original_message_id="<m1@partner>", our_as2_id="GATEWAY", partner_as2_id="PARTNER",
                                   mic="abc=", mic_algorithm="sha-256", sign=keys.ours)
    smime = _smime_file(tmp_path, content_type, body)
    report = tmp_path / "report"
    verify_smime(smime, pem["ours"][1], report)
    text = report.read_bytes()
    assert text.startswith(b"Content-Type: multipart/report; report-type=disposition-notification;")
    assert b"Disposition: automatic-action/MDN-sent-automatically; processed\r\n" in text


# ----------------------------------------------------------------------------- compression (needs zlib in openssl)


def _openssl_has_zlib(tmp_path: Path) -> bool:
    probe = tmp_path / "probe"
    probe.write_bytes(b"x")
    try:
        openssl("cms", "-compress", "-in", probe, "-outform", "DER", "-out", tmp_path / "probe.p7z")
    except subprocess.CalledProcessError:
        return False
    return True


def test_compression_with_openssl(keys, tmp_path):
    if not _openssl_has_zlib(tmp_path):
        pytest.skip("this openssl is built without zlib (`cms -compress` fails); compression interop is covered "
                    "by the asn1crypto-built CompressedData in test_as2_cms.py")
    entity = tmp_path / "entity"
    entity.write_bytes(_entity(EDI_LF))
    packed = openssl("cms", "-compress", "-binary", "-outform", "DER", "-in", entity)
    got = parse("application/pkcs7-mime; smime-type=compressed-data", packed, identities=[], trusted=[],
                max_size=10**6)
    assert got.payload == EDI_LF and got.compressed
    out = build(EDI_LF, compress="before-signing")
    body = tmp_path / "ours.p7z"
    body.write_bytes(out.body)
    assert openssl("cms", "-uncompress", "-binary", "-inform", "DER", "-in", body).endswith(EDI_LF)


def test_mic_matches_openssl_dgst_for_plain_message(tmp_path):
    out = build(EDI_CRLF)
    path = tmp_path / "payload"
    path.write_bytes(EDI_CRLF)
    assert out.mic == _b64_digest(path) == base64.b64encode(hashlib.sha256(EDI_CRLF).digest()).decode()
