"""XML documents: hardened reading (XXE, entity bombs, depth), identification, XSD checks, XML mappings.

Golden pairs live in mappings/golden/<mapping>/<case>.input.xml -> <case>.expected.json; the
expected JSON is written by hand from the input. Every other expected value below is too.
"""

from __future__ import annotations

import json
import re
import socket
import time
from pathlib import Path

import pytest

from gateway.edi.xml import REFUSED_DTD, identify, parse_xml
from gateway.errors import ConfigProblem, MappingError, ParseError
from gateway.mapping.xml import XmlMapping, find_xml_mapping, require_xml_mapping, to_xml_date
from gateway.mapping.xml_loader import check_xml_conflicts, load_xml, load_xml_mapping, load_xml_mappings

MAPPINGS = Path(__file__).resolve().parent.parent / "mappings"
GOLDEN = MAPPINGS / "golden"
CASES = sorted(GOLDEN.glob("xml-*/*.input.xml"))
UBL = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
ACME = "urn:example:acme:order:1"


@pytest.fixture(scope="module")
def mappings() -> list[XmlMapping]:
    problems: list[ConfigProblem] = []
    loaded = load_xml_mappings(MAPPINGS, problems)
    assert problems == []
    return loaded


def _by_name(mappings: list[XmlMapping], name: str) -> XmlMapping:
    return next(m for m in mappings if m.name == name)


# --- golden pairs: parse -> identify -> find -> validate -> apply ----------------------------
@pytest.mark.parametrize("input_path", CASES, ids=lambda p: f"{p.parent.name}/{p.name.split('.input.')[0]}")
def test_golden_pair_maps_to_expected_document(input_path: Path, mappings: list[XmlMapping]) -> None:
    tree = parse_xml(input_path.read_bytes())
    mapping = find_xml_mapping(mappings, *identify(tree))
    assert mapping is not None and mapping.name == input_path.parent.name
    assert mapping.validate_xsd(tree) == []
    document = mapping.apply_xml(tree)
    expected = json.loads(input_path.with_name(input_path.name.split(".input.")[0] + ".expected.json")
                          .read_text(encoding="utf-8"))
    assert json.loads(json.dumps(document)) == expected      # serializable: no floats, no lxml strings
    assert list(document) == list(expected)                  # the canonical key order


def test_every_xml_mapping_has_two_golden_cases_and_an_xsd(mappings: list[XmlMapping]) -> None:
    assert {m.name for m in mappings} >= {"xml-ubl-invoice", "xml-acme-order"}
    for mapping in mappings:
        assert len(list((GOLDEN / mapping.name).glob("*.input.xml"))) >= 2, mapping.name
        assert mapping.xsd and (MAPPINGS / mapping.xsd).is_file()


def test_mapping_exposes_the_attributes_the_gateway_reads(mappings: list[XmlMapping]) -> None:
    ubl = _by_name(mappings, "xml-ubl-invoice")
    assert (ubl.format, ubl.message, ubl.versions, ubl.document, ubl.auto) == ("xml", "Invoice", (), "invoice", True)
    assert (ubl.root, ubl.namespace, ubl.file) == ("Invoice", UBL, "mappings/xml-ubl-invoice.toml")


def test_registered_in_the_mapping_loader_xml_files_join_the_mapping_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.mapping import loader
    monkeypatch.setitem(loader.LOADERS, "xml", load_xml)
    found = loader.load_mappings(MAPPINGS)
    ubl = found.get("xml-ubl-invoice")
    assert isinstance(ubl, XmlMapping) and ubl.direction == "inbound"
    assert found.find("xml", "PurchaseOrder", "") is found.get("xml-acme-order")


# --- XSD ----------------------------------------------------------------------------------
def test_xsd_violation_is_reported_with_its_line(mappings: list[XmlMapping]) -> None:
    raw = (GOLDEN / "xml-acme-order/full.input.xml").read_bytes().replace(
        b"<GLN>4098765000001</GLN>", b"<GLN>40987</GLN>")          # line 16: not 13 digits
    problems = _by_name(mappings, "xml-acme-order").validate_xsd(parse_xml(raw))
    assert len(problems) == 1
    assert problems[0].startswith(f"line 16: Element '{{{ACME}}}GLN'")
    assert "'40987' is not accepted by the pattern '[0-9]{13}'" in problems[0]


