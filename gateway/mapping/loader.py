"""Read mapping files: validate every key of every file, compile paths once, collect all problems.

``load_mappings`` reads each file's TOML once and hands it to the loader registered in
``LOADERS`` for the file's kind (``mapping_kind``); this module registers the inbound EDIFACT
and X12 kinds. Files of a known kind nobody registered yet are skipped.
"""

from __future__ import annotations

import importlib
import inspect
import re
import tomllib
from pathlib import Path as FilePath
from typing import Any, Callable, Iterable

from ..edi.model import Segment
from ..errors import ConfigError, ConfigProblem, MappingError
from . import convert as conv
from .engine import (DOCUMENT_SHAPES, LINES, LIST, PACKAGES, PARTY, PARTY_FIELDS, Alternative, CompiledField,
                     Hit, LinesPlan, Mapping, MappingSet, PackagesPlan, PartyPlan, Plan, boundaries, leaves)
from .fieldspec import shared_options, spec_items
from .paths import (Find, Pairs, Path, PathSyntaxError, Scope, parse_component_test, parse_path, parse_range,
                    Selector, parse_selector, parse_test, parse_values)

__all__ = ["KINDS", "LOADERS", "Loader", "load_mappings", "mapping_kind"]

#: A kind's loader: (file label for problems, file path, the parsed TOML, problems to append to)
#: -> the loaded mapping, or None when the file has problems (all of them appended). The
#: object needs ``name``, ``format``, ``message``, ``versions``, ``auto`` and ``direction``
#: attributes (``MappingSet`` selects on them); ``name`` must be the file's stem.
Loader = Callable[[str, FilePath, dict, list[ConfigProblem]], Any]

#: Every kind of mapping file: "edifact"/"x12" (inbound, this module), "xml" (inbound XML),
#: "outbound" (canonical -> EDI/XML, any format). See ``mapping_kind``.
KINDS = ("edifact", "x12", "xml", "outbound")
_DIRECTIONS = ("inbound", "outbound")


def mapping_kind(data: dict) -> str | None:
    """The kind of a parsed mapping file: "outbound" when ``direction = "outbound"``, else its
    ``format``; None when ``[mapping]`` is missing or names no known kind (the inbound loader
    then reports exactly what is wrong)."""
    meta = data.get("mapping")
    if not isinstance(meta, dict):
        return None
    if meta.get("direction") == "outbound":
        return "outbound"
    if meta.get("direction", "inbound") != "inbound":
        return None
    kind = meta.get("format")
    return kind if kind in KINDS else None


def load_mappings(directory: FilePath) -> MappingSet:
    """Load and fully validate every ``*.toml`` in ``directory`` into a MappingSet.

    Each file goes to ``LOADERS[mapping_kind(data)]``; a file of a known kind without a
    registered loader is skipped. Raises one ConfigError listing every problem of every file
    as ``file: key: problem`` (file = ``<directory name>/<file name>``, e.g.
    ``mappings/edifact-orders.toml``).
    """
    directory = FilePath(directory)
    problems: list[ConfigProblem] = []
    mappings: list[Any] = []
    for path in sorted(directory.glob("*.toml")):
        file = f"{directory.name}/{path.name}"
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            problems.append(ConfigProblem(file, "(file)", f"cannot be read as TOML: {exc}"))
            continue
        kind = mapping_kind(data)
        if kind is None:
            loader = load_inbound            # reports what is wrong with [mapping]
        else:
            loader = LOADERS.get(kind)
            if loader is None:
                continue                    # a kind whose loader is not registered here yet
        mapping = loader(file, path, data, problems)
        if mapping is not None:
            mappings.append(mapping)
    _check_conflicts(mappings, problems)
    if problems:
        raise ConfigError(problems)
    return MappingSet(mappings)


def load_inbound(file: str, path: FilePath, data: dict, problems: list[ConfigProblem]) -> Mapping | None:
    """The loader of inbound EDIFACT and X12 mapping files (the language of mappings/README.md)."""
    return _Loader(file, problems).load(path, data)


