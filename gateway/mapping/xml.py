"""XML mappings: TOML files whose XPath fields turn one XML document into a canonical document body.

The language mirrors the EDI one (mappings/README.md): ``[fields]``, ``[parties.NAME]``,
``[lines]`` and ``[lines.fields]``, the same field options (convert, codes, default, required,
when, alternatives as lists); paths are XPath 1.0 with the file's ``[namespaces]`` prefixes.
Everything is checked and compiled once by ``xml_loader.load_xml_mapping`` (XPath objects, the
XSD), so ``XmlMapping.apply_xml`` only evaluates compiled expressions.
"""

from __future__ import annotations

import datetime as _dt
import re
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Iterable

from lxml import etree

from ..errors import MappingError
from . import convert as conv
from . import engine
from .engine import LINES, LIST, OBJECT, PARTY_FIELDS

__all__ = ["XmlMapping", "find_xml_mapping", "require_xml_mapping", "to_xml_date"]

_PACKAGES = getattr(engine, "PACKAGES", "packages")

# xs:date / xs:dateTime: the offset is dropped, as canonical dates and times are the sender's local ones.
_ISO = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?(?:Z|[+-]\d{2}:\d{2})?\Z")


def to_xml_date(value: str, date_format: str | None = None) -> str | None:
    """ISO 8601 from an XML date: xs:date/xs:dateTime, or an EDI layout (20261120, date_format codes)."""
    text = value.strip()
    if not text:
        return None
    if date_format is None:
        match = _ISO.match(text)
        if match:
            year, month, day, hour, minute, second = (int(g) if g else None for g in match.groups())
            try:
                iso = _dt.date(year, month, day).isoformat()
            except ValueError:
                raise conv.ConversionError(f"{value!r} is not a valid calendar date") from None
            if hour is None:
                return iso
            if hour > 23 or minute > 59 or (second or 0) > 59:
                raise conv.ConversionError(f"{value!r} is not a valid time of day")
            return f"{iso}T{hour:02d}:{minute:02d}:{second or 0:02d}"
        if "-" in text[:8] or ":" in text:
            raise conv.ConversionError(f"{value!r} is not a date (YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)")
    return conv.to_date(text, date_format)


def _line_of(item: Any) -> int | None:
    if isinstance(item, etree._Element):
        return item.sourceline
    parent = getattr(item, "getparent", None)
    owner = parent() if parent else None
    return owner.sourceline if owner is not None else None


def _value(result: Any) -> tuple[str | None, int | None]:
    """The string value of an XPath result and its source line: the first node wins, as in EDI."""
    if isinstance(result, list):
        if not result:
            return None, None
        item = result[0]
        if isinstance(item, etree._Element):
            return "".join(item.itertext()), item.sourceline
        return (str(item) if isinstance(item, str) else None), _line_of(item)
    if isinstance(result, bool):
        return ("true" if result else "false"), None
    if isinstance(result, float):
        # XPath numbers are doubles: only whole ones (count(), position()) are exact.
        if result != result or result in (float("inf"), float("-inf")) or not result.is_integer():
            raise conv.ConversionError(f"the XPath gave the floating point number {result!r}; "
                                       "map the element's text instead of computing with it")
        return str(int(result)), None
    if isinstance(result, str):
        return str(result), _line_of(result)
    return None, None


class _Alternative:
    __slots__ = ("xpath", "desc", "convert", "codes", "strict", "default", "required", "when", "sequence")

    def __init__(self) -> None:
        self.xpath: etree.XPath | None = None
        self.desc = ""
        self.convert: Callable[[str], Any] = conv.to_text
        self.codes: dict[str, str] | None = None
        self.strict = False
        self.default: Any = None
        self.required = False
        self.when: etree.XPath | None = None
        self.sequence = False


@dataclass(frozen=True)
class _Scope:
    node: etree._Element
    context: str            # " in line 2 (<InvoiceLine> at XML line 30)", " in party buyer ..."
    sequence: int = 0


def _error(problem: str, scope: _Scope, line: int | None) -> MappingError:
    return MappingError(f"XML line {line}: {problem}{scope.context}" if line else problem + scope.context)


