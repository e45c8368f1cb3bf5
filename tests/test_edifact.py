"""EDIFACT reader: delimiters, release chars, syntax 4, charsets, envelopes and every error."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from gateway.edi import edifact
from gateway.edi.edifact import DEFAULT_DELIMITERS, gc_paused, iter_segments, parse
from gateway.edi.model import Delimiters
from gateway.errors import ParseError

FIXTURES = Path(__file__).parent / "fixtures" / "edi"


def edi(*segments: str, una: str | None = ":+.? '", term: str = "'") -> bytes:
    """An EDIFACT file from segment texts, one per line."""
    head = f"UNA{una}\n" if una else ""
    return (head + "".join(f"{s}{term}\n" for s in segments)).encode()


def message(ref: str = "1", *body: str, count: int | None = None) -> list[str]:
    segments = [f"UNH+{ref}+ORDERS:D:96A:UN:EAN008", *body]
    return [*segments, f"UNT+{count if count is not None else len(segments) + 1}+{ref}"]


def interchange(*messages: list[str], control: str = "IC1", syntax: str = "UNOC:3") -> list[str]:
    out = [f"UNB+{syntax}+SENDER:14+RECEIVER:14+261120:1015+{control}"]
    for m in messages:
        out.extend(m)
    return [*out, f"UNZ+{len(messages)}+{control}"]


def parse_error(raw: bytes) -> ParseError:
    with pytest.raises(ParseError) as info:
        parse(raw)
    return info.value


# --------------------------------------------------------------------------- the ORDERS fixture


def test_orders_fixture_envelope() -> None:
    [ic] = parse((FIXTURES / "orders_d96a.edi").read_bytes())
    assert ic.format == "edifact"
    assert ic.syntax == "UNOC:3"
    assert (ic.sender.id, ic.sender.qualifier) == ("5412345000013", "14")
    assert (ic.recipient.id, ic.recipient.qualifier) == ("8711111000007", "14")
    assert (ic.date, ic.time) == ("261120", "1015")
    assert ic.control_number == "ICR0001"
    assert ic.test is False
    assert ic.first_segment == 1
    assert ic.delimiters == Delimiters(element="+", component=":", segment="'", release="?",
                                       repetition=None, decimal=".")


def test_orders_fixture_message() -> None:
    [ic] = parse((FIXTURES / "orders_d96a.edi").read_bytes())
    [msg] = ic.messages
    assert (msg.type, msg.version, msg.agency, msg.reference) == (
        "ORDERS", "D96A", "EAN008", "MSG0001")
    assert msg.group_reference == ""
    assert len(msg.segments) == 26
    assert [s.tag for s in msg.segments[:3]] == ["UNH", "BGM", "DTM"]
    assert msg.segments[0].number == 2 and msg.segments[-1].number == 27  # UNB is 1, UNA uncounted
    assert [s.tag for s in msg.body][-3:] == ["PRI", "UNS", "CNT"]
    bgm = msg.segments[1]
    assert (bgm.get(1), bgm.get(2), bgm.get(3)) == ("220", "PO12345", "9")
    nads = [s for s in msg.body if s.tag == "NAD"]
    assert [(s.get(1), s.get(2, 1), s.get(2, 3), s.get(4)) for s in nads] == [
        ("BY", "5412345000013", "9", "Brasserie du Coin SA"),
        ("SU", "8711111000007", "9", "Dutch Foods B.V."),
        ("DP", "5412345000020", "9", "Brasserie du Coin Magasin 12"),
    ]
    lines = [s for s in msg.body if s.tag == "LIN"]
    assert [s.get(3, 1) for s in lines] == ["8711111000118", "8711111000125", "8711111000132"]
    qty = [s.get(1, 2) for s in msg.body if s.tag == "QTY"]
    assert qty == ["24", "12", "6"]
    imd = [s.get(3, 4) for s in msg.body if s.tag == "IMD"]
    assert imd[2] == "Tomato juice 1L: organic"  # "?:" released
    pia = next(s for s in msg.body if s.tag == "PIA")
    assert pia.elements == [("1",), ("B-1001", "BP"), ("S-55501", "SA")]


# --------------------------------------------------------------------------- delimiters


def test_no_una_uses_defaults() -> None:
    [ic] = parse(edi(*interchange(message("1", "BGM+220+X?+Y+9")), una=None))
    assert ic.delimiters == DEFAULT_DELIMITERS
    assert ic.messages[0].segments[1].elements == [("220",), ("X+Y",), ("9",)]


def test_custom_delimiters_and_numbering_across_interchanges() -> None:
    ics = parse((FIXTURES / "two_interchanges.edi").read_bytes())
    assert [ic.control_number for ic in ics] == ["IC1", "IC2"]
    assert [ic.first_segment for ic in ics] == [1, 6]
    second = ics[1]
    assert second.delimiters == Delimiters(element="~", component="|", segment="#", release="!",
                                           repetition=None, decimal=",")
    assert [m.type for m in second.messages] == ["DESADV", "DESADV"]
    bgm = second.messages[0].segments[1]
    assert bgm.number == 8
    assert bgm.elements == [("351",), ("#42~",), ("9",)]


def test_decimal_mark_from_una() -> None:
    [ic] = parse(edi(*interchange(message("1", "MOA+79:12,50")), una=":+,? '"))
    assert ic.delimiters.decimal == ","
    assert ic.messages[0].segments[1].get(1, 2) == "12,50"


def test_una_without_release_character() -> None:
    [ic] = parse(edi(*interchange(message("1", "FTX+AAI+++50? off")), una=":+.  '"))
    assert ic.delimiters.release is None
    assert ic.messages[0].segments[1].get(4) == "50? off"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FTX+AAI+++a?'b", ("a'b",)),
        ("FTX+AAI+++a??", ("a?",)),
        ("FTX+AAI+++a??+b", ("a?",)),
        ("FTX+AAI+++a?:b:c", ("a:b", "c")),
        ("FTX+AAI+++?x", ("x",)),  # release before a non-delimiter just makes it data
    ],
)
def test_release_character(text: str, expected: tuple[str, ...]) -> None:
    [seg] = iter_segments(text + "'", DEFAULT_DELIMITERS)
    assert seg.elements[3] == expected


def test_escaped_terminator_does_not_split() -> None:
    segs = list(iter_segments("FTX+A+++it?'s'FTX+B+++x??'", DEFAULT_DELIMITERS))
    assert [(s.get(1), s.get(4)) for s in segs] == [("A", "it's"), ("B", "x?")]


# --------------------------------------------------------------------------- syntax 4 repetition


def test_syntax4_repetition_from_una_and_release() -> None:
    [ic] = parse((FIXTURES / "invoic_d01b_syntax4.edi").read_bytes())
    assert ic.syntax == "UNOC:4"
    assert (ic.date, ic.time) == ("20261120", "1015")
    d = ic.delimiters
    assert (d.repetition, d.decimal, d.release) == ("*", ",", "?")
    msg = ic.messages[0]
    assert msg.version == "D01B" and msg.agency == "EAN010"
    bgm, com, moa = msg.body
    assert bgm.get(2) == "INV+1:A'B?C*D"
    assert com.elements[0] == ("0032 1 234", "TE")
    assert com.repetitions == {1: [("0032 1 234", "TE"), ("info@example.com", "EM"), ("", "FX")]}
    assert moa.get(1, 2) == "1234,50"
    assert bgm.repetitions == {}


def test_syntax4_without_una_defaults_to_star() -> None:
    [ic] = parse(edi(*interchange(message("1", "COM+a:TE*b:EM"), syntax="UNOC:4"), una=None))
    assert ic.delimiters.repetition == "*"
    com = ic.messages[0].segments[1]
    assert com.get(1, 1) == "a" and com.repetitions[1] == [("a", "TE"), ("b", "EM")]


def test_syntax4_una_space_means_no_repetition() -> None:
    [ic] = parse(edi(*interchange(message("1", "FTX+AAI+++5*3"), syntax="UNOC:4")))
    assert ic.delimiters.repetition is None
    assert ic.messages[0].segments[1].get(4) == "5*3"


@pytest.mark.parametrize(("syntax", "repetition", "value"), [
    ("UNOA:1", None, "5*3"), ("UNOB:2", None, "5*3"), ("UNOC:3", None, "5*3"), ("UNOC:4", "*", "5"),
])
def test_syntax_versions_1_to_4_and_the_repetition_separator(syntax: str, repetition: str | None,
                                                             value: str) -> None:
    [ic] = parse(edi(*interchange(message("1", "FTX+AAI+++5*3"), syntax=syntax), una=":+.?*'"))
    assert ic.syntax == syntax and ic.delimiters.repetition == repetition
    assert ic.messages[0].segments[1].get(4) == value


def test_syntax3_ignores_una_repetition_position() -> None:
    # Position 4 of UNA is "reserved" before syntax 4; treating it as a separator there
    # would cut data, so syntax 1-3 never split repetitions.
    [ic] = parse(edi(*interchange(message("1", "FTX+AAI+++5*3")), una=":+.?*'"))
    assert ic.delimiters.repetition is None
    assert ic.messages[0].segments[1].get(4) == "5*3"


# --------------------------------------------------------------------------- UNB / UNG / UNH


def test_test_indicator() -> None:
    raw = edi("UNB+UNOA:3+S+R+261120:1015+IC9++APP++++1", *message("1"), "UNZ+1+IC9")
    [ic] = parse(raw)
    assert ic.test is True and (ic.sender.id, ic.sender.qualifier) == ("S", "")


def test_groups() -> None:
    [ic] = parse((FIXTURES / "orders_group_d96a.edi").read_bytes())
    assert ic.test is True
    assert [(m.reference, m.group_reference) for m in ic.messages] == [
        ("M1", "GRP01"), ("M2", "GRP01"), ("M3", "GRP02")]
    assert [m.group_id for m in ic.messages] == ["ORDERS", "ORDERS", "ORDERS"]


def test_group_id_is_first_component_of_ung_0038_and_empty_without_groups() -> None:
    raw = edi("UNB+UNOC:4+S+R+20261120:1015+IC", "UNG+INVOIC:X+S+R+20261120:1015+G7+UN+D:01B",
              *message("1"), "UNE+1+G7", "UNZ+1+IC")
    [msg] = parse(raw)[0].messages
    assert (msg.group_id, msg.group_reference) == ("INVOIC", "G7")
    assert parse(edi(*interchange(message("1"))))[0].messages[0].group_id == ""


def test_several_messages_and_interchanges() -> None:
    raw = edi(*interchange(message("1"), message("2")), *interchange(message("3"), control="IC2"))
    ics = parse(raw)
    assert [[m.reference for m in ic.messages] for ic in ics] == [["1", "2"], ["3"]]
    assert ics[1].first_segment == 7


def test_unh_version_and_agency() -> None:
    raw = edi("UNB+UNOC:3+S+R+261120:1015+1", "UNH+77+INVOIC:D:01B:UN", "UNT+2+77", "UNZ+1+1")
    msg = parse(raw)[0].messages[0]
    assert (msg.type, msg.version, msg.agency, msg.reference) == ("INVOIC", "D01B", "", "77")


@pytest.mark.parametrize(
    ("unb", "element"),
    [
        ("UNB++S+R+261120:1015+1", "1.1"),
        ("UNB+UNOC:3++R+261120:1015+1", "2.1"),
        ("UNB+UNOC:3+S++261120:1015+1", "3.1"),
        ("UNB+UNOC:3+S+R+261120:1015", "5"),
    ],
)
def test_unb_missing_mandatory(unb: str, element: str) -> None:
    err = parse_error(edi(unb, *message("1"), "UNZ+1+1"))
    assert (err.segment, err.tag, err.element) == (1, "UNB", element)
    assert "missing" in err.problem


@pytest.mark.parametrize(
    ("unh", "element"),
    [("UNH++ORDERS:D:96A:UN", "1"), ("UNH+1+:D:96A:UN", "2.1"), ("UNH+1+ORDERS::96A:UN", "2.2"),
     ("UNH+1+ORDERS:D::UN", "2.3")],
)
def test_unh_missing_mandatory(unh: str, element: str) -> None:
    err = parse_error(edi("UNB+UNOC:3+S+R+261120:1015+1", unh, "UNT+2+1", "UNZ+1+1"))
    assert (err.segment, err.tag, err.element) == (2, "UNH", element)


# --------------------------------------------------------------------------- envelope errors


def test_unt_count_mismatch() -> None:
    err = parse_error(edi(*interchange(message("1", "BGM+220+1+9", count=5))))
    assert (err.segment, err.tag, err.element) == (4, "UNT", "1")
    assert err.problem == "UNT says 5 segments but message 1 has 3"
    assert str(err) == "segment 4 (UNT) element 1: UNT says 5 segments but message 1 has 3"


def test_unt_count_not_a_number() -> None:
    err = parse_error(edi("UNB+UNOC:3+S+R+1:1+1", "UNH+1+ORDERS:D:96A:UN", "UNT+two+1", "UNZ+1+1"))
    assert (err.segment, err.tag, err.element) == (3, "UNT", "1")
    assert "not a number" in err.problem


def test_unt_reference_mismatch() -> None:
    err = parse_error(edi("UNB+UNOC:3+S+R+1:1+1", "UNH+1+ORDERS:D:96A:UN", "UNT+2+9", "UNZ+1+1"))
    assert (err.segment, err.tag, err.element) == (3, "UNT", "2")
    assert err.problem == "UNT reference '9' does not match UNH reference '1'"


def test_unz_count_mismatch() -> None:
    raw = edi("UNB+UNOC:3+S+R+1:1+IC", *message("1"), *message("2"), "UNZ+1+IC")
    err = parse_error(raw)
    assert (err.segment, err.tag, err.element) == (6, "UNZ", "1")
    assert err.problem == "UNZ says 1 messages but interchange IC has 2"


def test_unz_reference_mismatch() -> None:
    err = parse_error(edi("UNB+UNOC:3+S+R+1:1+IC", *message("1"), "UNZ+1+XX"))
    assert (err.segment, err.tag, err.element) == (4, "UNZ", "2")
    assert "'XX'" in err.problem and "'IC'" in err.problem


def test_unz_counts_groups_when_groups_are_used() -> None:
    text = (FIXTURES / "orders_group_d96a.edi").read_text().replace("UNZ+2+", "UNZ+3+")
    err = parse_error(text.encode())
    assert (err.segment, err.tag, err.element) == (17, "UNZ", "1")
    assert err.problem == "UNZ says 3 groups but interchange ICR0002 has 2"


def test_une_count_and_reference() -> None:
    text = (FIXTURES / "orders_group_d96a.edi").read_text()
    err = parse_error(text.replace("UNE+2+GRP01", "UNE+1+GRP01").encode())
    assert (err.segment, err.tag, err.element) == (11, "UNE", "1")
    err = parse_error(text.replace("UNE+2+GRP01", "UNE+2+GRP09").encode())
    assert (err.segment, err.tag, err.element) == (11, "UNE", "2")


def test_group_errors() -> None:
    ung = "UNG+ORDERS+S+R+261120:1015+G1+UN+D:96A"
    head = "UNB+UNOC:3+S+R+1:1+IC"
    err = parse_error(edi(head, ung, *message("1"), "UNZ+1+IC"))
    assert (err.segment, err.tag) == (5, "UNZ") and "not closed by UNE" in err.problem
    err = parse_error(edi(head, ung, *message("1"), "UNE+1+G1", *message("2"), "UNZ+1+IC"))
    assert (err.segment, err.tag) == (6, "UNH") and "outside UNG..UNE" in err.problem
    err = parse_error(edi(head, *message("1"), ung, "UNE+0+G1", "UNZ+1+IC"))
    assert (err.segment, err.tag) == (4, "UNG")
    err = parse_error(edi(head, "UNE+0+G1", "UNZ+0+IC"))
    assert (err.segment, err.tag) == (2, "UNE") and "without a preceding UNG" in err.problem
    err = parse_error(edi(head, ung, ung, "UNZ+0+IC"))
    assert (err.segment, err.tag) == (3, "UNG") and "not closed by UNE" in err.problem
    err = parse_error(edi(head, "UNG+ORDERS+S+R+261120:1015", "UNZ+0+IC"))
    assert (err.segment, err.tag, err.element) == (2, "UNG", "5")


def test_truncated_without_unt() -> None:
    raw = edi("UNB+UNOC:3+S+R+1:1+IC", "UNH+1+ORDERS:D:96A:UN", "BGM+220+1+9", "DTM+137:2026:102")
    err = parse_error(raw)
    assert (err.segment, err.tag) == (4, "DTM")
    assert err.problem == "file ends inside message 1: no UNT after this segment"


def test_truncated_without_unz() -> None:
    err = parse_error(edi("UNB+UNOC:3+S+R+1:1+IC", *message("1")))
    assert (err.segment, err.tag) == (3, "UNT")
    assert err.problem == "file ends inside interchange IC: no UNZ after this segment"


def test_truncated_without_une() -> None:
    err = parse_error(edi("UNB+UNOC:3+S+R+1:1+IC", "UNG+O+S+R+1:1+G1", *message("1")))
    assert (err.segment, err.tag) == (4, "UNT") and "no UNE" in err.problem


def test_truncated_mid_segment() -> None:
    raw = (FIXTURES / "orders_d96a.edi").read_bytes()
    err = parse_error(raw[: raw.index(b"QTY+21:12") + 6])
    assert (err.segment, err.tag) == (18, "QTY") and "no UNT" in err.problem


def test_unh_before_unt() -> None:
    raw = edi("UNB+UNOC:3+S+R+1:1+IC", "UNH+1+ORDERS:D:96A:UN", *message("2"), "UNZ+2+IC")
    err = parse_error(raw)
    assert (err.segment, err.tag) == (3, "UNH")
    assert err.problem == "UNH found but message 1 was not closed by UNT"


def test_unb_inside_interchange() -> None:
    err = parse_error(edi("UNB+UNOC:3+S+R+1:1+IC", *message("1"), "UNB+UNOC:3+S+R+1:1+IC2"))
    assert (err.segment, err.tag) == (4, "UNB") and "not closed by UNZ" in err.problem


def test_segment_outside_message() -> None:
    err = parse_error(edi("UNB+UNOC:3+S+R+1:1+IC", "BGM+220+1+9", *message("1"), "UNZ+1+IC"))
    assert (err.segment, err.tag) == (2, "BGM")
    assert err.problem == "segment BGM outside any message"


def test_first_segment_must_be_unb() -> None:
    err = parse_error(edi("UNH+1+ORDERS:D:96A:UN", "UNT+2+1"))
    assert (err.segment, err.tag) == (1, "UNH") and "expected UNB" in err.problem
    err = parse_error(b"UNA:+.? '")
    assert err.tag == "UNA" and "no UNB" in err.problem
    err = parse_error(b"  \n")
    assert err.problem == "no UNB interchange header found"


def test_garbage_after_unz() -> None:
    err = parse_error(edi(*interchange(message("1")), "hello"))
    assert err.segment == 5 and "invalid segment tag 'hello'" in err.problem


def test_empty_segment() -> None:
    err = parse_error(b"UNB+UNOC:3+S+R+1:1+IC'UNH+1+ORDERS:D:96A:UN''UNT+2+1'UNZ+1+IC'")
    assert err.segment == 3 and "empty segment" in err.problem


@pytest.mark.parametrize("una", ["UNA:+.? ", "UNA:::? '", "UNA:A.? '", "UNA: .? '"])
def test_bad_una(una: str) -> None:
    err = parse_error((una + "UNB+UNOC:3+S+R+1:1+IC'").encode() if len(una) > 8 else una.encode())
    assert err.tag == "UNA" and err.segment is None


# --------------------------------------------------------------------------- charsets


def test_unoc_is_latin1() -> None:
    [ic] = parse((FIXTURES / "latin1_unoc.edi").read_bytes())
    assert ic.messages[0].segments[1].get(4) == "Müller Crème GmbH"


def test_unow_utf8_with_bom_tabs_and_blank_lines() -> None:
    [ic] = parse((FIXTURES / "utf8_unow_bom_tabs.edi").read_bytes())
    assert ic.syntax == "UNOW:4"
    nad = ic.messages[0].segments[1]
    assert (nad.number, nad.get(4)) == (3, "Żółw € 東京")


@pytest.mark.parametrize(
    ("syntax", "byte", "char"),
    [
        ("UNOD", b"\xa3", "\u0141"),  # L with stroke (ISO 8859-2)
        ("UNOE", b"\xc4", "\u0424"),  # Cyrillic EF (ISO 8859-5)
        ("UNOF", b"\xe1", "\u03b1"),  # Greek alpha (ISO 8859-7)
        ("UNOG", b"\xa1", "\u0126"),  # H with stroke (ISO 8859-3)
        ("UNOH", b"\xa1", "\u0104"),  # A with ogonek (ISO 8859-4)
        ("UNOI", b"\xc7", "\u0627"),  # Arabic alef (ISO 8859-6)
        ("UNOJ", b"\xe0", "\u05d0"),  # Hebrew alef (ISO 8859-8)
        ("UNOK", b"\xf0", "\u011f"),  # g with breve (ISO 8859-9)
        ("UNOC", b"\xe9", "\u00e9"),  # e acute (ISO 8859-1)
        ("UNOW", "東".encode(), "東"),
        ("UNOY", "ü".encode(), "ü"),
        ("UNOX", "ü".encode(), "ü"),  # unknown repertoire: read as UTF-8
    ],
)
def test_charset_from_syntax_identifier(syntax: str, byte: bytes, char: str) -> None:
    raw = edi(*interchange(message("1", "FTX+AAI+++x"), syntax=f"{syntax}:3"))
    [ic] = parse(raw.replace(b"+++x", b"+++" + byte))
    assert ic.messages[0].segments[1].get(4) == char


def test_non_ascii_in_unoa_names_the_segment() -> None:
    raw = edi("UNB+UNOA:3+S+R+1:1+IC", "UNH+1+ORDERS:D:96A:UN", "NAD+BY+++MÜLLER", "UNT+3+1",
              "UNZ+1+IC")
    err = parse_error(raw)
    assert (err.segment, err.tag, err.element) == (3, "NAD", "4")
    assert err.problem == "byte 0xC3 is not valid in character set UNOA (ascii)"


@pytest.mark.parametrize("syntax", ["UNOA", "UNOB"])
def test_latin1_byte_in_ascii_repertoire_is_reported(syntax: str) -> None:
    raw = edi(*interchange(message("1", "FTX+AAI+++caf#"), syntax=f"{syntax}:3"))
    err = parse_error(raw.replace(b"#", b"\xe9"))
    assert (err.segment, err.tag, err.element) == (3, "FTX", "4")
    assert err.problem == f"byte 0xE9 is not valid in character set {syntax} (ascii)"


def test_undecodable_byte_after_the_last_interchange_and_a_ctrl_z() -> None:
    raw = edi(*interchange(message("1")), una=None, term="'") + b"\x1a\xe9"
    err = parse_error(raw.replace(b"UNOC", b"UNOA"))
    assert (err.segment, err.tag, err.element) == (5, None, None)  # UNB UNH UNT UNZ, then it
    assert err.problem == "byte 0xE9 is not valid in character set UNOA (ascii)"


def test_invalid_utf8_in_unow() -> None:
    raw = edi("UNB+UNOW:3+S+R+1:1+IC", "UNH+1+ORDERS:D:96A:UN", "FTX+AAI+++caf#", "UNT+3+1",
              "UNZ+1+IC")
    err = parse_error(raw.replace(b"#", b"\xff"))
    assert (err.segment, err.tag, err.element) == (3, "FTX", "4")
    assert "0xFF" in err.problem and "UNOW" in err.problem


# --------------------------------------------------------------------------- layout


def test_whitespace_only_stripped_at_segment_boundaries() -> None:
    raw = (b"UNB+UNOC:3+S+R+1:1+IC'\r\n\t UNH+1+ORDERS:D:96A:UN'\r\n"
           b"  NAD+BY+++  two  spaces  '\r\nUNT+3+1'UNZ+1+IC'")
    [ic] = parse(raw)
    assert ic.messages[0].segments[1].get(4) == "  two  spaces  "


def test_wrapped_file_is_unwrapped() -> None:
    plain = parse((FIXTURES / "orders_d96a.edi").read_bytes())
    wrapped = parse((FIXTURES / "orders_d96a_wrapped40.edi").read_bytes())
    assert wrapped == plain


def test_wrapped_crlf_file() -> None:
    text = (FIXTURES / "orders_d96a.edi").read_text().replace("\n", "")
    raw = "\r\n".join(text[i:i + 64] for i in range(0, len(text), 64)).encode()
    assert parse(raw) == parse((FIXTURES / "orders_d96a.edi").read_bytes())


def test_equal_length_lines_ending_in_terminator_are_not_unwrapped() -> None:
    raw = (b"UNB+UNOC:3+S+R+1:1+1'\nUNH+1+ORDERS:D:96A:UN'\nNAD+BY+++ABCDEFGHIJKLM'\n"
           b"UNT+3+1'\nUNZ+1+1'\n")
    assert parse(raw)[0].messages[0].segments[1].get(4) == "ABCDEFGHIJKLM"


def test_missing_final_terminator_and_ctrl_z() -> None:
    raw = (FIXTURES / "orders_d96a.edi").read_bytes().rstrip()
    assert parse(raw[:-1])[0].control_number == "ICR0001"
    assert parse(raw[:-1] + b" \r\n\x1a")[0].control_number == "ICR0001"
    assert parse(raw + b"\r\n\x1a")[0].control_number == "ICR0001"


# --------------------------------------------------------------------------- iter_segments


def test_iter_segments_numbers_and_tags() -> None:
    segs = list(iter_segments("BGM+220+1'\n DTM+137:20261120:102'QTY+21:5", DEFAULT_DELIMITERS, 10))
    assert [(s.tag, s.number) for s in segs] == [("BGM", 10), ("DTM", 11), ("QTY", 12)]
    assert segs[1].elements == [("137", "20261120", "102")]


def test_iter_segments_tag_with_components() -> None:
    [seg] = iter_segments("LIN:1:2+5'", DEFAULT_DELIMITERS)
    assert seg.tag == "LIN" and seg.get(1) == "5"


def test_iter_segments_repetition_with_release() -> None:
    d = Delimiters(element="+", component=":", segment="'", release="?", repetition="*")
    [seg] = iter_segments("COM+a?*b:TE*c:EM'", d)
    assert seg.repetitions == {1: [("a*b", "TE"), ("c", "EM")]}
    assert seg.elements[0] == ("a*b", "TE")


def test_iter_segments_errors() -> None:
    with pytest.raises(ParseError) as info:
        list(iter_segments("BGM+1'bgm+2'", DEFAULT_DELIMITERS, 5))
    assert info.value.segment == 6 and "'bgm'" in info.value.problem


# --------------------------------------------------------------------------- robustness


def test_gc_paused_restores_state() -> None:
    assert gc.isenabled()
    with gc_paused(10**9):
        assert not gc.isenabled()
        with gc_paused(10**9):
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    with gc_paused(10):
        assert gc.isenabled()


def test_large_file_parses_with_gc_restored() -> None:
    body = [seg for i in range(5000) for seg in message(str(i), "BGM+220+1+9", "QTY+21:5:PCE")]
    raw = edi("UNB+UNOC:3+S+R+1:1+IC", *body, "UNZ+5000+IC")
    assert len(raw) > edifact.GC_PAUSE_BYTES
    assert len(parse(raw)[0].messages) == 5000
    assert gc.isenabled()
