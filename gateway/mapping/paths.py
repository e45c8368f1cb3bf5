"""The mapping path language: parse ``TAG[cond,...]#N/E.C`` once, evaluate it fast per message.

Grammar (positions in error messages are 1-based character offsets)::

    path       := selector "/" position | position          (position alone = the anchor segment)
    selector   := TAG ( "[" condition ( "," condition )* "]" )? ( "#" N )?
    position   := E ( "." C )?                               (component defaults to 1)
    condition  := position ( "=" | "!=" ) values             (E=V1|V2, E.C=V; an empty value = absent)
    values     := value ( "|" value )*                     (value: letters, digits, - _ . :)
    range      := ( selector "/" )? E ( "-" E? )?            (2-6, 6- open-ended, 4 = just 4)
    test       := path ( ( "=" | "!=" ) values )?            (a bare path tests "has a value")

TAG is a letter then one or two letters/digits (EDIFACT ``NAD``, X12 ``N1``/``PO1``).
Element and component numbers are 1-based, as in the standards' documentation.

Evaluation runs against a ``Scope``: the segments a field may look at (a message's header
section, one line group, one party group) indexed by tag once, plus an optional anchor segment
that position-only paths refer to.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from ..edi.model import Message, Segment

__all__ = [
    "Condition", "ElementRange", "Find", "Pairs", "Path", "PathSyntaxError", "Scope", "Selector", "When",
    "parse_component_test", "parse_path", "parse_range", "parse_selector", "parse_test", "parse_values",
]


class PathSyntaxError(ValueError):
    """A path, range or test string does not follow the grammar; ``str()`` says where and why."""

    def __init__(self, text: str, position: int, problem: str) -> None:
        super().__init__(f"bad path {text!r}: {problem} at position {position}")
        self.text = text
        self.position = position
        self.problem = problem


class Scope:
    """The segments one field may look at, indexed by tag once, plus the anchor segment."""

    __slots__ = ("segments", "index", "anchor", "message", "sequence", "context", "memo")

    def __init__(self, segments: list[Segment], message: Message | None = None,
                 anchor: Segment | None = None, sequence: int = 0, context: str = "",
                 memo: dict | None = None) -> None:
        self.segments = segments
        self.message = message
        self.anchor = anchor
        self.sequence = sequence        # 1-based position of a line group among the message's lines
        self.context = context          # "party buyer" etc., for error messages
        # Shared by every scope of one message (one Mapping.apply call): hooks that take a
        # third argument get it, to index the message once instead of once per line.
        self.memo = memo if memo is not None else {}
        index: dict[str, list[Segment]] = {}
        for segment in segments:
            bucket = index.get(segment.tag)
            if bucket is None:
                index[segment.tag] = [segment]
            else:
                bucket.append(segment)
        self.index = index


def _value(segment: Segment, element: int, component: int) -> str:
    # Inlined Segment.get: this is the innermost loop of every mapping.
    elements = segment.elements
    if element > len(elements):
        return ""
    comps = elements[element - 1]
    return comps[component - 1] if component <= len(comps) else ""


class Condition(NamedTuple):
    """``E.C=V1|V2`` (or ``!=``) on the segment being selected; the empty value means absent."""

    # A NamedTuple so Selector.select can unpack it in its inner loop without attribute lookups.
    element: int
    component: int
    values: frozenset[str]
    negate: bool = False

    def matches(self, segment: Segment) -> bool:
        """True when the segment's value at element/component is (not) one of the values."""
        return (_value(segment, self.element, self.component) in self.values) != self.negate


