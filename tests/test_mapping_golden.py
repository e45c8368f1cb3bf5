"""Golden tests: every mappings/golden/<mapping>/<case>.input.edi|.x12 mapped equals <case>.expected.json.

The expected files are written by hand from the inputs (never dumped from the engine): they are
the contract of each inbound file in mappings/. Each input is read with the real reader for the
mapping's format, every message is mapped, and the list of documents is compared. Outbound
cases (``*.input.json`` -> ``*.expected.edi|.x12``) in the same folder are another test's.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gateway.edi.model import Delimiters, Message, Segment
from gateway.errors import MappingError
from gateway.mapping import Mapping, MappingSet, load_mappings

MAPPINGS = Path(__file__).parent.parent / "mappings"
GOLDEN = MAPPINGS / "golden"
INBOUND_INPUTS = ("*.input.edi", "*.input.x12")
CASES = sorted(path for pattern in INBOUND_INPUTS for path in GOLDEN.glob(f"*/{pattern}"))


def _readers() -> dict:
    try:
        from gateway.edi import edifact, x12
    except ImportError as exc:  # the readers are another module's work; say so instead of erroring
        pytest.skip(f"EDI readers not importable yet: {exc}")
    return {"edifact": edifact.parse, "x12": x12.parse}


@pytest.fixture(scope="module")
def mappings() -> MappingSet:
    return load_mappings(MAPPINGS)


def _case_id(path: Path) -> str:
    return f"{path.parent.name}/{path.name.split('.input.')[0]}"


def _expected(input_path: Path) -> Path:
    return input_path.with_name(input_path.name.split(".input.")[0] + ".expected.json")


def map_file(mapping: Mapping, mappings: MappingSet, path: Path) -> list[dict]:
    """Every message of the file mapped with ``mapping`` (which the gateway must pick, unless partner-only)."""
    read = _readers()[mapping.format]
    documents = []
    for interchange in read(path.read_bytes()):
        for message in interchange.messages:
            if mapping.auto:    # the gateway itself would pick this mapping for the message
                assert mappings.find(mapping.format, message.type, message.version) is mapping
            else:               # a partner variant: only a partner file naming it selects it
                assert mappings.find(mapping.format, message.type, message.version, override=mapping.name) is mapping
            documents.append(mapping.apply(message, interchange.delimiters))
    return documents


@pytest.mark.parametrize("input_path", CASES, ids=_case_id)
def test_golden(input_path: Path, mappings: MappingSet) -> None:
    mapping = mappings.get(input_path.parent.name)
    assert mapping is not None, f"mappings/golden/{input_path.parent.name}/ has no mappings/{input_path.parent.name}.toml"
    expected = json.loads(_expected(input_path).read_text(encoding="utf-8"))
    documents = map_file(mapping, mappings, input_path)
    # Through JSON and back, as a target would receive it (and proving it serializes: no floats).
    assert json.loads(json.dumps(documents)) == expected


def _inbound(mappings: MappingSet) -> list[Mapping]:
    return [m for m in mappings if isinstance(m, Mapping) and m.direction == "inbound"]


def test_every_inbound_mapping_has_golden_cases(mappings: MappingSet) -> None:
    inbound = _inbound(mappings)
    assert len(inbound) >= 9
    for mapping in inbound:
        cases = [p for pattern in INBOUND_INPUTS for p in (GOLDEN / mapping.name).glob(pattern)]
        assert len(cases) >= 2, f"mappings/{mapping.name}.toml needs at least 2 golden cases in mappings/golden/{mapping.name}/"
        for case in cases:
            assert _expected(case).exists(), case


# --- what the golden files cannot show --------------------------------------------------------

def test_the_partner_variant_differs_from_the_generic_invoice_mapping(mappings: MappingSet) -> None:
    # The same EANCOM invoice through both: the generic mapping bills the buyer (NAD+BY) and
    # reports MOA+79 as net; the variant bills the invoicee (NAD+IV) with MOA+125 (charges in).
    path = GOLDEN / "edifact-invoic-eancom-invoicee" / "eancom_d96a_charges.input.edi"
    generic = map_file(mappings.get("edifact-invoic"), mappings, path)[0]
    variant = map_file(mappings.get("edifact-invoic-eancom-invoicee"), mappings, path)[0]
    assert generic["buyer"] == {"id": "5412345000020", "scheme": "GLN", "name": "Brasserie du Coin Magasin 12"}
    assert variant["buyer"] == {"id": "5412345000006", "scheme": "GLN", "name": "Brasserie du Coin Holding"}
    assert (generic["totals"]["net"], variant["totals"]["net"]) == ("48.00", "54.00")
    assert mappings.find("edifact", "INVOIC", "D96A").name == "edifact-invoic"       # never picked on its own


def _message(*texts: str, type: str = "ORDRSP") -> Message:
    segments = [Segment(t.split("+")[0], [tuple(e.split(":")) for e in t.split("+")[1:]], n)
                for n, t in enumerate(("UNH+1", *texts, "UNT+2+1"), 1)]
    return Message(type=type, version="D96A", reference="1", segments=segments)


DOT = Delimiters(element="+", component=":", segment="'", release="?", decimal=".")


def test_an_unknown_status_code_is_a_mapping_error_naming_it(mappings: MappingSet) -> None:
    ordrsp = mappings.get("edifact-ordrsp")
    with pytest.raises(MappingError) as info:
        ordrsp.apply(_message("BGM+231+R-1+9", "RFF+ON:PO-1"), DOT)
    assert info.value.problem.startswith("field 'status' (BGM/3): unknown code '9' (known: 29, 30, 4, 27)")
    assert (info.value.segment, info.value.tag, info.value.element) == (2, "BGM", "3")
    with pytest.raises(MappingError, match=r"field 'lines.status' \(2\): unknown code '4' .* in line 1"):
        ordrsp.apply(_message("BGM+231+R-1+29", "LIN+1+4"), DOT)


def test_sole_order_number_only_when_the_heading_names_one_order() -> None:
    from gateway.mapping.hooks.edifact import sole_order_number

    one = _message("BGM+351+D", "RFF+ON:PO-1", "RFF+ON:PO-1", "CPS+1", "LIN+1", "RFF+ON:PO-9", type="DESADV")
    two = _message("BGM+351+D", "RFF+ON:PO-1", "RFF+ON:PO-2", "CPS+1", "LIN+1", type="DESADV")
    assert sole_order_number([], one) == "PO-1"          # the line's own RFF after CPS is not the heading
    assert sole_order_number([], two) is None
    assert sole_order_number([], _message("BGM+351+D", type="DESADV")) is None


def test_x12_hooks() -> None:
    from gateway.mapping.hooks import x12

    def segs(*texts: str) -> list[Segment]:
        return [Segment(t.split("*")[0], [(e,) for e in t.split("*")[1:]], n) for n, t in enumerate(texts, 5)]
    assert x12.sscc(segs("HL*3*2*P", "MAN*GM*00006141410000001019"), None) == "006141410000001019"
    assert x12.sscc(segs("HL*3*2*P", "MAN*CP*X", "MAN*GM*106141410000002013"), None) == "106141410000002013"
    assert x12.sscc(segs("HL*3*2*P", "MAN*GM*ABC"), None) == "ABC"          # anything else as sent
    assert x12.sscc(segs("HL*3*2*P"), None) is None

    body = segs("ST*856*1", "HL*1**S", "HL*2*1*O", "REF*XY*1", "PRF*PO-7", "HL*3*2*I", "HL*4*1*I", "SE*7*1")
    message = Message(type="856", version="004010", reference="1", segments=body)
    assert x12.hl_order_number([body[5]], message) == "PO-7"          # item -> order
    assert x12.hl_order_number([body[6]], message) is None            # item -> shipment: no order level
    assert x12.hl_order_number([body[4]], message) is None            # not an HL group
    memo: dict = {}
    assert x12.hl_order_number([body[5]], message, memo) == "PO-7" and "x12.hl_levels" in memo
    looping = segs("ST*856*1", "HL*1*2*P", "HL*2*1*P", "HL*3*2*I", "SE*5*1")
    assert x12.hl_order_number([looping[3]], Message("856", "004010", "1", looping)) is None

    summary = segs("TDS*5054", "TXI*ST*3.51*7.5", "TXI*LS*0.23", "TXI*VA**20", "CTT*2")
    assert (x12.tax_total(summary, None), x12.net_total(summary, None)) == ("3.74", "46.80")
    assert (x12.tax_total(segs("TDS*100"), None), x12.net_total(segs("TDS*100"), None)) == (None, "1.00")
    assert x12.net_total(segs("CTT*1"), None) is None
    with pytest.raises(MappingError) as info:
        x12.net_total(segs("TDS*50.54"), None)
    assert (info.value.problem, info.value.segment, info.value.tag, info.value.element) == (
        "'50.54' is not a whole number with two implied decimals", 5, "TDS", "1")
    with pytest.raises(MappingError, match="'3,51' is not a decimal number"):
        x12.tax_total(segs("TXI*ST*3,51"), None)
