"""Validate a read EDI message against its message definition and a partner's rules: a list of Issues.

``validate`` walks the segments through the definition's groups with a small state machine
(a stack of open groups; a group starts at its trigger segment, as EDIFACT and X12 both
define) and checks every element, reporting every problem found, not only the first. Each
Issue names the rule (model.ISSUE_RULES), the segment's number in the file, its 1-based
position in the message (UNH/ST = 1), and element/component/repetition where relevant.

Covered: EDIFACT ORDERS, ORDRSP, DESADV, INVOIC (D96A, D01B), APERAK (D96A), CONTRL (syntax 3);
X12 850, 855, 856, 810, 997 (004010, 005010) and 999 (005010X231). Structures are complete;
element definitions cover the commonly used segments (lists in gateway/edi/specs/*.py).

Policies:

* Unknown message type -> no issues. A version we do not define uses the nearest defined one
  not after it (D97A -> D96A, D03B -> D01B, 004030 -> 004010, 005030 -> 005010; older ones
  use the oldest we have); CONTRL and APERAK have one definition for every version.
* A tag the message definition does not use at all is ignored, or ``segment_unknown`` in
  strict mode. A tag it uses, found where it is not allowed, is always ``segment_unexpected``.
* A missing mandatory segment or group is reported at the segment where its absence became
  certain (the next segment placed after it, or the trailer).
* Too many repetitions are reported once, at the first one over the limit.
* Trailing empty elements/components beyond the definition are tolerated; non-empty ones are
  ``element_too_many``. Segments without element definitions are not checked element-wise.
* Lengths: EDIFACT n and X12 N/R count digits only (sign and decimal mark excluded). EDIFACT
  DTM dates are checked against their format qualifier (101, 102, 203, 204, 718, ...); X12 DT
  and TM must be real dates and times. Control characters are ``element_invalid_char``; in
  strict mode UNOA/UNOB interchanges are also held to their repertoire.

Partner rules (``[validation]`` in a partner file) use the mapping path language
(gateway.mapping.paths); see ``parse_rules``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

from ..errors import ConfigProblem
from ..mapping.paths import Path, PathSyntaxError, Scope, Selector, parse_path, parse_selector
from .model import Interchange, Issue, Message, Segment
from .specs import ElementDef, Entry, Group, MessageDef, lookup

__all__ = ["PartnerRules", "parse_rules", "validate"]


def validate(message: Message, interchange: Interchange, *, rules: PartnerRules | None = None,
             strict: bool = False) -> list[Issue]:
    """Every problem of ``message`` against its definition and the partner's rules (may be [])."""
    definition = lookup(interchange.format, message.type, message.version)
    if definition is None:
        return []
    strict = strict or (rules is not None and rules.strict)
    issues: list[Issue] = []
    _Walk(definition, message, interchange, strict, issues).run()
    if rules is not None:
        rules.check(message, issues)
    return issues


# --------------------------------------------------------------------------- values

_DAYS = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _date(v: str) -> bool:
    """CCYYMMDD or YYMMDD, a real calendar date."""
    if not (v.isascii() and v.isdigit()) or len(v) not in (6, 8):
        return False
    year = int(v[:-4]) if len(v) == 8 else 2000 + int(v[:2])
    month, day = int(v[-4:-2]), int(v[-2:])
    if not 1 <= month <= 12 or day < 1:
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    return day <= (29 if month == 2 and leap else 28 if month == 2 else _DAYS[month - 1])


def _time(v: str) -> bool:
    """HHMM, HHMMSS or HHMMSSd..d with valid hours, minutes and seconds."""
    if not (v.isascii() and v.isdigit()) or len(v) < 4 or len(v) == 5:
        return False
    return int(v[:2]) < 24 and int(v[2:4]) < 60 and (len(v) < 6 or int(v[4:6]) < 60)


