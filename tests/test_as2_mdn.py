"""MDN receipts: build/parse, signed and not, every error disposition, vendor shapes, options header."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures.as2.pki import pki
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.as2 import build, build_mdn, mime, parse, parse_disposition_options, parse_mdn
from gateway.errors import (As2Error, AuthenticationFailed, DecompressionFailed, DecryptionFailed,
                            InsufficientMessageSecurity, IntegrityCheckFailed, UnexpectedProcessingError)

FIXTURES = Path(__file__).parent / "fixtures" / "as2"
MIC = "3vQUv3gzvE+AEeP6g6OjUKEq9m0mPV0BnUNAPbC3h1c="


@pytest.fixture(scope="session")
def keys():
    return pki()


def _mdn(keys, **kw):
    args = dict(original_message_id="<20240101.1@partner>", our_as2_id="GATEWAY", partner_as2_id="PARTNER",
                mic=MIC, mic_algorithm="sha-256")
    args.update(kw)
    return build_mdn(**args)


def test_unsigned_mdn_round_trip(keys):
    content_type, body = _mdn(keys)
    assert content_type.startswith("multipart/report; report-type=disposition-notification; boundary=")
    assert b"Disposition: automatic-action/MDN-sent-automatically; processed\r\n" in body
    assert f"Received-Content-MIC: {MIC}, sha-256\r\n".encode() in body
    assert b"Original-Message-ID: <20240101.1@partner>\r\n" in body
    mdn = parse_mdn(content_type, body, trusted=[], require_signature=False)
    assert mdn.ok and not mdn.signed
    assert (mdn.disposition, mdn.modifier) == ("processed", None)
    assert mdn.original_message_id == "<20240101.1@partner>"
    assert mdn.mic == MIC and mdn.mic_algorithm == "sha-256"
    assert mdn.mic_matches(MIC, "SHA256") and not mdn.mic_matches(MIC, "sha1")
    assert "PARTNER" in mdn.text and "GATEWAY" in mdn.text


@pytest.mark.parametrize("digest", ["sha1", "sha256", "sha512"])
def test_signed_mdn_round_trip(keys, digest):
    content_type, body = _mdn(keys, sign=keys.ours, digest=digest, text="Thank you.\nBye")
    assert content_type.startswith("multipart/signed; protocol=\"application/pkcs7-signature\"")
    mdn = parse_mdn(content_type, body, trusted=[keys.ours.certificate], require_signature=True)
    assert mdn.signed and mdn.ok and mdn.text == "Thank you.\r\nBye"


@pytest.mark.parametrize("error", [DecryptionFailed, AuthenticationFailed, IntegrityCheckFailed, DecompressionFailed,
                                   InsufficientMessageSecurity, UnexpectedProcessingError])
def test_negative_mdn_for_each_error(keys, error):
    content_type, body = _mdn(keys, mic=None, mic_algorithm=None, disposition=error("x").disposition, sign=keys.ours)
    assert f"processed/error: {error.disposition}".encode() in body
    assert b"Received-Content-MIC" not in body
    mdn = parse_mdn(content_type, body, trusted=[keys.ours.certificate], require_signature=True)
    assert not mdn.ok
    assert mdn.disposition == "processed" and mdn.modifier == f"error: {error.disposition}"
    assert mdn.mic is None
    assert error.disposition in mdn.text


def test_warning_disposition_is_ok(keys):
    content_type, body = _mdn(keys, disposition="processed/warning: duplicate-document")
    mdn = parse_mdn(content_type, body, trusted=[], require_signature=False)
    assert mdn.ok and mdn.modifier == "warning: duplicate-document"


def test_unsigned_mdn_when_signature_required(keys):
    content_type, body = _mdn(keys)
    with pytest.raises(InsufficientMessageSecurity):
        parse_mdn(content_type, body, trusted=[keys.ours.certificate], require_signature=True)


def test_signed_mdn_by_stranger(keys):
    content_type, body = _mdn(keys, sign=keys.stranger)
    with pytest.raises(AuthenticationFailed):
        parse_mdn(content_type, body, trusted=[keys.ours.certificate], require_signature=True)


def test_tampered_signed_mdn(keys):
    content_type, body = _mdn(keys, sign=keys.ours)
    with pytest.raises(IntegrityCheckFailed):
        parse_mdn(content_type, body.replace(b"; processed", b"; failed/failure: x"), trusted=[keys.ours.certificate],
                  require_signature=True)


@pytest.mark.parametrize("field", ["original_message_id", "our_as2_id", "partner_as2_id", "mic"])
def test_header_injection_refused(keys, field):
    with pytest.raises(UnexpectedProcessingError):
        _mdn(keys, **{field: "<x>\r\nDisposition: automatic-action/MDN-sent-automatically; processed"})


def test_mdn_for_a_received_message_end_to_end(keys):
    """Partner sends, we parse and answer; the partner checks our MDN against the MIC it computed."""
    out = build(b"UNB+UNOA:2+A+B'UNZ+1+1'", sign=keys.partner, encrypt=[keys.ours.certificate])
    signed_requested, algorithms = parse_disposition_options(
        "signed-receipt-protocol=optional, pkcs7-signature; signed-receipt-micalg=optional, sha256")
    got = parse(out.content_type, out.body, identities=[keys.ours], trusted=[keys.partner.certificate],
                max_size=10**6, mic_algorithms=algorithms)
    content_type, body = build_mdn(original_message_id="<m1@partner>", our_as2_id="GATEWAY", partner_as2_id="PARTNER",
                                   mic=got.mic, mic_algorithm=got.mic_algorithm,
                                   sign=keys.ours if signed_requested else None)
    mdn = parse_mdn(content_type, body, trusted=[keys.ours.certificate], require_signature=True)
    assert mdn.ok and mdn.mic_matches(out.mic, out.mic_algorithm)


def _fixture(name: str) -> tuple[str, bytes]:
    headers, body = mime.split_entity(mime.Span.of((FIXTURES / name).read_bytes()))
    return headers["content-type"], body.tobytes()


def test_vendor_mdn_lf_folded():
    mdn = parse_mdn(*_fixture("mdn_openas2_style_lf.txt"), trusted=[], require_signature=False)
    assert mdn.ok and mdn.disposition == "processed" and mdn.modifier is None
    assert mdn.original_message_id == "<OPENAS2-14112023100000+0000-1234@GATEWAY_PARTNER>"
    assert mdn.mic == MIC and mdn.mic_algorithm == "sha-256"
    assert mdn.text.startswith("The message sent to Recipient PARTNER")


def test_vendor_mdn_failed_base64():
    mdn = parse_mdn(*_fixture("mdn_failed_base64.txt"), trusted=[], require_signature=False)
    assert not mdn.ok and mdn.modifier == "error: decryption-failed"
    assert mdn.original_message_id == "<abc@gateway>" and mdn.text == "Decryption failed."


@pytest.mark.parametrize("content_type,body", [
    ("text/plain", b"Internal Server Error"),
    ("multipart/report; boundary=b", b"--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b--\r\n"),
    ("multipart/report", b"no boundary"),
])
def test_not_an_mdn(content_type, body):
    with pytest.raises(UnexpectedProcessingError):
        parse_mdn(content_type, body, trusted=[], require_signature=False)


@pytest.mark.parametrize("header,expected", [
    ("signed-receipt-protocol=optional, pkcs7-signature; signed-receipt-micalg=optional, sha-256, sha1",
     (True, ["sha-256", "sha1"])),
    ("signed-receipt-protocol=required,pkcs7-signature;signed-receipt-micalg=required,SHA256", (True, ["sha-256"])),
    ('Signed-Receipt-Protocol = optional, "pkcs7-signature" ; Signed-Receipt-MicAlg = optional, "sha_512", md5',
     (True, ["sha-512"])),
    ("signed-receipt-micalg=optional, sha256, sha-256, sha384", (False, ["sha-256", "sha-384"])),
    ("", (False, [])),
    ("garbage;;==,", (False, [])),
])
def test_parse_disposition_options(header, expected):
    assert parse_disposition_options(header) == expected


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_mdns_raise_only_as2_errors(data):
    keys = pki()
    content_type, body = data.draw(st.sampled_from([_mdn(keys), _mdn(keys, sign=keys.ours)]))
    raw = bytearray(body)
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(raw) - 1))
        if data.draw(st.booleans()):
            raw[pos] ^= data.draw(st.integers(1, 255))
        else:
            del raw[pos : pos + data.draw(st.integers(1, 100))]
    try:
        mdn = parse_mdn(content_type, bytes(raw), trusted=[keys.ours.certificate], require_signature=False)
    except As2Error:
        return
    assert mdn.disposition is not None
