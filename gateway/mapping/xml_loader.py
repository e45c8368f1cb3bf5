"""Load XML mapping files: check every key, compile every XPath and the XSD once, collect all problems."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Callable, Iterable

from lxml import etree

from ..edi.xml import SchemaProblem, load_schema
from ..errors import ConfigProblem
from . import convert as conv
from .engine import DOCUMENT_SHAPES, LINES, LIST, PARTY, PARTY_FIELDS, leaves
from .fieldspec import shared_options, spec_items
from .xml import XmlMapping, _Alternative, _Field, _Lines, _Party, _Plan, to_xml_date

__all__ = ["check_xml_conflicts", "load_xml", "load_xml_mapping", "load_xml_mappings"]

_SECTIONS = ("mapping", "namespaces", "codes", "fields", "parties", "lines")
_META = ("name", "format", "direction", "root", "namespace", "xsd", "document", "description", "auto")
_OPTIONS = ("convert", "date_format", "codes", "strict_codes", "default", "required", "when")
_NCNAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*\Z")
_DUMMY = etree.Element("probe")      # every XPath is evaluated on it once at load: prefix/syntax errors

_CONVERTERS: dict[str, Callable[[str], Any]] = {
    "text": conv.to_text,
    "upper": conv.to_upper,
    "decimal": lambda raw: conv.to_decimal(raw, "."),      # xs:decimal: the mark is always '.'
    "integer": conv.to_integer,
}


def check_xml_conflicts(mappings: Iterable[XmlMapping], problems: list[ConfigProblem]) -> None:
    """Two automatic mappings for the same root and namespace would make the choice arbitrary."""
    seen: dict[tuple[str, str], XmlMapping] = {}
    for mapping in mappings:
        if mapping.auto:
            other = seen.setdefault((mapping.namespace, mapping.root), mapping)
            if other is not mapping:
                problems.append(ConfigProblem(mapping.file, "mapping.root", (
                    f"mapping {other.name!r} already handles <{mapping.root}> in namespace "
                    f"{mapping.namespace!r}; set auto = false on the one partners must name")))


def load_xml_mappings(directory: Path, problems: list[ConfigProblem]) -> list[XmlMapping]:
    """Every ``*.toml`` in ``directory`` with ``format = "xml"``, loaded; problems appended.

    Files that are not TOML or not XML mappings are left to the EDI loader (which reports them).
    """
    directory = Path(directory)
    out = []
    for path in sorted(directory.glob("*.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
        meta = data.get("mapping")
        if isinstance(meta, dict) and meta.get("format") == "xml":
            mapping = load_xml(f"{directory.name}/{path.name}", path, data, problems)
            if mapping is not None:
                out.append(mapping)
    check_xml_conflicts(out, problems)
    return out


def load_xml_mapping(path: Path, file_label: str, problems: list[ConfigProblem]) -> XmlMapping | None:
    """Load, check and compile one XML mapping file; None when it has any problem (all recorded)."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        problems.append(ConfigProblem(file_label, "(file)", f"cannot be read as TOML: {exc}"))
        return None
    return load_xml(file_label, Path(path), data, problems)


def load_xml(file_label: str, path: Path, data: dict, problems: list[ConfigProblem]) -> XmlMapping | None:
    """``load_xml_mapping`` for an already parsed file: the signature of ``loader.LOADERS["xml"]``."""
    return _Loader(Path(path), file_label, problems).load(data)


def _key(*parts: str) -> str:
    return ".".join(f'"{p}"' if ("." in p or " " in p or not p) else p for p in parts)