# EDIFACT 2379 date/time format qualifiers we can check -> test for the 2380 value.
_DATE_FORMATS: dict[str, Callable[[str], bool]] = {
    "101": lambda v: len(v) == 6 and _date(v),
    "102": lambda v: len(v) == 8 and _date(v),
    "201": lambda v: len(v) == 10 and _date(v[:6]) and _time(v[6:]),
    "203": lambda v: len(v) == 12 and _date(v[:8]) and _time(v[8:]),
    "204": lambda v: len(v) == 14 and _date(v[:8]) and _time(v[8:]),
    "401": lambda v: len(v) == 4 and _time(v),
    "602": lambda v: len(v) == 4 and v.isascii() and v.isdigit(),
    "610": lambda v: len(v) == 6 and _date(v + "01"),
    "718": lambda v: len(v) == 17 and v[8] == "-" and _date(v[:8]) and _date(v[9:]),
}
_UNOA = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,-()/='+:?!\"%&*;<>")
# Decimal marks each numeric kind accepts: EDIFACT either (ISO 9735), X12 R a point, X12 Nn none.
_MARKS = {"n": ".,", "R": ".", "N": ""}
_DIGIT_KINDS = frozenset(_MARKS)


def _digits(v: str, marks: str) -> int | None:
    """Digit count of a numeric value (a leading minus and one decimal mark allowed), else None."""
    s = v[1:] if v[:1] == "-" else v
    if s.isascii() and s.isdigit():
        return len(s)
    for mark in marks:
        if mark in s:
            whole, _, fraction = s.partition(mark)
            digits = whole + fraction
            return len(digits) if digits.isascii() and digits.isdigit() else None
    return None


# --------------------------------------------------------------------------- structure walk


