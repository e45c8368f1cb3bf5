"""Unit tests of the mapping engine: conversions, field specs, load-time validation, selection."""

from __future__ import annotations

import re
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.edi.model import Delimiters, Message, Segment
from gateway.errors import ConfigError, MappingError
from gateway.mapping import DOCUMENT_SHAPES, Mapping, MappingSet, load_mappings
from gateway.mapping import convert as conv

DOT = Delimiters(element="+", component=":", segment="'", release="?", decimal=".")
COMMA = Delimiters(element="+", component=":", segment="'", release="?", decimal=",")


def message(*texts: str, type: str = "ORDERS", version: str = "D96A") -> Message:
    """Build a Message from 'TAG+a:b+c' strings (UNH/UNT added; numbered from 2 like a file).

    '?+' is a released '+' (the only release the tests need).
    """
    segments = []
    for number, text in enumerate(("UNH+1+ORDERS:D:96A:UN", *texts, "UNT+9+1"), 2):
        tag, *elements = (part.replace("?+", "+") for part in re.split(r"(?<!\?)\+", text))
        segments.append(Segment(tag, [tuple(e.split(":")) for e in elements], number))
    return Message(type=type, version=version, reference="1", segments=segments)


def write(directory: Path, name: str, body: str) -> Path:
    path = directory / f"{name}.toml"
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return path


HEAD = """\
    [mapping]
    name = "{name}"
    format = "edifact"
    message = "ORDERS"
    document = "order"
"""


def mapping(tmp_path: Path, body: str, name: str = "m") -> Mapping:
    """Load one mapping file from its own directory (two automatic mappings would conflict)."""
    directory = tmp_path / name
    directory.mkdir()
    write(directory, name, HEAD.format(name=name) + textwrap.dedent(body))
    return load_mappings(directory).get(name)


def problems(tmp_path: Path, body: str, name: str = "m", head: bool = True) -> list[str]:
    write(tmp_path, name, (HEAD.format(name=name) if head else "") + textwrap.dedent(body))
    with pytest.raises(ConfigError) as info:
        load_mappings(tmp_path)
    return [str(p) for p in info.value.problems]


ORDER = message(
    "BGM+220+PO-1+9",
    "DTM+137:20261120:102",
    "DTM+2:202612011430:203",
    "CUX+2:EUR:9",
    "NAD+BY+5412345000013::9++Buyer SA",
    "RFF+VA:BE0123456789",
    "NAD+SU+123456789::16",
    "LIN+1++4000862141404:EN",
    "PIA+1+B-1:BP+S-1:SA",
    "QTY+21:?+12,50:KGM",
    "PRI+AAB:3,10",
    "PRI+AAA:2,95",
    "LIN+2",
    "PIA+5+4000862141411:SRV",
    "QTY+21:6",
    "UNS+S",
    "CNT+2:2",
)


# --- conversions ------------------------------------------------------------------------------

@pytest.mark.parametrize("raw, fmt, expected", [
    ("20261120", "102", "2026-11-20"),
    ("20261120", "D8", "2026-11-20"),
    ("20261120", None, "2026-11-20"),
    ("261120", "101", "2026-11-20"),
    ("261120", None, "2026-11-20"),
    ("991231", "D6", "1999-12-31"),                  # YY 69-99 -> 19YY, 00-68 -> 20YY
    ("681231", "101", "2068-12-31"),
    ("202611201430", "203", "2026-11-20T14:30:00"),
    ("202611200000", "DT", "2026-11-20T00:00:00"),
    ("20261120143059", "204", "2026-11-20T14:30:59"),
    ("2611201430", "201", "2026-11-20T14:30:00"),
    ("20261120-20261127", "718", "2026-11-20"),      # a period: its first date
    ("20261120-20261127", "RD8", "2026-11-20"),
    ("202611200800-202611201600", "719", "2026-11-20T08:00:00"),
    (" 20261120 ", None, "2026-11-20"),
    ("", "102", None),
])
def test_dates(raw, fmt, expected):
    assert conv.to_date(raw, fmt) == expected


def test_date_with_a_separate_time():
    assert conv.to_date("20261120", "102", "1430") == "2026-11-20T14:30:00"
    assert conv.to_date("20261120", None, "143059") == "2026-11-20T14:30:59"
    assert conv.to_date("20261120", None, "14305912") == "2026-11-20T14:30:59"   # X12 hundredths