def test_xsd_reports_a_missing_required_element_and_an_unknown_one(mappings: list[XmlMapping]) -> None:
    raw = (GOLDEN / "xml-ubl-invoice/peppol-gln.input.xml").read_bytes()
    raw = raw.replace(b"  <cbc:IssueDate>2026-11-20</cbc:IssueDate>\n", b"")     # was line 8; DueDate moves up
    raw = raw.replace(b"<cbc:BuyerReference>DEP-17</cbc:BuyerReference>",
                      b"<cbc:BuyerRef>DEP-17</cbc:BuyerRef>")                       # now line 12
    problems = _by_name(mappings, "xml-ubl-invoice").validate_xsd(parse_xml(raw).getroot())
    assert problems[0].startswith("line 8: Element '{urn:oasis:names:specification:ubl:schema:xsd:"
                                  "CommonBasicComponents-2}DueDate': This element is not expected.")
    assert "IssueDate" in problems[0]
    # libxml2 stops checking a content model at its first error, so the second stays unreported:
    # the document is refused either way, and the first problem names the line to fix.
    assert all(p.startswith("line ") for p in problems)


def test_mapping_without_xsd_validates_nothing(tmp_path: Path) -> None:
    mapping = _load(tmp_path, "x-plain", _MINIMAL)
    assert mapping.xsd is None and mapping.validate_xsd(parse_xml(b"<Doc><No>1</No></Doc>")) == []


# --- identification and unknown documents -------------------------------------------------
def test_identify_gives_namespace_and_local_name() -> None:
    assert identify(parse_xml(b'<p:Invoice xmlns:p="urn:x"/>')) == ("urn:x", "Invoice")
    assert identify(parse_xml(b"<Order/>").getroot()) == ("", "Order")


def test_unknown_root_or_namespace_finds_no_mapping(mappings: list[XmlMapping]) -> None:
    cii = b'<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"/>'
    assert find_xml_mapping(mappings, *identify(parse_xml(cii))) is None
    # Right local name, wrong namespace (UBL 2.0 draft namespace): not the UBL 2.1 mapping.
    assert find_xml_mapping(mappings, "urn:oasis:names:draft:ubl:schema:xsd:Invoice-2", "Invoice") is None
    assert find_xml_mapping(mappings, "", "Invoice") is None


def test_unknown_root_is_reported_with_what_the_mappings_read(mappings: list[XmlMapping]) -> None:
    with pytest.raises(MappingError) as caught:
        require_xml_mapping(mappings, "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100",
                            "CrossIndustryInvoice")
    assert str(caught.value) == (
        "no XML mapping in mappings/ reads <CrossIndustryInvoice> in namespace "
        "'urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100' "
        f"(known: <Invoice> '{UBL}', <PurchaseOrder> '{ACME}')")
    with pytest.raises(MappingError, match=r"^no XML mapping in mappings/ reads <Order> \(no namespace\)"):
        require_xml_mapping(mappings, "", "Order")
    with pytest.raises(MappingError, match=r"^the partner's mapping 'xml-acme-order' does not exist or does not "
                                           rf"read <Invoice> in namespace '{UBL}'$"):
        require_xml_mapping(mappings, UBL, "Invoice", override="xml-acme-order")
    assert require_xml_mapping(mappings, ACME, "PurchaseOrder").name == "xml-acme-order"


def test_applying_a_mapping_to_another_root_says_which_roots(mappings: list[XmlMapping]) -> None:
    with pytest.raises(MappingError) as caught:
        _by_name(mappings, "xml-ubl-invoice").apply_xml(parse_xml(b'<Invoice xmlns="urn:other"/>'))
    assert str(caught.value) == (f"mapping 'xml-ubl-invoice' reads <Invoice> in namespace '{UBL}', "
                                 "not <Invoice> in namespace 'urn:other'")