class _Walk:
    """One pass over a message: structure state machine plus element checks."""

    __slots__ = ("definition", "message", "strict", "issues", "ref", "stack", "charset", "edifact",
                 "elements")

    def __init__(self, definition: MessageDef, message: Message, interchange: Interchange, strict: bool,
                 issues: list[Issue]) -> None:
        self.definition = definition
        self.message = message
        self.strict = strict
        self.issues = issues
        self.ref = message.reference
        self.edifact = definition.format == "edifact"
        self.elements = definition.segments
        charset = interchange.syntax.split(":", 1)[0].upper() if self.edifact else ""
        self.charset = _UNOA if strict and charset == "UNOA" else None
        if strict and charset == "UNOB":
            self.charset = frozenset(chr(c) for c in range(32, 127))
        root = definition.root
        counts = [0] * len(root.entries)
        counts[0] = 1
        self.stack: list[list] = [[root, 0, counts]]

    def issue(self, rule: str, problem: str, seg: Segment, position: int, tag: str | None = None,
              element: int | None = None, component: int | None = None, repetition: int | None = None,
              value: str | None = None) -> None:
        self.issues.append(Issue(rule, problem, tag or seg.tag, seg.number, position, element, component,
                                 repetition, value, self.ref))

    def run(self) -> None:
        segments = self.message.segments
        elements = self.elements
        place = self.place
        for position, seg in enumerate(segments, 1):
            if position > 1 and not place(seg, position):
                tag = seg.tag
                if tag in self.definition.tags:
                    frame = self.stack[-1]
                    where = frame[0].entries[frame[1]].tag
                    group = f" in {frame[0].name}" if len(self.stack) > 1 else ""
                    self.issue("segment_unexpected", f"segment {tag} is not allowed here (after {where}"
                               f"{group})", seg, position)
                elif self.strict:
                    self.issue("segment_unknown", f"segment {tag} is not defined for "
                               f"{self.definition.type}", seg, position)
            defs = elements.get(seg.tag)
            if defs is not None:
                self.check_segment(seg, position, defs)
        if len(segments) > 1:
            last = segments[-1]
            while len(self.stack) > 1:
                self.close(self.stack.pop(), last, len(segments))
            self.close(self.stack[0], last, len(segments))

    def missing(self, entry: Entry, seg: Segment, position: int) -> None:
        if entry.group is not None:
            problem = f"mandatory segment group {entry.group.name} ({entry.tag}) is missing"
        else:
            problem = f"mandatory segment {entry.tag} is missing"
        self.issue("segment_missing", problem, seg, position, tag=entry.tag)

    def close(self, frame: list, seg: Segment, position: int) -> None:
        """Leave a group instance: report its mandatory entries that never came."""
        group, idx, counts = frame
        entries = group.entries
        for q in range(idx + 1, len(entries)):
            if entries[q].mandatory and not counts[q]:
                self.missing(entries[q], seg, position)
        frame[1] = len(entries) - 1 if entries else 0

    def place(self, seg: Segment, position: int) -> bool:
        """Move the state machine to ``seg``; False when no open group (or ancestor) allows it here."""
        tag = seg.tag
        stack = self.stack
        depth = len(stack) - 1
        while depth >= 0:
            frame = stack[depth]
            group: Group = frame[0]
            positions = group.index.get(tag)
            if positions is not None:
                idx = frame[1]
                start = idx if idx > 0 else 1   # entry 0 (header / trigger) never repeats in place
                for p in positions:
                    if p >= start:
                        break
                else:
                    p = -1
                if p >= 0:
                    while len(stack) - 1 > depth:
                        self.close(stack.pop(), seg, position)
                    counts = frame[2]
                    entries = group.entries
                    for q in range(idx + 1, p):
                        if entries[q].mandatory and not counts[q]:
                            self.missing(entries[q], seg, position)
                    entry = entries[p]
                    if p == idx:
                        counts[p] += 1
                    else:
                        frame[1] = p
                        counts[p] = 1
                    if counts[p] == entry.max + 1:
                        if entry.group is not None:
                            self.issue("loop_too_many", f"segment group {entry.group.name} ({tag}) repeats more "
                                       f"than {entry.max} times", seg, position)
                        else:
                            self.issue("segment_too_many", f"segment {tag} repeats more than {entry.max} "
                                       f"times here", seg, position)
                    if entry.group is not None:
                        inner = [0] * len(entry.group.entries)
                        inner[0] = 1
                        stack.append([entry.group, 0, inner])
                    return True
            depth -= 1
        return False

    # ----------------------------------------------------------------------- elements

    def check_segment(self, seg: Segment, position: int, defs: tuple[ElementDef, ...]) -> None:
        elements = seg.elements
        count = len(defs)
        repetitions = seg.repetitions
        for i, comps in enumerate(elements):
            if i >= count:
                if any(comps) or (repetitions and i + 1 in repetitions):
                    self.issue("element_too_many", f"{seg.tag} has {count} elements; element {i + 1} is "
                               "not defined", seg, position, element=i + 1, value=":".join(comps))
                continue
            d = defs[i]
            reps = repetitions.get(i + 1) if repetitions else None
            if reps is None:
                if d.components is None and len(comps) == 1:
                    # Inlined common case: a simple element that is empty or plainly fine.
                    value = comps[0]
                    if not value:
                        if d.mandatory:
                            self.issue("element_missing", f"mandatory element {seg.tag} {i + 1} is missing", seg,
                                       position, element=i + 1)
                        continue
                    kind = d.kind
                    if ((kind == "an" or (kind in _DIGIT_KINDS and value.isdigit() and value.isascii()))
                            and d.min <= len(value) <= d.max and self.charset is None and value.isprintable()):
                        continue
                self.check_element(seg, position, i + 1, comps, d, None)
                continue
            if len(reps) > d.repeats and any(any(r) for r in reps[d.repeats:]):
                self.issue("element_too_many", f"element {i + 1} repeats {len(reps)} times, at most "
                           f"{d.repeats} allowed", seg, position, element=i + 1, repetition=d.repeats + 1)
            for r, rep in enumerate(reps[:d.repeats], 1):
                self.check_element(seg, position, i + 1, rep, d, r)
        for i in range(len(elements), count):
            if defs[i].mandatory:
                self.issue("element_missing", f"mandatory element {seg.tag} {i + 1} is missing", seg, position,
                           element=i + 1)
        if self.edifact and seg.tag == "DTM":
            value, fmt = seg.get(1, 2), seg.get(1, 3)
            test = _DATE_FORMATS.get(fmt)
            if value and test is not None and not test(value):
                self.issue("element_invalid_type", f"{value!r} is not a valid date/time in format {fmt}",
                           seg, position, element=1, component=2, value=value)

    def check_element(self, seg: Segment, position: int, e: int, comps: tuple[str, ...], d: ElementDef,
                      rep: int | None) -> None:
        cdefs = d.components
        if cdefs is None:
            value = comps[0]
            if len(comps) > 1 and any(comps[1:]):
                self.issue("element_too_many", f"element {e} is simple but has components", seg, position,
                           element=e, component=2, repetition=rep, value=":".join(comps))
            if value:
                self.check_value(seg, position, e, None, rep, value, d)
            elif d.mandatory:
                self.issue("element_missing", f"mandatory element {seg.tag} {e} is missing", seg, position,
                           element=e, repetition=rep)
            return
        if not any(comps):
            if d.mandatory:
                self.issue("element_missing", f"mandatory composite {seg.tag} {e} ({d.name}) is missing", seg,
                           position, element=e, repetition=rep)
            return
        n = len(cdefs)
        for j, value in enumerate(comps):
            if j >= n:
                if value:
                    self.issue("element_too_many", f"{d.name} has {n} components; component {j + 1} is not "
                               "defined", seg, position, element=e, component=j + 1, repetition=rep, value=value)
                continue
            cd = cdefs[j]
            if value:
                kind = cd.kind
                if not ((kind == "an" or (kind in _DIGIT_KINDS and value.isdigit() and value.isascii()))
                        and cd.min <= len(value) <= cd.max and self.charset is None and value.isprintable()):
                    self.check_value(seg, position, e, j + 1, rep, value, cd)
            elif cd.mandatory:
                self.issue("element_missing", f"mandatory component {seg.tag} {e}.{j + 1} is missing", seg,
                           position, element=e, component=j + 1, repetition=rep)
        for j in range(len(comps), n):
            if cdefs[j].mandatory:
                self.issue("element_missing", f"mandatory component {seg.tag} {e}.{j + 1} is missing", seg,
                           position, element=e, component=j + 1, repetition=rep)

    def check_value(self, seg: Segment, position: int, e: int, c: int | None, rep: int | None, value: str,
                    d: ElementDef) -> None:
        kind = d.kind
        size = len(value)
        where = f"{seg.tag} {e}" + (f".{c}" if c else "")
        if kind == "an":
            pass
        elif kind in ("n", "N", "R"):
            digits = _digits(value, _MARKS[kind])
            if digits is None:
                self.issue("element_invalid_type", f"{where} {value!r} is not numeric", seg, position, element=e,
                           component=c, repetition=rep, value=value)
                return
            size = digits
        elif kind == "a":
            if any(ch.isdigit() for ch in value):
                self.issue("element_invalid_type", f"{where} {value!r} must not contain digits", seg, position,
                           element=e, component=c, repetition=rep, value=value)
        elif kind == "DT":
            if not _date(value):
                self.issue("element_invalid_type", f"{where} {value!r} is not a valid date", seg, position,
                           element=e, component=c, repetition=rep, value=value)
                return
        elif kind == "TM":
            if not _time(value):
                self.issue("element_invalid_type", f"{where} {value!r} is not a valid time", seg, position,
                           element=e, component=c, repetition=rep, value=value)
                return
        if size > d.max:
            self.issue("element_too_long", f"{where} is {size} long, at most {d.max} allowed", seg, position,
                       element=e, component=c, repetition=rep, value=value)
        elif size < d.min:
            self.issue("element_too_short", f"{where} is {size} long, at least {d.min} required", seg, position,
                       element=e, component=c, repetition=rep, value=value)
        charset = self.charset
        if not value.isprintable() or (charset is not None and not charset.issuperset(value)):
            self.issue("element_invalid_char", f"{where} has a character outside the character set", seg,
                       position, element=e, component=c, repetition=rep, value=value)


