"""Apply compiled mappings: one EDI Message -> the ``document`` dict of a canonical document.

``loader.py`` parses and checks mapping files once; what it builds here (``Mapping`` and its
plan of compiled fields) only walks pre-compiled paths over segments indexed by tag once per
scope, so ``Mapping.apply`` never re-parses a string.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator

from ..edi.model import Delimiters, Message, Segment
from ..errors import MappingError
from . import convert as conv
from .paths import Path, Scope, Selector, When

__all__ = ["DOCUMENT_SHAPES", "Mapping", "MappingSet"]

# --- canonical document shapes (DESIGN.md §4) --------------------------------------------------
# Every document comes out with every key of its shape, in this order: a scalar that has no
# value is null, a list is [], an unmapped or absent party is null (stable shape for consumers).
SCALAR, LIST, OBJECT, PARTY, LINES, PACKAGES = "scalar", "list", "object", "party", "lines", "packages"


def _scalars(*names: str) -> tuple:
    return tuple((name, SCALAR, None) for name in names)


_ITEM = ("item", OBJECT, _scalars("gtin", "buyer_code", "seller_code", "description"))
_ORDER_LINE = (("line", SCALAR, None), _ITEM, *_scalars("quantity", "unit", "unit_price"))
_SHIP_LINE = (("line", SCALAR, None), _ITEM, *_scalars("quantity", "unit", "order_number"))

DOCUMENT_SHAPES: dict[str, tuple] = {
    "order": (*_scalars("number", "issue_date", "requested_delivery_date", "currency"),
              ("buyer", PARTY, None), ("seller", PARTY, None), ("ship_to", PARTY, None),
              ("lines", LINES, _ORDER_LINE)),
    "invoice": (*_scalars("number", "issue_date", "order_number", "currency"),
                ("buyer", PARTY, None), ("seller", PARTY, None),
                ("lines", LINES, (*_ORDER_LINE, *_scalars("line_amount", "tax_rate"))),
                ("totals", OBJECT, _scalars("net", "tax", "gross"))),
    "order_response": (*_scalars("number", "issue_date", "order_number", "status"),
                       ("buyer", PARTY, None), ("seller", PARTY, None),
                       ("lines", LINES, (*_ORDER_LINE, ("status", SCALAR, None)))),
    # Lines sit in their package (SSCC) when the message has packages, else top level.
    "ship_notice": (*_scalars("number", "issue_date", "ship_date"), ("order_numbers", LIST, None),
                    ("ship_from", PARTY, None), ("ship_to", PARTY, None),
                    *_scalars("carrier", "tracking"),
                    ("packages", PACKAGES, (("sscc", SCALAR, None), ("lines", LINES, _SHIP_LINE))),
                    ("lines", LINES, _SHIP_LINE)),
}
PARTY_FIELDS = ("id", "scheme", "name")


def leaves(entries: tuple, prefix: str = "") -> dict[str, str]:
    """Dotted names of the scalar/list fields in a shape (parties and lines excluded)."""
    out: dict[str, str] = {}
    for name, kind, sub in entries:
        if kind in (SCALAR, LIST):
            out[prefix + name] = kind
        elif kind == OBJECT:
            out.update(leaves(sub, prefix + name + "."))
    return out


def _build(entries: tuple, flat: dict[str, Any], prefix: str, lines: list | None,
           packages: list | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, kind, sub in entries:
        if kind == OBJECT:
            out[name] = _build(sub, flat, prefix + name + ".", None)
        elif kind == LINES:
            out[name] = lines if lines is not None else []
        elif kind == PACKAGES:
            out[name] = packages if packages is not None else []
        elif kind == LIST:
            out[name] = flat.get(prefix + name) or []
        else:
            out[name] = flat.get(prefix + name)
    return out


# --- runtime: compiled fields -----------------------------------------------------------------
Hit = tuple[str, "Segment | None", "str | None"]          # raw value, its segment, element label
Source = Callable[[Scope], "Hit | None"]


def _where(scope: Scope) -> str:
    if scope.sequence and scope.anchor is not None:
        at = f" at segment {scope.anchor.number}" if scope.anchor.number else ""
        return f" in line {scope.sequence} ({scope.anchor.tag}{at})"
    return f" in {scope.context}" if scope.context else ""


class Alternative:
    """One way to get a field's value: a source, then conversion and code list."""

    __slots__ = ("source", "desc", "tag", "label", "convert", "codes", "strict", "default",
                 "required", "when", "path")

    def __init__(self) -> None:
        self.source: Source | None = None
        self.desc = ""
        self.tag: str | None = None
        self.label: str | None = None
        self.convert: Callable[[str, Segment | None, Scope, str], Any] | None = None  # None: text
        self.codes: dict[str, str] | None = None
        self.strict = False
        self.default: Any = None
        self.required = False
        self.when: When | None = None
        self.path: Path | None = None          # set for path sources (list fields need it)


