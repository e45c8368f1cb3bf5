"""Acknowledgments we send: TA1, 997, 999 and CONTRL for one checked inbound interchange (pure, no I/O).

The pipeline describes what it found in a ``Checked`` (the parsed interchange and each
message's ``Issue`` list, or, for bytes the reader refused, ``failed(raw, error)``, which
recovers the envelope around the ``ParseError``); ``x12_acks`` / ``contrl`` turn that into
envelope pieces and ``OutMessage``s for ``serialize.render``, and ``ack_envelope`` addresses
the reply. Rules are translated into codes by one table per standard (``X12_CODES``,
``EDIFACT_CODES``) so validators name rules, never codes.

CONTRL version: syntax 1-3 interchanges get ``CONTRL:D:3:UN`` (the JWG1 CONTRL for syntax 3,
revision of 1997; ``2:2`` is the older EANCOM 1997 one), syntax 4 gets ``CONTRL:4:1:UN``
(ISO 9735-1:2002). 997s are written in the version of the group they answer (004010 for
004010, 005010 for 005010); a 999 (005010X231) answers only 005010+ groups, older groups
get a 997 even when the partner asked for 999s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from gateway.edi.model import Interchange, Issue, Message, Segment
from gateway.edi.serialize import X12_FUNCTIONAL_IDS, Envelope, OutMessage
from gateway.errors import GatewayError, MappingError, ParseError

if TYPE_CHECKING:   # acks_read imports this module's code tables
    from gateway.edi.acks_read import Fault

__all__ = ["EDIFACT_CODES", "SYNTAX_ERRORS_0085", "TA1_NOTES", "X12_CODES", "X12_ELEMENT_ERRORS", "X12_GROUP_ERRORS",
           "X12_SEGMENT_ERRORS", "X12_SET_ERRORS", "Checked", "Key", "X12Acks", "ack_envelope", "contrl",
           "failed", "issue_from_error", "x12_acks"]

Key = tuple[str, str]   # (group control number or "", message reference)
Status = Literal["accepted", "accepted_with_errors", "rejected"]

# rule -> (segment-level code, element-level code). X12: AK304/IK304 and AK403/IK403 (the 999
# column differs only for partner rules); element rules put "8" (segment has data element
# errors) in AK304. segment_unknown is 6 (not in defined transaction set): a validator knows
# the message's segments, not the whole X12 dictionary, so it cannot claim 1 (unrecognized).
X12_CODES: dict[str, tuple[str, str | None]] = {
    "segment_unknown": ("6", None),
    "segment_unexpected": ("2", None),
    "segment_missing": ("3", None),
    "segment_too_many": ("5", None),
    "loop_too_many": ("4", None),
    "element_missing": ("8", "1"),
    "element_too_many": ("8", "3"),
    "element_too_short": ("8", "4"),
    "element_too_long": ("8", "5"),
    "element_invalid_char": ("8", "6"),
    "element_invalid_type": ("8", "6"),    # a date -> 8, a time -> 9 (see _x12_element_code)
    "element_invalid_code": ("8", "7"),
    "partner_rule": ("2", "7"),            # 999: I12 implementation pattern match failure
}
# rule -> ISO 9735 0085 code for UCS (segment rules) or UCD (element rules).
EDIFACT_CODES: dict[str, str] = {
    "segment_unknown": "15",       # not supported in this position
    "segment_unexpected": "15",
    "segment_missing": "13",       # missing
    "segment_too_many": "35",      # too many repetitions
    "loop_too_many": "36",         # too many segment group repetitions
    "element_missing": "13",
    "element_too_many": "16",      # too many constituents (35 when a repetition is named)
    "element_too_short": "40",
    "element_too_long": "39",
    "element_invalid_char": "21",  # invalid character(s) for the character set
    "element_invalid_type": "37",  # invalid type of character(s); a bad date/time is 12 invalid value
    "element_invalid_code": "12",  # invalid value
    "partner_rule": "14",          # value not supported in this position (15 for a segment)
}
# Fault kind -> TA105 / AK905 / AK502 code; ISA header faults by ISA element number.
_TA1_ISA = {"1": "010", "2": "011", "3": "012", "4": "013", "5": "005", "6": "006", "7": "007", "8": "008",
            "9": "014", "10": "015", "11": "016", "12": "017", "13": "018", "14": "019", "15": "020",
            "16": "027", "": "026", "terminator": "004", "truncated": "023"}
_TA1 = {"count": "021", "reference": "001", "missing_trailer": "023", "structure": "024", "charset": "024",
        "duplicate": "025",
        "segment": "024", "sibling": "024", "header": "024"}
_AK9 = {"count": "5", "reference": "4", "missing_trailer": "3"}
_AK5 = {"count": "4", "reference": "3", "missing_trailer": "2", "segment": "5"}
_CONTRL = {"count": "29", "reference": "28", "missing_trailer": "13", "header": "13", "structure": "33",
           "duplicate": "26",
           "mixed": "30", "charset": "21", "segment": "15", "sibling": "18", "unreadable": "18"}
_TRAILER = {"interchange": "UNZ", "group": "UNE", "message": "UNT"}
# GS01 for transaction sets serialize does not list (X12 GS01 code list), so a 997 can name the group.
_MORE_FUNCTIONAL_IDS = {"204": "SM", "210": "IM", "214": "QM", "824": "AG", "830": "PS", "832": "SC",
                        "835": "HP", "837": "HC", "861": "RC", "862": "SS", "990": "GF", "180": "AN"}
_SAFE_VALUE = re.compile(r"[A-Za-z0-9 .\-/]{1,99}")

# Code lists as text, for reading acks (and for people): TA105, AK304/IK304, AK403/IK403, AK502/IK502,
# AK905 and ISO 9735 0085.
TA1_NOTES = {
    "000": "no error", "001": "control numbers in ISA and IEA do not match", "002": "standard in ISA11 not supported",
    "003": "version of the controls not supported", "004": "segment terminator invalid",
    "005": "invalid sender id qualifier", "006": "invalid sender id", "007": "invalid receiver id qualifier",
    "008": "invalid receiver id", "009": "unknown receiver id", "010": "invalid authorization qualifier",
    "011": "invalid authorization value", "012": "invalid security qualifier", "013": "invalid security value",
    "014": "invalid interchange date", "015": "invalid interchange time", "016": "invalid standards identifier",
    "017": "invalid version id", "018": "invalid interchange control number",
    "019": "invalid acknowledgment requested", "020": "invalid test indicator",
    "021": "invalid number of included groups", "022": "invalid control structure",
    "023": "improper (premature) end of file", "024": "invalid interchange content (e.g. invalid GS)",
    "025": "duplicate interchange control number", "026": "invalid data element separator",
    "027": "invalid component element separator", "028": "invalid delivery date", "029": "invalid delivery time",
    "030": "invalid delivery time code", "031": "invalid grade of service code",
}
X12_SEGMENT_ERRORS = {
    "1": "unrecognized segment id", "2": "unexpected segment", "3": "required segment missing",
    "4": "loop occurs over maximum times", "5": "segment exceeds maximum use",
    "6": "segment not in defined transaction set", "7": "segment not in proper sequence",
    "8": "segment has data element errors", "I4": "implementation 'not used' segment present",
    "I6": "implementation dependent segment missing", "I7": "implementation loop occurs under minimum times",
    "I8": "implementation segment below minimum use", "I9": "implementation dependent 'not used' segment present",
}
X12_ELEMENT_ERRORS = {
    "1": "required data element missing", "2": "conditional required data element missing",
    "3": "too many data elements", "4": "data element too short", "5": "data element too long",
    "6": "invalid character in data element", "7": "invalid code value", "8": "invalid date", "9": "invalid time",
    "10": "exclusion condition violated", "12": "too many repetitions", "13": "too many components",
    "I6": "code value not used in implementation", "I9": "implementation dependent data element missing",
    "I10": "implementation 'not used' data element present", "I11": "implementation too few repetitions",
    "I12": "implementation pattern match failure", "I13": "implementation dependent 'not used' data element present",
}
X12_SET_ERRORS = {
    "1": "transaction set not supported", "2": "transaction set trailer missing",
    "3": "control numbers in ST and SE do not match", "4": "number of included segments does not match",
    "5": "one or more segments in error", "6": "missing or invalid transaction set identifier",
    "7": "missing or invalid transaction set control number", "18": "transaction set not in functional group",
    "19": "invalid implementation convention reference", "23": "transaction set control number not unique in group",
    "I5": "implementation one or more segments in error", "I6": "implementation convention not supported",
}
X12_GROUP_ERRORS = {
    "1": "functional group not supported", "2": "functional group version not supported",
    "3": "functional group trailer missing", "4": "group control numbers in GS and GE do not agree",
    "5": "number of included transaction sets does not match", "6": "group control number violates syntax",
    "19": "functional group control number not unique in interchange",
}
SYNTAX_ERRORS_0085 = {
    "2": "syntax version or level not supported", "7": "interchange recipient not actual recipient",
    "12": "invalid value", "13": "missing", "14": "value not supported in this position",
    "15": "not supported in this position", "16": "too many constituents", "17": "no agreement",
    "18": "unspecified error", "19": "invalid decimal notation", "20": "character invalid as service character",
    "21": "invalid character(s)", "22": "invalid service character(s)", "23": "unknown interchange sender",
    "24": "too old", "25": "test indicator not supported", "26": "duplicate detected",
    "27": "security function not supported", "28": "references do not match",
    "29": "control count does not match number of instances received", "30": "functional groups and messages mixed",
    "31": "more than one message type in group", "32": "lower level empty",
    "33": "invalid occurrence outside message, package or group", "35": "too many repetitions",
    "36": "too many segment group repetitions", "37": "invalid type of character(s)",
    "38": "missing digit in front of decimal sign", "39": "data element too long", "40": "data element too short",
    "43": "unknown interchange recipient", "45": "trailing separator", "46": "character set not supported",
    "47": "envelope functionality not supported",
}


@dataclass
class Checked:
    """What checking one inbound interchange found: the acks are built from this alone.

    ``interchange`` is the parsed interchange (for ``failed`` input: what could be recovered
    of it, or None when not even its header could). ``issues`` holds each message's problems
    by ``(group reference, message reference)``; a message with issues is rejected unless its
    key is in ``tolerated`` (then "accepted with errors": X12 AK5 E, CONTRL 7 with the errors).
    ``error``/``fault``: the reader refused the bytes; every message is then rejected and
    ``fault`` says at which level and why.
    """

    interchange: Interchange | None
    issues: dict[Key, list[Issue]] = field(default_factory=dict)
    tolerated: set[Key] = field(default_factory=set)
    error: ParseError | None = None
    fault: Fault | None = None

    @staticmethod
    def key(message: Message) -> Key:
        return (message.group_reference, message.reference)

    def add(self, message: Message, issues: list[Issue], *, tolerate: bool = False) -> None:
        """Record a validator's issues for ``message`` (an empty list records nothing)."""
        if issues:
            self.issues.setdefault(self.key(message), []).extend(issues)
            if tolerate:
                self.tolerated.add(self.key(message))

    def status(self, message: Message) -> Status:
        if self.error is not None:
            return "rejected"
        key = self.key(message)
        if not self.issues.get(key):
            return "accepted"
        return "accepted_with_errors" if key in self.tolerated else "rejected"

    @property
    def messages(self) -> list[Message]:
        return [m for m in (self.interchange.messages if self.interchange else []) if m.type != "TA1"]