#: Loaders by mapping kind (see ``mapping_kind``): inbound EDI here, outbound and XML in their modules.
LOADERS: dict[str, Loader] = {"edifact": load_inbound, "x12": load_inbound}   # + outbound, xml: __init__.py


def _check_conflicts(mappings: list[Any], problems: list[ConfigProblem]) -> None:
    # Two automatic inbound mappings for the same message and version would make the choice
    # arbitrary. Other kinds (outbound, XML: no message type) choose, and check, their own way.
    seen: dict[tuple[str, str, str], Any] = {}
    for mapping in mappings:
        if (not mapping.auto or getattr(mapping, "direction", "inbound") != "inbound"
                or not hasattr(mapping, "message")):
            continue
        for version in mapping.versions or ("",):
            other = seen.setdefault((mapping.format, mapping.message, version), mapping)
            if other is not mapping:
                what = f"version {version}" if version else "any version (no versions listed)"
                problems.append(ConfigProblem(
                    mapping.file, "mapping.versions",
                    f"mapping {other.name!r} already handles {mapping.format} {mapping.message} {what}; "
                    "list distinct versions, or set auto = false on the one partners must name"))


# --- loading: TOML -> validated, compiled objects ----------------------------------------------
_FORMATS = ("edifact", "x12")
_TAG = re.compile(r"[A-Z][A-Z0-9]{1,2}\Z")
_HOOK_MODULE = re.compile(r"gateway\.mapping\.hooks(?:\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
_SOURCES = ("path", "find", "pairs", "python", "sequence")
_OPTIONS = ("where", "take", "qualifier", "convert", "date_format", "date_format_path", "time_path",
            "codes", "strict_codes", "default", "required", "when")
_OWNER = {"where": "find", "take": "find", "qualifier": "pairs"}
_DATE_ONLY = ("date_format", "date_format_path", "time_path")
_CONVERTERS: dict[str, Callable[[str, str], Any]] = {
    "text": lambda raw, mark: conv.to_text(raw),
    "upper": lambda raw, mark: conv.to_upper(raw),
    "decimal": conv.to_decimal,
    "implied2": conv.to_implied2,
    "integer": lambda raw, mark: conv.to_integer(raw),
    "date": lambda raw, mark: conv.to_day(raw),
    "datetime": lambda raw, mark: conv.to_date(raw),
}


def _key(*parts: str) -> str:
    """A problem key; parts holding a dot are quoted the TOML way (lines.fields."item.gtin")."""
    return ".".join(f'"{p}"' if ("." in p or " " in p or not p) else p for p in parts)


class _Loader:
    """Validates and compiles one mapping file, appending every problem found to ``problems``."""

    def __init__(self, file: str, problems: list[ConfigProblem]) -> None:
        self.file = file
        self.problems = problems
        self.codes: dict[str, dict[str, str]] = {}
        self.document = ""

    def problem(self, key: str, text: str) -> None:
        self.problems.append(ConfigProblem(self.file, key, text))

    def unknown(self, table: dict, allowed: Iterable[str], key: str, what: str = "key") -> None:
        allowed = tuple(allowed)
        for name in table:
            if name not in allowed:
                self.problem(f"{key}.{_key(name)}" if key else _key(name),
                             f"unknown {what} (known: {', '.join(allowed)})")

    def table(self, parent: dict, name: str, key: str) -> dict:
        value = parent.get(name, {})
        if not isinstance(value, dict):
            self.problem(key, "must be a table")
            return {}
        return value

    def tags(self, value: Any, key: str) -> frozenset[str]:
        if not isinstance(value, list) or not all(isinstance(t, str) and _TAG.match(t) for t in value):
            self.problem(key, "must be a list of segment tags, e.g. [\"UNS\", \"CNT\"]")
            return frozenset()
        return frozenset(value)

    # -- the file --------------------------------------------------------------------------
    def load(self, path: FilePath, data: dict) -> Mapping | None:
        """The compiled Mapping, or None when the file has any problem (all of them recorded)."""
        before = len(self.problems)
        self.unknown(data, ("mapping", "codes", "fields", "parties", "lines", "packages"), "", "section")
        meta = data.get("mapping")
        if not isinstance(meta, dict):
            self.problem("mapping", "missing [mapping] table (name, format, message, document)")
            meta = {}
        self.unknown(meta, ("name", "format", "message", "versions", "document", "description", "auto",
                            "direction"), "mapping")
        direction = meta.get("direction", "inbound")
        if direction not in _DIRECTIONS:
            self.problem("mapping.direction", f"must be one of {', '.join(_DIRECTIONS)} (got {direction!r})")
        name = meta.get("name")
        if name is None:
            self.problem("mapping.name", f"missing: set it to the file name {path.stem!r}")
        elif name != path.stem:
            self.problem("mapping.name", f"{name!r} must equal the file name {path.stem!r}")
        fmt = meta.get("format")
        if fmt not in _FORMATS:
            self.problem("mapping.format", f"must be one of {', '.join(_FORMATS)} (got {fmt!r})")
        message = meta.get("message")
        if not isinstance(message, str) or not message:
            self.problem("mapping.message", ("missing" if message is None else f"must be a non-empty string (got {message!r})")
                         + ": the message type to map, e.g. \"ORDERS\" or \"850\"")
        versions = meta.get("versions", [])
        if not isinstance(versions, list) or not all(isinstance(v, str) and v for v in versions):
            self.problem("mapping.versions", "must be a list of version strings, e.g. [\"D96A\"] (empty = any)")
            versions = []
        document = meta.get("document")
        shape = DOCUMENT_SHAPES.get(document) if isinstance(document, str) else None
        self.document = document if shape else ""
        if shape is None:
            self.problem("mapping.document", f"unknown document type {document!r} "
                         f"(known: {', '.join(sorted(DOCUMENT_SHAPES))})")
        description = meta.get("description", "")
        if not isinstance(description, str):
            self.problem("mapping.description", "must be a string")
        auto = meta.get("auto", True)
        if not isinstance(auto, bool):
            self.problem("mapping.auto", "must be true or false")

        self.load_codes(self.table(data, "codes", "codes"))
        lines = self.load_lines(self.table(data, "lines", "lines"), shape) if "lines" in data else None
        packages = (self.load_packages(self.table(data, "packages", "packages"), shape, lines)
                    if "packages" in data else None)
        header = self.load_fields(self.table(data, "fields", "fields"), shape)
        parties = self.load_parties(self.table(data, "parties", "parties"), shape, lines, packages)
        if len(self.problems) > before:
            return None
        plan = Plan(shape, header, parties, lines, packages, boundaries(lines, packages))
        return Mapping(name, fmt, message, tuple(versions), document, description, auto, self.file,
                       _plan=plan)

    def load_codes(self, codes: dict) -> None:
        """Check the ``[codes.NAME]`` tables and keep them for ``codes = "NAME"`` references."""
        for name, table in codes.items():
            if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
                self.problem(_key("codes", name), "must be a table of code = \"value\" strings")
                continue
            self.codes[name] = dict(table)

    def load_fields(self, fields: dict, shape: tuple | None) -> tuple:
        """Compile ``[fields]`` (header scope), checking each name against the document type."""
        known = leaves(shape) if shape else None
        out = []
        for name, spec in fields.items():
            key = _key("fields", name)
            if known is not None and name not in known:
                kinds = {n: k for n, k, _ in shape}
                hint = (f"parties go in [parties.{name}]" if kinds.get(name) == PARTY else
                        "lines go in [lines]" if kinds.get(name) == LINES else
                        "packages go in [packages]" if kinds.get(name) == PACKAGES else f"known: {', '.join(known)}")
                self.problem(key, f"unknown field for document type {self.document!r} ({hint})")
            compiled = self.field(spec, key, name, "header", many=bool(known) and known.get(name) == LIST)
            if compiled is not None:
                out.append((name, compiled))
        return tuple(out)

    def load_parties(self, parties: dict, shape: tuple | None, lines: LinesPlan | None,
                     packages: PackagesPlan | None) -> tuple:
        """Compile ``[parties.*]``; a party's group also stops where the lines or packages start."""
        known = [n for n, k, _ in shape if k == PARTY] if shape else None
        out = []
        for name, table in parties.items():
            key = _key("parties", name)
            if known is not None and name not in known:
                self.problem(key, f"unknown party for document type {self.document!r} "
                             f"(known: {', '.join(known) or 'none'})")
            if not isinstance(table, dict):
                self.problem(key, "must be a table")
                continue
            self.unknown(table, ("segment", "end", "required", *PARTY_FIELDS), key)
            segment = table.get("segment")
            selectors: list[Selector] = []
            if not (isinstance(segment, str) or isinstance(segment, list) and segment
                    and all(isinstance(item, str) for item in segment)):
                self.problem(_key("parties", name, "segment"), "missing: the party's segment, e.g. \"NAD[1=BY]\", "
                             "or a list of them tried in order")
            else:
                for text in [segment] if isinstance(segment, str) else segment:
                    try:
                        selectors.append(parse_selector(text))
                    except PathSyntaxError as exc:
                        self.problem(_key("parties", name, "segment"), str(exc))
            end = self.tags(table.get("end", []), _key("parties", name, "end"))
            required = self.flag(table, "required", _key("parties", name, "required"))
            fields = []
            for field_name in PARTY_FIELDS:
                if field_name in table:
                    compiled = self.field(table[field_name], _key("parties", name, field_name),
                                          f"{name}.{field_name}", "party")
                    if compiled is not None:
                        fields.append((field_name, compiled))
            if selectors and len(selectors) == (1 if isinstance(segment, str) else len(segment)):
                stops = {s.tag for s in selectors} | set(end)
                if lines is not None:
                    stops |= {lines.group.tag, *(s.tag for s in lines.end)}
                if packages is not None:
                    stops.add(packages.group.tag)
                out.append(PartyPlan(name, tuple(selectors), frozenset(stops), required, tuple(fields),
                                     f"party {name}"))
        return tuple(out)

    def selector(self, value: Any, key: str, example: str) -> Selector | None:
        """A group boundary: a tag or a selector with conditions (``HL[3=I]``), never ``#N``."""
        if not isinstance(value, str):
            self.problem(key, f"must be a segment tag or selector, e.g. {example}")
            return None
        try:
            selector = parse_selector(value)
        except PathSyntaxError as exc:
            self.problem(key, str(exc))
            return None
        if selector.occurrence:
            self.problem(key, f"{value!r}: a group boundary cannot take #N (every matching segment counts)")
            return None
        return selector

    def load_packages(self, table: dict, shape: tuple | None, lines: LinesPlan | None) -> PackagesPlan | None:
        """Compile ``[packages]`` and ``[packages.fields]``: package groups holding line groups."""
        self.unknown(table, ("group", "fields"), "packages")
        package_shape = next((sub for _, kind, sub in shape if kind == PACKAGES), None) if shape else None
        if shape is not None and package_shape is None:
            self.problem("packages", f"document type {self.document!r} has no packages "
                         "(only ship_notice does)")
        if lines is None:
            self.problem("packages", "needs a [lines] table: the line groups inside each package")
        group = self.selector(table.get("group"), "packages.group", "\"CPS\" or \"HL[3=P|T]\"")
        known = leaves(package_shape) if package_shape else None
        fields = []
        for name, spec in self.table(table, "fields", "packages.fields").items():
            key = _key("packages", "fields", name)
            if known is not None and name not in known:
                self.problem(key, f"unknown package field (known: {', '.join(known)}; "
                             "the lines inside come from [lines])")
            compiled = self.field(spec, key, f"packages.{name}", "package")
            if compiled is not None:
                fields.append((name, compiled))
        if group is None or package_shape is None:
            return None
        return PackagesPlan(group, tuple(fields), package_shape)

    def load_lines(self, table: dict, shape: tuple | None) -> LinesPlan | None:
        """Compile ``[lines]`` and ``[lines.fields]``."""
        self.unknown(table, ("group", "end", "required", "fields"), "lines")
        group = self.selector(table.get("group"), "lines.group",
                              "\"LIN\", \"PO1\" or \"HL[3=I]\" (the segment that starts each line)")
        end_list = table.get("end", [])
        if not isinstance(end_list, list):
            self.problem("lines.end", "must be a list of segment tags or selectors, e.g. [\"UNS\", \"CNT\"]")
            end_list = []
        end = [self.selector(item, "lines.end", "[\"UNS\", \"CNT\"]") for item in end_list]
        required = self.flag(table, "required", "lines.required")
        line_shape = next((sub for _, kind, sub in shape if kind == LINES), None) if shape else None
        known = leaves(line_shape) if line_shape else None
        fields = []
        for name, spec in self.table(table, "fields", "lines.fields").items():
            key = _key("lines", "fields", name)
            if known is not None and name not in known:
                self.problem(key, f"unknown line field (known: {', '.join(known)})")
            compiled = self.field(spec, key, f"lines.{name}", "line")
            if compiled is not None:
                fields.append((name, compiled))
        if group is None:
            group = Selector("", text="")      # a problem is recorded: the file will not load
        return LinesPlan(group, tuple(e for e in end if e is not None), required, tuple(fields), line_shape or ())

    def flag(self, table: dict, name: str, key: str) -> bool:
        value = table.get(name, False)
        if not isinstance(value, bool):
            self.problem(key, "must be true or false")
            return False
        return value

    # -- field specs -----------------------------------------------------------------------
    def field(self, spec: Any, key: str, name: str, context: str, many: bool = False) -> CompiledField | None:
        """Compile a field spec: a path string, a table, or a list of those (alternatives)."""
        before = len(self.problems)
        alternatives = [self.alternative(item, item_key, context, many, last)
                        for item, item_key, last in spec_items(self.problem, spec, key, many, "a path string")]
        if len(self.problems) > before:
            return None
        return CompiledField(name, alternatives, many)

    def alternative(self, spec: str | dict, key: str, context: str, many: bool, last: bool) -> Alternative:
        """Compile one alternative: a path string or a table with one source and its options."""
        if isinstance(spec, str):
            spec, sub = {"path": spec}, (lambda k: key)
        else:
            sub = lambda k: f"{key}.{k}"  # noqa: E731
            self.unknown(spec, _SOURCES + _OPTIONS, key)
        alt = Alternative()
        sources = [k for k in _SOURCES if k in spec]
        if len(sources) != 1:
            self.problem(key, f"needs exactly one source key of {', '.join(_SOURCES)}"
                         + (f" (found {', '.join(sources)})" if sources else ""))
        source = sources[0] if sources else None
        if many and source not in (None, "path"):
            self.problem(sub(source), "a list field takes its values from a path")
        for option, owner in _OWNER.items():
            if option in spec and source != owner:
                self.problem(sub(option), f"only applies to '{owner}'")
        if source == "path":
            path = self.path(spec["path"], sub("path"), context)
            if path is not None:
                alt.path, alt.desc, alt.tag, alt.label = path, path.text, path.tag, path.label
                alt.source = path.lookup
        elif source in ("find", "pairs"):
            self.table_source(alt, spec, source, key, sub, context)
        elif source == "python":
            self.hook(alt, spec["python"], sub("python"))
        elif source == "sequence":
            if spec["sequence"] is not True or context != "line":
                self.problem(sub("sequence"), "must be true, and only in [lines.fields] "
                             "(the line's 1-based position in the message)")
            alt.desc = "sequence"
            alt.source = lambda scope: (str(scope.sequence), scope.anchor, None)
        self.options(alt, spec, sub, context, many, last)
        return alt

    def options(self, alt: Alternative, spec: dict, sub: Callable[[str], str], context: str,
                many: bool, last: bool) -> None:
        """Check and compile convert, codes, strict_codes, required, default and when."""
        convert = spec.get("convert", "text")
        if convert not in conv.CONVERSIONS:
            self.problem(sub("convert"), f"unknown conversion {convert!r} (known: {', '.join(conv.CONVERSIONS)})")
            convert = "text"
        for option in _DATE_ONLY:
            if option in spec and convert not in ("date", "datetime"):
                self.problem(sub(option), "only applies with convert = \"date\" or \"datetime\"")
        if convert in ("date", "datetime"):
            alt.convert = self.date(spec, sub, context, conv.to_date if convert == "datetime" else conv.to_day)
        elif convert != "text":
            function = _CONVERTERS[convert]
            alt.convert = lambda raw, segment, scope, mark: function(raw, mark)
        shared_options(self, alt, spec, sub, convert, last, many)
        if "when" in spec:
            try:
                alt.when = parse_test(spec["when"])
            except PathSyntaxError as exc:
                self.problem(sub("when"), str(exc))
            else:
                if alt.when.path.selector is None and context == "header":
                    self.problem(sub("when"), "needs a segment tag in header fields, e.g. \"BGM/1=220\"")

    def default(self, alt: Alternative, value: Any, convert: str, key: str, many: bool) -> None:
        """Check a default and store it already converted."""
        if many:
            self.problem(key, "a list field has no default (it is [] when nothing matches)")
        elif isinstance(value, int) and not isinstance(value, bool) and convert == "integer":
            alt.default = value
        elif not isinstance(value, str):
            self.problem(key, "must be a string" + (" or an integer" if convert == "integer" else ""))
        else:
            # Defaults go through the field's conversion once, here, so they obey the same rules.
            try:
                alt.default = _CONVERTERS[convert](value, ".")
            except conv.ConversionError as exc:
                self.problem(key, f"{exc} (convert = {convert!r})")

    def date(self, spec: dict, sub: Callable[[str], str], context: str, convert: Callable) -> Callable:
        """The date converter for this field: literal format, format path and time path.

        ``convert`` is ``to_day`` (convert = "date": canonical dates are days) or ``to_date``
        (convert = "datetime": the time of day kept when the value has one).
        """
        literal = spec.get("date_format")
        if literal is not None and (not isinstance(literal, str) or literal not in conv.DATE_FORMATS):
            self.problem(sub("date_format"), f"unknown date format {literal!r} "
                         f"(known: {', '.join(conv.DATE_FORMATS)})")
            literal = None
        # These two paths may be position-only even in header fields: they then read the
        # segment the value itself came from (DTM 1.3 next to DTM 1.2).
        format_path = (self.path(spec["date_format_path"], sub("date_format_path"), context, anchored=False)
                       if "date_format_path" in spec else None)
        time_path = (self.path(spec["time_path"], sub("time_path"), context, anchored=False)
                     if "time_path" in spec else None)
        if format_path is None and time_path is None:
            return lambda raw, segment, scope, mark: convert(raw, literal)

        def read(path: Path | None, segment: Segment | None, scope: Scope) -> str | None:
            if path is None:
                return None
            if path.selector is None:
                return path.lookup_in(segment) if segment is not None else None
            hit = path.lookup(scope)
            return hit[0] if hit else None

        def to_date(raw: str, segment: Segment | None, scope: Scope, mark: str) -> str | None:
            return convert(raw, read(format_path, segment, scope) or literal, read(time_path, segment, scope))
        return to_date

    def path(self, text: Any, key: str, context: str, anchored: bool = True) -> Path | None:
        """Parse a path; position-only paths need an anchor unless ``anchored`` is False."""
        try:
            path = parse_path(text)
        except PathSyntaxError as exc:
            self.problem(key, str(exc))
            return None
        if path.selector is None and context == "header" and anchored:
            self.problem(key, f"{text!r} has no segment tag; header fields have no anchor segment, "
                         f"so write TAG/{text} (position-only paths work in parties and lines)")
            return None
        return path

    def table_source(self, alt: Alternative, spec: dict, source: str, key: str, sub: Callable,
                     context: str) -> None:
        """Compile a ``find``/``where``/``take`` or ``pairs``/``qualifier`` source."""
        try:
            element_range = parse_range(spec[source]) if isinstance(spec[source], str) else parse_range(None)
        except PathSyntaxError as exc:
            self.problem(sub(source), str(exc))
            return
        if element_range.selector is None and context == "header":
            self.problem(sub(source), "needs a segment tag in header fields, e.g. \"PIA/2-6\"")
            return
        alt.tag, alt.desc = element_range.selector.tag if element_range.selector else None, spec[source]
        try:
            if source == "find":
                if "where" not in spec:
                    self.problem(key, "'find' needs 'where', e.g. where = \"2=IN|BP\"")
                    return
                component, values = parse_component_test(spec["where"]) if isinstance(spec["where"], str) \
                    else parse_component_test(None)
                take = spec.get("take", 1)
                if isinstance(take, str) and take.isdigit():
                    take = int(take)
                if not isinstance(take, int) or isinstance(take, bool) or take < 1:
                    self.problem(sub("take"), "must be a component number (1 or more)")
                    return
                alt.source = Find(element_range, component, values, take, spec["find"]).lookup
                alt.desc = f"{spec['find']} where {spec['where']} take {take}"
            else:
                if "qualifier" not in spec:
                    self.problem(key, "'pairs' needs 'qualifier', e.g. qualifier = \"UP|EN\"")
                    return
                qualifiers = parse_values(spec["qualifier"]) if isinstance(spec["qualifier"], str) \
                    else parse_values(None)
                alt.source = Pairs(element_range, qualifiers, spec["pairs"]).lookup
                alt.desc = f"{spec['pairs']} qualifier {spec['qualifier']}"
        except PathSyntaxError as exc:
            self.problem(sub("where" if source == "find" else "qualifier"), str(exc))

    def hook(self, alt: Alternative, ref: Any, key: str) -> None:
        """Compile a ``python`` source: only functions inside gateway.mapping.hooks."""
        module_name, _, function_name = ref.partition(":") if isinstance(ref, str) else ("", "", "")
        if (not _HOOK_MODULE.match(module_name) or not function_name.isidentifier()
                or function_name.startswith("_")):
            self.problem(key, f"must be \"module:function\" with the module inside gateway.mapping.hooks "
                         f"(got {ref!r}): mapping files may not import other code")
            return
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - any import failure is a config problem
            self.problem(key, f"cannot import {module_name}: {exc}")
            return
        function = getattr(module, function_name, None)
        if not callable(function) or isinstance(function, type):
            self.problem(key, f"{module_name} has no function {function_name!r}")
            return
        alt.desc = ref
        try:
            parameters = inspect.signature(function).parameters.values()
            takes_memo = sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters) >= 3
        except (TypeError, ValueError):         # a builtin without a signature: two arguments
            takes_memo = False

        def from_hook(scope: Scope) -> Hit | None:
            try:
                value = (function(scope.segments, scope.message, scope.memo) if takes_memo
                         else function(scope.segments, scope.message))
            except MappingError:
                raise
            except Exception as exc:  # a hook bug must not become a traceback for the operator
                raise MappingError(f"python hook {ref} failed: {type(exc).__name__}: {exc}") from exc
            if value is not None and not isinstance(value, str):
                raise MappingError(f"python hook {ref} returned {type(value).__name__}; "
                                   "a hook returns a string or None")
            return (value, None, None) if value else None
        alt.source = from_hook