# --------------------------------------------------------------------------- partner rules


@dataclass(frozen=True, slots=True)
class _Context:
    """What rule checks need: the indexed message, positions by segment identity, the trailer."""

    scope: Scope
    positions: dict[int, int]
    trailer: Segment
    ref: str


def _located(rule: str, problem: str, seg: Segment, ctx: _Context, path: Path | None = None,
             value: str | None = None) -> Issue:
    element = component = None
    if path is not None:
        element = path.element
        component = path.component if "." in path.label else None
    return Issue(rule, problem, seg.tag, seg.number, ctx.positions.get(id(seg)), element, component, None,
                 value, ctx.ref)


@dataclass(frozen=True, slots=True)
class Required:
    """``required``: a segment (selector) or an element (path) that must be present."""

    text: str
    selector: Selector
    path: Path | None = None

    def check(self, ctx: _Context, out: list[Issue]) -> None:
        selected = self.selector.select_all(ctx.scope)
        if not selected:
            out.append(Issue("segment_missing", f"partner rule requires {self.text}", self.selector.tag,
                             ctx.trailer.number, ctx.positions.get(id(ctx.trailer)), message=ctx.ref))
            return
        if self.path is not None:
            for seg in selected:
                if not self.path.lookup_in(seg):
                    out.append(_located("element_missing", f"partner rule requires {self.text}", seg, ctx,
                                        self.path))