def failed(raw: bytes, error: ParseError) -> list[Checked]:
    """One Checked per interchange of a file the reader refused with ``error`` (all rejected).

    The envelope is recovered by re-reading ``raw`` leniently; the interchange holding the
    error gets a ``fault`` locating it, the other interchanges of the same file (a mailbag)
    get a "sibling" fault: they were refused with it. An empty list: nothing is addressable.
    """
    from gateway.edi.acks_read import salvage
    return [Checked(interchange, error=error, fault=fault) for interchange, fault in salvage(raw, error)]


def issue_from_error(error: GatewayError, message: Message, rule: str = "partner_rule") -> Issue:
    """An Issue for a MappingError (or any located error) raised while handling ``message``."""
    position = None
    if error.segment is not None and message.segments:
        position = error.segment - message.segments[0].number + 1
    element, _, component = (error.element or "").partition(".")
    return Issue(rule, error.problem, error.tag or "", segment=error.segment, position=position,
                 element=int(element) if element.isdigit() else None,
                 component=int(component) if component.isdigit() else None, message=message.reference)


def ack_envelope(checked: Checked, at: datetime, **overrides: object) -> Envelope:
    """The Envelope of our reply: sender and recipient swapped, same syntax, test flag kept."""
    ic = checked.interchange
    if ic is None:
        raise MappingError("the interchange header could not be read: there is no one to acknowledge")
    syntax = ic.syntax if ic.format == "edifact" or (len(ic.syntax) == 5 and ic.syntax.isdigit()) else ""
    fields: dict = {"format": ic.format, "sender": ic.recipient, "recipient": ic.sender, "at": at,
                    "test": ic.test, "syntax": syntax}
    fields.update(overrides)
    return Envelope(**fields)