class _Loader:
    """Checks one XML mapping file, appending every problem as ``ConfigProblem(file, key, problem)``."""

    def __init__(self, path: Path, file: str, problems: list[ConfigProblem]) -> None:
        self.path, self.file, self.problems = path, file, problems
        self.namespaces: dict[str, str] = {}
        self.codes: dict[str, dict[str, str]] = {}

    def problem(self, key: str, text: str) -> None:
        self.problems.append(ConfigProblem(self.file, key, text))

    def unknown(self, table: dict, allowed: Iterable[str], key: str, what: str = "key") -> None:
        allowed = tuple(allowed)
        for name in table:
            if name not in allowed:
                self.problem(f"{key}.{_key(name)}" if key else _key(name), f"unknown {what} (known: {', '.join(allowed)})")

    def table(self, parent: dict, name: str, key: str) -> dict:
        value = parent.get(name, {})
        if not isinstance(value, dict):
            self.problem(key, "must be a table")
            return {}
        return value

    def flag(self, table: dict, name: str, key: str) -> bool:
        value = table.get(name, False)
        if not isinstance(value, bool):
            self.problem(key, "must be true or false")
            return False
        return value

    def load(self, data: dict) -> XmlMapping | None:
        before = len(self.problems)
        self.unknown(data, _SECTIONS, "", "section" + (" ([packages] is not supported in XML mappings yet)"
                                                       if "packages" in data else ""))
        meta = self.table(data, "mapping", "mapping")
        if "mapping" not in data:
            self.problem("mapping", "missing [mapping] table (name, format, root, document)")
        self.unknown(meta, _META, "mapping")
        name = meta.get("name")
        if name != self.path.stem:
            self.problem("mapping.name", f"missing: set it to the file name {self.path.stem!r}" if name is None
                         else f"{name!r} must equal the file name {self.path.stem!r}")
        if meta.get("direction", "inbound") != "inbound":
            self.problem("mapping.direction", "XML mappings read inbound documents: \"inbound\" or absent")
        if meta.get("format") != "xml":
            self.problem("mapping.format", f"must be \"xml\" in an XML mapping (got {meta.get('format')!r})")
        root = meta.get("root")
        if not isinstance(root, str) or not _NCNAME.match(root):
            self.problem("mapping.root", f"must be the root element's local name, e.g. \"Invoice\" (got {root!r})")
        namespace = meta.get("namespace", "")
        if not isinstance(namespace, str):
            self.problem("mapping.namespace", "must be the root element's namespace URI (\"\" for none)")
            namespace = ""
        document = meta.get("document")
        shape = DOCUMENT_SHAPES.get(document) if isinstance(document, str) else None
        if shape is None:
            self.problem("mapping.document", f"unknown document type {document!r} "
                         f"(known: {', '.join(sorted(DOCUMENT_SHAPES))})")
        description = meta.get("description", "")
        if not isinstance(description, str):
            self.problem("mapping.description", "must be a string")
        auto = meta.get("auto", True)
        if not isinstance(auto, bool):
            self.problem("mapping.auto", "must be true or false")
        xsd = meta.get("xsd")
        schema = self.schema(xsd) if xsd is not None else None

        self.load_namespaces(self.table(data, "namespaces", "namespaces"))
        for code_name, table in self.table(data, "codes", "codes").items():
            if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
                self.problem(_key("codes", code_name), "must be a table of code = \"value\" strings")
            else:
                self.codes[code_name] = dict(table)
        header = self.load_fields(self.table(data, "fields", "fields"), shape, document)
        parties = self.load_parties(self.table(data, "parties", "parties"), shape, document)
        lines = self.load_lines(self.table(data, "lines", "lines"), shape) if "lines" in data else None
        if len(self.problems) > before:
            return None
        return XmlMapping(name, document, root, namespace, description, auto, self.file, xsd,
                          _Plan(shape, header, parties, lines), schema)

    # -- namespaces, XPath and XSD ---------------------------------------------------------
    def load_namespaces(self, table: dict) -> None:
        for prefix, uri in table.items():
            if not _NCNAME.match(prefix) or ":" in prefix or prefix.lower().startswith("xml"):
                self.problem(_key("namespaces", prefix), "a prefix is a name without ':' (and not xml...)")
            elif not isinstance(uri, str) or not uri:
                self.problem(_key("namespaces", prefix), "must be the namespace URI (a non-empty string)")
            else:
                self.namespaces[prefix] = uri

    def xpath(self, text: Any, key: str) -> etree.XPath | None:
        """Compile an XPath with the file's prefixes; evaluated once on a probe element because
        libxml2 reports syntax errors and unknown prefixes only when an expression runs."""
        if not isinstance(text, str) or not text.strip():
            self.problem(key, "must be an XPath expression (a non-empty string)")
            return None
        try:
            compiled = etree.XPath(text, namespaces=self.namespaces, smart_strings=True)
            compiled(_DUMMY)
        except etree.XPathError as exc:
            hint = f" (prefixes: {', '.join(self.namespaces) or 'none; declare them in [namespaces]'})" \
                if "prefix" in str(exc) else ""
            self.problem(key, f"invalid XPath {text!r}: {exc}{hint}")
            return None
        return compiled

    def schema(self, xsd: Any) -> etree.XMLSchema | None:
        try:
            return load_schema(xsd, self.path.parent)
        except SchemaProblem as exc:
            self.problem("mapping.xsd", str(exc))
            return None

    # -- sections --------------------------------------------------------------------------
    def load_fields(self, fields: dict, shape: tuple | None, document: Any) -> tuple:
        known = leaves(shape) if shape else None
        out = []
        for name, spec in fields.items():
            key = _key("fields", name)
            if known is not None and name not in known:
                kinds = {n: k for n, k, _ in shape}
                hint = (f"parties go in [parties.{name}]" if kinds.get(name) == PARTY else
                        "lines go in [lines]" if kinds.get(name) == LINES else f"known: {', '.join(known)}")
                self.problem(key, f"unknown field for document type {document!r} ({hint})")
            compiled = self.field(spec, key, name, "header", many=bool(known) and known.get(name) == LIST)
            if compiled is not None:
                out.append((name, compiled))
        return tuple(out)

    def load_parties(self, parties: dict, shape: tuple | None, document: Any) -> tuple:
        known = [n for n, k, _ in shape if k == PARTY] if shape else None
        out = []
        for name, table in parties.items():
            key = _key("parties", name)
            if known is not None and name not in known:
                self.problem(key, f"unknown party for document type {document!r} (known: {', '.join(known) or 'none'})")
            if not isinstance(table, dict):
                self.problem(key, "must be a table")
                continue
            self.unknown(table, ("node", "required", *PARTY_FIELDS), key)
            node = table.get("node")
            texts = node if isinstance(node, list) and node else [node]
            nodes = []
            for i, text in enumerate(texts, 1):
                sub = _key("parties", name, "node") + (f"[{i}]" if isinstance(node, list) else "")
                if node is None:
                    self.problem(sub, "missing: the XPath of the party's element, e.g. \"cac:AccountingCustomerParty/cac:Party\"")
                    break
                compiled = self.xpath(text, sub)
                if compiled is not None:
                    nodes.append((text, compiled))
            required = self.flag(table, "required", _key("parties", name, "required"))
            fields = []
            for field_name in PARTY_FIELDS:
                if field_name in table:
                    compiled = self.field(table[field_name], _key("parties", name, field_name),
                                          f"{name}.{field_name}", "party")
                    if compiled is not None:
                        fields.append((field_name, compiled))
            out.append(_Party(name, tuple(nodes), required, tuple(fields)))
        return tuple(out)

    def load_lines(self, table: dict, shape: tuple | None) -> _Lines | None:
        self.unknown(table, ("node", "required", "fields"), "lines")
        node = table.get("node")
        xpath = self.xpath(node, "lines.node") if node is not None else None
        if node is None:
            self.problem("lines.node", "missing: the XPath of each line's element, e.g. \"cac:InvoiceLine\"")
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
        return _Lines(node, xpath, required, tuple(fields), line_shape or ()) if xpath is not None else None

    # -- field specs -----------------------------------------------------------------------
    def field(self, spec: Any, key: str, name: str, context: str, many: bool = False) -> _Field | None:
        """A field spec: an XPath string, a table, or a list of those (alternatives)."""
        before = len(self.problems)
        alternatives = [self.alternative(item, item_key, context, many, last)
                        for item, item_key, last in spec_items(self.problem, spec, key, many, "an XPath string")]
        if len(self.problems) > before:
            return None
        return _Field(name, alternatives, many)

    def alternative(self, spec: str | dict, key: str, context: str, many: bool, last: bool) -> _Alternative:
        if isinstance(spec, str):
            spec, sub = {"xpath": spec}, (lambda k: key)
        else:
            sub = lambda k: f"{key}.{k}"  # noqa: E731
            self.unknown(spec, ("xpath", "sequence", *_OPTIONS), key)
        alt = _Alternative()
        sources = [k for k in ("xpath", "sequence") if k in spec]
        if len(sources) != 1:
            self.problem(key, "needs exactly one source key of xpath, sequence"
                         + (f" (found {', '.join(sources)})" if sources else ""))
        elif sources[0] == "xpath":
            alt.xpath, alt.desc = self.xpath(spec["xpath"], sub("xpath")), str(spec["xpath"])
        elif spec["sequence"] is not True or context != "line" or many:
            self.problem(sub("sequence"), "must be true, and only in [lines.fields] "
                         "(the line's 1-based position in the document)")
        else:
            alt.sequence, alt.desc = True, "sequence"
        convert = spec.get("convert", "text")
        if convert not in conv.CONVERSIONS:
            self.problem(sub("convert"), f"unknown conversion {convert!r} (known: {', '.join(conv.CONVERSIONS)})")
            convert = "text"
        date_format = spec.get("date_format")
        if date_format is not None:
            if convert != "date":
                self.problem(sub("date_format"), "only applies with convert = \"date\"")
            elif not isinstance(date_format, str) or date_format not in conv.DATE_FORMATS:
                self.problem(sub("date_format"), f"unknown date format {date_format!r} "
                             f"(known: ISO when absent, {', '.join(conv.DATE_FORMATS)})")
                date_format = None
        alt.convert = ((lambda raw: to_xml_date(raw, date_format)) if convert == "date"
                       else _CONVERTERS[convert])
        shared_options(self, alt, spec, sub, convert, last, many)
        if "when" in spec:
            alt.when = self.xpath(spec["when"], sub("when"))
        return alt

    def default(self, alt: _Alternative, value: Any, convert: str, key: str, many: bool) -> None:
        """Check a default and store it converted, so it obeys the field's own rules."""
        if many:
            self.problem(key, "a list field has no default (it is [] when nothing matches)")
        elif isinstance(value, int) and not isinstance(value, bool) and convert == "integer":
            alt.default = value
        elif not isinstance(value, str):
            self.problem(key, "must be a string" + (" or an integer" if convert == "integer" else ""))
        else:
            try:
                alt.default = alt.convert(value)
            except conv.ConversionError as exc:
                self.problem(key, f"{exc} (convert = {convert!r})")