def test_find_honours_partner_override_and_auto_false(tmp_path: Path) -> None:
    generic = _load(tmp_path, "x-generic", _MINIMAL)
    special = _load(tmp_path, "x-special", _MINIMAL.replace('document = "order"', 'document = "order"\nauto = false'))
    assert find_xml_mapping([special, generic], "", "Doc") is generic
    assert find_xml_mapping([special, generic], "", "Doc", override="x-special") is special
    assert find_xml_mapping([special, generic], "", "Other", override="x-special") is None


def test_two_automatic_mappings_for_one_root_conflict(tmp_path: Path) -> None:
    problems: list[ConfigProblem] = []
    check_xml_conflicts([_load(tmp_path, "x-a", _MINIMAL), _load(tmp_path, "x-b", _MINIMAL)], problems)
    assert [(p.file, p.key) for p in problems] == [("mappings/x-b.toml", "mapping.root")]
    assert "'x-a' already handles <Doc>" in problems[0].problem


# --- mapping errors name the position -----------------------------------------------------
def test_bad_decimal_names_xml_line_field_and_document_line(mappings: list[XmlMapping]) -> None:
    raw = (GOLDEN / "xml-acme-order/full.input.xml").read_bytes().replace(b">2.5</Quantity>", b">2,5</Quantity>")
    with pytest.raises(MappingError) as caught:
        _by_name(mappings, "xml-acme-order").apply_xml(parse_xml(raw))
    assert str(caught.value) == ("XML line 36: field 'lines.quantity' (po:Quantity): '2,5' is not a decimal number"
                                 " in line 2 (<Item> at XML line 33)")


def test_missing_required_field_and_party_are_mapping_errors(mappings: list[XmlMapping]) -> None:
    acme = _by_name(mappings, "xml-acme-order")
    raw = (GOLDEN / "xml-acme-order/full.input.xml").read_bytes()
    with pytest.raises(MappingError, match=r"^required field 'number' \(po:Header/po:OrderNumber\) is missing$"):
        acme.apply_xml(parse_xml(raw.replace(b"<OrderNumber>ACME-PO-4711</OrderNumber>", b"<OrderNumber> </OrderNumber>")))
    with pytest.raises(MappingError, match=r"^required party 'buyer' \(po:Parties/po:Party\[@role = 'buyer'\]\) is missing$"):
        acme.apply_xml(parse_xml(raw.replace(b'role="buyer"', b'role="invoicee"')))


def test_impossible_date_is_a_mapping_error_with_its_line(mappings: list[XmlMapping]) -> None:
    raw = (GOLDEN / "xml-acme-order/full.input.xml").read_bytes().replace(b"2026-11-20", b"2026-02-30")
    with pytest.raises(MappingError, match=r"^XML line 5: field 'issue_date' .*'2026-02-30' is not a valid calendar date"):
        _by_name(mappings, "xml-acme-order").apply_xml(parse_xml(raw))


@pytest.mark.parametrize(("value", "date_format", "expected"), [
    ("2026-11-20", None, "2026-11-20"),
    ("2026-11-20+01:00", None, "2026-11-20"),
    ("2026-11-20T14:30:00Z", None, "2026-11-20T14:30:00"),
    ("2026-11-20T14:30", None, "2026-11-20T14:30:00"),
    ("2026-11-20T14:30:59.250-05:00", None, "2026-11-20T14:30:59"),
    ("20261120", None, "2026-11-20"),
    ("261120", "101", "2026-11-20"),
    ("  ", None, None),
])
def test_xml_dates_become_iso(value: str, date_format: str | None, expected: str | None) -> None:
    assert to_xml_date(value, date_format) == expected


@pytest.mark.parametrize("value", ["2026-13-01", "2026-11-20T25:00:00", "20.11.2026", "2026/11/20"])
def test_bad_xml_dates_are_refused(value: str) -> None:
    from gateway.mapping.convert import ConversionError
    with pytest.raises(ConversionError):
        to_xml_date(value)


# --- the mapping file language ------------------------------------------------------------
_MINIMAL = """
[mapping]
name = "NAME"
format = "xml"
root = "Doc"
document = "order"
[fields]
number = { xpath = "No", required = true }
"""


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / "mappings" / f"{name}.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text.replace('"NAME"', f'"{name}"'), encoding="utf-8")
    return path