def _position(issue: Issue, message: Message) -> int:
    if issue.position is not None:
        return issue.position
    if issue.segment is not None and message.segments:
        return issue.segment - message.segments[0].number + 1
    return len(message.segments)  # a missing segment with no position: reported at the trailer


def _by_segment(issues: list[Issue], message: Message) -> list[tuple[int, str, list[Issue]]]:
    """Issues grouped by segment position (then tag), in message order."""
    groups: dict[tuple[int, str], list[Issue]] = {}
    for issue in issues:
        groups.setdefault((_position(issue, message), issue.tag), []).append(issue)
    return [(pos, tag, found) for (pos, tag), found in sorted(groups.items())]


def _type_word(issue: Issue) -> str:
    text = issue.problem.lower()
    return "date" if "date" in text else "time" if "time" in text else ""


def _is_element(issue: Issue) -> bool:
    return issue.element is not None and issue.rule.startswith(("element_", "partner_rule"))


# --------------------------------------------------------------------------- X12


@dataclass(frozen=True, slots=True)
class X12Acks:
    """What ``render`` needs: ``leading`` goes to ``Envelope.leading`` (the TA1), ``messages`` to render."""

    leading: list[Segment]
    messages: list[OutMessage]


def _seg(tag: str, *elements: str | tuple[str, ...]) -> Segment:
    return Segment(tag, [e if isinstance(e, tuple) else (e,) for e in elements])