class _Field:
    """A compiled field: alternatives tried in order, the first value found wins."""

    __slots__ = ("name", "alternatives", "many", "desc")

    def __init__(self, name: str, alternatives: list[_Alternative], many: bool) -> None:
        self.name, self.alternatives, self.many = name, tuple(alternatives), many
        self.desc = " | ".join(a.desc for a in alternatives)

    def _convert(self, alt: _Alternative, raw: str, line: int | None, scope: _Scope) -> Any:
        try:
            value = alt.convert(raw)
        except conv.ConversionError as exc:
            raise _error(f"field '{self.name}' ({alt.desc}): {exc}", scope, line) from None
        if value is not None and alt.codes is not None:
            coded = alt.codes.get(value)
            if coded is not None:
                return coded
            if alt.strict:
                raise _error(f"field '{self.name}' ({alt.desc}): unknown code {value!r} "
                             f"(known: {', '.join(alt.codes)})", scope, line)
        return value

    def _run(self, xpath: etree.XPath, alt_desc: str, scope: _Scope) -> Any:
        try:
            return xpath(scope.node)
        except etree.XPathError as exc:   # e.g. a function given a node-set it cannot take
            raise _error(f"field '{self.name}' ({alt_desc}): XPath failed: {exc}", scope,
                         scope.node.sourceline) from None

    def evaluate(self, scope: _Scope) -> Any:
        """The field's value in the scope (None, or [] for a list field); raises MappingError."""
        if self.many:
            return self._evaluate_all(scope)
        applies = True
        for alt in self.alternatives:
            if alt.when is not None and not _truthy(self._run(alt.when, alt.desc, scope)):
                applies = False
                continue
            applies = True
            if alt.sequence:
                return str(scope.sequence)
            try:
                raw, line = _value(self._run(alt.xpath, alt.desc, scope))
            except conv.ConversionError as exc:
                raise _error(f"field '{self.name}' ({alt.desc}): {exc}", scope, None) from None
            if raw is not None:
                value = self._convert(alt, raw, line, scope)
                if value is not None:
                    return value
        last = self.alternatives[-1]
        if not applies:
            return None
        if last.default is not None:
            return last.default
        if last.required:
            raise _error(f"required field '{self.name}' ({self.desc}) is missing", scope, None)
        return None

    def _evaluate_all(self, scope: _Scope) -> list:
        alt = self.alternatives[0]
        if alt.when is not None and not _truthy(self._run(alt.when, alt.desc, scope)):
            return []
        result = self._run(alt.xpath, alt.desc, scope)
        values = []
        for item in result if isinstance(result, list) else [result]:
            try:
                raw, line = _value([item] if isinstance(result, list) else item)
            except conv.ConversionError as exc:
                raise _error(f"field '{self.name}' ({alt.desc}): {exc}", scope, None) from None
            value = self._convert(alt, raw, line, scope) if raw is not None else None
            if value is not None:
                values.append(value)
        if not values and alt.required:
            raise _error(f"required field '{self.name}' ({self.desc}) is missing", scope, None)
        return values


def _elements(result: Any) -> list[etree._Element]:
    """The elements of a node-set result (an expression giving a string or number selects none)."""
    return [n for n in result if isinstance(n, etree._Element)] if isinstance(result, list) else []


def _truthy(result: Any) -> bool:
    """XPath boolean(): a non-empty node-set or string, a non-zero number, true."""
    if isinstance(result, float):
        return result != 0 and result == result
    return bool(result)


@dataclass(frozen=True)
class _Party:
    name: str
    nodes: tuple[tuple[str, etree.XPath], ...]      # tried in order: the first match is the party
    required: bool
    fields: tuple[tuple[str, _Field], ...]

    def evaluate(self, root: etree._Element) -> dict | None:
        for text, xpath in self.nodes:
            found = _elements(xpath(root))
            if found:
                node = found[0]
                break
        else:
            if self.required:
                raise MappingError(f"required party '{self.name}' "
                                   f"({' | '.join(t for t, _ in self.nodes)}) is missing")
            return None
        scope = _Scope(node, f" in party {self.name} (<{etree.QName(node).localname}> at XML line {node.sourceline})")
        party = dict.fromkeys(PARTY_FIELDS)
        for name, compiled in self.fields:
            party[name] = compiled.evaluate(scope)
        return party


@dataclass(frozen=True)
class _Lines:
    node: str
    xpath: etree.XPath
    required: bool
    fields: tuple[tuple[str, _Field], ...]
    shape: tuple


@dataclass(frozen=True)
class _Plan:
    shape: tuple
    header: tuple[tuple[str, _Field], ...]
    parties: tuple[_Party, ...]
    lines: _Lines | None


def _build(entries: tuple, flat: dict[str, Any], prefix: str, lines: list | None) -> dict[str, Any]:
    """The document in its canonical key order; every key present (null / [] when unmapped)."""
    out: dict[str, Any] = {}
    for name, kind, sub in entries:
        if kind == OBJECT:
            out[name] = _build(sub, flat, prefix + name + ".", None)
        elif kind == LINES:
            out[name] = lines if lines is not None else []
        elif kind == LIST:
            out[name] = flat.get(prefix + name) or []
        elif kind == _PACKAGES:
            out[name] = []              # XML mappings put ship notice lines at the top level
        else:                           # scalars and parties
            out[name] = flat.get(prefix + name)
    return out