def _load(tmp_path: Path, name: str, text: str) -> XmlMapping:
    problems: list[ConfigProblem] = []
    mapping = load_xml_mapping(_write(tmp_path, name, text), f"mappings/{name}.toml", problems)
    assert problems == [] and mapping is not None
    return mapping


def _problems(tmp_path: Path, text: str, name: str = "x-bad") -> list[tuple[str, str]]:
    problems: list[ConfigProblem] = []
    assert load_xml_mapping(_write(tmp_path, name, text), f"mappings/{name}.toml", problems) is None
    assert all(p.file == f"mappings/{name}.toml" for p in problems)
    return [(p.key, p.problem) for p in problems]


def test_loader_collects_every_problem_of_a_file(tmp_path: Path) -> None:
    found = _problems(tmp_path, """
[mapping]
name = "other"
format = "xml"
root = "a:Doc"
document = "order"
colour = "blue"
[namespaces]
cbc = "urn:cbc"
[fields]
number = "cac:ID"
total = "Total"
issue_date = { xpath = "Date", convert = "date", default = "2026-02-30" }
currency = { xpath = "Cur", codes = "nope" }
requested_delivery_date = [{ xpath = "A", required = true }, "B"]
[lines]
node = "Line["
[lines.fields]
line = { sequence = "yes" }
""")
    keys = [key for key, _ in found]
    assert keys == ["mapping.colour", "mapping.name", "mapping.root", "fields.number", "fields.total",
                    "fields.issue_date.default", "fields.currency.codes", "fields.requested_delivery_date[1].required",
                    "lines.node", "lines.fields.line.sequence"]
    problems = dict(found)
    assert "Undefined namespace prefix" in problems["fields.number"] and "prefixes: cbc" in problems["fields.number"]
    assert "unknown field for document type 'order'" in problems["fields.total"]
    assert "not a valid calendar date" in problems["fields.issue_date.default"]


def test_xsd_must_stay_inside_the_mappings_folder(tmp_path: Path) -> None:
    base = _MINIMAL.replace('root = "Doc"', 'root = "Doc"\nxsd = "XSD"')
    (tmp_path / "outside.xsd").write_text('<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"/>')
    for xsd, problem in [("http://example.com/a.xsd", "must be a relative path"),
                         ("/etc/passwd", "must be a relative path"),
                         ("../outside.xsd", "points outside mappings/"),
                         ("xsd/missing.xsd", "no such file in mappings/")]:
        found = _problems(tmp_path, base.replace("XSD", xsd))
        assert found[0][0] == "mapping.xsd" and problem in found[0][1], (xsd, found)


def test_xsd_importing_a_url_or_holding_a_doctype_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "mappings" / "xsd"
    folder.mkdir(parents=True)
    (folder / "net.xsd").write_text(
        '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema">\n'
        '  <xs:import namespace="urn:x" schemaLocation="http://127.0.0.1:9/x.xsd"/>\n</xs:schema>\n')
    (folder / "dtd.xsd").write_text('<!DOCTYPE xs:schema [<!ENTITY e SYSTEM "file:///etc/passwd">]>\n'
                                    '<xs:schema xmlns:xs="http://www.w3.org/2001/XMLSchema"/>\n')
    base = _MINIMAL.replace('root = "Doc"', 'root = "Doc"\nxsd = "XSD"')
    [(key, problem)] = _problems(tmp_path, base.replace("XSD", "xsd/net.xsd"))
    assert key == "mapping.xsd" and problem.startswith("xsd/net.xsd line 2: 'http://127.0.0.1:9/x.xsd' must be a relative path")
    [(key, problem)] = _problems(tmp_path, base.replace("XSD", "xsd/dtd.xsd"))
    assert key == "mapping.xsd" and REFUSED_DTD in problem