@dataclass(frozen=True, slots=True)
class Selector:
    """``TAG[cond,...]#N``: the Nth segment with that tag whose conditions all hold."""

    tag: str
    conditions: tuple[Condition, ...] = ()
    occurrence: int = 0                 # 0: no #N written (select takes the first match)
    text: str = ""

    def select(self, scope: Scope) -> Segment | None:
        """The selected segment in the scope, or None."""
        candidates = scope.index.get(self.tag)
        if not candidates:
            return None
        conditions = self.conditions
        if not conditions:
            n = self.occurrence or 1
            return candidates[n - 1] if len(candidates) >= n else None
        left = self.occurrence or 1
        for segment in candidates:
            elements = segment.elements
            present = len(elements)
            for element, component, values, negate in conditions:
                if element > present:
                    value = ""
                else:
                    comps = elements[element - 1]
                    value = comps[component - 1] if component <= len(comps) else ""
                if (value in values) == negate:
                    break
            else:
                left -= 1
                if not left:
                    return segment
        return None

    def matches(self, segment: Segment) -> bool:
        """True when the segment has the tag and every condition holds (``#N`` is ignored)."""
        return segment.tag == self.tag and all(c.matches(segment) for c in self.conditions)

    def select_all(self, scope: Scope) -> list[Segment]:
        """Every segment with the tag whose conditions hold (just the Nth when ``#N`` is written)."""
        if self.occurrence:
            selected = self.select(scope)
            return [selected] if selected is not None else []
        candidates = scope.index.get(self.tag)
        if not candidates:
            return []
        conditions = self.conditions
        if not conditions:
            return candidates            # callers only iterate: no copy needed
        return [s for s in candidates if all(c.matches(s) for c in conditions)]


@dataclass(frozen=True, slots=True)
class Path:
    """A compiled path; ``selector`` is None for a position-only path (the scope's anchor)."""

    selector: Selector | None
    element: int
    component: int
    text: str
    label: str          # element as written, e.g. "2" or "1.2", for error positions

    @property
    def tag(self) -> str | None:
        """The selector's tag, or None for an anchor-relative path."""
        return self.selector.tag if self.selector else None

    def segment(self, scope: Scope) -> Segment | None:
        """The segment the path points into (the anchor for position-only paths)."""
        return self.selector.select(scope) if self.selector else scope.anchor

    def lookup(self, scope: Scope) -> tuple[str, Segment, str] | None:
        """(value, segment, element label) when the path has a non-empty value in the scope."""
        segment = self.selector.select(scope) if self.selector else scope.anchor
        if segment is None:
            return None
        value = _value(segment, self.element, self.component)
        return (value, segment, self.label) if value else None

    def lookup_in(self, segment: Segment) -> str:
        """The value at this path's element/component of a given segment ('' when absent)."""
        return _value(segment, self.element, self.component)

    def lookup_all(self, scope: Scope) -> list[tuple[str, Segment]]:
        """Every non-empty (value, segment) over all selected segments, in document order."""
        if self.selector is None:
            hit = self.lookup(scope)
            return [hit[:2]] if hit else []
        out = []
        for segment in self.selector.select_all(scope):
            value = _value(segment, self.element, self.component)
            if value:
                out.append((value, segment))
        return out


@dataclass(frozen=True, slots=True)
class ElementRange:
    """``SEL/2-6`` (or ``6-`` open-ended): elements ``first``..``last`` of the selected segments."""

    selector: Selector | None
    first: int
    last: int | None
    text: str

    def segments(self, scope: Scope) -> list[Segment]:
        """The segments whose elements the range covers (the anchor for a bare range)."""
        if self.selector is None:
            return [scope.anchor] if scope.anchor is not None else []
        return self.selector.select_all(scope)

    def stop(self, segment: Segment) -> int:
        """One past the last element number to look at in this segment."""
        present = len(segment.elements)
        return present + 1 if self.last is None else min(self.last, present) + 1


@dataclass(frozen=True, slots=True)
class When:
    """A ``when`` test: the path's value is (not) one of ``values``; None values = has a value."""

    path: Path
    values: frozenset[str] | None
    negate: bool = False
    text: str = ""

    def holds(self, scope: Scope) -> bool:
        """Evaluate the test in the scope."""
        segment = self.path.segment(scope)
        value = _value(segment, self.path.element, self.path.component) if segment is not None else ""
        if self.values is None:
            return bool(value) != self.negate
        return (value in self.values) != self.negate