class CompiledField:
    """A compiled field spec: alternatives tried in order; the first value found wins."""

    __slots__ = ("name", "alternatives", "many", "desc")

    def __init__(self, name: str, alternatives: list[Alternative], many: bool) -> None:
        self.name = name
        self.alternatives = tuple(alternatives)
        self.many = many
        self.desc = " | ".join(a.desc for a in alternatives)

    def _value(self, alt: Alternative, raw: str, segment: Segment | None, label: str | None,
               scope: Scope, mark: str) -> Any:
        try:
            value = alt.convert(raw, segment, scope, mark) if alt.convert else conv.to_text(raw)
        except conv.ConversionError as exc:
            raise self._error(f"field '{self.name}' ({alt.desc}): {exc}", scope, segment, alt.tag, label) from None
        if value is not None and alt.codes is not None:
            coded = alt.codes.get(value)
            if coded is not None:
                return coded
            if alt.strict:
                raise self._error(f"field '{self.name}' ({alt.desc}): unknown code {value!r} "
                                  f"(known: {', '.join(alt.codes)})", scope, segment, alt.tag, label)
        return value

    def _error(self, problem: str, scope: Scope, segment: Segment | None, tag: str | None,
               label: str | None) -> MappingError:
        return MappingError(problem + _where(scope), segment=(segment.number or None) if segment else None,
                            tag=segment.tag if segment is not None else tag, element=label)

    def evaluate(self, scope: Scope, mark: str) -> Any:
        """The field's canonical value in the scope (None/[] when absent); raises MappingError."""
        if self.many:
            return self._evaluate_all(scope, mark)
        applies = True
        for alt in self.alternatives:
            if alt.when is not None and not alt.when.holds(scope):
                applies = False
                continue
            applies = True
            hit = alt.source(scope)
            if hit is not None:
                value = self._value(alt, hit[0], hit[1], hit[2], scope, mark)
                if value is not None:
                    return value
        last = self.alternatives[-1]
        if not applies:             # the last alternative's `when` is false: the field does not apply
            return None
        if last.default is not None:
            return last.default
        if last.required:
            raise self._error(f"required field '{self.name}' ({self.desc}) is missing", scope, None,
                              last.tag, last.label)
        return None

    def _evaluate_all(self, scope: Scope, mark: str) -> list:
        alt = self.alternatives[0]
        if alt.when is not None and not alt.when.holds(scope):
            return []
        values = []
        for raw, segment in alt.path.lookup_all(scope):
            value = self._value(alt, raw, segment, alt.label, scope, mark)
            if value is not None:
                values.append(value)
        if not values and alt.required:
            raise self._error(f"required field '{self.name}' ({self.desc}) is missing", scope, None,
                              alt.tag, alt.label)
        return values


@dataclass(frozen=True)
class PartyPlan:
    """A compiled ``[parties.NAME]`` table."""

    name: str
    selectors: tuple[Selector, ...]     # tried in order: the first present segment is the party's
    stops: frozenset[str]               # tags that end the party's group
    required: bool
    fields: tuple[tuple[str, CompiledField], ...]
    context: str

    def evaluate(self, header: Scope, body: list[Segment], mark: str) -> dict | None:
        """The party object, or None when its segment is absent; raises MappingError."""
        for selector in self.selectors:
            segment = selector.select(header)
            if segment is not None:
                break
        else:
            if self.required:
                raise MappingError(f"required party '{self.name}' "
                                   f"({' | '.join(s.text for s in self.selectors)}) is missing",
                                   tag=self.selectors[0].tag)
            return None
        # The party's group: its segment and what follows up to a stop tag (the next party
        # segment, the lines, ...). Party segments sit near the top, so these scans are short.
        group = [segment]
        start = next(i for i, s in enumerate(body) if s is segment)
        stops = self.stops
        for i in range(start + 1, len(body)):
            if body[i].tag in stops:
                break
            group.append(body[i])
        scope = Scope(group, header.message, anchor=segment, context=self.context, memo=header.memo)
        party = dict.fromkeys(PARTY_FIELDS)         # every key present: stable shape
        for name, compiled in self.fields:
            party[name] = compiled.evaluate(scope, mark)
        return party