def test_list_fields_when_sequence_and_ship_notice_shape(tmp_path: Path) -> None:
    mapping = _load(tmp_path, "x-asn", """
[mapping]
name = "NAME"
format = "xml"
root = "Despatch"
namespace = "urn:d"
document = "ship_notice"
[namespaces]
d = "urn:d"
[fields]
number = "d:No"
order_numbers = "d:Order/@no"
carrier = { xpath = "d:Carrier", when = "d:Carrier/@kind = 'road'" }
[parties.ship_to]
node = "d:To"
id = "@gln"
scheme = { xpath = "'GLN'", when = "@gln" }
[lines]
node = "//d:Line"
[lines.fields]
line = { sequence = true }
quantity = { xpath = "@qty", convert = "decimal" }
unit = { xpath = "@unit", codes = { PC = "PCE" }, default = "PCE" }
order_number = "../@no"
""")
    tree = parse_xml(b'<Despatch xmlns="urn:d"><No>D1</No><Carrier kind="air">Fly</Carrier><To/>'
                     b'<Order no="PO1"><Line qty="3" unit="PC"/></Order><Order no="PO2"><Line qty="+1.50"/></Order>'
                     b'</Despatch>')
    document = mapping.apply_xml(tree)
    assert list(document) == ["number", "issue_date", "ship_date", "order_numbers", "ship_from", "ship_to",
                              "carrier", "tracking", "packages", "lines"]
    assert document["order_numbers"] == ["PO1", "PO2"]
    assert document["carrier"] is None                       # its `when` is false
    assert document["ship_to"] == {"id": None, "scheme": None, "name": None}
    assert document["packages"] == []
    assert document["lines"] == [
        {"line": "1", "item": {"gtin": None, "buyer_code": None, "seller_code": None, "description": None},
         "quantity": "3", "unit": "PCE", "order_number": "PO1"},
        {"line": "2", "item": {"gtin": None, "buyer_code": None, "seller_code": None, "description": None},
         "quantity": "1.50", "unit": "PCE", "order_number": "PO2"},
    ]


def test_xpath_arithmetic_is_refused_not_turned_into_a_float(tmp_path: Path) -> None:
    mapping = _load(tmp_path, "x-sum", _MINIMAL.replace('{ xpath = "No", required = true }', '"sum(//P) div 3"'))
    with pytest.raises(MappingError, match="floating point number 0.333"):
        mapping.apply_xml(parse_xml(b"<Doc><P>1</P></Doc>"))
    assert _load(tmp_path, "x-count", _MINIMAL.replace('{ xpath = "No", required = true }', '"count(//P)"')) \
        .apply_xml(parse_xml(b"<Doc><P>1</P><P>2</P></Doc>"))["number"] == "2"


# --- hardened parsing ---------------------------------------------------------------------
def test_xxe_file_entity_is_refused_and_the_file_never_read() -> None:
    raw = (b'<?xml version="1.0"?>\n<!DOCTYPE Invoice [\n  <!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>\n'
           b"<Invoice><ID>&xxe;</ID></Invoice>")
    with pytest.raises(ParseError) as caught:
        parse_xml(raw)
    assert str(caught.value) == f"line 2 column 1: the document has a DOCTYPE: {REFUSED_DTD}"
    assert "root:" not in str(caught.value)


def test_xxe_http_entity_and_external_dtd_make_no_connection() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        for raw in [f'<!DOCTYPE r [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/x">]><r>&x;</r>'.encode(),
                    f'<!DOCTYPE r SYSTEM "http://127.0.0.1:{port}/r.dtd"><r/>'.encode(),
                    f'<!DOCTYPE r [<!ENTITY % p SYSTEM "http://127.0.0.1:{port}/p">%p;]><r/>'.encode()]:
            with pytest.raises(ParseError, match=REFUSED_DTD):
                parse_xml(raw)
        with pytest.raises(BlockingIOError):                 # nobody knocked
            listener.accept()
    finally:
        listener.close()


def test_billion_laughs_is_refused_at_once() -> None:
    entities = b"".join(b'<!ENTITY lol%d "%s">' % (i, b"&lol%d;" % (i - 1) * 10) for i in range(1, 10))
    raw = b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">' + entities + b"]><lolz>&lol9;</lolz>"
    started = time.perf_counter()
    with pytest.raises(ParseError, match=REFUSED_DTD):
        parse_xml(raw)
    assert time.perf_counter() - started < 0.5


