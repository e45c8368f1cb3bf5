"""X12 reader: ISA-driven delimiters, mailbags, EBCDIC, multi-byte terminators, envelope errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.edi.model import Delimiters
from gateway.edi.x12 import parse
from gateway.errors import ParseError

FIXTURES = Path(__file__).parent / "fixtures" / "edi"
FIXTURE_850 = (FIXTURES / "850_004010.x12").read_text()
GS1 = "GS*PO*S*R*20261120*1015*1*X*004010"


def isa(sep: str = "*", isa11: str = "U", version: str = "00401", control: str = "000000001",
        comp: str = ">", term: str = "~", test: str = "P") -> str:
    fields = ["ISA", "00", " " * 10, "00", " " * 10, "ZZ", "SENDER".ljust(15), "ZZ",
              "RECEIVER".ljust(15), "261120", "1015", isa11, version, control, "0", test, comp]
    out = sep.join(fields) + term
    assert len(out) == 106
    return out


def x12(*segments: str, head: str | None = None, term: str = "~", sep: str = "\n") -> bytes:
    """An X12 file: the ISA (default one) then the given segments."""
    head = head if head is not None else isa(term=term)
    return (head + sep + "".join(f"{s}{term}{sep}" for s in segments)).encode()


def group(*sets: list[str], control: str = "1", version: str = "004010") -> list[str]:
    out = [f"GS*PO*SENDER*RECEIVER*20261120*1015*{control}*X*{version}"]
    for s in sets:
        out.extend(s)
    return [*out, f"GE*{len(sets)}*{control}"]


def tset(ref: str = "0001", *body: str, kind: str = "850", count: int | None = None) -> list[str]:
    segments = [f"ST*{kind}*{ref}", *body]
    return [*segments, f"SE*{count if count is not None else len(segments) + 1}*{ref}"]


def parse_error(raw: bytes) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse(raw)
    return info.value


# --------------------------------------------------------------------------- the 850 fixture


def test_850_fixture_envelope() -> None:
    [ic] = parse(FIXTURE_850.encode())
    assert ic.format == "x12"
    assert (ic.sender.id, ic.sender.qualifier) == ("ACMEUS", "ZZ")
    assert (ic.recipient.id, ic.recipient.qualifier) == ("OURCO", "ZZ")
    assert (ic.syntax, ic.control_number, ic.date, ic.time, ic.test) == (
        "00401", "000000001", "261120", "1015", False)
    assert ic.delimiters == Delimiters(element="*", component=">", segment="~", repetition=None)
    assert ic.first_segment == 1


def test_850_fixture_message() -> None:
    [ic] = parse(FIXTURE_850.encode())
    [msg] = ic.messages
    assert (msg.type, msg.reference, msg.version, msg.agency, msg.group_reference) == (
        "850", "0001", "004010", "004010", "1")
    assert len(msg.segments) == 15
    assert (msg.segments[0].tag, msg.segments[0].number) == ("ST", 3)
    assert (msg.segments[-1].tag, msg.segments[-1].number) == ("SE", 17)
    beg = msg.body[0]
    assert (beg.tag, beg.get(1), beg.get(2), beg.get(3), beg.get(4), beg.get(5)) == (
        "BEG", "00", "SA", "PO12345", "", "20261120")
    n1 = [(s.get(1), s.get(2), s.get(3), s.get(4)) for s in msg.body if s.tag == "N1"]
    assert n1 == [("BY", "Acme Stores Inc", "UL", "0614141000012"),
                  ("SE", "Our Company LLC", "UL", "0012345000010"),
                  ("ST", "Acme Store 12", "92", "STORE12")]
    po1 = [s for s in msg.body if s.tag == "PO1"]
    assert [(s.get(2), s.get(3), s.get(4), s.get(6), s.get(7)) for s in po1] == [
        ("24", "EA", "1.25", "UP", "012345678905"),
        ("12", "EA", "1.40", "EN", "8711111000125"),
        ("6", "CA", "21.00", "EN", "8711111000132")]
    assert [s.get(5) for s in msg.body if s.tag == "PID"][2] == "Tomato juice 1L, organic"


# --------------------------------------------------------------------------- delimiters


@pytest.mark.parametrize("term", ["~", "'", "\n", "\r", "\x15", "\u2026", "\x1c"])
def test_segment_terminators(term: str) -> None:
    raw = FIXTURE_850.replace("~\n", term).replace(">" + term, ">" + term)
    [ic] = parse(raw.encode())
    assert ic.delimiters.segment == term
    assert [s.tag for s in ic.messages[0].segments][:2] == ["ST", "BEG"]


def test_multibyte_terminator_is_read_as_one_character() -> None:
    raw = FIXTURE_850.replace("~", "\u2026").encode("utf-8")
    [ic] = parse(raw)
    assert ic.delimiters.segment == "\u2026"
    assert ic.messages[0].segments[-1].get(1) == "15"


def test_crlf_after_terminator_is_whitespace() -> None:
    [ic] = parse(FIXTURE_850.replace("~\n", "~\r\n").encode())
    assert ic.messages[0].segments[1].get(3) == "PO12345"


def test_crlf_as_terminator() -> None:
    [ic] = parse(FIXTURE_850.replace("~\n", "\r\n").encode())
    assert ic.delimiters.segment == "\r"
    assert len(ic.messages[0].segments) == 15


def test_repetition_separator_from_00402() -> None:
    raw = x12(*group(tset("0001", "REF*ZZ*A^B>C^D")), "IEA*1*000000001",
              head=isa(isa11="^", version="00501"))
    [ic] = parse(raw)
    assert ic.delimiters.repetition == "^"
    ref = ic.messages[0].segments[1]
    assert ref.get(2) == "A"
    assert ref.repetitions == {2: [("A",), ("B", "C"), ("D",)]}


@pytest.mark.parametrize(("version", "repetition"), [
    ("00200", None), ("00300", None), ("00401", None), ("00402", "^"), ("00403", "^"),
    ("00501", "^"), ("00601", "^"), ("00801", "^"),
])
def test_isa_versions_00200_to_00801(version: str, repetition: str | None) -> None:
    raw = x12(*group(tset("0001", "REF*ZZ*A^B")), "IEA*1*000000001",
              head=isa(isa11="^", version=version))
    [ic] = parse(raw)
    assert ic.syntax == version and ic.delimiters.repetition == repetition
    assert ic.messages[0].segments[1].get(2) == ("A" if repetition else "A^B")


def test_group_id_is_gs01_per_group() -> None:
    raw = x12(*group(tset("0001")), "GS*IN*S*R*20261120*1015*2*X*004010", *tset("0002", kind="810"),
              "GE*1*2", "IEA*2*000000001")
    [ic] = parse(raw)
    assert [(m.type, m.group_id, m.group_reference) for m in ic.messages] == [
        ("850", "PO", "1"), ("810", "IN", "2")]


def test_no_repetition_before_00402() -> None:
    raw = x12(*group(tset("0001", "REF*ZZ*A^B")), "IEA*1*000000001",
              head=isa(isa11="^", version="00401"))
    [ic] = parse(raw)
    assert ic.delimiters.repetition is None
    assert ic.messages[0].segments[1].get(2) == "A^B"


def test_isa11_letter_is_never_a_separator() -> None:
    # Some senders leave "U" in ISA11 after moving to 00501; splitting on "U" would cut data.
    raw = x12(*group(tset("0001", "N1*ST*UNIVERSAL")), "IEA*1*000000001", head=isa(version="00501"))
    [ic] = parse(raw)
    assert ic.delimiters.repetition is None
    assert ic.messages[0].segments[1].get(2) == "UNIVERSAL"


def test_components_split_but_not_in_isa() -> None:
    raw = x12(*group(tset("0001", "SVC*HC>T1005*500")), "IEA*1*000000001")
    [ic] = parse(raw)
    assert ic.messages[0].segments[1].elements[0] == ("HC", "T1005")


# --------------------------------------------------------------------------- mailbags, EBCDIC


def test_mailbag_with_different_delimiters() -> None:
    ics = parse((FIXTURES / "mailbag_two_isa.x12").read_bytes())
    assert [ic.control_number for ic in ics] == ["000000101", "000000102"]
    assert [ic.first_segment for ic in ics] == [1, 18]
    first, second = ics
    assert [(m.type, m.reference, m.group_reference) for m in first.messages] == [
        ("810", "0001", "11"), ("810", "0002", "11"), ("850", "0003", "12")]
    assert second.delimiters == Delimiters(element="|", component=":", segment="!", repetition="^")
    assert second.test is True and second.syntax == "00501"
    [msg] = second.messages
    assert (msg.version, msg.agency) == ("005010", "005010")
    ref = msg.segments[2]
    assert (ref.number, ref.repetitions[2]) == (22, [("A",), ("B",), ("C", "D")])


def test_agency_is_full_gs08() -> None:
    raw = x12(*group(tset("0001", "BEG*00*SA*1**20261120"), version="004010VICS"),
              "IEA*1*000000001")
    msg = parse(raw)[0].messages[0]
    assert (msg.version, msg.agency) == ("004010", "004010VICS")


def test_ebcdic() -> None:
    [ic] = parse((FIXTURES / "850_004010_ebcdic.x12").read_bytes())
    [plain] = parse(FIXTURE_850.encode())
    assert ic.messages == plain.messages
    assert ic.delimiters.segment == "\x85"  # EBCDIC NL (0x15) as decoded by cp037


def test_ebcdic_with_tilde_and_nl_line_breaks() -> None:
    raw = FIXTURE_850.replace("~\n", "~\x85").encode("cp037")
    [ic] = parse(raw + "\x85\x85  ".encode("cp037"))
    assert ic.delimiters.segment == "~"
    assert ic.messages == parse(FIXTURE_850.encode())[0].messages


def test_latin1_fallback() -> None:
    raw = x12(*group(tset("0001", "N1*ST*M\xfcller")), "IEA*1*000000001").replace(
        "M\xfcller".encode(), b"M\xfcller")
    assert parse(raw)[0].messages[0].segments[1].get(2) == "M\xfcller"


def test_utf8_data_and_bom() -> None:
    raw = b"\xef\xbb\xbf" + x12(*group(tset("0001", "N1*ST*Żółw")), "IEA*1*000000001")
    assert parse(raw)[0].messages[0].segments[1].get(2) == "Żółw"


def test_ta1_is_kept() -> None:
    raw = x12("TA1*000000777*261120*1015*A*000", "IEA*0*000000001")
    [msg] = parse(raw)[0].messages
    assert (msg.type, msg.reference, msg.version) == ("TA1", "000000777", "00401")


def test_trailing_ctrl_z_and_missing_last_terminator() -> None:
    assert parse(FIXTURE_850.encode() + b"\x1a")[0].control_number == "000000001"
    assert parse(FIXTURE_850.rstrip()[:-1].encode())[0].control_number == "000000001"
    assert parse(FIXTURE_850.rstrip()[:-1].encode() + b"\r\n\x1a")[0].control_number == "000000001"


# --------------------------------------------------------------------------- envelope errors


def test_se_count_mismatch() -> None:
    err = parse_error(FIXTURE_850.replace("SE*15*", "SE*14*").encode())
    assert (err.segment, err.tag, err.element) == (17, "SE", "1")
    assert err.problem == "SE01 says 14 segments (ST..SE) but there are 15"


def test_se_reference_mismatch() -> None:
    err = parse_error(FIXTURE_850.replace("SE*15*0001", "SE*15*0002").encode())
    assert (err.segment, err.tag, err.element) == (17, "SE", "2")
    assert err.problem == "SE02 '0002' does not match ST02 '0001'"


def test_ge_count_and_reference() -> None:
    err = parse_error(FIXTURE_850.replace("GE*1*1", "GE*2*1").encode())
    assert (err.segment, err.tag, err.element) == (18, "GE", "1")
    assert err.problem == "GE01 says 2 transaction sets but there are 1"
    err = parse_error(FIXTURE_850.replace("GE*1*1", "GE*1*7").encode())
    assert (err.segment, err.tag, err.element) == (18, "GE", "2")


def test_iea_count_and_reference() -> None:
    err = parse_error(FIXTURE_850.replace("IEA*1*", "IEA*3*").encode())
    assert (err.segment, err.tag, err.element) == (19, "IEA", "1")
    assert err.problem == "IEA01 says 3 functional groups but there are 1"
    err = parse_error(FIXTURE_850.replace("IEA*1*000000001", "IEA*1*000000009").encode())
    assert (err.segment, err.tag, err.element) == (19, "IEA", "2")
    assert err.problem == "IEA02 '000000009' does not match ISA13 '000000001'"


def test_count_not_a_number() -> None:
    err = parse_error(FIXTURE_850.replace("SE*15*", "SE*x5*").encode())
    assert (err.segment, err.tag, err.element) == (17, "SE", "1") and "not a number" in err.problem


@pytest.mark.parametrize(
    ("cut_after", "segment", "tag", "missing"),
    [("PO1*2*12", 12, "PO1", "SE"), ("SE*15*0001~", 17, "SE", "GE"), ("GE*1*1~", 18, "GE", "IEA")],
)
def test_truncated(cut_after: str, segment: int, tag: str, missing: str) -> None:
    raw = FIXTURE_850[: FIXTURE_850.index(cut_after) + len(cut_after)].encode()
    err = parse_error(raw)
    assert (err.segment, err.tag) == (segment, tag)
    assert err.problem.endswith(f"no {missing} after this segment")


@pytest.mark.parametrize("cut", [2, 3, 50, 104, 105])
def test_truncated_isa(cut: int) -> None:
    err = parse_error(FIXTURE_850[:cut].encode())
    assert err.segment == 1 or err.problem == "no ISA interchange header found"


def test_truncated_isa_names_element() -> None:
    err = parse_error(FIXTURE_850[:60].encode())  # cut inside ISA08 (receiver id)
    assert (err.segment, err.tag, err.element) == (1, "ISA", "8")
    assert "ISA has only 8 elements" in err.problem


def test_bad_isa_delimiters() -> None:
    err = parse_error(isa(comp="A").encode())
    assert (err.segment, err.tag, err.element) == (1, "ISA", "16")
    err = parse_error(isa(term="Z").encode())
    assert (err.tag, err.element) == ("ISA", "16") and "terminator" in err.problem
    err = parse_error(b"ISA0" + isa().encode()[4:])
    assert err.tag == "ISA" and "element separator" in err.problem


def test_st_outside_group_and_segments_outside_sets() -> None:
    err = parse_error(x12(*tset("0001"), "IEA*0*000000001"))
    assert (err.segment, err.tag) == (2, "ST") and "outside a GS" in err.problem
    err = parse_error(x12(GS1, "BEG*00*SA*1", "GE*0*1", "IEA*1*000000001"))
    assert (err.segment, err.tag) == (3, "BEG")
    assert err.problem == "segment BEG outside any transaction set"
    err = parse_error(x12("GE*0*1", "IEA*0*000000001"))
    assert (err.segment, err.tag) == (2, "GE") and "without a preceding GS" in err.problem


def test_unclosed_envelopes() -> None:
    err = parse_error(x12(GS1, "ST*850*1", "GE*1*1", "IEA*1*000000001"))
    assert (err.segment, err.tag) == (4, "GE") and "not closed by SE" in err.problem
    err = parse_error(x12(GS1, "IEA*1*000000001"))
    assert (err.segment, err.tag) == (3, "IEA") and "not closed by GE" in err.problem
    err = parse_error(x12(GS1, "GS*PO*S*R*20261120*1015*2*X*004010"))
    assert (err.segment, err.tag) == (3, "GS") and "not closed by GE" in err.problem
    err = parse_error(x12(*group(tset()), isa(control="000000002")))
    assert (err.segment, err.tag) == (6, "ISA") and "not closed by IEA" in err.problem


@pytest.mark.parametrize(
    ("segment", "element"),
    [("GS*PO*S*R*20261120*1015**X*004010", "6"), ("GS*PO*S*R*20261120*1015*1*X", "8")],
)
def test_gs_mandatory(segment: str, element: str) -> None:
    err = parse_error(x12(segment, "GE*0*1", "IEA*1*000000001"))
    assert (err.segment, err.tag, err.element) == (2, "GS", element)


def test_st_mandatory() -> None:
    err = parse_error(x12(*group(["ST*850", "SE*2*"]), "IEA*1*000000001"))
    assert (err.segment, err.tag, err.element) == (3, "ST", "2")


def test_garbage_instead_of_isa() -> None:
    err = parse_error(FIXTURE_850.encode() + b"hello")
    assert err.segment == 20 and "expected ISA" in err.problem and "'hel'" in err.problem


def test_empty_segment_and_bad_tag() -> None:
    err = parse_error(FIXTURE_850.replace("CUR*BY*USD~", "~").encode())
    assert err.segment == 5 and "empty segment" in err.problem
    err = parse_error(FIXTURE_850.replace("CUR*BY*USD~", "cur*BY~").encode())
    assert err.segment == 5 and "invalid segment tag 'cur'" in err.problem


def test_empty_input() -> None:
    assert parse_error(b"").problem == "no ISA interchange header found"