@dataclass(frozen=True)
class XmlMapping:
    """One loaded XML mapping file; ``apply_xml`` maps a document whose root it reads.

    Frozen and safe to share: XPath objects are evaluated per call; XSD validation, whose
    error log lives on the schema object, runs under a lock.
    """

    name: str
    document: str
    root: str                           # local name of the root element
    namespace: str                      # its namespace URI ("" = none)
    description: str = ""
    auto: bool = True
    file: str = ""
    xsd: str | None = None              # relative to mappings/, as written in the file
    _plan: _Plan | None = field(default=None, repr=False, compare=False)
    _schema: etree.XMLSchema | None = field(default=None, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    format: ClassVar[str] = "xml"
    direction: ClassVar[str] = "inbound"
    versions: ClassVar[tuple[str, ...]] = ()     # XML roots have no version to choose by

    @property
    def message(self) -> str:
        """The 'message type' of an XML document: its root element's local name."""
        return self.root

    def validate_xsd(self, tree_or_root: etree._ElementTree | etree._Element) -> list[str]:
        """Problems found by the mapping's XSD, each ``line N: ...``; [] when valid or without an XSD."""
        if self._schema is None:
            return []
        tree = tree_or_root if isinstance(tree_or_root, etree._ElementTree) else tree_or_root.getroottree()
        with self._lock:
            if self._schema.validate(tree):
                return []
            # libxml2 gives XSD errors a line but no column (0).
            return [f"line {e.line}" + (f" column {e.column}" if e.column else "") + f": {e.message}"
                    for e in self._schema.error_log]

    def apply_xml(self, tree_or_root: etree._ElementTree | etree._Element) -> dict[str, Any]:
        """The canonical ``document`` body, every key of the shape in order; raises MappingError."""
        root = tree_or_root.getroot() if isinstance(tree_or_root, etree._ElementTree) else tree_or_root
        qname = etree.QName(root)
        if (qname.namespace or "", qname.localname) != (self.namespace, self.root):
            raise MappingError(f"mapping {self.name!r} reads <{self.root}> in namespace {self.namespace!r}, "
                               f"not <{qname.localname}> in namespace {qname.namespace or ''!r}")
        plan = self._plan
        top = _Scope(root, "")
        flat = {name: f.evaluate(top) for name, f in plan.header}
        for party in plan.parties:
            flat[party.name] = party.evaluate(root)
        lines = None
        if plan.lines is not None:
            nodes = _elements(plan.lines.xpath(root))
            if plan.lines.required and not nodes:
                raise MappingError(f"the document has no line ({plan.lines.node})")
            lines = []
            for sequence, node in enumerate(nodes, 1):
                scope = _Scope(node, f" in line {sequence} (<{etree.QName(node).localname}> at XML line "
                                     f"{node.sourceline})", sequence)
                values = {name: f.evaluate(scope) for name, f in plan.lines.fields}
                lines.append(_build(plan.lines.shape, values, "", None))
        return _build(plan.shape, flat, "", lines)


def find_xml_mapping(mappings: Iterable[XmlMapping], namespace: str, local: str, *,
                     override: str | None = None) -> XmlMapping | None:
    """The automatic mapping for a root ``{namespace}local``, or None.

    ``override`` is a mapping name a partner's file chose: it wins if it reads this root.
    """
    for mapping in mappings:
        if mapping.format != "xml" or mapping.namespace != namespace or mapping.root != local:
            continue
        if override is not None:
            if mapping.name == override:
                return mapping
        elif mapping.auto:
            return mapping
    return None


def require_xml_mapping(mappings: Iterable[XmlMapping], namespace: str, local: str, *,
                        override: str | None = None) -> XmlMapping:
    """``find_xml_mapping``, or a MappingError that names the document and what mappings/ reads."""
    mappings = list(mappings)
    found = find_xml_mapping(mappings, namespace, local, override=override)
    if found is not None:
        return found
    what = f"<{local}> in namespace {namespace!r}" if namespace else f"<{local}> (no namespace)"
    if override is not None:
        problem = f"the partner's mapping {override!r} does not exist or does not read {what}"
    else:
        known = sorted({f"<{m.root}> {m.namespace!r}" for m in mappings if m.auto})
        problem = f"no XML mapping in mappings/ reads {what} (known: {', '.join(known) or 'none'})"
    raise MappingError(problem)