def test_doctype_is_refused_in_utf16_and_after_bom_comments_and_pis() -> None:
    with pytest.raises(ParseError, match=f"^line 1 column 40: .*{REFUSED_DTD}"):
        parse_xml('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY a "b">]><r>&a;</r>'.encode("utf-16"))
    with pytest.raises(ParseError, match=f"^line 3 column 3: .*{REFUSED_DTD}"):
        parse_xml(b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- a comment -->\n  <!DOCTYPE r><r/>')


def test_doctype_text_inside_the_document_is_just_text() -> None:
    root = parse_xml(b"<r><![CDATA[<!DOCTYPE html>]]><!-- <!DOCTYPE x> --></r>").getroot()
    assert root.text == "<!DOCTYPE html>"


def test_undeclared_entity_is_a_parse_error_with_position() -> None:
    with pytest.raises(ParseError, match=r"^line 2 column \d+: Entity 'x' not defined$"):
        parse_xml(b"<r>\n  <a>&x;</a></r>")


def test_deep_nesting_is_refused_with_its_line() -> None:
    parse_xml(b"<a>" * 64 + b"</a>" * 64)                  # the default limit itself is fine
    with pytest.raises(ParseError, match=r"^line 2 column 0: elements nested deeper than 64 levels \(<a>\)$"):
        parse_xml(b"<a>" * 40 + b"\n" + b"<a>" * 25 + b"</a>" * 65)
    with pytest.raises(ParseError, match="deeper than 3 levels"):
        parse_xml(b"<a><b><c><d/></c></b></a>", max_depth=3)
    with pytest.raises(ParseError, match="^line 1 column "):   # far deeper: libxml2's own cap answers first
        parse_xml(b"<a>" * 5000 + b"</a>" * 5000)


def test_size_limit() -> None:
    with pytest.raises(ParseError, match="has 26 bytes, more than the limit of 25"):
        parse_xml(b"<r>" + b"x" * 19 + b"</r>", max_bytes=25)


# libxml2 gives the column where it noticed the problem (often just after the culprit).
@pytest.mark.parametrize(("raw", "line", "problem"), [
    (b"<a>\n<b></a>", 2, "Opening and ending tag mismatch: b line 2 and a"),
    (b"", 1, "Document is empty"),
    (b"<a x='1' x='2'/>", 1, "Attribute x redefined"),
    (b"<r>\n\n<a>caf\xe9</a></r>", 3, "Invalid bytes in character encoding"),    # latin-1, undeclared
    (b'<?xml version="1.0" encoding="KOI-99"?><a/>', 1, "Unsupported encoding: KOI-99"),
    (b"EDI, not XML", 1, "Start tag expected, '<' not found"),
])
def test_malformed_xml_is_a_parse_error_with_line_and_column(raw: bytes, line: int, problem: str) -> None:
    with pytest.raises(ParseError) as caught:
        parse_xml(raw)
    assert re.fullmatch(rf"line {line} column \d+: {re.escape(problem)}", str(caught.value)), str(caught.value)


def test_column_points_at_the_bad_byte() -> None:
    with pytest.raises(ParseError, match=r"^line 1 column 7: Invalid bytes in character encoding$"):
        parse_xml(b"<a>caf\xe9</a>")


@pytest.mark.parametrize("raw", [
    '<?xml version="1.0" encoding="UTF-8"?><a>Grüße €</a>'.encode("utf-8"),
    b"\xef\xbb\xbf" + '<a>Grüße €</a>'.encode("utf-8"),
    '<?xml version="1.0" encoding="UTF-16"?><a>Grüße €</a>'.encode("utf-16"),      # with BOM, little endian
    b"\xfe\xff" + '<?xml version="1.0" encoding="UTF-16"?><a>Grüße €</a>'.encode("utf-16-be"),
    '<?xml version="1.0" encoding="ISO-8859-15"?><a>Grüße €</a>'.encode("iso-8859-15"),
], ids=["utf-8", "utf-8-bom", "utf-16-le-bom", "utf-16-be-bom", "iso-8859-15"])
def test_declared_encodings_and_bom_are_honoured(raw: bytes) -> None:
    assert parse_xml(raw).getroot().text == "Grüße €"


def test_iso_8859_1_declared_in_the_prolog() -> None:
    assert parse_xml('<?xml version="1.0" encoding="ISO-8859-1"?><a>café</a>'.encode("latin-1")).getroot().text == "café"
