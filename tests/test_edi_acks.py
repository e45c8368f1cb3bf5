"""gateway.edi.acks / acks_read: TA1, 997, 999 and CONTRL we write (read back), and partners' acks we read."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from gateway.edi import read
from gateway.edi.acks import Checked, ack_envelope, contrl, failed, issue_from_error, x12_acks
from gateway.edi.acks_read import AckReport, read_ack
from gateway.edi.model import Interchange, Issue
from gateway.edi.serialize import render
from gateway.errors import MappingError, ParseError

AT = datetime(2026, 11, 27, 6, 5, tzinfo=timezone.utc)
SAMPLES = Path("/work/shared/edi-samples")
ISA_IN = "ISA*00*          *00*          *ZZ*ACME           *ZZ*US             *261126*1200*U*{v}*000000042*1*P*>~\n"
ISA_OUT = "ISA*00*          *00*          *ZZ*US             *ZZ*ACME           *261127*0605*{r}*{v}*000000005*0*P*>~\n"


def isa_out(version: str) -> str:
    """Our ISA: ISA11 is the repetition separator from 00402 on, "U" before."""
    return ISA_OUT.format(v=version, r="U" if version < "00402" else "^")


def numbers(level: str) -> int:
    """next_number giving interchange 5, group 6, message 7 (then counting on per level)."""
    numbers.issued[level] = numbers.issued.get(level, {"interchange": 4, "group": 5, "message": 6}[level]) + 1
    return numbers.issued[level]


numbers.issued = {}  # type: ignore[attr-defined]


@pytest.fixture(autouse=True)
def _fresh_numbers() -> None:
    numbers.issued.clear()  # type: ignore[attr-defined]


def one(raw: str | bytes) -> Interchange:
    fmt, interchanges = read(raw.encode() if isinstance(raw, str) else raw)
    assert len(interchanges) == 1
    return interchanges[0]


def render_x12(checked: Checked, kind: str = "997", ta1: bool | None = None) -> str:
    acks = x12_acks(checked, kind=kind, ta1=ta1)
    return render(ack_envelope(checked, AT, leading=acks.leading), acks.messages, numbers).raw.decode()


def render_contrl(checked: Checked, **kw: bool) -> str:
    message = contrl(checked, **kw)
    assert message is not None
    return render(ack_envelope(checked, AT), [message], numbers).raw.decode()


PO_850 = (ISA_IN.format(v="00401") + "GS*PO*ACME*US*20261126*1200*7*X*004010~\nST*850*0001~\n"
          "BEG*00*SA***20261126~\nPO1*1*10*EA*9.5**BP*X1~\nCTT*1~\nSE*5*0001~\nGE*1*7~\nIEA*1*000000042~\n")
BEG03_MISSING = Issue("element_missing", "BEG03 purchase order number is missing", "BEG", segment=4, position=2,
                      element=3, message="0001")


# --------------------------------------------------------------------------- X12 we write


def test_997_for_an_850_missing_beg03_rejects_it_with_ak3_ak4_and_reads_back() -> None:
    inbound = one(PO_850)
    checked = Checked(inbound)
    checked.add(inbound.messages[0], [BEG03_MISSING])
    text = render_x12(checked)
    assert text == (isa_out("00401") + "GS*FA*US*ACME*20261127*0605*6*X*004010~\n"
                    "ST*997*0007~\nAK1*PO*7~\nAK2*850*0001~\nAK3*BEG*2**8~\nAK4*3**1~\nAK5*R*5~\n"
                    "AK9*R*1*1*0~\nSE*8*0007~\nGE*1*6~\nIEA*1*000000005~\n")
    back = one(text)
    assert [m.type for m in back.messages] == ["997"]
    assert read_ack(back) == [
        AckReport(None, "7", "0001", "rejected", "850 rejected; 5 one or more segments in error; segment BEG at "
                  "position 2: 8 segment has data element errors; BEG element 3: 1 required data element missing",
                  "997"),
        AckReport(None, "7", None, "rejected", "group PO rejected; 0 of 1 received transaction sets accepted "
                  "(1 included)", "997")]


def test_validator_issues_drive_the_same_997_as_the_hand_written_issue() -> None:
    validate = pytest.importorskip("gateway.edi.validate").validate
    inbound = one(PO_850)
    by_hand, by_validator = Checked(inbound), Checked(inbound)
    by_hand.add(inbound.messages[0], [BEG03_MISSING])
    by_validator.add(inbound.messages[0], validate(inbound.messages[0], inbound))
    assert x12_acks(by_hand).messages == x12_acks(by_validator).messages


def test_positive_997_per_group_keeps_each_group_version_and_ak103_only_from_5010() -> None:
    raw = (ISA_IN.format(v="00401") + "GS*PO*ACME*US*20261126*1200*7*X*004010~\nST*850*0001~\nBEG*00*SA*P1**20261126~\n"
           "SE*3*0001~\nST*850*0002~\nBEG*00*SA*P2**20261126~\nSE*3*0002~\nGE*2*7~\n"
           "GS*IN*ACME*US*20261126*1200*8*X*005010~\nST*810*0003*005010X999~\nBIG*20261126*INV1~\nSE*3*0003~\n"
           "GE*1*8~\nIEA*2*000000042~\n")
    text = render_x12(Checked(one(raw)))
    assert text == (isa_out("00401") + "GS*FA*US*ACME*20261127*0605*6*X*004010~\n"
                    "ST*997*0007~\nAK1*PO*7~\nAK2*850*0001~\nAK5*A~\nAK2*850*0002~\nAK5*A~\nAK9*A*2*2*2~\n"
                    "SE*8*0007~\nGE*1*6~\n"
                    "GS*FA*US*ACME*20261127*0605*7*X*005010~\n"
                    "ST*997*0008~\nAK1*IN*8*005010~\nAK2*810*0003*005010X999~\nAK5*A~\nAK9*A*1*1*1~\n"
                    "SE*6*0008~\nGE*1*7~\nIEA*2*000000005~\n")
    assert {(r.group, r.message, r.status) for r in read_ack(one(text))} == {
        ("7", "0001", "accepted"), ("7", "0002", "accepted"), ("7", None, "accepted"),
        ("8", "0003", "accepted"), ("8", None, "accepted")}


def test_999_for_5010_with_ik3_ik4_partial_acceptance_and_997_for_an_older_group() -> None:
    raw = (ISA_IN.format(v="00501") + "GS*PO*ACME*US*20261126*1200*9*X*005010~\nST*850*0001~\n"
           "BEG*00*SA*P1**2026X126~\nSE*3*0001~\nST*850*0002~\nBEG*00*SA*P2**20261126~\nSE*3*0002~\nGE*2*9~\n"
           "GS*PO*ACME*US*20261126*1200*10*X*004010~\nST*850*0003~\nBEG*00*SA*P3**20261126~\nSE*3*0003~\n"
           "GE*1*10~\nIEA*2*000000042~\n")
    inbound = one(raw)
    checked = Checked(inbound)
    checked.add(inbound.messages[0], [Issue("element_invalid_type", "'2026X126' is not a valid date", "BEG",
                                            position=2, element=5, value="2026X126")])
    text = render_x12(checked, kind="999")
    assert text == (isa_out("00501") + "GS*FA*US*ACME*20261127*0605*6*X*005010X231~\n"
                    "ST*999*0007*005010X231~\nAK1*PO*9*005010~\nAK2*850*0001~\nIK3*BEG*2**8~\nIK4*5**8*2026X126~\n"
                    "IK5*R*5~\nAK2*850*0002~\nIK5*A~\nAK9*P*2*2*1~\nSE*10*0007~\nGE*1*6~\n"
                    "GS*FA*US*ACME*20261127*0605*7*X*004010~\n"
                    "ST*997*0008~\nAK1*PO*10~\nAK2*850*0003~\nAK5*A~\nAK9*A*1*1*1~\nSE*6*0008~\nGE*1*7~\n"
                    "IEA*2*000000005~\n")
    reports = read_ack(one(text))
    assert [(r.kind, r.group, r.message, r.status) for r in reports] == [
        ("999", "9", "0001", "rejected"), ("999", "9", "0002", "accepted"), ("999", "9", None, "partially_accepted"),
        ("997", "10", "0003", "accepted"), ("997", "10", None, "accepted")]
    assert "BEG element 5: 8 invalid date (value '2026X126')" in reports[0].detail


def test_tolerated_issues_give_ak5_e_and_the_group_stays_accepted() -> None:
    inbound = one(PO_850)
    checked = Checked(inbound)
    checked.add(inbound.messages[0], [BEG03_MISSING], tolerate=True)
    assert "AK5*E*5~\nAK9*E*1*1*1~" in render_x12(checked)


def test_positive_ta1_echoes_isa13_date_time_before_the_groups() -> None:
    text = render_x12(Checked(one(PO_850)), ta1=True)
    assert text.splitlines()[1] == "TA1*000000042*261126*1200*A*000~"
    back = one(text)
    assert read_ack(back)[0] == AckReport("000000042", None, None, "accepted", "accepted; 000 no error", "TA1")


def test_unknown_functional_group_id_is_a_mapping_error_not_a_wrong_ack() -> None:
    inbound = one(PO_850)
    inbound.messages[0].group_id = ""
    inbound.messages[0].type = "123"
    with pytest.raises(MappingError) as info:
        x12_acks(Checked(inbound))
    assert info.value.tag == "AK1"


# --------------------------------------------------------------------------- X12 refused files


def refused(raw: str) -> list[Checked]:
    with pytest.raises(ParseError) as info:
        read(raw.encode())
    return failed(raw.encode(), info.value)


def test_bad_se_count_gives_ak5_r_4_and_ak9_r_and_ta1_r_024() -> None:
    raw = PO_850.replace("SE*5*0001", "SE*6*0001")
    [checked] = refused(raw)
    assert checked.fault is not None and (checked.fault.level, checked.fault.kind) == ("message", "count")
    text = render_x12(checked, ta1=True)
    assert text == (isa_out("00401") + "TA1*000000042*261126*1200*R*024~\n"
                    "GS*FA*US*ACME*20261127*0605*6*X*004010~\nST*997*0007~\nAK1*PO*7~\nAK2*850*0001~\n"
                    "AK5*R*4~\nAK9*R*1*1*0~\nSE*6*0007~\nGE*1*6~\nIEA*1*000000005~\n")
    assert [r.status for r in read_ack(one(text))] == ["rejected", "rejected", "rejected"]


def test_bad_ge_count_reports_the_declared_count_and_ak905_5() -> None:
    [checked] = refused(PO_850.replace("GE*1*7", "GE*3*7"))
    assert "AK1*PO*7~\nAK9*R*3*1*0*5~" in render_x12(checked)


def test_ge_control_number_mismatch_is_ak905_4() -> None:
    [checked] = refused(PO_850.replace("GE*1*7", "GE*1*8"))
    assert "AK9*R*1*1*0*4~" in render_x12(checked)


def test_iea_control_number_mismatch_is_only_a_ta1_r_001() -> None:
    [checked] = refused(PO_850.replace("IEA*1*000000042", "IEA*1*000000043"))
    text = render_x12(checked)   # ta1=None: written because the interchange envelope is at fault
    assert text == isa_out("00401") + "TA1*000000042*261126*1200*R*001~\nIEA*0*000000005~\n"


def test_unreadable_isa_terminator_is_ta1_r_004() -> None:
    [checked] = refused(PO_850.replace("*P*>~\n", "*P*>A\n", 1))   # a letter cannot end segments
    assert render_x12(checked) == isa_out("00401") + "TA1*000000042*261126*1200*R*004~\nIEA*0*000000005~\n"


def test_file_cut_inside_a_transaction_set_is_trailer_missing_at_each_level() -> None:
    [checked] = refused(PO_850.split("CTT*1~")[0])
    text = render_x12(checked, ta1=True)
    assert "AK2*850*0001~\nAK5*R*2~\nAK9*R*1*1*0*3~" in text        # no SE, no GE
    assert "TA1*000000042*261126*1200*R*023~" in text                # premature end of file


def test_mailbag_with_a_broken_second_interchange_rejects_the_first_as_sibling() -> None:
    second = PO_850.replace("000000042", "000000043").replace("SE*5*0001", "SE*9*0001")
    first, broken = refused(PO_850 + second)
    assert first.fault is not None and first.fault.kind == "sibling"
    assert broken.interchange is not None and broken.interchange.control_number == "000000043"
    assert "AK9*R*1*1*0~" in render_x12(first) and "AK5*R*4~" in render_x12(broken)


# --------------------------------------------------------------------------- EDIFACT CONTRL

ORDERS = ("UNA:+.? '\nUNB+UNOC:3+5412345000013:14+4012345000009:14+261126:1200+IC42'\n"
          "UNH+M1+ORDERS:D:96A:UN:EAN008'\nBGM+220+PO1+9'\nDTM+137:20261126:102'\nUNT+4+M1'\n"
          "UNH+M2+ORDERS:D:96A:UN:EAN008'\nBGM+220+PO2+9'\nDTM+137:2026X126:102'\nUNT+4+M2'\nUNZ+2+IC42'\n")
CONTRL_HEAD = ("UNA:+.? '\nUNB+UNOC:3+4012345000009:14+5412345000013:14+261127:0605+5'\n"
               "UNH+7+CONTRL:D:3:UN'\n")


def test_positive_contrl_syntax_3_acknowledges_interchange_and_each_message() -> None:
    text = render_contrl(Checked(one(ORDERS)))
    assert text == (CONTRL_HEAD + "UCI+IC42+5412345000013:14+4012345000009:14+7'\n"
                    "UCM+M1+ORDERS:D:96A:UN:EAN008+7'\nUCM+M2+ORDERS:D:96A:UN:EAN008+7'\nUNT+5+7'\nUNZ+1+5'\n")
    assert [(r.interchange, r.message, r.status) for r in read_ack(one(text))] == [
        ("IC42", None, "accepted"), ("IC42", "M1", "accepted"), ("IC42", "M2", "accepted")]


def test_received_only_contrl_is_a_bare_uci_8_and_syntax_4_uses_contrl_4_1() -> None:
    inbound = one(ORDERS.replace("UNOC:3", "UNOC:4").replace("261126:1200", "20261126:1200"))
    text = render_contrl(Checked(inbound), received_only=True)
    assert "UNH+7+CONTRL:4:1:UN'\nUCI+IC42+5412345000013:14+4012345000009:14+8'\nUNT+3+7'" in text
    assert read_ack(one(text)) == [AckReport("IC42", None, None, "accepted", "interchange received", "CONTRL")]


def test_negative_contrl_names_segment_and_element_with_0085_codes() -> None:
    inbound = one(ORDERS)
    checked = Checked(inbound)
    checked.add(inbound.messages[1], [
        Issue("element_invalid_type", "'2026X126' is not a valid date", "DTM", position=3, element=1, component=2),
        Issue("segment_unexpected", "FTX not allowed here", "FTX", position=4)])
    text = render_contrl(checked, received_only=True)   # errors are always reported in full
    assert text == (CONTRL_HEAD + "UCI+IC42+5412345000013:14+4012345000009:14+7'\n"
                    "UCM+M1+ORDERS:D:96A:UN:EAN008+7'\nUCM+M2+ORDERS:D:96A:UN:EAN008+4'\nUCS+3'\nUCD+12+1:2'\n"
                    "UCS+4+15'\nUNT+8+7'\nUNZ+1+5'\n")
    reports = read_ack(one(text))
    assert [(r.message, r.status) for r in reports] == [(None, "partially_accepted"), ("M1", "accepted"),
                                                       ("M2", "rejected")]
    assert reports[2].detail == ("ORDERS rejected; segment at position 3; element 1.2: 12 invalid value; "
                                 "segment at position 4: 15 not supported in this position")


def test_grouped_interchange_gets_ucf_per_group() -> None:
    raw = ("UNB+UNOC:3+S:ZZZ+R:ZZZ+261126:1200+9'\nUNG+ORDERS+S+R+261126:1200+G1+UN+D:96A'\n"
           "UNH+1+ORDERS:D:96A:UN'\nBGM+220+PO1+9'\nUNT+3+1'\nUNE+1+G1'\nUNZ+1+9'\n")
    text = render_contrl(Checked(one(raw)))
    assert "UCI+9+S:ZZZ+R:ZZZ+7'\nUCF+G1+++7'\nUCM+1+ORDERS:D:96A:UN+7'\n" in text
    assert [(r.group, r.message, r.status) for r in read_ack(one(text))] == [
        (None, None, "accepted"), ("G1", None, "accepted"), ("G1", "1", "accepted")]


def test_refused_unt_count_gives_uci_4_and_ucm_4_with_code_29() -> None:
    [checked] = refused(ORDERS.replace("UNT+4+M2", "UNT+5+M2"))
    text = render_contrl(checked)
    assert text == (CONTRL_HEAD + "UCI+IC42+5412345000013:14+4012345000009:14+4'\n"
                    "UCM+M2+ORDERS:D:96A:UN:EAN008+4+29+UNT+1'\nUNT+4+7'\nUNZ+1+5'\n")
    assert [r.status for r in read_ack(one(text))] == ["rejected", "rejected"]


def test_refused_unz_reference_is_uci_4_code_28_at_unz_element_2() -> None:
    [checked] = refused(ORDERS.replace("UNZ+2+IC42", "UNZ+2+IC43"))
    assert "UCI+IC42+5412345000013:14+4012345000009:14+4+28+UNZ+2'\nUNT+3+7'" in render_contrl(checked)


def test_refused_file_cut_inside_a_message_misses_unt_and_unz() -> None:
    [checked] = refused(ORDERS.split("UNT+4+M2")[0])
    assert "UCI+IC42+5412345000013:14+4012345000009:14+4+13+UNZ'\nUCM+M2+ORDERS:D:96A:UN:EAN008+4+13+UNT'\n" \
        in render_contrl(checked)


def test_character_outside_unoa_is_reported_at_its_segment_with_code_21() -> None:
    raw = ORDERS.replace("UNOC", "UNOA").replace("BGM+220+PO2+9", "BGM+220+PÖ2+9")
    with pytest.raises(ParseError) as info:
        read(raw.encode("latin-1"))
    [checked] = failed(raw.encode("latin-1"), info.value)
    assert "UCM+M2+ORDERS:D:96A:UN:EAN008+4'\nUCS+2+21'\n" in render_contrl(checked)


def test_unaddressable_input_gives_no_ack() -> None:
    assert failed(b"UNB+UNOC:3+S+R+261126:1200'", ParseError("interchange control reference is missing",
                                                                segment=1, tag="UNB", element="5")) == []


def test_issue_from_a_mapping_error_locates_it_in_the_message() -> None:
    inbound = one(ORDERS)
    error = MappingError("order number is required", segment=7, tag="BGM", element="2.1")   # M2's BGM
    assert issue_from_error(error, inbound.messages[1]) == Issue(
        "partner_rule", "order number is required", "BGM", segment=7, position=2, element=2, component=1,
        message="M2")


# --------------------------------------------------------------------------- acks partners send


def sample(name: str) -> bytes:
    path = SAMPLES / name
    if not path.exists():
        pytest.skip(f"{path} absent")
    return path.read_bytes()


def test_sample_997_004010vics_accepts_855_1294_in_group_10001() -> None:
    reports = read_ack(one(sample("x12_997_004010vics_nak0x15_oneline__botsplugins.x12")))
    assert [(r.kind, r.interchange, r.group, r.message, r.status) for r in reports] == [
        ("997", None, "10001", "1294", "accepted"), ("997", None, "10001", None, "accepted")]


def test_sample_997_005010_rejects_837_0021_for_nm1_element_8() -> None:
    reports = read_ack(one(sample("x12_997_005010__staedi.x12")))
    assert [(r.group, r.message, r.status) for r in reports] == [("000001", "0021", "rejected"),
                                                                ("000001", None, "rejected")]
    assert reports[0].detail == ("837 rejected; 5 one or more segments in error; segment NM1 at position 8: "
                                 "8 segment has data element errors; NM1 element 8: 7 invalid code value "
                                 "(value 'MI')")


def test_sample_999_accepts_0001_rejects_0002_and_0003_group_partially_accepted() -> None:
    reports = read_ack(one(sample("x12_999_005010x231__staedi.x12")))
    assert [(r.group, r.message, r.status) for r in reports] == [
        ("17456", "0001", "accepted"), ("17456", "0002", "rejected"), ("17456", "0003", "rejected"),
        ("17456", None, "partially_accepted")]
    assert "segment CLM at position 22: 8 segment has data element errors" in reports[1].detail
    assert "CLM element 2: 1 required data element missing" in reports[1].detail
    assert "segment REF at position 57: 3 required segment missing" in reports[2].detail


def test_sample_aperak_names_order_t0000000015_and_carries_no_error() -> None:
    [report] = read_ack(one(sample("edifact_aperak_d96a_crlf__botsplugins.edi")))
    assert report == AckReport(None, None, None, "accepted", "RFF ON T0000000015", "APERAK", "T0000000015")


def test_sample_aperak_with_a_wrong_unt_count_gets_a_negative_contrl() -> None:
    raw = sample("edifact_aperak_d96a_syntax4__pydifact.edi")   # UNT says 8, the message has 7 segments
    with pytest.raises(ParseError) as info:
        read(raw)
    [checked] = failed(raw, info.value)
    message = contrl(checked)
    assert message is not None and message.version == "4:1"
    assert [str(s.tag) + repr(s.elements) for s in message.body] == [
        "UCI" + repr([("000000005",), ("RECEIVERID", ""), ("SENDERID", ""), ("4",)]),   # its UNB S002, S003
        "UCM" + repr([("1",), ("APERAK", "D", "96A", "UN"), ("4",), ("29",), ("UNT",), ("1", "")])]


def test_aperak_status_follows_bgm_1225_then_erc() -> None:
    def aperak(bgm: str, extra: str = "") -> AckReport:
        raw = (f"UNB+UNOC:3+S+R+261126:1200+1'\nUNH+1+APERAK:D:96A:UN'\nBGM+{bgm}'\nRFF+ACW:M7'\n{extra}"
               f"UNT+{4 + extra.count(chr(10))}+1'\nUNZ+1+1'\n")
        [report] = read_ack(one(raw))
        return report
    assert aperak("12E::9+A1+27").status == "rejected"
    assert aperak("12E::9+A1+29", "ERC+186::92'\n").status == "accepted"
    rejected = aperak("12E::9+A1+9", "ERC+186::92'\nFTX+AAO+++duplicate invoice'\n")
    assert (rejected.message, rejected.status, rejected.detail) == ("M7", "rejected",
                                                                   "RFF ACW M7; error 186; duplicate invoice")


# --------------------------------------------------------------------------- our acks against the validator


def test_our_997_999_and_contrl_pass_the_structure_validator() -> None:
    validate = pytest.importorskip("gateway.edi.validate").validate
    inbound = one(PO_850.replace("00401", "00501").replace("004010", "005010"))
    checked = Checked(inbound)
    checked.add(inbound.messages[0], [BEG03_MISSING])
    orders = one(ORDERS)
    negative = Checked(orders)
    negative.add(orders.messages[1], [Issue("element_too_long", "too long", "DTM", position=3, element=1,
                                            component=2)])
    written = [render_x12(checked, "997"), render_x12(checked, "999"), render_contrl(negative),
               render_contrl(Checked(orders), received_only=True)]
    for text in written:
        back = one(text)
        for message in back.messages:
            assert validate(message, back) == [], text
