"""Unit tests of the mapping path language: every construct, every syntax error message."""

from __future__ import annotations

import pytest

from gateway.edi.model import Segment
from gateway.mapping.paths import (Find, Pairs, PathSyntaxError, Scope, parse_component_test, parse_path,
                                   parse_range, parse_selector, parse_test, parse_values)


def seg(text: str, number: int = 0) -> Segment:
    """'NAD+BY+5412345000013::9' -> Segment (no release characters in test data)."""
    tag, *elements = text.split("+")
    return Segment(tag, [tuple(e.split(":")) for e in elements], number)


def scope(*texts: str, anchor: int | None = None) -> Scope:
    segments = [seg(t, i) for i, t in enumerate(texts, 1)]
    return Scope(segments, anchor=segments[anchor] if anchor is not None else None)


HEADER = scope(
    "BGM+220+PO1+9",
    "DTM+137:20261120:102",
    "DTM+2:20261201:102",
    "NAD+BY+111::9++Buyer",
    "NAD+SU+222::9++Seller",
    "NAD+DP+333::92",
    "NAD+BY+444::9++Second buyer",
)


def value(path: str, where: Scope = HEADER) -> str | None:
    hit = parse_path(path).lookup(where)
    return hit[0] if hit else None


# --- evaluation -------------------------------------------------------------------------------

def test_element_defaults_to_component_1():
    assert value("BGM/2") == "PO1"
    assert value("BGM/1.1") == "220"


def test_component_of_a_composite():
    assert value("DTM/1.2") == "20261120"            # first DTM
    assert value("NAD/2.3") == "9"


def test_condition_on_element_and_component():
    assert value("NAD[1=SU]/2.1") == "222"
    assert value("DTM[1.1=2]/1.2") == "20261201"


def test_condition_alternatives_take_the_first_in_document_order():
    assert value("NAD[1=DP|SU]/2.1") == "222"


def test_several_conditions_all_hold():
    assert value("NAD[1=BY,2.3=9]/4") == "Buyer"
    assert value("NAD[1=DP,2.3=9]/2.1") is None


def test_negated_condition_and_empty_value_means_absent():
    assert value("NAD[1!=BY]/2.1") == "222"
    assert value("NAD[4!=]/4") == "Buyer"            # the first NAD with a name
    assert value("NAD[4=]/2.1") == "333"             # the first NAD without one


def test_occurrence_counts_matching_segments():
    assert value("NAD[1=BY]#2/4") == "Second buyer"
    assert value("NAD#3/2.1") == "333"
    assert value("NAD[1=BY]#3/4") is None


def test_absent_segment_element_or_component_is_none():
    assert value("CUX/1.2") is None
    assert value("BGM/9") is None
    assert value("BGM/1.7") is None
    assert value("NAD[1=DP]/4") is None              # element absent (trailing empties omitted)


def test_lookup_returns_the_segment_for_error_positions():
    found, segment, label = parse_path("NAD[1=SU]/2.1").lookup(HEADER)
    assert (found, segment.number, segment.tag, label) == ("222", 5, "NAD", "2.1")


def test_position_only_path_reads_the_anchor():
    line = scope("LIN+1++4000862141404:EN", "QTY+21:5", anchor=0)
    assert value("3.1", line) == "4000862141404"
    assert value("1", line) == "1"
    assert parse_path("3.2").lookup(scope("QTY+21:5")) is None      # no anchor: nothing


def test_lookup_all_in_document_order():
    path = parse_path("NAD[1=BY]/2.1")
    assert [v for v, _ in path.lookup_all(HEADER)] == ["111", "444"]
    assert [v for v, _ in parse_path("NAD[1=BY]#2/2.1").lookup_all(HEADER)] == ["444"]
    assert parse_path("NAD[1=BY]#3/2.1").lookup_all(HEADER) == []
    assert parse_path("CUX/1").lookup_all(HEADER) == []


def test_path_exposes_tag_label_and_text():
    path = parse_path("DTM[1.1=137]/1.2")
    assert (path.tag, path.label, path.text) == ("DTM", "1.2", "DTM[1.1=137]/1.2")
    assert parse_path("BGM/2").label == "2"
    assert parse_path("2.1").tag is None


def test_x12_style_tags():
    x12 = scope("N1*BY*Acme*UL*0614141000012".replace("*", "+"), "PO1+1+24+EA")
    assert value("N1[1=BY]/4", x12) == "0614141000012"
    assert value("PO1/3", x12) == "EA"


def test_selector_alone():
    selector = parse_selector("NAD[1=SU|SE]#1")
    assert selector.select(HEADER).get(2) == "222"
    assert parse_selector("CUX").select(HEADER) is None


def test_selector_matches_one_segment():
    pack = parse_selector("HL[3=P|T]")
    assert pack.matches(seg("HL+3+2+P")) and pack.matches(seg("HL+4+3+T"))
    assert not pack.matches(seg("HL+5+4+I"))
    assert not pack.matches(seg("LIN+3+2+P"))                  # the tag must match too
    assert parse_selector("CPS").matches(seg("CPS+1"))
    assert parse_selector("HL[3!=]").matches(seg("HL+1++S")) and not parse_selector("HL[3!=]").matches(seg("HL+1"))


def test_tests_for_when():
    line = scope("LIN+1++4000862141404:EN", anchor=0)
    assert parse_test("3.2=EN|SRV").holds(line)
    assert not parse_test("3.2!=EN").holds(line)
    assert parse_test("LIN/3.1").holds(line)                        # bare path: has a value
    assert not parse_test("LIN/4").holds(line)
    assert parse_test("QTY/1=").holds(line)                         # absent segment = empty value
    assert parse_test("BGM/1=220").path.text == "BGM/1"