@dataclass(frozen=True)
class LinesPlan:
    """A compiled ``[lines]`` table."""

    group: Selector                     # starts each line group ("LIN", "HL[3=I]")
    end: tuple[Selector, ...]           # end line and package groups (the summary section...)
    required: bool
    fields: tuple[tuple[str, CompiledField], ...]
    shape: tuple


@dataclass(frozen=True)
class PackagesPlan:
    """A compiled ``[packages]`` table: package groups that hold line groups (ship notices)."""

    group: Selector                     # starts each package group ("CPS", "HL[3=P|T]")
    fields: tuple[tuple[str, CompiledField], ...]
    shape: tuple                        # the package object: sscc, lines


# Kinds of group boundaries, in precedence order when one segment matches several selectors.
_PACKAGE, _LINE, _END = 1, 2, 3


def boundaries(lines: LinesPlan | None, packages: PackagesPlan | None) -> dict[str, Any]:
    """tag -> boundary kind, or (conditions, kind) pairs to test in order when conditions apply.

    Computed once per mapping so splitting a message costs one dict lookup per segment.
    """
    entries: list[tuple[Selector, int]] = []
    if packages is not None:
        entries.append((packages.group, _PACKAGE))
    if lines is not None:
        entries.append((lines.group, _LINE))
        entries.extend((selector, _END) for selector in lines.end)
    by_tag: dict[str, list[tuple[tuple, int]]] = {}
    for selector, kind in entries:
        by_tag.setdefault(selector.tag, []).append((selector.conditions, kind))
    return {tag: kinds[0][1] if not kinds[0][0] else tuple(kinds) for tag, kinds in by_tag.items()}


def _kind(segment: Segment, kinds: tuple) -> int | None:
    for conditions, kind in kinds:
        if all(c.matches(segment) for c in conditions):
            return kind
    return None


def _split(body: list[Segment], bounds: dict[str, Any]) -> tuple[list, list, list]:
    """One pass over the body: (header segments, line groups, package groups).

    A line group runs from its start segment to the next line, package or end boundary; a
    package group's own segments run to its first line. Everything else (heading section,
    summary section after an end boundary) is the header. Line groups are
    ``(package index or -1, segments)``; package groups are ``(segments, follows)`` where
    ``follows`` is False for the first package after the heading or an end boundary.
    """
    header: list[Segment] = []
    groups: list[tuple[int, list[Segment]]] = []
    packages: list[tuple[list[Segment], bool]] = []
    line: list[Segment] | None = None
    own: list[Segment] | None = None
    package, follows = -1, False
    get = bounds.get
    for segment in body:
        kind = get(segment.tag)
        if kind is not None:
            if kind.__class__ is tuple:
                kind = _kind(segment, kind)
            if kind == _LINE:
                line = [segment]
                groups.append((package, line))
                continue
            if kind == _PACKAGE:
                line, own = None, [segment]
                packages.append((own, follows))
                package, follows = len(packages) - 1, True
                continue
            if kind == _END:
                line = own = None
                package, follows = -1, False
                header.append(segment)
                continue
        if line is not None:
            line.append(segment)
        elif own is not None:
            own.append(segment)
        else:
            header.append(segment)
    return header, groups, packages


@dataclass(frozen=True)
class Plan:
    """Everything ``Mapping.apply`` runs, compiled by the loader."""

    shape: tuple
    header: tuple[tuple[str, CompiledField], ...]
    parties: tuple[PartyPlan, ...]
    lines: LinesPlan | None
    packages: PackagesPlan | None = None
    bounds: dict[str, Any] = field(default_factory=dict)     # see boundaries()


