"""The pure pipeline: detect, parse, check the sender, map, route; typed errors with positions."""

import pytest

from gateway import pipeline
from gateway.config import load_deployment
from gateway.errors import DetectError, MappingError, ParseError, PartnerError, RoutingError
from harness import REPO, edifact_order


@pytest.fixture(scope="module")
def deployment():
    return load_deployment(REPO)


def run(raw: bytes, deployment, partner="ACME"):
    return pipeline.process(raw, deployment, partner_id=partner, channel="inbox", message_id="msg_1",
                            filename="in.edi")


def test_orders_become_routed_canonical_documents(deployment):
    outcome = run((REPO / "examples" / "orders-d96a.edi").read_bytes(), deployment)
    assert (outcome.partner, outcome.format, outcome.standard, outcome.interchange) == (
        "ACME", "edifact", "ORDERS D96A", "EX0001")
    [doc] = outcome.documents
    assert doc.targets == ["erp"] and doc.number == "PO-EXAMPLE-1"
    assert doc.envelope["id"] == "doc_" + doc.idempotency_key[:24]
    assert doc.envelope["source"] == {"channel": "inbox", "message_id": "msg_1", "format": "edifact",
                                      "standard": "ORDERS D96A", "interchange": "EX0001", "message": "1",
                                      "mapping": "edifact-orders"}


def test_keys_are_stable_per_content_and_position(deployment):
    two = edifact_order("A", icr="7") + edifact_order("B", icr="8")   # two interchanges in one file
    first = run(two, deployment)
    again = run(two, deployment)
    assert [d.idempotency_key for d in first.documents] == [d.idempotency_key for d in again.documents]
    assert len({d.idempotency_key for d in first.documents}) == 2
    other = run(edifact_order("A", icr="9"), deployment)
    assert other.documents[0].idempotency_key not in {d.idempotency_key for d in first.documents}


def test_partner_found_from_the_sender_when_not_given(deployment):
    assert run((REPO / "examples" / "850-004010.x12").read_bytes(), deployment, partner=None).partner == "ACME"


def test_sender_of_another_partner_is_refused(deployment):
    with pytest.raises(PartnerError) as err:
        run(edifact_order("X", sender="4000000000001"), deployment)
    assert str(err.value) == ("in.edi: partner ACME: interchange sender 14:4000000000001 is not an identifier "
                              "of partner ACME (add it to [identifiers] edifact in partners/ACME.toml)")


@pytest.mark.parametrize("raw, error, phrase", [
    (b"", DetectError, "empty"),
    (b"\x00\x01\x02" * 50, DetectError, "binary"),
    (b"hello world", DetectError, "hello"),
    (edifact_order("T")[:200], ParseError, "segment"),
    (b"<?xml version='1.0'?><Order/>", MappingError, "XML"),
])
def test_bad_input_raises_typed_errors_naming_the_file(deployment, raw, error, phrase):
    with pytest.raises(error) as err:
        run(raw, deployment)
    assert str(err.value).startswith("in.edi: ") and phrase in str(err.value)


def test_a_document_type_without_route_is_an_error(deployment, tmp_path):
    import shutil

    for part in ("gateway.toml", "mappings"):
        (shutil.copytree if (REPO / part).is_dir() else shutil.copy)(REPO / part, tmp_path / part)
    (tmp_path / "partners").mkdir()
    (tmp_path / "partners" / "ACME.toml").write_text('[identifiers]\nedifact = ["5412345000013"]\n')
    with pytest.raises(RoutingError, match="no route for order documents in partners/ACME.toml"):
        run(edifact_order("R"), load_deployment(tmp_path))


def test_message_type_without_mapping_is_an_error(deployment):
    invoic = edifact_order("I").replace(b"ORDERS:D:96A", b"IFTMIN:D:96A")   # a type no mapping reads
    with pytest.raises(MappingError) as err:
        run(invoic, deployment)
    assert "no mapping in mappings/ for edifact IFTMIN D96A" in str(err.value)
    assert "segment 2 (UNH)" in str(err.value)