@dataclass(frozen=True, slots=True)
class Codes:
    """``codes``: the element's value, when present, must be one of ``allowed``."""

    text: str
    path: Path
    allowed: frozenset[str]

    def check(self, ctx: _Context, out: list[Issue]) -> None:
        for value, seg in self.path.lookup_all(ctx.scope):
            if value not in self.allowed:
                out.append(_located("element_invalid_code", f"{self.text} {value!r} is not one of the codes "
                                    f"the partner allows ({', '.join(sorted(self.allowed))})", seg, ctx,
                                    self.path, value))


@dataclass(frozen=True, slots=True)
class MaxLength:
    """``max_length``: the element's value may be at most ``limit`` characters."""

    text: str
    path: Path
    limit: int

    def check(self, ctx: _Context, out: list[Issue]) -> None:
        for value, seg in self.path.lookup_all(ctx.scope):
            if len(value) > self.limit:
                out.append(_located("element_too_long", f"{self.text} is {len(value)} long, the partner allows "
                                    f"at most {self.limit}", seg, ctx, self.path, value))


@dataclass(frozen=True, slots=True)
class MaxCount:
    """``max_count``: at most ``limit`` segments may match the selector (reported at the first extra)."""

    text: str
    selector: Selector
    limit: int

    def check(self, ctx: _Context, out: list[Issue]) -> None:
        selected = self.selector.select_all(ctx.scope)
        if len(selected) > self.limit:
            out.append(_located("partner_rule", f"{self.text} occurs {len(selected)} times, the partner allows "
                                f"at most {self.limit}", selected[self.limit], ctx))


_Rule = Required | Codes | MaxLength | MaxCount


@dataclass(frozen=True)
class PartnerRules:
    """A partner's ``[validation]`` table: rules for every message, and per message type.

    ``by_type`` is a tuple of (message type, rules) pairs so the whole object stays hashable
    (it sits inside the frozen partner configuration).
    """

    strict: bool = False
    rules: tuple[_Rule, ...] = ()
    by_type: tuple[tuple[str, tuple[_Rule, ...]], ...] = ()

    def for_type(self, message_type: str) -> tuple[_Rule, ...]:
        """The rules that apply to one message type."""
        return self.rules + next((rules for name, rules in self.by_type if name == message_type), ())

    def check(self, message: Message, out: list[Issue]) -> None:
        """Append an Issue for every rule the message breaks."""
        rules = self.for_type(message.type)
        if not rules or not message.segments:
            return
        segments = message.segments
        ctx = _Context(Scope(segments, message), {id(s): i for i, s in enumerate(segments, 1)}, segments[-1],
                       message.reference)
        for rule in rules:
            rule.check(ctx, out)