class Find:
    """``find``/``where``/``take``: search the composites of a range for a qualifier, take a component.

    ``values`` is a preference order: with ``where = "2=IN|BP"`` an IN composite anywhere in
    scope wins over a BP one; between equals, document order decides.
    """

    __slots__ = ("range", "component", "values", "take", "text", "_rank")

    def __init__(self, element_range: ElementRange, component: int, values: tuple[str, ...],
                 take: int, text: str = "") -> None:
        self.range = element_range
        self.component = component
        self.values = values
        self.take = take
        self.text = text
        self._rank = {value: rank for rank, value in reversed(list(enumerate(values)))}

    def lookup(self, scope: Scope) -> tuple[str, Segment, str] | None:
        """(value, segment, "E.C" label) of the best match, or None."""
        rank_of, component, take, first = self._rank, self.component, self.take, self.range.first
        best, best_rank = None, len(self.values)
        for segment in self.range.segments(scope):
            elements = segment.elements
            for element in range(first, self.range.stop(segment)):
                comps = elements[element - 1]
                rank = rank_of.get(comps[component - 1] if component <= len(comps) else "")
                if rank is not None and rank < best_rank:
                    value = comps[take - 1] if take <= len(comps) else ""
                    if value:
                        best, best_rank = (value, segment, f"{element}.{take}"), rank
                        if rank == 0:
                            return best
        return best


class Pairs:
    """``pairs``/``qualifier``: X12-style qualifier/value element pairs (6,7), (8,9)... of a range.

    ``qualifiers`` is a preference order, like ``Find.values``.
    """

    __slots__ = ("range", "qualifiers", "text", "_rank")

    def __init__(self, element_range: ElementRange, qualifiers: tuple[str, ...], text: str = "") -> None:
        self.range = element_range
        self.qualifiers = qualifiers
        self.text = text
        self._rank = {value: rank for rank, value in reversed(list(enumerate(qualifiers)))}

    def lookup(self, scope: Scope) -> tuple[str, Segment, str] | None:
        """(value, segment, value element label) of the best qualifier found, or None."""
        rank_of, first = self._rank, self.range.first
        best, best_rank = None, len(self.qualifiers)
        for segment in self.range.segments(scope):
            elements = segment.elements
            present = len(elements)
            for element in range(first, self.range.stop(segment), 2):
                rank = rank_of.get(_value(segment, element, 1))
                if rank is not None and rank < best_rank and element < present:
                    value = _value(segment, element + 1, 1)
                    if value:
                        best, best_rank = (value, segment, str(element + 1)), rank
                        if rank == 0:
                            return best
        return best


# --- parser ---------------------------------------------------------------------------------

_TAG_FIRST = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_TAG_REST = _TAG_FIRST | frozenset("0123456789")
_DIGITS = frozenset("0123456789")
# Code values (qualifiers) are letters and digits, sometimes with - _ . : a tighter alphabet
# makes a typo fail at the character that is wrong.
_VALUE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:")


