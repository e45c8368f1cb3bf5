"""gateway.edi.serialize: segments escaped per delimiters, envelopes with counts and caller-issued control numbers."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from gateway.edi import read
from gateway.edi.model import Delimiters, Party, Segment
from gateway.edi.serialize import EDIFACT_DELIMITERS, Envelope, OutMessage, render, segment_text
from gateway.errors import MappingError

AT = datetime(2026, 11, 27, 6, 5, tzinfo=timezone.utc)


class Counter:
    """next_number as the store would give it: per level, from 1, remembering what it issued."""

    def __init__(self, start: int = 1) -> None:
        self.next = {"interchange": start, "group": start, "message": start}
        self.issued: list[tuple[str, int]] = []

    def __call__(self, level: str) -> int:
        value = self.next[level]
        self.next[level] += 1
        self.issued.append((level, value))
        return value


def seg(tag: str, *elements: str | tuple[str, ...]) -> Segment:
    return Segment(tag, [e if isinstance(e, tuple) else (e,) for e in elements])


def test_edifact_values_get_the_release_character_before_every_delimiter() -> None:
    text = segment_text(seg("FTX", "AAI", "", "", ("a+b", "c:d", "e'f?g")), EDIFACT_DELIMITERS)
    assert text == "FTX+AAI+++a?+b:c?:d:e?'f??g'"


def test_trailing_empty_elements_and_components_are_left_out() -> None:
    assert segment_text(seg("NAD", "BY", ("123", "", ""), "", ""), EDIFACT_DELIMITERS) == "NAD+BY+123'"


def test_x12_value_holding_a_delimiter_is_an_error_naming_segment_and_element() -> None:
    d = Delimiters(element="*", component=">", segment="~")
    with pytest.raises(MappingError) as info:
        segment_text(seg("N1", "BY", "Smith*Sons"), d)
    assert info.value.tag == "N1" and info.value.element == "2"
    assert "'*'" in str(info.value)


def test_repeated_element_uses_the_repetition_separator() -> None:
    s = seg("ABC", "x", "a1")
    s.repetitions[2] = [("a1",), ("a2", "b2")]
    d = Delimiters(element="+", component=":", segment="'", release="?", repetition="*")
    assert segment_text(s, d) == "ABC+x+a1*a2:b2'"


def test_edifact_interchange_has_una_unb_counts_and_issued_numbers() -> None:
    counter = Counter(start=41)
    body = [seg("BGM", "380", "INV1", "9"), seg("DTM", ("137", "20261127", "102"))]
    rendered = render(Envelope("edifact", Party("5412345000013", "14"), Party("4012345000009", "14"), AT),
                      [OutMessage("INVOIC", "D96A", body, agency="EAN008"), OutMessage("INVOIC", "D96A", body)],
                      counter)
    assert rendered.raw.decode() == (
        "UNA:+.? '\n"
        "UNB+UNOC:3+5412345000013:14+4012345000009:14+261127:0605+41'\n"
        "UNH+41+INVOIC:D:96A:UN:EAN008'\nBGM+380+INV1+9'\nDTM+137:20261127:102'\nUNT+4+41'\n"
        "UNH+42+INVOIC:D:96A:UN'\nBGM+380+INV1+9'\nDTM+137:20261127:102'\nUNT+4+42'\n"
        "UNZ+2+41'\n")
    assert (rendered.interchange, rendered.groups, rendered.messages) == ("41", [], ["41", "42"])
    assert counter.issued == [("interchange", 41), ("message", 41), ("message", 42)]


def test_edifact_syntax_4_groups_test_flag_and_ack_request_read_back() -> None:
    body = [seg("BGM", "220", "PO+1", "9")]
    rendered = render(Envelope("edifact", Party("SENDER", "ZZZ"), Party("RECEIVER", "ZZZ"), AT, syntax="UNOW:4",
                               groups=True, test=True, ack_requested=True),
                      [OutMessage("ORDERS", "D01B", body), OutMessage("ORDERS", "D01B", body),
                       OutMessage("INVOIC", "D01B", body)], Counter())
    text = rendered.raw.decode()
    assert text.startswith("UNA:+.?*'\nUNB+UNOW:4+SENDER:ZZZ+RECEIVER:ZZZ+20261127:0605+1++++1++1'\n")
    assert "UNG+ORDERS+SENDER:ZZZ+RECEIVER:ZZZ+20261127:0605+1+UN+D:01B'" in text
    assert "UNE+2+1'" in text and "UNE+1+2'" in text and text.endswith("UNZ+2+1'\n")
    fmt, [interchange] = read(rendered.raw)
    assert fmt == "edifact" and interchange.test
    assert [(m.type, m.reference, m.group_reference) for m in interchange.messages] == [
        ("ORDERS", "1", "1"), ("ORDERS", "2", "1"), ("INVOIC", "3", "2")]
    assert interchange.messages[0].body[0].get(2) == "PO+1"


def test_edifact_character_outside_the_declared_set_is_an_error() -> None:
    body = [seg("NAD", "BY", "", "", "Müller")]
    with pytest.raises(MappingError) as info:
        render(Envelope("edifact", Party("A"), Party("B"), AT, syntax="UNOA:2"), [OutMessage("ORDERS", "D96A", body)],
               Counter())
    assert info.value.tag == "NAD" and "UNOA" in str(info.value)
    ok = render(Envelope("edifact", Party("A"), Party("B"), AT, syntax="UNOC:3"), [OutMessage("ORDERS", "D96A", body)],
                Counter())
    assert "Müller".encode("latin-1") in ok.raw


def test_x12_interchange_groups_by_functional_id_and_version() -> None:
    beg = [seg("BEG", "00", "SA", "PO1", "", "20261127")]
    big = [seg("BIG", "20261127", "INV1")]
    rendered = render(Envelope("x12", Party("OURCO", "ZZ"), Party("ACMEUS", "01"), AT, ack_requested=True),
                      [OutMessage("850", "004010", beg), OutMessage("850", "004010", beg),
                       OutMessage("810", "004010", big)], Counter(start=7))
    assert rendered.raw.decode() == (
        "ISA*00*          *00*          *ZZ*OURCO          *01*ACMEUS         *261127*0605*U*00401*000000007*1*P*>~\n"
        "GS*PO*OURCO*ACMEUS*20261127*0605*7*X*004010~\n"
        "ST*850*0007~\nBEG*00*SA*PO1**20261127~\nSE*3*0007~\n"
        "ST*850*0008~\nBEG*00*SA*PO1**20261127~\nSE*3*0008~\n"
        "GE*2*7~\n"
        "GS*IN*OURCO*ACMEUS*20261127*0605*8*X*004010~\n"
        "ST*810*0009~\nBIG*20261127*INV1~\nSE*3*0009~\n"
        "GE*1*8~\n"
        "IEA*2*000000007~\n")
    assert (rendered.interchange, rendered.groups, rendered.messages) == ("000000007", ["7", "8"],
                                                                          ["0007", "0008", "0009"])


def test_x12_005010_has_a_repetition_separator_and_st03() -> None:
    rendered = render(Envelope("x12", Party("OURCO", "ZZ"), Party("ACMEUS", "ZZ"), AT),
                      [OutMessage("999", "005010X231A1", [seg("AK1", "PO", "12", "005010")],
                                  implementation="005010X231A1")], Counter())
    text = rendered.raw.decode()
    assert "*^*00501*000000001*0*P*>~" in text
    assert "GS*FA*OURCO*ACMEUS*20261127*0605*1*X*005010X231A1~" in text
    assert "ST*999*0001*005010X231A1~" in text
    fmt, [interchange] = read(rendered.raw)
    assert interchange.delimiters.repetition == "^"
    assert interchange.messages[0].type == "999"


def test_x12_ta1_is_written_before_the_groups_and_an_empty_interchange_counts_zero() -> None:
    ta1 = seg("TA1", "000000123", "261126", "2359", "A", "000")
    rendered = render(Envelope("x12", Party("OURCO", "ZZ"), Party("ACMEUS", "ZZ"), AT, leading=[ta1]), [], Counter())
    lines = rendered.raw.decode().splitlines()
    assert lines[1:] == ["TA1*000000123*261126*2359*A*000~", "IEA*0*000000001~"]
    # The reader hands a TA1 on as an interchange-level pseudo-message of its own.
    assert [(m.type, m.reference) for m in read(rendered.raw)[1][0].messages] == [("TA1", "000000123")]


def test_x12_isa_id_too_long_is_an_error() -> None:
    with pytest.raises(MappingError) as info:
        render(Envelope("x12", Party("A" * 16, "ZZ"), Party("B", "ZZ"), AT),
               [OutMessage("850", "004010", [])], Counter())
    assert (info.value.tag, info.value.element) == ("ISA", "6")


def test_control_numbers_outside_the_standard_range_are_refused() -> None:
    with pytest.raises(MappingError, match="outside 1..999999999"):
        render(Envelope("x12", Party("A", "ZZ"), Party("B", "ZZ"), AT), [OutMessage("850", "004010", [])],
               lambda level: 1_000_000_000)


def test_unknown_transaction_set_needs_a_group_id() -> None:
    with pytest.raises(MappingError) as info:
        render(Envelope("x12", Party("A", "ZZ"), Party("B", "ZZ"), AT), [OutMessage("123", "004010", [])], Counter())
    assert (info.value.tag, info.value.element) == ("GS", "1")
    ok = render(Envelope("x12", Party("A", "ZZ"), Party("B", "ZZ"), AT),
                [OutMessage("123", "004010", [], group_id="ZZ")], Counter())
    assert b"GS*ZZ*" in ok.raw