def _ta1(checked: Checked) -> Segment:
    ic, fault = checked.interchange, checked.fault
    assert ic is not None
    if fault is None:
        code, note = "A", "000"
    elif fault.level == "interchange" and fault.kind == "header" and fault.tag == "ISA":
        code, note = "R", _TA1_ISA.get(fault.element, "022")
    elif fault.level == "interchange":
        code, note = "R", _TA1.get(fault.kind, "024")
    elif fault.cut:
        code, note = "R", "023"   # premature end of file
    else:
        code, note = "R", "024"   # a group/transaction set broke the file: the interchange was not processed
    return _seg("TA1", ic.control_number, ic.date, ic.time, code, note)


def _functional_id(message: Message) -> str:
    gs01 = message.group_id or X12_FUNCTIONAL_IDS.get(message.type) or _MORE_FUNCTIONAL_IDS.get(message.type)
    if not gs01:
        raise MappingError(f"no GS01 functional identifier known for transaction set {message.type}: "
                           "the 997 cannot name the group", tag="AK1", element="1")
    return gs01


def _x12_element_code(issue: Issue, version: str, ack: str) -> str:
    code = X12_CODES.get(issue.rule, ("8", "7"))[1] or "7"
    if issue.rule == "element_invalid_type" and _type_word(issue):
        code = "8" if _type_word(issue) == "date" else "9"
    elif issue.rule == "element_too_many" and version >= "005010":
        code = "12" if issue.repetition else "13" if issue.component else "3"
    elif issue.rule == "partner_rule" and ack == "999":
        code = "I12"
    return code


def _x12_message_loop(checked: Checked, message: Message, version: str, ack: str) -> list[Segment]:
    """AK2..AK5 (997) or AK2..IK5 (999) for one transaction set."""
    ak3, ak4, ak5 = ("AK3", "AK4", "AK5") if ack == "997" else ("IK3", "IK4", "IK5")
    st03 = message.segments[0].get(3) if message.segments else ""
    out = [_seg("AK2", message.type, message.reference, *([st03] if st03 and version >= "005010" else []))]
    codes: list[str] = []
    fault = checked.fault
    if fault is not None and fault.level in ("message", "segment") and fault.message == message.reference:
        codes.append(_AK5.get(fault.kind, "5"))
    for pos, tag, found in _by_segment(checked.issues.get(checked.key(message), []), message):
        segment_level = [i for i in found if not _is_element(i)]
        seg_code = X12_CODES.get(segment_level[0].rule, ("2", None))[0] if segment_level else "8"
        out.append(_seg(ak3, tag, str(pos), "", seg_code))
        for issue in found:
            if not _is_element(issue):
                continue
            c030: tuple[str, ...] = (str(issue.element), str(issue.component or ""))
            if version >= "005010" and issue.repetition:
                c030 = (c030[0], c030[1], str(issue.repetition))
            value = issue.value if issue.value and _SAFE_VALUE.fullmatch(issue.value) else ""
            out.append(_seg(ak4, c030, "", _x12_element_code(issue, version, ack), value))
        if "5" not in codes:
            codes.append("5")
    status = {"accepted": "A", "accepted_with_errors": "E", "rejected": "R"}[checked.status(message)]
    out.append(_seg(ak5, status, *(codes if status != "A" else [])))
    return out


