"""The canonical JSON Schemas and gateway.canonical: valid documents pass, each mistake is named by its path."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from gateway import canonical
from gateway.errors import MappingError

REPO = Path(__file__).parent.parent
# Inbound goldens are moving from tests/golden/ to mappings/golden/: read both places.
GOLDEN_FILES = sorted({*REPO.glob("mappings/golden/*/*.expected.json"), *REPO.glob("tests/golden/*/*.expected.json")})


def party(id: str, scheme: str | None = "GLN", name: str | None = None) -> dict:
    return {"id": id, "scheme": scheme, "name": name}


def item(gtin: str | None = "8711111000118") -> dict:
    return {"gtin": gtin, "buyer_code": "B-1", "seller_code": None, "description": "Apple juice 1L"}


ORDER = {"number": "PO1", "issue_date": "2026-11-20", "requested_delivery_date": None, "currency": "EUR",
         "buyer": party("5412345000013", name="Brasserie"), "seller": party("8711111000007"), "ship_to": None,
         "lines": [{"line": "1", "item": item(), "quantity": "24", "unit": "PCE", "unit_price": "1.25"},
                   {"line": "2", "item": item(None), "quantity": "-1.5", "unit": None, "unit_price": None}]}
INVOICE = {"number": "INV1", "issue_date": "2026-11-22", "order_number": "PO1", "currency": "EUR",
           "buyer": party("123456789", "DUNS"), "seller": party("ACME", "ZZ"),
           "lines": [{"line": "10", "item": item(), "quantity": "2", "unit": "EA", "unit_price": "10.00",
                      "line_amount": "20.00", "tax_rate": "21"}],
           "totals": {"net": "20.00", "tax": "4.20", "gross": "24.20"}}
ORDER_RESPONSE = {"number": "R1", "issue_date": None, "order_number": "PO1", "status": "changed",
                  "buyer": None, "seller": party("8711111000007"),
                  "lines": [{"line": "1", "item": item(), "quantity": "20", "unit": "PCE", "unit_price": None,
                             "status": "changed"},
                            {"line": "2", "item": item(), "quantity": "0", "unit": "PCE", "unit_price": None,
                             "status": None}]}
SHIP_LINE = {"line": "1", "item": item(), "quantity": "24", "unit": "PCE", "order_number": "PO1"}
SHIP_NOTICE = {"number": "DES1", "issue_date": "2026-11-20", "ship_date": "2026-11-21", "order_numbers": ["PO1"],
               "ship_from": party("8711111000007"), "ship_to": party("5412345000020"),
               "carrier": None, "tracking": "1Z999", "packages": [{"sscc": "387111110000000017", "lines": [SHIP_LINE]}],
               "lines": []}
VALID = {"order": ORDER, "invoice": INVOICE, "order_response": ORDER_RESPONSE, "ship_notice": SHIP_NOTICE}


def envelope(doc_type: str, document: Any) -> dict:
    """A minimal envelope around a document body, as pipeline.process builds it."""
    return {"type": doc_type, "version": 1, "id": "doc_1", "idempotency_key": "k1", "partner": "ACME",
            "source": {"channel": "sftp", "message_id": "msg_1", "format": "edifact", "standard": "ORDERS D96A",
                       "interchange": "1", "message": "1", "mapping": "edifact-orders"},
            "document": document}


def broken(doc_type: str, change) -> dict:
    """A valid envelope of doc_type with ``change(document)`` applied."""
    env = envelope(doc_type, copy.deepcopy(VALID[doc_type]))
    change(env["document"])
    return env


# --- the schema files ---------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["envelope", "order", "invoice", "ship_notice", "order_response"])
def test_schema_file_is_a_valid_2020_12_schema_with_id_and_description(name: str) -> None:
    path = canonical.schema_path(name)
    schema = json.loads(path.read_text(encoding="utf-8"))
    assert path.parent.name == "schemas" and path.name == f"{name}.schema.json"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == f"https://edi-gateway.example/schemas/{name}.schema.json"
    assert schema["description"]
    Draft202012Validator.check_schema(schema)
    assert canonical.SCHEMAS[name] == schema


def test_schema_path_of_unknown_type_is_an_error() -> None:
    with pytest.raises(ValueError, match="no canonical schema for 'despatch'"):
        canonical.schema_path("despatch")


def test_document_schemas_require_every_key_and_forbid_others() -> None:
    order = canonical.SCHEMAS["order"]
    assert order["required"] == ["number", "issue_date", "requested_delivery_date", "currency", "buyer", "seller",
                                 "ship_to", "lines"]
    assert order["additionalProperties"] is False
    assert canonical.SCHEMAS["envelope"]["properties"]["source"]["additionalProperties"] is True


# --- valid documents ------------------------------------------------------------------------------
@pytest.mark.parametrize("doc_type", sorted(VALID))
def test_valid_document_of_each_type_passes(doc_type: str) -> None:
    env = envelope(doc_type, VALID[doc_type])
    assert canonical.problems(env) == []
    canonical.check(env)                                     # no exception
    assert canonical.document_problems(doc_type, VALID[doc_type]) == []


def test_ship_notice_without_packages_has_top_level_lines() -> None:
    document = {**SHIP_NOTICE, "packages": [], "lines": [SHIP_LINE], "order_numbers": []}
    assert canonical.problems(envelope("ship_notice", document)) == []


def test_extra_keys_under_source_are_allowed() -> None:
    env = envelope("order", ORDER)
    env["source"]["filename"] = "po.edi"
    assert canonical.problems(env) == []


# --- each kind of mistake, named by its path --------------------------------------------------------
def test_float_quantity_is_reported_with_its_path() -> None:
    env = broken("order", lambda d: d["lines"][1].update(quantity=12.5))
    assert canonical.problems(env) == [
        'document.lines[1].quantity: 12.5 is a JSON number; numbers are decimal strings ("12.5")']


def test_decimal_comma_string_is_reported_with_its_path() -> None:
    env = broken("invoice", lambda d: d["lines"][0].update(unit_price="12,5"))
    assert canonical.problems(env) == [
        "document.lines[0].unit_price: '12,5' does not match ^-?\\d+(\\.\\d+)?$ "
        '(expected a decimal string like "12.50")']


def test_bad_dates_are_reported_with_their_path() -> None:
    env = broken("order", lambda d: d.update(issue_date="20261120", requested_delivery_date="2026-02-30"))
    assert canonical.problems(env) == [
        "document.issue_date: '20261120' does not match ^\\d{4}-\\d{2}-\\d{2}$ (expected a date YYYY-MM-DD)",
        "document.requested_delivery_date: '2026-02-30' is not a valid date"]


def test_unknown_key_is_reported_at_its_own_path() -> None:
    env = broken("order", lambda d: d["lines"][0].update(quantiy="1"))
    assert canonical.problems(env) == ["document.lines[0].quantiy: unknown key "
                                       "(allowed here: line, item, quantity, unit, unit_price)"]


def test_missing_key_is_reported_at_its_own_path() -> None:
    env = broken("invoice", lambda d: (d.pop("currency"), d["totals"].pop("tax")))
    assert sorted(canonical.problems(env)) == [
        "document.currency: missing (every key is always present: null when there is no value)",
        "document.totals.tax: missing (every key is always present: null when there is no value)"]


def test_bad_status_is_reported_for_document_and_line() -> None:
    env = broken("order_response", lambda d: (d.update(status="ok"), d["lines"][1].update(status="")))
    assert canonical.problems(env) == [
        "document.status: 'ok' is not one of ['accepted', 'changed', 'rejected']",
        "document.lines[1].status: '' is not one of ['accepted', 'changed', 'rejected', None]"]


def test_document_status_may_not_be_null() -> None:
    env = broken("order_response", lambda d: d.update(status=None))
    assert canonical.problems(env) == [
        "document.status: null is not allowed here (expected one of: accepted, changed, rejected)"]


def test_wrong_party_shapes_are_reported_with_their_path() -> None:
    def change(d: dict) -> None:
        d["buyer"] = "5412345000013"                                   # a bare id, not an object
        d["seller"] = {"gln": "8711111000007", "scheme": "GLN", "name": None}   # typo'd key

    assert canonical.problems(broken("order", change)) == [
        "document.buyer: '5412345000013' is not of type 'object', 'null'",
        "document.seller.id: missing (every key is always present: null when there is no value)",
        "document.seller.gln: unknown key (allowed here: id, scheme, name)"]


def test_null_number_and_integer_line_are_reported() -> None:
    env = broken("ship_notice", lambda d: (d.update(number=None), d["packages"][0]["lines"][0].update(line=1)))
    assert canonical.problems(env) == [
        "document.number: null is not allowed here (expected string)",
        'document.packages[0].lines[0].line: 1 is a JSON number; numbers are decimal strings ("1")']


def test_empty_string_is_not_a_value() -> None:
    env = broken("order", lambda d: d["buyer"].update(name=""))
    assert canonical.problems(env) == ["document.buyer.name: empty text; write null when there is no value"]


def test_envelope_mistakes_are_reported() -> None:
    env = envelope("order", ORDER)
    env.update(version=2, extra=True)
    del env["source"]["mapping"]
    env["source"]["channel"] = "fax"
    assert sorted(canonical.problems(env)) == [
        "extra: unknown key (allowed here: type, version, id, idempotency_key, partner, source, document)",
        "source.channel: 'fax' is not one of ['as2', 'sftp', 'inbox', 'poll', 'api', 'cli']",
        "source.mapping: missing (every key is always present: null when there is no value)",
        "version: 1 was expected"]


def test_unknown_type_is_reported_and_document_not_guessed() -> None:
    assert canonical.problems(envelope("despatch", {"anything": 1})) == [
        "type: 'despatch' is not one of ['order', 'invoice', 'ship_notice', 'order_response']"]


def test_document_is_checked_against_the_schema_of_its_type() -> None:
    # A valid order is not a valid invoice: the envelope applies the schema named by `type`.
    problems = canonical.problems(envelope("invoice", ORDER))
    assert "document.totals: missing (every key is always present: null when there is no value)" in problems
    assert any(p.startswith("document.requested_delivery_date: unknown key") for p in problems)


def test_check_raises_mapping_error_listing_every_problem() -> None:
    def change(d: dict) -> None:
        d["lines"][0]["quantity"] = "12,5"
        d["lines"][1]["unit_price"] = 1.25
        del d["ship_to"]

    with pytest.raises(MappingError) as caught:
        canonical.check(broken("order", change))
    text = str(caught.value)
    assert text.startswith("the order document made by mapping 'edifact-orders' breaks the canonical schema "
                           "(3 problems): ")
    assert "document.lines[0].quantity: '12,5' does not match" in text
    assert "document.lines[1].unit_price: 1.25 is a JSON number" in text
    assert "document.ship_to: missing" in text


def test_check_uses_the_fast_validator_and_it_agrees_on_every_mistake() -> None:
    canonical.prepare()
    fast = canonical._fast_envelope()
    if fast is None:
        pytest.skip("fastjsonschema is not installed: check() uses jsonschema alone")
    mistakes = [broken("order", lambda d: d["lines"][1].update(quantity=12.5)),
                broken("order", lambda d: d.update(issue_date="2026-02-30")),
                broken("order", lambda d: d["lines"][0].update(quantiy="1")),
                broken("invoice", lambda d: d.pop("currency")),
                broken("order_response", lambda d: d.update(status="ok")),
                broken("ship_notice", lambda d: d.update(ship_from="ACME")),
                broken("ship_notice", lambda d: d["packages"][0].update(sscc=None))]
    for env in mistakes:
        with pytest.raises(Exception):
            fast(env)
        with pytest.raises(MappingError):
            canonical.check(env)
    for doc_type, document in VALID.items():
        fast(envelope(doc_type, document))


def test_document_problems_of_unknown_type() -> None:
    assert canonical.document_problems("despatch", {}) == [
        "type: unknown document type 'despatch' (known: order, invoice, ship_notice, order_response)"]


# --- every inbound golden expected document follows the contract ------------------------------------
def _golden_params() -> list:
    params = []
    for path in GOLDEN_FILES:
        mapping = path.parent.name
        data = json.loads(path.read_text(encoding="utf-8"))
        documents = data if isinstance(data, list) else [data]     # XML goldens hold one document
        for index, document in enumerate(documents):
            case = f"{mapping}/{path.name.split('.expected')[0]}[{index}]"
            params.append(pytest.param(mapping, document, id=case))
    return params


def _document_type(mapping: str) -> str:
    toml = REPO / "mappings" / f"{mapping}.toml"
    return tomllib.loads(toml.read_text(encoding="utf-8"))["mapping"]["document"]


def test_there_are_golden_files() -> None:
    assert len(GOLDEN_FILES) >= 9


@pytest.mark.parametrize(("mapping", "document"), _golden_params())
def test_golden_expected_document_validates(mapping: str, document: dict) -> None:
    doc_type = _document_type(mapping)
    env = envelope(doc_type, document)
    env["source"]["mapping"] = mapping
    assert canonical.problems(env) == []
    canonical.check(env)