def test_ranges():
    assert (parse_range("PIA/2-6").first, parse_range("PIA/2-6").last) == (2, 6)
    assert parse_range("PO1/6-").last is None
    assert parse_range("PIA/4").last == 4
    assert parse_range("6-").selector is None


def test_find_prefers_the_first_listed_value_then_document_order():
    group = scope("LIN+1", "PIA+1+B-1:BP+S-1:SA", "PIA+5+I-1:IN", anchor=0)
    find = Find(parse_range("PIA/2-6"), *parse_component_test("2=IN|BP"), take=1)
    assert find.lookup(group)[0] == "I-1"                            # IN wins over an earlier BP
    assert Find(parse_range("PIA#1/2-6"), 2, ("IN", "BP"), 1).lookup(group)[0] == "B-1"   # #N narrows
    assert Find(parse_range("PIA[1=5]/2-6"), 2, ("IN", "BP"), 1).lookup(group)[0] == "I-1"
    hit = Find(parse_range("PIA/2-6"), *parse_component_test("2=SA"), take=1).lookup(group)
    assert (hit[0], hit[1].number, hit[2]) == ("S-1", 2, "3.1")
    assert Find(parse_range("PIA/2-6"), *parse_component_test("2=XX"), take=1).lookup(group) is None
    assert Find(parse_range("PIA/3-"), *parse_component_test("2=BP"), take=1).lookup(group) is None


def test_find_skips_a_match_without_the_taken_component():
    group = scope("PIA+1+:IN+B-2:BP")
    assert Find(parse_range("PIA/2-6"), 2, ("IN", "BP"), 1).lookup(group)[0] == "B-2"


def test_pairs_scan_qualifier_value_elements():
    po1 = scope("PO1+1+24+EA+1.25++VN+S-1+EN+5012345678900+UP+012345678905", anchor=0)
    hit = Pairs(parse_range("6-"), parse_values("UP|EN")).lookup(po1)
    assert (hit[0], hit[2]) == ("012345678905", "11")                # UP listed first wins
    assert Pairs(parse_range("PO1/6-"), ("EN",)).lookup(po1)[0] == "5012345678900"
    assert Pairs(parse_range("6-9"), ("UP",)).lookup(po1) is None     # range stops before UP
    assert Pairs(parse_range("6-"), ("BP",)).lookup(po1) is None
    # A qualifier in the last element has no value after it.
    assert Pairs(parse_range("6-"), ("EA",)).lookup(scope("PO1+1+2+X+Y+Z+EA", anchor=0)) is None


def test_component_test_and_values_keep_their_order():
    assert parse_component_test("2=IN|BP") == (2, ("IN", "BP"))
    assert parse_values("UK|EN|UP") == ("UK", "EN", "UP")


# --- syntax errors ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, problem, position", [
    ("", "empty path", 1),
    ("nad/1", "expected a segment tag (a capital letter, then 1-2 capital letters or digits)", 1),
    ("1AD/1", None, None),       # a position-only path: valid, checked below
    ("N/1", "a segment tag has at least 2 characters", 1),
    ("NADX/1", "a segment tag has at most 3 characters", 1),
    ("NAD", "expected '/' then an element number", 4),
    ("NAD/", "expected an element number", 5),
    ("NAD/0", "an element number must be 1 or more", 5),
    ("NAD/2.", "expected a component number", 7),
    ("NAD/2.0", "a component number must be 1 or more", 7),
    ("NAD/2x", "unexpected 'x'", 6),
    ("NAD[=BY]/1", "expected an element number", 5),
    ("NAD[1BY]/1", "expected '=' or '!='", 6),
    ("NAD[1=BY/2", "expected ',' or ']'", 9),
    ("NAD[1=BY;2=X]/1", "expected ',' or ']'", 9),
    ("NAD[1=B Y]/1", "expected ',' or ']'", 8),
    ("NAD#/1", "expected an occurrence number", 5),
    ("NAD#0/1", "an occurrence number must be 1 or more", 5),
])
def test_path_syntax_errors(text, problem, position):
    if problem is None:
        with pytest.raises(PathSyntaxError) as info:
            parse_path(text)
        assert info.value.problem == "unexpected 'A'"
        return
    with pytest.raises(PathSyntaxError) as info:
        parse_path(text)
    assert info.value.problem == problem
    assert info.value.position == position
    assert str(info.value) == f"bad path {text!r}: {problem} at position {position}"


def test_a_path_must_be_a_string():
    with pytest.raises(PathSyntaxError, match="a path must be a string"):
        parse_path(12)  # type: ignore[arg-type]


@pytest.mark.parametrize("parse, text, problem", [
    (parse_range, "PIA/6-2", "the range ends before it starts"),
    (parse_range, "PIA/x", "expected an element number"),
    (parse_range, "PIA", "expected '/' then an element range like 2-6"),
    (parse_range, "PIA/2-6-", "unexpected '-'"),
    (parse_selector, "NAD[1=BY]/2", "unexpected '/'"),
    (parse_test, "LIN/3.2==EN", "unexpected '='"),
    (parse_test, "LIN/3.2<EN", "expected '=' or '!='"),
    (parse_test, "LIN/3.2=E N", "unexpected ' '"),
    (parse_component_test, "IN|BP", "expected a component number"),
    (parse_component_test, "2!=IN", "expected '='"),
    (parse_values, "UP||EN", "empty value in the list"),
])
def test_other_syntax_errors(parse, text, problem):
    with pytest.raises(PathSyntaxError) as info:
        parse(text)
    assert info.value.problem == problem