@dataclass(frozen=True)
class Mapping:
    """One loaded, validated mapping file; ``apply`` turns a matching Message into a document.

    Built by ``load_mappings`` (which compiles ``_plan``); frozen, so safe to share between threads.
    """

    name: str
    format: str
    message: str
    versions: tuple[str, ...]
    document: str
    description: str = ""
    auto: bool = True                   # False: used only when a partner's file names it
    file: str = ""
    direction: str = "inbound"          # EDI -> canonical; see MappingSet for other directions
    _plan: Plan | None = field(default=None, repr=False, compare=False)

    def apply(self, message: Message, delimiters: Delimiters) -> dict[str, Any]:
        """The type-specific ``document`` part of the canonical document; raises MappingError.

        ``delimiters.decimal`` is the interchange's decimal mark: '12,50' is read as 12.50
        when it is ',' ('.' is always accepted too).
        """
        plan = self._plan
        mark = delimiters.decimal
        body = message.body
        lines_plan = plan.lines
        if lines_plan is None:
            header_segments, groups, package_groups = body, [], []
        else:
            header_segments, groups, package_groups = _split(body, plan.bounds)
        header = Scope(header_segments, message, memo={})
        flat = {name: f.evaluate(header, mark) for name, f in plan.header}
        for party in plan.parties:
            flat[party.name] = party.evaluate(header, body, mark)
        if lines_plan is None:
            return _build(plan.shape, flat, "", None)
        if lines_plan.required and not groups:
            raise MappingError(f"the message has no line ({lines_plan.group.text} segment)",
                               tag=lines_plan.group.tag)
        lines: list[dict] = []
        # targets[i]: the list package i's lines go to; targets[-1] (index -1): top level.
        targets: list[list] = []
        packages: list[dict] = []
        if plan.packages is not None:
            packages = self._packages(plan.packages, package_groups, targets, lines, header, mark)
        targets.append(lines)
        fields, shape, memo = lines_plan.fields, lines_plan.shape, header.memo
        for sequence, (package, group) in enumerate(groups, 1):
            scope = Scope(group, message, anchor=group[0], sequence=sequence, memo=memo)
            values = {name: f.evaluate(scope, mark) for name, f in fields}
            targets[package].append(_build(shape, values, "", None))
        return _build(plan.shape, flat, "", lines, packages)

    @staticmethod
    def _packages(plan: PackagesPlan, package_groups: list, targets: list[list], top: list[dict],
                  header: Scope, mark: str) -> list[dict]:
        """Map the package groups; fill ``targets`` with where each package's lines go.

        A package group without an SSCC is no package of its own: its lines join the package
        before it (the labelled pallet above unlabelled cartons), or the top-level lines.
        """
        packages: list[dict] = []
        holder: list | None = None
        for number, (own, follows) in enumerate(package_groups, 1):
            anchor = own[0]
            at = f" at segment {anchor.number}" if anchor.number else ""
            scope = Scope(own, header.message, anchor=anchor, context=f"package {number} ({anchor.tag}{at})",
                          memo=header.memo)
            values = {name: f.evaluate(scope, mark) for name, f in plan.fields}
            if not follows:
                holder = None
            if values.get("sscc") is None:
                targets.append(holder if holder is not None else top)
                continue
            holder = []
            packages.append(_build(plan.shape, values, "", holder))
            targets.append(holder)
        return packages


class MappingSet:
    """The deployment's mappings, looked up by name or by (format, message type, version)."""

    def __init__(self, mappings: Iterable[Mapping]) -> None:
        self._by_name: dict[str, Any] = {}
        self._auto: dict[tuple[str, str, str], list[Any]] = {}
        for mapping in mappings:
            self._by_name[mapping.name] = mapping
            # Kinds without a message type (XML mappings, chosen by their root) only by name.
            if mapping.auto and hasattr(mapping, "message"):
                key = (getattr(mapping, "direction", "inbound"), mapping.format, mapping.message)
                self._auto.setdefault(key, []).append(mapping)

    def find(self, format: str, message_type: str, version: str, override: str | None = None,
             direction: str = "inbound") -> Mapping | None:
        """The mapping for a message, or None.

        ``override`` is the mapping name a partner's file chose for this message type: it wins
        (whatever its versions say) if it exists and reads this format, message type and
        direction. Otherwise a mapping listing the exact version wins over one that lists no
        versions. Mappings of other kinds (``direction = "outbound"``, registered through
        ``loader.LOADERS``) only answer when asked for their direction.
        """
        if override:
            chosen = self._by_name.get(override)
            if (chosen is None or chosen.format != format or getattr(chosen, "message", None) != message_type
                    or getattr(chosen, "direction", "inbound") != direction):
                return None
            return chosen
        generic = None
        for mapping in self._auto.get((direction, format, message_type), ()):
            if version in mapping.versions:
                return mapping
            if not mapping.versions and generic is None:
                generic = mapping
        return generic

    def of_format(self, format: str) -> list[Any]:
        """Every mapping reading ``format`` (e.g. the XML ones, which are chosen by their root element)."""
        return [m for m in self if m.format == format and getattr(m, "direction", "inbound") == "inbound"]

    def get(self, name: str) -> Mapping | None:
        """The mapping with that name (the file stem), or None."""
        return self._by_name.get(name)

    @property
    def names(self) -> list[str]:
        """Every mapping name, sorted."""
        return sorted(self._by_name)

    def __iter__(self) -> Iterator[Mapping]:
        return iter(self._by_name[name] for name in self.names)

    def __len__(self) -> int:
        return len(self._by_name)

    def __contains__(self, name: object) -> bool:
        return name in self._by_name