_RULE_KEYS = ("required", "codes", "max_length", "max_count")
_TYPE_KEY = re.compile(r"^[A-Z0-9]{3,6}$")


def _rule_set(data: dict, prefix: str, problem: Callable[[str, str], None]) -> tuple[_Rule, ...]:
    rules: list[_Rule] = []

    def path(key: str, text: object) -> Path | None:
        try:
            parsed = parse_path(text)  # type: ignore[arg-type]
        except PathSyntaxError as exc:
            problem(key, str(exc))
            return None
        if parsed.selector is None:
            problem(key, f"path {text!r} needs a segment tag, like NAD/2")
            return None
        return parsed

    def selector(key: str, text: object) -> Selector | None:
        try:
            return parse_selector(text)  # type: ignore[arg-type]
        except PathSyntaxError as exc:
            problem(key, str(exc))
            return None

    def table(key: str) -> dict:
        value = data.get(key, {})
        if not isinstance(value, dict):
            problem(prefix + key, "must be a table of path = value")
            return {}
        return value

    required = data.get("required", [])
    if not isinstance(required, list):
        problem(prefix + "required", "must be a list of paths or segment selectors")
        required = []
    for text in required:
        if isinstance(text, str) and "/" in text:
            parsed = path(prefix + "required", text)
            if parsed is not None:
                rules.append(Required(text, parsed.selector, parsed))  # type: ignore[arg-type]
        else:
            sel = selector(prefix + "required", text)
            if sel is not None:
                rules.append(Required(str(text), sel))
    for text, allowed in table("codes").items():
        key = f"{prefix}codes.{text}"
        parsed = path(key, text)
        if not (isinstance(allowed, list) and allowed and all(isinstance(v, str) and v for v in allowed)):
            problem(key, "must be a non-empty list of codes (strings)")
        elif parsed is not None:
            rules.append(Codes(text, parsed, frozenset(allowed)))
    for text, limit in table("max_length").items():
        key = f"{prefix}max_length.{text}"
        parsed = path(key, text)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            problem(key, f"must be a whole number of at least 1, got {limit!r}")
        elif parsed is not None:
            rules.append(MaxLength(text, parsed, limit))
    for text, limit in table("max_count").items():
        key = f"{prefix}max_count.{text}"
        sel = selector(key, text)
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            problem(key, f"must be a whole number of at least 0, got {limit!r}")
        elif sel is not None:
            rules.append(MaxCount(text, sel, limit))
    return tuple(rules)


def parse_rules(table: dict, file: str, key_prefix: str) -> tuple[PartnerRules, list[ConfigProblem]]:
    """Read a partner's ``[validation]`` table; every problem is returned, none raised.

    Keys: ``strict`` (bool), ``required`` (list of ``SEL`` or ``SEL/E.C``: the segment must
    exist; with an element, every selected segment must have it), ``codes`` (path -> allowed
    values), ``max_length`` (path -> characters), ``max_count`` (selector -> most occurrences).
    A sub-table named after a message type (``[validation.ORDERS]``, ``[validation.850]``)
    holds the same rule keys for that type only.
    """
    problems: list[ConfigProblem] = []

    def problem(key: str, text: str) -> None:
        problems.append(ConfigProblem(file, key_prefix + key, text))

    strict = table.get("strict", False)
    if not isinstance(strict, bool):
        problem("strict", f"must be true or false, got {strict!r}")
        strict = False
    rules = _rule_set(table, "", problem)
    by_type: dict[str, tuple[_Rule, ...]] = {}
    for key, value in table.items():
        if key == "strict" or key in _RULE_KEYS:
            continue
        if _TYPE_KEY.match(key) and isinstance(value, dict):
            for sub in value:
                if sub not in _RULE_KEYS:
                    problem(f"{key}.{sub}", "unknown setting")
            by_type[key] = _rule_set(value, f"{key}.", problem)
        else:
            problem(key, "unknown setting (message-type tables are named like ORDERS or 850)")
    return PartnerRules(strict, rules, tuple(by_type.items())), problems