def _x12_groups(checked: Checked) -> list[tuple[str, list[Message]]]:
    groups: dict[str, list[Message]] = {}
    for message in checked.messages:
        groups.setdefault(message.group_reference, []).append(message)
    if checked.fault is not None and checked.fault.group and checked.fault.group not in groups:
        groups[checked.fault.group] = []   # a broken group whose transaction sets were all unreadable
    return list(groups.items())


def _x12_group_ack(checked: Checked, ref: str, messages: list[Message], ack: str) -> OutMessage:
    fault = checked.fault
    first = messages[0] if messages else None
    gs08 = (first.agency if first else "") or (fault.version if fault else "")
    gs01 = (first.group_id if first else "") or (fault.group_id if fault else "")
    if not gs01 and first is not None:
        gs01 = _functional_id(first)
    version = gs08[:6]
    if ack == "999" and version < "005010":
        ack = "997"
    body = [_seg("AK1", gs01, ref, *([gs08] if version >= "005010" else []))]
    group_fault = fault is not None and fault.group == ref
    listed = messages
    if checked.error is not None:
        # A refused file: name only the transaction set that broke it; AK9 R covers the others.
        listed = [m for m in messages if group_fault and fault.level in ("message", "segment")
                  and m.reference == fault.message]
    for message in listed:
        body.extend(_x12_message_loop(checked, message, version, ack))
    statuses = [checked.status(m) for m in messages]
    accepted = sum(s != "rejected" for s in statuses)
    if checked.error is not None or not accepted and messages:
        status = "R"
    else:
        status = "A" if all(s == "accepted" for s in statuses) else "E" if accepted == len(statuses) else "P"
    codes = []
    if group_fault and (fault.level == "group" and fault.kind in _AK9 or fault.cut):
        codes = [_AK9[fault.kind] if fault.level == "group" else "3"]   # cut short: no GE either
    included = len(messages)
    if group_fault and fault.level == "group" and fault.kind == "count" and fault.declared is not None:
        included = fault.declared
    body.append(_seg("AK9", status, str(included), str(len(messages)), str(accepted), *codes))
    if ack == "999":
        return OutMessage("999", "005010", body, agency="005010X231", implementation="005010X231")
    return OutMessage("997", version, body, agency=version)


def x12_acks(checked: Checked, *, kind: str = "997", ta1: bool | None = None) -> X12Acks:
    """TA1 and one 997/999 per functional group of an X12 interchange.

    ``kind``: the partner's choice, "997" or "999" (999 only for 005010+ groups). ``ta1``:
    True/False forces the TA1; None writes one only when the interchange envelope itself is
    at fault (then there is no group to answer). A refused file gets TA1 R (when written) and a
    997/999 with AK9 R per recovered group, naming the broken transaction set (AK5 R 2/3/4) or
    group (AK905 3/4/5).
    """
    if kind not in ("997", "999"):
        raise MappingError(f"X12 acknowledgment must be 997 or 999, not {kind!r}")
    if checked.interchange is None:
        return X12Acks([], [])
    interchange_fault = checked.fault is not None and checked.fault.level == "interchange"
    leading = [_ta1(checked)] if ta1 or (ta1 is None and interchange_fault) else []
    if interchange_fault and checked.fault.kind != "sibling":
        return X12Acks(leading, [])
    messages = [_x12_group_ack(checked, ref, found, kind) for ref, found in _x12_groups(checked) if ref or found]
    return X12Acks(leading, messages)


# --------------------------------------------------------------------------- EDIFACT CONTRL


def _s011(element: str | int | None, component: int | str | None = None, repetition: int | None = None,
          syntax4: bool = False) -> tuple[str, ...]:
    parts = [str(element or ""), str(component or "")]
    if syntax4 and repetition:
        parts.append(str(repetition))
    return tuple(parts)


def _fault_fields(fault: Fault, level: str, syntax4: bool) -> list[str | tuple[str, ...]]:
    """0085, 0013 and S011 of a UCI/UCF/UCM reporting ``fault`` at ``level``."""
    code = _CONTRL.get(fault.kind, "18")
    if fault.kind == "missing_trailer":
        return [code, _TRAILER[level]]
    element, _, component = fault.element.partition(".")
    if fault.tag and element:
        return [code, fault.tag, _s011(element, component, syntax4=syntax4)]
    return [code, fault.tag] if fault.tag and fault.kind not in ("sibling", "structure", "mixed") else [code]