class _Reader:
    """A cursor over one path string that raises PathSyntaxError with the 1-based position."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def fail(self, problem: str, pos: int | None = None) -> PathSyntaxError:
        return PathSyntaxError(self.text, (self.pos if pos is None else pos) + 1, problem)

    def accept(self, token: str) -> bool:
        if self.text.startswith(token, self.pos):
            self.pos += len(token)
            return True
        return False

    def expect(self, token: str, problem: str) -> None:
        if not self.accept(token):
            raise self.fail(problem)

    def number(self, what: str) -> int:
        start = self.pos
        while self.peek() in _DIGITS:
            self.pos += 1
        if start == self.pos:
            raise self.fail(f"expected {what}")
        value = int(self.text[start:self.pos])
        if value < 1:
            raise self.fail(f"{what} must be 1 or more", start)
        return value

    def tag(self) -> str:
        start = self.pos
        if self.peek() not in _TAG_FIRST:
            raise self.fail("expected a segment tag (a capital letter, then 1-2 capital letters or digits)")
        self.pos += 1
        while self.peek() in _TAG_REST:
            self.pos += 1
        if self.pos - start > 3:
            raise self.fail("a segment tag has at most 3 characters", start)
        if self.pos - start < 2:
            raise self.fail("a segment tag has at least 2 characters", start)
        return self.text[start:self.pos]

    def position(self) -> tuple[int, int, str]:
        start = self.pos
        element = self.number("an element number")
        component = self.number("a component number") if self.accept(".") else 1
        return element, component, self.text[start:self.pos]

    def values(self) -> tuple[str, ...]:
        """``V1|V2|...`` in the order written (an empty value is allowed: it means absent)."""
        found = []
        while True:
            start = self.pos
            while self.peek() in _VALUE_CHARS:
                self.pos += 1
            found.append(self.text[start:self.pos])
            if not self.accept("|"):
                return tuple(found)

    def operator(self) -> bool:
        """Read '=' or '!='; return True for '!='."""
        if self.accept("!="):
            return True
        if self.accept("="):
            return False
        raise self.fail("expected '=' or '!='")

    def selector(self) -> Selector:
        start = self.pos
        tag = self.tag()
        conditions: list[Condition] = []
        if self.accept("["):
            while True:
                element, component, _ = self.position()
                negate = self.operator()
                conditions.append(Condition(element, component, frozenset(self.values()), negate))
                if self.accept("]"):
                    break
                self.expect(",", "expected ',' or ']'")
        occurrence = self.number("an occurrence number") if self.accept("#") else 0
        return Selector(tag, tuple(conditions), occurrence, self.text[start:self.pos])

    def path(self) -> Path:
        if self.peek() in _DIGITS:
            element, component, label = self.position()
            return Path(None, element, component, "", label)
        selector = self.selector()
        self.expect("/", "expected '/' then an element number")
        element, component, label = self.position()
        return Path(selector, element, component, "", label)

    def finish(self) -> None:
        if not self.at_end():
            raise self.fail(f"unexpected {self.peek()!r}")


def _reader(text: object) -> _Reader:
    if not isinstance(text, str):
        raise PathSyntaxError(repr(text), 1, "a path must be a string")
    if not text:
        raise PathSyntaxError(text, 1, "empty path")
    return _Reader(text)


def _with_text(path: Path, text: str) -> Path:
    return Path(path.selector, path.element, path.component, text, path.label)


def parse_path(text: str) -> Path:
    """Parse ``TAG[cond]#N/E.C`` or a position-only ``E.C``; raises PathSyntaxError."""
    reader = _reader(text)
    path = reader.path()
    reader.finish()
    return _with_text(path, text)


def parse_selector(text: str) -> Selector:
    """Parse a segment selector ``TAG[cond,...]#N`` (no element part)."""
    reader = _reader(text)
    selector = reader.selector()
    reader.finish()
    return selector


def parse_range(text: str) -> ElementRange:
    """Parse ``SEL/2-6``, ``SEL/6-`` or ``SEL/4`` (the selector may be left out: the anchor)."""
    reader = _reader(text)
    selector = None
    if reader.peek() not in _DIGITS:
        selector = reader.selector()
        reader.expect("/", "expected '/' then an element range like 2-6")
    first = reader.number("an element number")
    last: int | None = first
    if reader.accept("-"):
        last = None
        if not reader.at_end():
            start = reader.pos
            last = reader.number("an element number")
            if last < first:
                raise reader.fail("the range ends before it starts", start)
    reader.finish()
    return ElementRange(selector, first, last, text)


def parse_test(text: str) -> When:
    """Parse a ``when`` test: ``PATH=V1|V2``, ``PATH!=V`` or a bare ``PATH`` (has a value)."""
    reader = _reader(text)
    path = reader.path()
    if reader.at_end():
        return When(_with_text(path, text), None, False, text)
    end = reader.pos
    negate = reader.operator()
    values = frozenset(reader.values())
    reader.finish()
    return When(_with_text(path, text[:end]), values, negate, text)


def parse_component_test(text: str) -> tuple[int, tuple[str, ...]]:
    """Parse a ``where`` test ``C=V1|V2`` on a composite: (component, values in preference order)."""
    reader = _reader(text)
    component = reader.number("a component number")
    reader.expect("=", "expected '='")
    values = reader.values()
    reader.finish()
    return component, values


def parse_values(text: str) -> tuple[str, ...]:
    """Parse ``V1|V2|...`` (e.g. a ``qualifier``) into values in preference order."""
    reader = _reader(text)
    values = reader.values()
    reader.finish()
    if not all(values):
        raise reader.fail("empty value in the list", 0)
    return values