@pytest.mark.parametrize("raw, fmt, time, problem", [
    ("20261320", "102", None, "'20261320' is not a valid calendar date"),
    ("20260230", None, None, "'20260230' is not a valid calendar date"),
    ("2026112", None, None, "'2026112' is not a date in a known layout"),
    ("2026112A", "102", None, "'2026112A' does not match date format CCYYMMDD"),
    ("20261120", "203", None, "'20261120' does not match date format CCYYMMDDHHMM"),
    ("20261120", "616", None, "unsupported date format '616'"),
    ("202611202430", "203", None, "'202611202430' is not a valid time of day"),
    ("20261120", "102", "14", "'14' is not a valid time (HHMM or HHMMSS)"),
    ("20261120-2026112", "718", None, "does not match date format CCYYMMDD-CCYYMMDD"),
])
def test_bad_dates(raw, fmt, time, problem):
    with pytest.raises(conv.ConversionError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        conv.to_date(raw, fmt, time)


@pytest.mark.parametrize("raw, mark, expected", [
    ("12.50", ".", "12.50"),
    ("+12,50", ",", "12.50"),
    ("12,50", ",", "12.50"),
    ("12.50", ",", "12.50"),                         # '.' is always a decimal mark
    ("-3,5", ",", "-3.5"),
    ("007", ".", "007"),                             # digits kept as given
    ("1.000", ".", "1.000"),
    (".5", ".", "0.5"),
    ("12.", ".", "12"),
    (" 24 ", ".", "24"),
    ("", ".", None),
])
def test_decimals(raw, mark, expected):
    assert conv.to_decimal(raw, mark) == expected


@pytest.mark.parametrize("raw, expected", [
    ("3600", "36.00"), ("-150", "-1.50"), ("5", "0.05"), ("+007", "0.07"), ("0", "0.00"),
    ("123456", "1234.56"), (" 99 ", "0.99"), ("", None),
])
def test_implied_two_decimals(raw, expected):
    assert conv.to_implied2(raw) == expected


@pytest.mark.parametrize("raw", ["36.00", "36,00", "1e3", "--5", "12-", "+"])
def test_implied_two_decimals_refuse_marks_and_junk(raw):
    with pytest.raises(conv.ConversionError, match="is not a whole number with two implied decimals"):
        conv.to_implied2(raw)


@pytest.mark.parametrize("raw, mark", [
    ("1e3", "."), ("NaN", "."), ("Infinity", "."), ("1_000", "."), ("12,50", "."), ("1.234,50", ","),
    ("1 000", "."), ("--1", "."), ("12-", "."), ("+", "."), ("0x10", "."),
])
def test_bad_decimals(raw, mark):
    with pytest.raises(conv.ConversionError, match="is not a decimal number"):
        conv.to_decimal(raw, mark)


@given(st.decimals(allow_nan=False, allow_infinity=False, places=4, min_value=-10**9, max_value=10**9),
       st.sampled_from([".", ","]), st.booleans())
def test_decimal_strings_keep_the_value_and_never_become_floats(number, mark, plus):
    text = format(number, "f")
    if plus and not text.startswith("-"):
        text = "+" + text
    out = conv.to_decimal(text.replace(".", mark), mark)
    assert isinstance(out, str) and Decimal(out) == number
    assert "e" not in out.lower() and "+" not in out


def test_a_bad_decimal_in_a_message_is_a_mapping_error(tmp_path):
    m = mapping(tmp_path, '[fields]\nnumber = { path = "BGM/2", convert = "decimal" }')
    with pytest.raises(MappingError) as info:
        m.apply(message("BGM+220+1e3"), DOT)
    assert str(info.value) == "segment 3 (BGM) element 2: field 'number' (BGM/2): '1e3' is not a decimal number"


def test_integer_text_upper():
    assert conv.to_integer("+007") == 7
    assert conv.to_integer("-2") == -2
    with pytest.raises(conv.ConversionError, match="'1.5' is not a whole number"):
        conv.to_integer("1.5")
    assert conv.to_text("  ACME  ") == "ACME"
    assert conv.to_text("   ") is None
    assert conv.to_upper(" pce ") == "PCE"


# --- fields -----------------------------------------------------------------------------------

FULL = """
    [codes.scheme]
    "9" = "GLN"
    "16" = "DUNS"

    [fields]
    number = { path = "BGM/2", required = true }
    issue_date = { path = "DTM[1.1=137]/1.2", convert = "date", date_format_path = "1.3" }
    requested_delivery_date = { path = "DTM[1.1=2]/1.2", convert = "date", date_format_path = "DTM[1.1=2]/1.3" }
    currency = "CUX[1.1=2]/1.2"

    [parties.buyer]
    segment = "NAD[1=BY]"
    id = "2.1"
    scheme = { path = "2.3", codes = "scheme" }
    name = ["4.1", "3.1", "RFF[1.1=VA]/1.2"]

    [parties.seller]
    segment = "NAD[1=SU]"
    id = "2.1"
    scheme = { path = "2.3", codes = { "16" = "DUNS" } }
    name = ["4.1", "RFF[1.1=VA]/1.2"]          # the buyer's RFF is outside the seller's group

    [lines]
    group = "LIN"
    end = ["UNS"]

    [lines.fields]
    line = "1"
    "item.gtin" = [{ path = "3.1", when = "3.2=EN" }, { find = "PIA/2-6", where = "2=SRV", take = "1" }]
    "item.buyer_code" = { find = "PIA/2-6", where = "2=IN|BP" }
    "item.seller_code" = { find = "PIA/2-6", where = "2=SA", take = 1 }
    quantity = { path = "QTY[1.1=21]/1.2", convert = "decimal", required = true }
    unit = { path = "QTY[1.1=21]/1.3", default = "PCE" }
    unit_price = [{ path = "PRI[1.1=AAA]/1.2", convert = "decimal" }, { path = "PRI[1.1=AAB]/1.2", convert = "decimal" }]
"""


def test_a_full_order(tmp_path):
    document = mapping(tmp_path, FULL).apply(ORDER, COMMA)
    assert document == {
        "number": "PO-1",
        "issue_date": "2026-11-20",
        "requested_delivery_date": "2026-12-01",        # 203 has a time: canonical dates are days
        "currency": "EUR",
        "buyer": {"id": "5412345000013", "scheme": "GLN", "name": "Buyer SA"},
        "seller": {"id": "123456789", "scheme": "DUNS", "name": None},
        "ship_to": None,
        "lines": [
            {"line": "1", "item": {"gtin": "4000862141404", "buyer_code": "B-1", "seller_code": "S-1",
                                   "description": None},
             "quantity": "12.50", "unit": "KGM", "unit_price": "2.95"},
            {"line": "2", "item": {"gtin": "4000862141411", "buyer_code": None, "seller_code": None,
                                   "description": None},
             "quantity": "6", "unit": "PCE", "unit_price": None},
        ],
    }
    assert list(document) == [n for n, _, _ in DOCUMENT_SHAPES["order"]]


def test_date_gives_the_day_and_datetime_keeps_the_time(tmp_path):
    m = mapping(tmp_path, """
        [fields]
        issue_date = { path = "DTM[1.1=2]/1.2", convert = "date", date_format_path = "1.3" }
        requested_delivery_date = { path = "DTM[1.1=2]/1.2", convert = "datetime", date_format_path = "1.3" }
        currency = { path = "DTM[1.1=137]/1.2", convert = "datetime", time_path = "DTM[1.1=137]/1.3" }
    """)
    document = m.apply(message("DTM+2:202612011430:203", "DTM+137:20261120:0915"), DOT)
    assert document["issue_date"] == "2026-12-01"
    assert document["requested_delivery_date"] == "2026-12-01T14:30:00"
    assert document["currency"] == "2026-11-20T09:15:00"
    with pytest.raises(MappingError, match="'202612012460' is not a valid time of day"):
        m.apply(message("DTM+2:202612012460:203"), DOT)         # a date still checks its time
    assert conv.to_day("20261120", "102", "1430") == "2026-11-20" and conv.to_day("") is None


def test_stable_shape_when_nothing_is_mapped(tmp_path):
    document = mapping(tmp_path, "").apply(ORDER, DOT)
    assert document == {"number": None, "issue_date": None, "requested_delivery_date": None, "currency": None,
                        "buyer": None, "seller": None, "ship_to": None, "lines": []}


def test_decimal_comma_needs_the_interchange_mark(tmp_path):
    with pytest.raises(MappingError) as info:
        mapping(tmp_path, FULL).apply(ORDER, DOT)
    error = info.value
    assert error.problem == ("field 'lines.quantity' (QTY[1.1=21]/1.2): '+12,50' is not a decimal number "
                             "in line 1 (LIN at segment 10)")
    assert (error.segment, error.tag, error.element) == (12, "QTY", "1.2")
    assert str(error) == f"segment 12 (QTY) element 1.2: {error.problem}"


def test_header_fields_do_not_see_line_segments(tmp_path):
    m = mapping(tmp_path, """
        [fields]
        number = "PIA/2.1"
        currency = "CNT/1.2"          # the summary section after UNS is header scope
        [lines]
        group = "LIN"
        end = ["UNS"]
    """)
    document = m.apply(ORDER, COMMA)
    assert document["number"] is None
    assert document["currency"] == "2"


def test_without_lines_the_header_is_the_whole_body(tmp_path):
    assert mapping(tmp_path, '[fields]\nnumber = "PIA/2.1"').apply(ORDER, DOT)["number"] == "B-1"


def test_required_field_missing(tmp_path):
    m = mapping(tmp_path, '[fields]\nnumber = { path = "BGM/2", required = true }')
    with pytest.raises(MappingError) as info:
        m.apply(message("DTM+137:20261120:102"), DOT)
    assert info.value.problem == "required field 'number' (BGM/2) is missing"
    assert (info.value.tag, info.value.element, info.value.segment) == ("BGM", "2", None)


def test_required_line_field_names_the_line(tmp_path):
    m = mapping(tmp_path, """
        [lines]
        group = "LIN"
        [lines.fields]
        quantity = { path = "QTY[1.1=21]/1.2", convert = "decimal", required = true }
    """)
    with pytest.raises(MappingError, match=r"required field 'lines.quantity' \(QTY\[1.1=21\]/1.2\) is missing "
                                           r"in line 2 \(LIN at segment 5\)"):
        m.apply(message("LIN+1", "QTY+21:5", "LIN+2", "QTY+12:5"), DOT)


def test_required_lines_and_party(tmp_path):
    m = mapping(tmp_path, """
        [parties.buyer]
        segment = "NAD[1=BY]"
        required = true
        id = "2.1"
        [lines]
        group = "LIN"
        required = true
    """)
    with pytest.raises(MappingError, match=r"required party 'buyer' \(NAD\[1=BY\]\) is missing"):
        m.apply(message("BGM+220+1"), DOT)
    with pytest.raises(MappingError, match=r"the message has no line \(LIN segment\)"):
        m.apply(message("NAD+BY+1"), DOT)


def test_codes_pass_unknown_values_through_unless_strict(tmp_path):
    body = """
        [parties.buyer]
        segment = "NAD[1=BY]"
        scheme = {{ path = "2.3", codes = {{ "9" = "GLN" }}{extra} }}
    """
    lenient = mapping(tmp_path, body.format(extra=""), "lenient")
    assert lenient.apply(message("NAD+BY+1::92"), DOT)["buyer"] == {"id": None, "scheme": "92", "name": None}
    strict = mapping(tmp_path, body.format(extra=", strict_codes = true"), "strict")
    with pytest.raises(MappingError) as info:
        strict.apply(message("NAD+BY+1::92"), DOT)
    assert info.value.problem == "field 'buyer.scheme' (2.3): unknown code '92' (known: 9) in party buyer"
    assert (info.value.segment, info.value.tag, info.value.element) == (3, "NAD", "2.3")


def test_default_applies_when_missing_and_goes_through_the_conversion(tmp_path):
    m = mapping(tmp_path, """
        [fields]
        currency = { path = "CUX/1.2", default = "EUR" }
        issue_date = { path = "DTM/1.2", convert = "date", default = "20260101" }
    """)
    document = m.apply(message("BGM+220+1"), DOT)
    assert (document["currency"], document["issue_date"]) == ("EUR", "2026-01-01")
    assert m.apply(message("CUX+2:usd"), DOT)["currency"] == "usd"


def test_when_skips_the_field_and_its_default(tmp_path):
    m = mapping(tmp_path, """
        [parties.buyer]
        segment = "NAD[1=BY]"
        id = "2.1"
        scheme = { path = "2.3", when = "2.1", default = "ZZ" }
        [lines]
        group = "LIN"
        [lines.fields]
        "item.gtin" = { path = "3.1", when = "3.2=EN|SRV" }
        "item.description" = { path = "IMD/3.4", when = "LIN/3.2!=EN", required = true }
    """)
    document = m.apply(message("NAD+BY", "LIN+1++123:EN", "LIN+2++456:IN", "IMD+F++:::Juice"), DOT)
    assert document["buyer"] == {"id": None, "scheme": None, "name": None}
    assert [line["item"]["gtin"] for line in document["lines"]] == ["123", None]
    assert [line["item"]["description"] for line in document["lines"]] == [None, "Juice"]
    assert m.apply(message("NAD+BY+1"), DOT)["buyer"]["scheme"] == "ZZ"


def test_pairs_and_sequence_for_x12(tmp_path):
    write(tmp_path, "x", """
        [mapping]
        name = "x"
        format = "x12"
        message = "850"
        document = "order"
        [lines]
        group = "PO1"
        end = ["CTT"]
        [lines.fields]
        line = ["1", { sequence = true }]
        "item.gtin" = { pairs = "6-", qualifier = "EN|UP" }
        "item.seller_code" = { pairs = "PO1/6-", qualifier = "VN" }
        quantity = { path = "2", convert = "decimal" }
    """)
    m = load_mappings(tmp_path).get("x")
    msg = message("BEG+00+SA+1", "PO1+7+24+EA+1.25++UP+012345678905+VN+S-1", "PO1++2+EA+3++EN+5012345678900",
                  "CTT+2", type="850", version="004010")
    lines = m.apply(msg, DOT)["lines"]
    assert [(line["line"], line["item"]["gtin"], line["item"]["seller_code"], line["quantity"]) for line in lines] == [
        ("7", "012345678905", "S-1", "24"), ("2", "5012345678900", None, "2")]


def test_party_group_runs_to_the_next_party_segment(tmp_path):
    m = mapping(tmp_path, """
        [parties.buyer]
        segment = "NAD[1=BY]"
        name = "RFF[1.1=VA]/1.2"
        [parties.seller]
        segment = "NAD[1=SU]"
        name = "RFF[1.1=VA]/1.2"
    """)
    document = m.apply(ORDER, DOT)
    assert document["buyer"]["name"] == "BE0123456789"
    assert document["seller"]["name"] is None


def test_integer_and_upper_conversions_and_integer_default(tmp_path):
    write(tmp_path, "inv", """
        [mapping]
        name = "inv"
        format = "edifact"
        message = "INVOIC"
        document = "invoice"
        [fields]
        "totals.net" = { path = "MOA[1.1=79]/1.2", convert = "decimal" }
        currency = { path = "CUX/1.2", convert = "upper" }
        [lines]
        group = "LIN"
        end = ["UNS"]
        [lines.fields]
        tax_rate = { path = "TAX/5.4", convert = "decimal" }
        line = { path = "QTY/9", convert = "integer", default = 0 }
    """)
    m = load_mappings(tmp_path).get("inv")
    document = m.apply(message("CUX+2:eur", "LIN+1", "TAX+7+VAT+++:::21", "UNS+S", "MOA+79:100,00"), COMMA)
    assert document["totals"] == {"net": "100.00", "tax": None, "gross": None}
    assert document["currency"] == "EUR"
    assert document["lines"][0]["tax_rate"] == "21"
    assert document["lines"][0]["line"] == 0
    assert list(document) == ["number", "issue_date", "order_number", "currency", "buyer", "seller", "lines", "totals"]


def test_list_fields_collect_every_match(tmp_path):
    write(tmp_path, "asn", """
        [mapping]
        name = "asn"
        format = "edifact"
        message = "DESADV"
        document = "ship_notice"
        [fields]
        order_numbers = "RFF[1.1=ON]/1.2"
        ship_date = { path = "DTM[1.1=11]/1.2", convert = "date" }
    """)
    m = load_mappings(tmp_path).get("asn")
    document = m.apply(message("RFF+ON:PO-1", "RFF+DQ:X", "RFF+ON:PO-2"), DOT)
    assert document["order_numbers"] == ["PO-1", "PO-2"]
    assert m.apply(message("BGM+351+1"), DOT)["order_numbers"] == []


def test_python_hook(tmp_path):
    m = mapping(tmp_path, '[fields]\nnumber = { python = "gateway.mapping.hooks:free_text", convert = "upper" }')
    assert m.apply(message("FTX+AAI+++first:line+", "FTX+AAI+++second"), DOT)["number"] == "FIRST LINE SECOND"
    assert m.apply(message("BGM+220+1"), DOT)["number"] is None


def test_a_hook_that_fails_or_returns_a_non_string_is_a_mapping_error(tmp_path, monkeypatch):
    import gateway.mapping.hooks as hooks

    monkeypatch.setattr(hooks, "broken", lambda segments, msg: 1 / 0, raising=False)
    monkeypatch.setattr(hooks, "number", lambda segments, msg: 12.5, raising=False)
    returns_float = mapping(tmp_path, '[fields]\nnumber = { python = "gateway.mapping.hooks:number" }', "a")
    with pytest.raises(MappingError, match="python hook gateway.mapping.hooks:number returned float; "
                                           "a hook returns a string or None"):
        returns_float.apply(message("BGM+1"), DOT)
    fails = mapping(tmp_path, '[fields]\nnumber = { python = "gateway.mapping.hooks:broken" }', "b")
    with pytest.raises(MappingError, match="python hook gateway.mapping.hooks:broken failed: ZeroDivisionError"):
        fails.apply(message("BGM+1"), DOT)


def test_a_hook_with_a_third_argument_gets_one_memo_per_message(tmp_path, monkeypatch):
    import gateway.mapping.hooks as hooks

    memos = []

    def count(segments, msg, memo):
        memos.append(memo)
        memo["calls"] = memo.get("calls", 0) + 1
        return str(memo["calls"])
    monkeypatch.setattr(hooks, "count", count, raising=False)
    m = mapping(tmp_path, """
        [fields]
        number = { python = "gateway.mapping.hooks:count" }
        [lines]
        group = "LIN"
        [lines.fields]
        line = { python = "gateway.mapping.hooks:count" }
    """)
    document = m.apply(message("BGM+220+1", "LIN+1", "LIN+2"), DOT)
    assert document["number"] == "1" and [line["line"] for line in document["lines"]] == ["2", "3"]
    assert memos[0] is memos[1] is memos[2]
    assert m.apply(message("LIN+1"), DOT)["lines"][0]["line"] == "2"      # a new message, a new memo
    assert memos[3] is not memos[0]


# --- load-time validation ---------------------------------------------------------------------

def test_every_problem_of_every_file_is_reported(tmp_path):
    write(tmp_path, "a", """
        [mapping]
        name = "b"
        format = "edi"
        message = ""
        versions = "D96A"
        document = "catalogue"
        colour = "red"
        [feilds]
    """)
    write(tmp_path, "c", "[mapping\n")
    with pytest.raises(ConfigError) as info:
        load_mappings(tmp_path)
    texts = [str(p) for p in info.value.problems]
    d = tmp_path.name
    assert texts[:7] == [
        f"{d}/a.toml: feilds: unknown section (known: mapping, codes, fields, parties, lines, packages)",
        f"{d}/a.toml: mapping.colour: unknown key (known: name, format, message, versions, document, description, auto, "
        "direction)",
        f"{d}/a.toml: mapping.name: 'b' must equal the file name 'a'",
        f"{d}/a.toml: mapping.format: must be one of edifact, x12 (got 'edi')",
        f"{d}/a.toml: mapping.message: must be a non-empty string (got ''): the message type to map, "
        "e.g. \"ORDERS\" or \"850\"",
        f"{d}/a.toml: mapping.versions: must be a list of version strings, e.g. [\"D96A\"] (empty = any)",
        f"{d}/a.toml: mapping.document: unknown document type 'catalogue' "
        "(known: invoice, order, order_response, ship_notice)",
    ]
    assert texts[7].startswith(f"{d}/c.toml: (file): cannot be read as TOML: ")
    assert len(texts) == 8


@pytest.mark.parametrize("body, key, problem", [
    ('[fields]\nissue_date = { path = "DTM[1.1=137/1.2" }', "fields.issue_date.path",
     "bad path 'DTM[1.1=137/1.2': expected ',' or ']' at position 12"),
    ('[fields]\nnumber = "BGM 2"', "fields.number", "bad path 'BGM 2': expected '/' then an element number at position 4"),
    ('[fields]\nnumber = "2"', "fields.number",
     "'2' has no segment tag; header fields have no anchor segment, so write TAG/2 "
     "(position-only paths work in parties and lines)"),
    ('[fields]\nnumbr = "BGM/2"', "fields.numbr",
     "unknown field for document type 'order' (known: number, issue_date, requested_delivery_date, currency)"),
    ('[fields]\nbuyer = "NAD/2"', "fields.buyer", "unknown field for document type 'order' (parties go in [parties.buyer])"),
    ('[fields]\nnumber = { path = "BGM/2", convert = "dat" }', "fields.number.convert",
     "unknown conversion 'dat' (known: text, upper, decimal, implied2, integer, date, datetime)"),
    ('[fields]\nnumber = { path = "BGM/2", requird = true }', "fields.number.requird",
     "unknown key (known: path, find, pairs, python, sequence, where, take, qualifier, convert, date_format, "
     "date_format_path, time_path, codes, strict_codes, default, required, when)"),
    ('[fields]\nnumber = { convert = "text" }', "fields.number",
     "needs exactly one source key of path, find, pairs, python, sequence"),
    ('[fields]\nnumber = { path = "BGM/2", find = "PIA/2-6", where = "2=IN" }', "fields.number",
     "needs exactly one source key of path, find, pairs, python, sequence (found path, find)"),
    ('[fields]\nnumber = { path = "BGM/2", where = "2=IN" }', "fields.number.where", "only applies to 'find'"),
    ('[fields]\nnumber = { path = "BGM/2", qualifier = "UP" }', "fields.number.qualifier", "only applies to 'pairs'"),
    ('[fields]\nnumber = { find = "PIA/2-6" }', "fields.number", "'find' needs 'where', e.g. where = \"2=IN|BP\""),
    ('[fields]\nnumber = { find = "PIA/2-6", where = "IN" }', "fields.number.where",
     "bad path 'IN': expected a component number at position 1"),
    ('[fields]\nnumber = { find = "PIA/2-6", where = "2=IN", take = 0 }', "fields.number.take",
     "must be a component number (1 or more)"),
    ('[fields]\nnumber = { find = "2-6", where = "2=IN" }', "fields.number.find",
     "needs a segment tag in header fields, e.g. \"PIA/2-6\""),
    ('[fields]\nnumber = { pairs = "PO1/6-" }', "fields.number", "'pairs' needs 'qualifier', e.g. qualifier = \"UP|EN\""),
    ('[fields]\nnumber = { pairs = "PO1/6-", qualifier = "UP|" }', "fields.number.qualifier",
     "bad path 'UP|': empty value in the list at position 1"),
    ('[fields]\nnumber = { path = "BGM/2", date_format = "102" }', "fields.number.date_format",
     "only applies with convert = \"date\" or \"datetime\""),
    ('[fields]\nissue_date = { path = "DTM/1.2", convert = "date", date_format = "616" }', "fields.issue_date.date_format",
     "unknown date format '616' (known: 101, 102, 201, 203, 204, 718, 719, D6, D8, DT, RD8, CCYYMMDD, YYMMDD, "
     "CCYYMMDDHHMM, CCYYMMDDHHMMSS, YYMMDDHHMM, CCYYMMDD-CCYYMMDD, CCYYMMDDHHMM-CCYYMMDDHHMM)"),
    ('[fields]\nissue_date = { path = "DTM/1.2", convert = "date", time_path = "DTM/" }', "fields.issue_date.time_path",
     "bad path 'DTM/': expected an element number at position 5"),
    ('[fields]\nnumber = { path = "BGM/2", codes = "nope" }', "fields.number.codes", "no [codes.nope] table in this file"),
    ('[fields]\nnumber = { path = "BGM/2", codes = { "1" = 2 } }', "fields.number.codes",
     "must be a table of code = \"value\" strings, or the name of a [codes.NAME] table"),
    ('[fields]\nnumber = { path = "BGM/2", convert = "decimal", codes = { "1" = "A" } }', "fields.number.codes",
     "a code list applies to text values (convert = \"text\" or \"upper\")"),
    ('[fields]\nnumber = { path = "BGM/2", strict_codes = true }', "fields.number.strict_codes", "needs 'codes'"),
    ('[fields]\nnumber = { path = "BGM/2", required = "yes" }', "fields.number.required", "must be true or false"),
    ('[fields]\nnumber = { path = "BGM/2", convert = "decimal", default = "1e3" }', "fields.number.default",
     "'1e3' is not a decimal number (convert = 'decimal')"),
    ('[fields]\nnumber = { path = "BGM/2", default = 5 }', "fields.number.default", "must be a string"),
    ('[fields]\nnumber = [{ path = "BGM/2", required = true }, "BGM/3"]', "fields.number[1].required",
     "only the last alternative may say 'required' (the alternatives after it would never be tried)"),
    ('[fields]\nnumber = []', "fields.number", "an empty list: give at least one alternative"),
    ('[fields]\nnumber = ["BGM/2", 3]', "fields.number[2]",
     "must be a path string, a table, or a list of those (alternatives)"),
    ('[fields]\nnumber = { path = "BGM/2", when = "2=220" }', "fields.number.when",
     "needs a segment tag in header fields, e.g. \"BGM/1=220\""),
    ('[fields]\nnumber = { path = "BGM/2", when = "BGM/1=" }', None, None),   # valid: BGM 1 empty
    ('[fields]\nnumber = { sequence = true }', "fields.number.sequence",
     "must be true, and only in [lines.fields] (the line's 1-based position in the message)"),
    ('[fields]\nnumber = { python = "os:system" }', "fields.number.python",
     "must be \"module:function\" with the module inside gateway.mapping.hooks (got 'os:system'): "
     "mapping files may not import other code"),
    ('[fields]\nnumber = { python = "gateway.mapping.hooksx:free_text" }', "fields.number.python",
     "must be \"module:function\" with the module inside gateway.mapping.hooks (got "
     "'gateway.mapping.hooksx:free_text'): mapping files may not import other code"),
    ('[fields]\nnumber = { python = "gateway.mapping.hooks:__import__(\'os\')" }', "fields.number.python",
     "must be \"module:function\" with the module inside gateway.mapping.hooks (got "
     "\"gateway.mapping.hooks:__import__('os')\"): mapping files may not import other code"),
    ('[fields]\nnumber = { python = "gateway.mapping.hooks:nothing" }', "fields.number.python",
     "gateway.mapping.hooks has no function 'nothing'"),
    ('[fields]\nnumber = { python = "gateway.mapping.hooks:Segment" }', "fields.number.python",
     "gateway.mapping.hooks has no function 'Segment'"),             # an imported class is not a hook
    ('[fields]\nnumber = { python = "gateway.mapping.hooks:__class__" }', "fields.number.python",
     "must be \"module:function\" with the module inside gateway.mapping.hooks (got "
     "'gateway.mapping.hooks:__class__'): mapping files may not import other code"),
    ('[fields]\nnumber = { python = "gateway.mapping.hooks.missing:f" }', "fields.number.python",
     "cannot import gateway.mapping.hooks.missing: No module named 'gateway.mapping.hooks.missing'"),
    ('[parties.payer]\nsegment = "NAD[1=PR]"', "parties.payer",
     "unknown party for document type 'order' (known: buyer, seller, ship_to)"),
    ('[parties.buyer]\nid = "2.1"', "parties.buyer.segment",
     "missing: the party's segment, e.g. \"NAD[1=BY]\", or a list of them tried in order"),
    ('[parties.buyer]\nsegment = "NAD[1=BY]/2"', "parties.buyer.segment", "bad path 'NAD[1=BY]/2': unexpected '/' at position 10"),
    ('[parties.buyer]\nsegment = "NAD[1=BY]"\nidentifier = "2.1"', "parties.buyer.identifier",
     "unknown key (known: segment, end, required, id, scheme, name)"),
    ('[parties.buyer]\nsegment = "NAD[1=BY]"\nend = "LOC"', "parties.buyer.end",
     "must be a list of segment tags, e.g. [\"UNS\", \"CNT\"]"),
    ('[parties.buyer]\nsegment = "NAD[1=BY]"\nid = "2,1"', "parties.buyer.id", "bad path '2,1': unexpected ',' at position 2"),
    ('[lines]\ngroup = "lin"', "lines.group",
     "bad path 'lin': expected a segment tag (a capital letter, then 1-2 capital letters or digits) at position 1"),
    ('[lines]\ngroup = 7', "lines.group",
     "must be a segment tag or selector, e.g. \"LIN\", \"PO1\" or \"HL[3=I]\" (the segment that starts each line)"),
    ('[lines]\ngroup = "HL[3=I]#2"', "lines.group",
     "'HL[3=I]#2': a group boundary cannot take #N (every matching segment counts)"),
    ('[lines]\ngroup = "LIN"\nend = "UNS"', "lines.end",
     "must be a list of segment tags or selectors, e.g. [\"UNS\", \"CNT\"]"),
    ('direction = "sideways"', "mapping.direction", "must be one of inbound, outbound (got 'sideways')"),
    ('[packages]\ngroup = "CPS"', "packages", "document type 'order' has no packages (only ship_notice does)"),
    ('[packages]\ngroup = "CPS"', "packages", "needs a [lines] table: the line groups inside each package"),
    ('[fields]\npackages = "CPS/1"', "fields.packages",
     "unknown field for document type 'order' (known: number, issue_date, requested_delivery_date, currency)"),
    ('[lines]\ngroup = "LIN"\n[lines.fields]\nqty = "QTY/1.2"', 'lines.fields.qty',
     "unknown line field (known: line, item.gtin, item.buyer_code, item.seller_code, item.description, quantity, "
     "unit, unit_price)"),
    ('[lines]\ngroup = "LIN"\n[lines.fields]\n"item.gtin" = { pairs = "6-", qualifier = "UP", take = 1 }',
     'lines.fields."item.gtin".take', "only applies to 'find'"),
    ('[codes.scheme]\n"9" = 9', "codes.scheme", "must be a table of code = \"value\" strings"),
])
def test_load_time_problems(tmp_path, body, key, problem):
    if key is None:
        mapping(tmp_path, body)
        return
    assert f"{tmp_path.name}/m.toml: {key}: {problem}" in problems(tmp_path, body)


def test_list_field_rules(tmp_path):
    head = '[mapping]\nname = "m"\nformat = "edifact"\nmessage = "DESADV"\ndocument = "ship_notice"\n'
    found = problems(tmp_path, head + '[fields]\norder_numbers = { find = "RFF/1", where = "1=ON", default = "X" }',
                     head=False)
    d = tmp_path.name
    assert found == [f"{d}/m.toml: fields.order_numbers.find: a list field takes its values from a path",
                     f"{d}/m.toml: fields.order_numbers.default: a list field has no default (it is [] when nothing matches)"]


def test_a_number_is_not_a_message_type(tmp_path):
    body = '[mapping]\nname = "m"\nformat = "x12"\nmessage = 850\ndocument = "order"\n'
    assert problems(tmp_path, body, head=False) == [
        f"{tmp_path.name}/m.toml: mapping.message: must be a non-empty string (got 850): "
        "the message type to map, e.g. \"ORDERS\" or \"850\""]


def test_a_missing_mapping_table(tmp_path):
    assert problems(tmp_path, '[fields]\nnumber = "BGM/2"', head=False)[:2] == [
        f"{tmp_path.name}/m.toml: mapping: missing [mapping] table (name, format, message, document)",
        f"{tmp_path.name}/m.toml: mapping.name: missing: set it to the file name 'm'",
    ]


def test_conflicting_automatic_mappings(tmp_path):
    for name in ("a", "b"):
        write(tmp_path, name, HEAD.format(name=name) + 'versions = ["D96A"]\n')
    with pytest.raises(ConfigError) as info:
        load_mappings(tmp_path)
    assert [str(p) for p in info.value.problems] == [
        f"{tmp_path.name}/b.toml: mapping.versions: mapping 'a' already handles edifact ORDERS version D96A; "
        "list distinct versions, or set auto = false on the one partners must name"]
    write(tmp_path, "b", HEAD.format(name="b") + 'versions = ["D96A"]\nauto = false\n')
    assert load_mappings(tmp_path).names == ["a", "b"]


def test_the_repository_mappings_load():
    mappings = load_mappings(Path(__file__).parent.parent / "mappings")
    assert {"edifact-orders", "edifact-ordrsp", "edifact-desadv", "edifact-invoic", "edifact-invoic-eancom-invoicee",
            "x12-850", "x12-855", "x12-856", "x12-810"} <= set(mappings.names)
    assert mappings.get("edifact-invoic-eancom-invoicee").auto is False


# --- selection --------------------------------------------------------------------------------

def test_find_prefers_an_exact_version_then_a_versionless_mapping(tmp_path):
    write(tmp_path, "generic", HEAD.format(name="generic"))
    write(tmp_path, "d01b", HEAD.format(name="d01b") + 'versions = ["D01B", "D03B"]\n')
    write(tmp_path, "partner", HEAD.format(name="partner") + 'versions = ["D96A"]\nauto = false\n')
    mappings = load_mappings(tmp_path)
    assert mappings.find("edifact", "ORDERS", "D03B").name == "d01b"
    assert mappings.find("edifact", "ORDERS", "D96A").name == "generic"
    assert mappings.find("edifact", "ORDERS", "D96A", override="partner").name == "partner"
    assert mappings.find("edifact", "ORDERS", "D01B", override="partner").name == "partner"
    assert mappings.find("edifact", "INVOIC", "D96A", override="partner") is None    # wrong message type
    assert mappings.find("x12", "ORDERS", "D96A", override="partner") is None
    assert mappings.find("edifact", "ORDERS", "D96A", override="nope") is None
    assert mappings.find("edifact", "INVOIC", "D96A") is None
    assert mappings.find("x12", "ORDERS", "D96A") is None
    assert mappings.names == ["d01b", "generic", "partner"]
    assert [m.name for m in mappings] == mappings.names
    assert mappings.get("generic").versions == () and mappings.get("nope") is None
    assert len(mappings) == 3 and "d01b" in mappings


def test_an_empty_mapping_set():
    empty = MappingSet([])
    assert empty.find("edifact", "ORDERS", "D96A") is None and empty.names == []


# --- document shapes (canonical documents v1) -------------------------------------------------

def test_order_response_and_ship_notice_shapes_follow_the_canonical_contract():
    def names(entries):
        return [name for name, _, _ in entries]
    shapes = DOCUMENT_SHAPES
    assert names(shapes["order_response"]) == ["number", "issue_date", "order_number", "status", "buyer", "seller",
                                               "lines"]
    assert names(shapes["order_response"][-1][2]) == ["line", "item", "quantity", "unit", "unit_price", "status"]
    assert names(shapes["ship_notice"]) == ["number", "issue_date", "ship_date", "order_numbers", "ship_from",
                                            "ship_to", "carrier", "tracking", "packages", "lines"]
    package = dict((n, sub) for n, _, sub in shapes["ship_notice"])["packages"]
    assert names(package) == ["sscc", "lines"]
    assert names(package[1][2]) == names(shapes["ship_notice"][-1][2]) == [
        "line", "item", "quantity", "unit", "order_number"]


# --- packages (nested groups) and selector boundaries -----------------------------------------

ASN_HEAD = """\
    [mapping]
    name = "{name}"
    format = "{format}"
    message = "{message}"
    document = "ship_notice"
"""


def ship_notice(tmp_path: Path, body: str, format: str = "edifact", message: str = "DESADV") -> Mapping:
    directory = tmp_path / "asn"
    directory.mkdir()
    write(directory, "asn", ASN_HEAD.format(name="asn", format=format, message=message) + textwrap.dedent(body))
    return load_mappings(directory).get("asn")


DESADV_BODY = """
    [fields]
    number = "BGM/2"
    tracking = "CNT/1.2"            # after the end tag: header scope again
    [packages]
    group = "CPS"
    [packages.fields]
    sscc = "GIN[1=BJ]/2.1"
    [lines]
    group = "LIN"
    end = ["UNS", "CNT"]
    [lines.fields]
    line = { sequence = true }
    quantity = "QTY[1.1=12]/1.2"
"""


def _line(sequence: int, quantity: str) -> dict:
    return {"line": str(sequence), "item": {"gtin": None, "buyer_code": None, "seller_code": None, "description": None},
            "quantity": quantity, "unit": None, "order_number": None}


def test_packages_hold_their_lines_and_unlabelled_groups_join_the_package_before(tmp_path):
    m = ship_notice(tmp_path, DESADV_BODY)
    document = m.apply(message(
        "BGM+351+D-1",
        "LIN+1", "QTY+12:1",                      # before any package: a top-level line
        "CPS+1", "PAC+2++201",                    # no SSCC and no lines: no package
        "CPS+2+1", "PCI+33E", "GIN+BJ+S1",
        "LIN+2", "QTY+12:2",
        "CPS+3+2", "PAC+1++CT",                   # an unlabelled carton: its line joins S1
        "LIN+3", "QTY+12:3",
        "CPS+4+1", "GIN+BJ+S2",                   # a labelled pallet without lines of its own
        "CPS+5+1", "GIN+BJ+S3",
        "LIN+4", "QTY+12:4",
        "UNS+S",                                  # an end tag ends the package too
        "CPS+9", "LIN+5", "QTY+12:5",             # no SSCC, nothing before it since the end: top level
        "CNT+2:5",
        type="DESADV"), DOT)
    assert document["number"] == "D-1" and document["tracking"] == "5"
    assert document["packages"] == [
        {"sscc": "S1", "lines": [_line(2, "2"), _line(3, "3")]},
        {"sscc": "S2", "lines": []},
        {"sscc": "S3", "lines": [_line(4, "4")]},
    ]
    assert document["lines"] == [_line(1, "1"), _line(5, "5")]


def test_without_any_sscc_the_lines_are_top_level(tmp_path):
    document = ship_notice(tmp_path, DESADV_BODY).apply(
        message("BGM+351+D-2", "CPS+1", "LIN+1", "QTY+12:7", "LIN+2", "QTY+12:8", type="DESADV"), DOT)
    assert document["packages"] == []
    assert document["lines"] == [_line(1, "7"), _line(2, "8")]


def test_a_bad_package_field_names_the_package(tmp_path):
    m = ship_notice(tmp_path, DESADV_BODY.replace('sscc = "GIN[1=BJ]/2.1"',
                                                  'sscc = { path = "GIN[1=BJ]/2.1", convert = "integer" }'))
    with pytest.raises(MappingError) as info:
        m.apply(message("BGM+351+D-3", "CPS+1", "CPS+2+1", "GIN+BJ+S-1", "LIN+1", type="DESADV"), DOT)
    assert info.value.problem == ("field 'packages.sscc' (GIN[1=BJ]/2.1): 'S-1' is not a whole number "
                                  "in package 2 (CPS at segment 5)")
    assert (info.value.segment, info.value.tag, info.value.element) == (6, "GIN", "2.1")


HL_BODY = """
    [fields]
    order_numbers = "PRF/1"
    [packages]
    group = "HL[3=P|T]"
    [packages.fields]
    sscc = { python = "gateway.mapping.hooks.x12:sscc" }
    [lines]
    group = "HL[3=I]"
    end = ["HL", "CTT"]
    required = true
    [lines.fields]
    line = ["LIN/1", { sequence = true }]
    quantity = "SN1/2"
    order_number = { python = "gateway.mapping.hooks.x12:hl_order_number" }
"""


def test_selector_boundaries_split_an_x12_hierarchy(tmp_path):
    m = ship_notice(tmp_path, HL_BODY, "x12", "856")
    hl = message(
        "BSN+00+A-1",
        "HL+1++S", "TD5+B+2+UPSN",
        "HL+2+1+O", "PRF+PO-1",
        "HL+3+2+T", "MAN+GM+00006141410000001019",     # pallet: AI 00 + SSCC
        "HL+4+3+P",                                    # unlabelled carton: joins the pallet
        "HL+5+4+I", "LIN+7", "SN1++5+EA",
        "HL+6+1+O", "PRF+PO-2",                        # a new order level ends the pallet
        "HL+7+6+P",                                    # unlabelled, nothing before it: top level
        "HL+8+7+I", "SN1++6+EA",
        "CTT+2", type="856", version="004010")
    document = m.apply(hl, DOT)
    assert document["order_numbers"] == ["PO-1", "PO-2"]
    assert document["packages"] == [{"sscc": "006141410000001019", "lines": [
        {**_line(1, "5"), "line": "7", "order_number": "PO-1"}]}]
    assert document["lines"] == [{**_line(2, "6"), "order_number": "PO-2"}]


def test_required_lines_with_a_selector_group(tmp_path):
    m = ship_notice(tmp_path, HL_BODY, "x12", "856")
    with pytest.raises(MappingError) as info:
        m.apply(message("BSN+00+A-1", "HL+1++S", "CTT+0", type="856"), DOT)
    assert info.value.problem == "the message has no line (HL[3=I] segment)"
    assert info.value.tag == "HL"


def test_party_segment_alternatives_are_tried_in_order(tmp_path):
    m = ship_notice(tmp_path, """
        [parties.ship_from]
        segment = ["NAD[1=SF]", "NAD[1=SU]"]
        required = true
        id = "2.1"
    """)
    with_sf = message("NAD+SU+SUPPLIER", "NAD+SF+WAREHOUSE", type="DESADV")
    assert m.apply(with_sf, DOT)["ship_from"] == {"id": "WAREHOUSE", "scheme": None, "name": None}
    assert m.apply(message("NAD+SU+SUPPLIER", type="DESADV"), DOT)["ship_from"]["id"] == "SUPPLIER"
    with pytest.raises(MappingError, match=r"required party 'ship_from' \(NAD\[1=SF\] \| NAD\[1=SU\]\) is missing"):
        m.apply(message("NAD+BY+X", type="DESADV"), DOT)


def test_a_package_table_needs_a_known_package_field(tmp_path):
    found = problems(tmp_path, ASN_HEAD.format(name="m", format="edifact", message="DESADV") + textwrap.dedent("""
        [packages]
        group = "CPS"
        colour = "red"
        [packages.fields]
        weight = "MEA/3.2"
        [lines]
        group = "LIN"
    """), head=False)
    d = tmp_path.name
    assert found == [f"{d}/m.toml: packages.colour: unknown key (known: group, fields)",
                     f"{d}/m.toml: packages.fields.weight: unknown package field (known: sscc; "
                     "the lines inside come from [lines])"]


# --- the loader registry (mapping kinds) ------------------------------------------------------

class _Outbound:
    """What another kind's loader may return: MappingSet only needs these attributes."""

    def __init__(self, name: str) -> None:
        self.name, self.format, self.message, self.versions = name, "x12", "850", ()
        self.auto, self.direction = True, "outbound"


def test_load_mappings_dispatches_by_kind_and_skips_kinds_without_a_loader(tmp_path, monkeypatch):
    from gateway.mapping import loader

    write(tmp_path, "x12-850", HEAD.format(name="x12-850").replace('"edifact"', '"x12"').replace('"ORDERS"', '"850"'))
    write(tmp_path, "out-850", '[mapping]\nname = "out-850"\ndirection = "outbound"\nformat = "x12"\n'
                              'message = "850"\nwhatever = "the outbound loader checks it"\n')
    write(tmp_path, "xml-order", '[mapping]\nname = "xml-order"\nformat = "xml"\n[anything]\n')
    assert loader.mapping_kind({"mapping": {"format": "x12"}}) == "x12"
    assert loader.mapping_kind({"mapping": {"format": "x12", "direction": "outbound"}}) == "outbound"
    assert loader.mapping_kind({"mapping": {"format": "xml"}}) == "xml"
    assert loader.mapping_kind({"mapping": {"format": "edi"}}) is None
    monkeypatch.delitem(loader.LOADERS, "outbound", raising=False)
    monkeypatch.delitem(loader.LOADERS, "xml", raising=False)
    assert load_mappings(tmp_path).names == ["x12-850"]          # unregistered kinds: skipped

    seen = []

    def load_outbound(file, path, data, found):
        seen.append((file, path.name, data["mapping"]["whatever"]))
        return _Outbound(path.stem)
    monkeypatch.setitem(loader.LOADERS, "outbound", load_outbound)
    mappings = load_mappings(tmp_path)
    assert seen == [(f"{tmp_path.name}/out-850.toml", "out-850.toml", "the outbound loader checks it")]
    assert mappings.names == ["out-850", "x12-850"]
    # Same format and message, other direction: no conflict, and each lookup finds its own.
    assert mappings.find("x12", "850", "004010").name == "x12-850"
    assert mappings.find("x12", "850", "004010", direction="outbound").name == "out-850"
    assert mappings.find("x12", "850", "004010", override="out-850") is None
    assert mappings.find("x12", "850", "004010", override="out-850", direction="outbound").name == "out-850"

    class Xml:                     # an XML mapping has no message type: found by name only
        format, direction, versions, auto = "xml", "inbound", (), True

        def __init__(self, name: str) -> None:
            self.name = name
    monkeypatch.setitem(loader.LOADERS, "xml", lambda file, path, data, found: Xml(path.stem))
    write(tmp_path, "xml-other", '[mapping]\nname = "xml-other"\nformat = "xml"\n')
    mappings = load_mappings(tmp_path)                  # two XML mappings: no conflict here
    assert mappings.names == ["out-850", "x12-850", "xml-order", "xml-other"]
    assert mappings.find("xml", "", "", override="xml-order") is None
    assert mappings.find("xml", "", "") is None


def test_an_inbound_mapping_may_say_its_direction(tmp_path):
    m = mapping(tmp_path, 'direction = "inbound"\n')
    assert m.direction == "inbound"