def _ucm(checked: Checked, message: Message, syntax4: bool) -> list[Segment]:
    fault = checked.fault
    s009 = tuple(message.segments[0].elements[1][:5]) if message.segments and len(
        message.segments[0].elements) > 1 else (message.type,)
    status = checked.status(message)
    action = "4" if status == "rejected" else "7"
    head: list[str | tuple[str, ...]] = [message.reference, s009, action]
    ucs: list[Segment] = []
    if fault is not None and fault.message == message.reference and fault.group == message.group_reference:
        if fault.level == "message":
            head += _fault_fields(fault, "message", syntax4)
        elif fault.position is not None:
            ucs.append(_seg("UCS", str(fault.position), _CONTRL.get(fault.kind, "18")))
    for pos, _tag, found in _by_segment(checked.issues.get(checked.key(message), []), message):
        segment_level = [i for i in found if not _is_element(i)]
        code = ""
        if segment_level:
            rule = segment_level[0].rule
            code = "15" if rule == "partner_rule" else EDIFACT_CODES.get(rule, "18")
        ucs.append(_seg("UCS", str(pos), *([code] if code else [])))
        for issue in found:
            if not _is_element(issue):
                continue
            code = EDIFACT_CODES.get(issue.rule, "12")
            if issue.rule == "element_too_many" and issue.repetition:
                code = "35"
            elif issue.rule == "element_invalid_type" and _type_word(issue):
                code = "12"
            ucs.append(_seg("UCD", code, _s011(issue.element, issue.component, issue.repetition, syntax4)))
    return [_seg("UCM", *head), *ucs]


def contrl(checked: Checked, *, received_only: bool = False) -> OutMessage | None:
    """The CONTRL answering an EDIFACT interchange (None: its header could not be read).

    Positive: UCI 7 and a UCM 7 per message, or with ``received_only`` a bare UCI 8 (only when
    nothing was rejected: errors are always reported). Negative: UCM 4 with UCS/UCD per issue;
    UCI 4 (with the 0085 code when the interchange envelope itself is at fault) for a refused
    file, whose lower levels are then all rejected. Grouped interchanges get UCF per group.
    """
    ic = checked.interchange
    if ic is None or ic.format != "edifact":
        return None
    level = ic.syntax.partition(":")[2]
    syntax4 = level.isdigit() and int(level) >= 4
    version = "4:1" if syntax4 else "D:3"
    fault = checked.fault
    messages = checked.messages
    statuses = [checked.status(m) for m in messages]
    refused = checked.error is not None
    uci: list[str | tuple[str, ...]] = [ic.control_number, (ic.sender.id, ic.sender.qualifier),
                                        (ic.recipient.id, ic.recipient.qualifier)]
    if refused:
        uci.append("4")
        if fault is not None and fault.level == "interchange":
            uci += _fault_fields(fault, "interchange", syntax4)
        elif fault is not None and fault.cut:
            uci += [_CONTRL["missing_trailer"], "UNZ"]   # cut short: no UNZ either
    elif received_only and all(s == "accepted" for s in statuses) and not checked.issues:
        return OutMessage("CONTRL", version, [_seg("UCI", *uci, "8")])
    else:
        uci.append("7" if any(s != "rejected" for s in statuses) or not messages else "4")
    body = [_seg("UCI", *uci)]
    if refused:
        # UCI 4 rejects everything below it; name only the message/group that broke the file.
        messages = [m for m in messages if fault is not None and fault.message == m.reference
                    and fault.group == m.group_reference and fault.level in ("message", "segment")]
    groups: dict[str, list[Message]] = {}
    for message in messages:
        groups.setdefault(message.group_reference, []).append(message)
    if refused and fault is not None and fault.group and fault.level == "group":
        groups.setdefault(fault.group, [])
    for ref, found in groups.items():
        if ref:
            group_rejected = refused or all(checked.status(m) == "rejected" for m in found)
            ucf: list[str | tuple[str, ...]] = [ref, "", "", "4" if group_rejected else "7"]
            if refused and fault is not None and fault.group == ref and fault.level == "group":
                ucf += _fault_fields(fault, "group", syntax4)
            elif refused and fault is not None and fault.group == ref and fault.cut:
                ucf += [_CONTRL["missing_trailer"], "UNE"]
            body.append(_seg("UCF", *ucf))
        for message in found:
            body.extend(_ucm(checked, message, syntax4))
    return OutMessage("CONTRL", version, body)
