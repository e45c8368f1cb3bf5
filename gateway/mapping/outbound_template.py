"""Outbound mapping templates: ``{path|filter:arg}`` placeholders into a canonical document, compiled once.

A placeholder names a value of the canonical document (``number``, ``buyer.id``), of the
current loop item (``quantity`` inside a loop over ``lines``; ``.`` is the item itself), or a
variable (``$n``, a counter, a bound counter value), then runs filters left to right. Paths
are checked against the document type's shape when the file is loaded, so building a
message only walks dicts. Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable

from ..errors import MappingError
from . import convert as conv

__all__ = ["DATE_LAYOUTS", "FILTERS", "LIST", "SCALAR", "Frame", "Ref", "Template", "TemplateError", "Test",
           "compile_template", "compile_test", "resolve_path", "shape_of"]

SCALAR = "scalar"
LIST = "list"       # ("list", element type); objects are dicts name -> type


class TemplateError(ValueError):
    """A template, path or filter that cannot be compiled; the loader reports it as a ConfigProblem."""


def shape_of(entries: tuple) -> dict:
    """Turn an engine DOCUMENT_SHAPES entry into a type tree (dict = object, (LIST, t) = list)."""
    out: dict[str, Any] = {}
    for name, kind, sub in entries:
        if kind == "object":
            out[name] = shape_of(sub)
        elif kind == "party":
            out[name] = {"id": SCALAR, "scheme": SCALAR, "name": SCALAR}
        elif kind == "list":
            out[name] = (LIST, SCALAR)
        elif kind in ("lines", "packages"):
            out[name] = (LIST, shape_of(sub))
        else:
            out[name] = SCALAR
    return out


def _describe(kind: Any) -> str:
    if kind == SCALAR:
        return "a value"
    if isinstance(kind, dict):
        return "an object"
    return "a list"


# --- runtime frames -----------------------------------------------------------------------------

@dataclass(slots=True)
class Frame:
    """One level of the build: the document, or the current item of a loop, and its variables."""

    item: Any
    label: str                  # document path of the item, e.g. "lines[2]" ("" for the document)
    vars: dict[str, int]


def _scalar(value: Any, where: str) -> str | None:
    """A document value as text: strings as given, ints and Decimals written out, "" is no value."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or isinstance(value, float):
        # Floats lose digits (0.1 + 0.2); canonical documents carry decimal strings.
        raise MappingError(f"document path '{where}': {value!r} must be a string "
                           f"(canonical amounts are decimal strings like \"12.50\")")
    if isinstance(value, (int, Decimal)):
        return str(value)
    raise MappingError(f"document path '{where}': expected a value, got {type(value).__name__}")


# --- filters ------------------------------------------------------------------------------------
#: Output date layouts (EDIFACT 2379 codes, X12 names and the layouts themselves) -> strftime.
DATE_LAYOUTS = {
    "102": "%Y%m%d", "CCYYMMDD": "%Y%m%d", "D8": "%Y%m%d",
    "101": "%y%m%d", "YYMMDD": "%y%m%d", "D6": "%y%m%d",
    "203": "%Y%m%d%H%M", "CCYYMMDDHHMM": "%Y%m%d%H%M", "DT": "%Y%m%d%H%M",
    "204": "%Y%m%d%H%M%S", "CCYYMMDDHHMMSS": "%Y%m%d%H%M%S",
    "201": "%y%m%d%H%M", "YYMMDDHHMM": "%y%m%d%H%M",
    "HHMM": "%H%M", "HHMMSS": "%H%M%S",
}
_ISO = re.compile(r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}(?::\d{2})?)?\Z")


def _date(value: str, layout: str) -> str:
    if not _ISO.match(value):
        raise ValueError(f"{value!r} is not an ISO date (YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS])")
    try:
        moment = datetime.fromisoformat(value) if "T" in value else datetime.combine(date.fromisoformat(value),
                                                                                      datetime.min.time())
    except ValueError:
        raise ValueError(f"{value!r} is not a valid date") from None
    return moment.strftime(DATE_LAYOUTS[layout])


def _decimal(value: str) -> Decimal:
    try:
        text = conv.to_decimal(value)
    except conv.ConversionError as exc:
        raise ValueError(str(exc)) from None
    return Decimal(text)


def _places(value: str, places: int) -> Decimal:
    """The value with exactly ``places`` decimals; refusing to round away non-zero digits."""
    number = _decimal(value)
    quantized = number.quantize(Decimal(1).scaleb(-places))
    if quantized != number:
        raise ValueError(f"{value!r} has more than {places} decimals; round it before sending")
    return quantized


def _fixed(value: str, arg: str) -> str:
    if not arg:
        return f"{_decimal(value):f}"
    return f"{_places(value, int(arg)):f}"


def _implied(value: str, arg: str) -> str:
    # X12 "Nn" numbers: n implied decimals, no mark ("12.50" with N2 -> "1250").
    return str(int(_places(value, int(arg)).scaleb(int(arg))))


def _sum(values: list, where: str) -> str:
    total = Decimal(0)
    for value in values:
        text = _scalar(value, where)
        if text is not None:
            total += _decimal(text)
    return f"{total:f}"


@dataclass(frozen=True, slots=True)
class Filter:
    """One compiled filter: name, argument, and what it accepts (a value or a list)."""

    name: str
    arg: str
    on_list: bool               # True: takes the list a path gives (count, sum, first)
    run: Callable[..., Any]     # (value, arg, codes) -> new value


def _codes(value: str, arg: str, codes: dict, strict: bool) -> str:
    table = codes[arg]
    if value in table:
        return table[value]
    if strict:
        raise ValueError(f"{value!r} is not in code list {arg!r} (known: {', '.join(table)})")
    return value


# name -> (argument: None = none, "int", "date", "code", "text"; on_list; function)
FILTERS: dict[str, tuple[str | None, bool, Callable[..., Any]]] = {
    "date": ("date", False, lambda v, a, c: _date(v, a)),
    "decimal": ("int?", False, lambda v, a, c: _fixed(v, a)),
    "implied": ("int", False, lambda v, a, c: _implied(v, a)),
    "upper": (None, False, lambda v, a, c: v.upper()),
    "truncate": ("int", False, lambda v, a, c: v[:int(a)]),
    "length": (None, False, lambda v, a, c: str(len(v))),
    "codes": ("code", False, lambda v, a, c: _codes(v, a, c, False)),
    "strict": ("code", False, lambda v, a, c: _codes(v, a, c, True)),
    "default": ("text", False, None),       # handled in Ref.value: it applies to no value
    "required": (None, False, None),
    "count": (None, True, lambda v, a, c: str(len(v))),
    "sum": (None, True, None),
    "first": (None, True, lambda v, a, c: v[0] if v else None),
}


# --- placeholders -------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Ref:
    """A compiled placeholder: where its value comes from and the filters it goes through."""

    text: str                   # as written, for messages
    variable: str | None        # "$name" -> "name"
    depth: int                  # index of the frame the path starts at (0 = the document)
    names: tuple[str, ...]
    filters: tuple[Filter, ...]
    many: bool                  # the path gives a list (before list filters)

    def raw(self, frames: list[Frame]) -> Any:
        """The value the path points at (a list when it crosses or ends at a list), unfiltered."""
        if self.variable is not None:
            return _variable(self.variable, frames)
        value: Any = frames[self.depth].item
        spread = False
        for name in self.names:
            if spread:
                value = _flatten([v.get(name) if isinstance(v, dict) else None for v in value])
            elif isinstance(value, dict):
                value = value.get(name)
            else:
                return [] if self.many else None
            if isinstance(value, list):
                spread = True
        if self.many and value is None:
            return []
        return value

    def where(self, frames: list[Frame]) -> str:
        base = frames[self.depth].label if self.variable is None else ""
        tail = ".".join(self.names) if self.names else ""
        return (f"{base}.{tail}" if base and tail else base or tail or self.text)

    def value(self, frames: list[Frame], codes: dict) -> str | None:
        """The placeholder's text, or None for no value; raises MappingError."""
        where = self.where(frames)
        value = self.raw(frames)
        if not self.many:
            value = _scalar(value, where)
        for f in self.filters:
            try:
                if f.name == "required":
                    if value is None:
                        raise MappingError(f"document path '{where}': required value is missing")
                elif f.name == "default":
                    if value is None:
                        value = _variable(f.arg[1:], frames) if f.arg.startswith("$") else f.arg
                elif f.name == "sum":
                    value = _sum(value, where)
                elif f.on_list:
                    value = f.run(value, f.arg, codes)
                    if isinstance(value, list) or isinstance(value, dict):
                        raise ValueError("the value is not a single value")
                    value = _scalar(value, where)
                elif value is not None:
                    value = f.run(value, f.arg, codes)
            except (ValueError, conv.ConversionError) as exc:
                raise MappingError(f"document path '{where}': filter '{f.name}': {exc}") from None
        return value


def _variable(name: str, frames: list[Frame]) -> str:
    for frame in reversed(frames):
        if name in frame.vars:
            return str(frame.vars[name])
    return "0"                  # a counter never incremented (no line written yet)


def _flatten(values: list) -> list:
    out = []
    for v in values:
        if isinstance(v, list):
            out.extend(v)
        elif v is not None:
            out.append(v)
    return out


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def resolve_path(path: str, frames: list[Any]) -> tuple[int, tuple[str, ...], Any, bool]:
    """Compile-time lookup of a dotted path: (frame depth, names, type at the end, crosses a list)."""
    if path == ".":
        if len(frames) < 2:
            raise TemplateError("'.' (the current item) is only meaningful inside a loop")
        kind = frames[-1]
        return len(frames) - 1, (), kind, False
    names = tuple(path.split("."))
    for name in names:
        if not _NAME.match(name):
            raise TemplateError(f"{path!r}: {name!r} is not a field name")
    depth = next((d for d in range(len(frames) - 1, -1, -1)
                  if isinstance(frames[d], dict) and names[0] in frames[d]), None)
    if depth is None:
        known = sorted({n for f in frames if isinstance(f, dict) for n in f})
        raise TemplateError(f"{path!r}: no field {names[0]!r} here (known: {', '.join(known)})")
    kind: Any = frames[depth]
    many = False
    for i, name in enumerate(names):
        if isinstance(kind, tuple):         # a list: the path continues in each item
            many = True
            kind = kind[1]
        if not isinstance(kind, dict) or name not in kind:
            where = ".".join(names[:i]) or "the item"
            known = ", ".join(kind) if isinstance(kind, dict) else "none: it is a value"
            raise TemplateError(f"{path!r}: {where} has no field {name!r} (fields: {known})")
        kind = kind[name]
    if isinstance(kind, tuple):
        many = True
    return depth, names, kind, many


def compile_ref(text: str, frames: list[Any], variables: set[str], codes: dict) -> Ref:
    """Compile the inside of one ``{...}``; frames are the shapes from the document to the loop item."""
    path, *specs = [part.strip() for part in text.split("|")]
    variable = None
    depth, names, kind, many = 0, (), SCALAR, False
    if path.startswith("$"):
        variable = path[1:]
        if variable not in variables:
            raise TemplateError(f"{{{text}}}: unknown variable ${variable} "
                                f"(known here: {', '.join('$' + v for v in sorted(variables)) or 'none'})")
    else:
        depth, names, kind, many = resolve_path(path, frames)
    path_many = many
    filters = []
    for spec in specs:
        name, _, arg = spec.partition(":")
        if name not in FILTERS:
            raise TemplateError(f"{{{text}}}: unknown filter {name!r} (known: {', '.join(FILTERS)})")
        takes, on_list, run = FILTERS[name]
        if takes is None and arg:
            raise TemplateError(f"{{{text}}}: filter {name!r} takes no argument")
        if takes == "int" and not arg.isdigit() or takes == "int?" and arg and not arg.isdigit():
            raise TemplateError(f"{{{text}}}: filter {name!r} needs a number of digits, e.g. {name}:2")
        if takes == "date" and arg not in DATE_LAYOUTS:
            raise TemplateError(f"{{{text}}}: date layout {arg!r} unknown (known: {', '.join(DATE_LAYOUTS)})")
        if name == "default" and arg.startswith("$") and arg[1:] not in variables:
            raise TemplateError(f"{{{text}}}: unknown variable {arg}")
        if takes == "code" and arg not in codes:
            raise TemplateError(f"{{{text}}}: no code list [codes.{arg}] in this file")
        if on_list != many:
            if on_list:
                raise TemplateError(f"{{{text}}}: filter {name!r} needs a list, but {path} is {_describe(kind)}")
            raise TemplateError(f"{{{text}}}: {path} is a list: apply count, sum or first before {name!r}")
        if on_list:
            many, kind = False, SCALAR
        filters.append(Filter(name, arg, on_list, run))
    if many:
        raise TemplateError(f"{{{text}}}: {path} is a list: end with count, sum or first")
    if variable is None and kind != SCALAR:
        raise TemplateError(f"{{{text}}}: {path} is {_describe(kind)}; name one of its fields "
                            f"(e.g. {path}.{next(iter(kind))})" if isinstance(kind, dict) else
                            f"{{{text}}}: {path} is {_describe(kind)}")
    return Ref(text, variable, depth, names, tuple(filters), path_many)


# --- templates (one element or component) -------------------------------------------------------
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


@dataclass(frozen=True, slots=True)
class Template:
    """Literal text with placeholders. With no value for a placeholder the whole text is empty."""

    parts: tuple[str | Ref, ...]

    @property
    def refs(self) -> tuple[Ref, ...]:
        """The placeholders reading the document (variables are bookkeeping, not values)."""
        return tuple(p for p in self.parts if isinstance(p, Ref) and p.variable is None)

    def render(self, frames: list[Frame], codes: dict) -> tuple[str, bool]:
        """(text, whether a document placeholder gave a value); text with only literals and
        variables counts as having no placeholder."""
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            value = part.value(frames, codes)
            if value is None:
                return "", False
            out.append(value)
        return "".join(out), bool(self.refs)


def compile_template(text: str, frames: list[Any], variables: set[str], codes: dict) -> Template:
    """Compile ``"{number}"``, ``"380"`` or ``"PO-{number}"``; raises TemplateError."""
    parts: list[str | Ref] = []
    pos = 0
    for match in _PLACEHOLDER.finditer(text):
        literal = text[pos:match.start()]
        if "{" in literal or "}" in literal:
            raise TemplateError(f"{text!r}: unbalanced brace")
        if literal:
            parts.append(literal)
        parts.append(compile_ref(match.group(1), frames, variables, codes))
        pos = match.end()
    tail = text[pos:]
    if "{" in tail or "}" in tail:
        raise TemplateError(f"{text!r}: unbalanced brace")
    if tail:
        parts.append(tail)
    return Template(tuple(parts))


# --- when tests -----------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Test:
    """``PATH`` (has a value), ``PATH=V1|V2`` or ``PATH!=V``, on the raw document value."""

    text: str
    ref: Ref
    values: frozenset[str] | None
    negate: bool

    def holds(self, frames: list[Frame]) -> bool:
        value = self.ref.raw(frames)
        if self.values is None or self.values == {""}:
            present = value not in (None, "", [], {})
            return present if self.values is None else present == self.negate
        if isinstance(value, (list, dict)):
            value = None
        present = _scalar(value, self.ref.where(frames)) in self.values
        return present != self.negate


_TEST = re.compile(r"\s*([^=!]+?)\s*(?:(!?=)\s*(.*?))?\s*\Z")


def compile_test(text: str, frames: list[Any], variables: set[str]) -> Test:
    """Compile a ``when`` test; raises TemplateError."""
    match = _TEST.match(text) if isinstance(text, str) else None
    if not match:
        raise TemplateError(f"{text!r}: expected PATH, PATH=V1|V2 or PATH!=V")
    path, op, values = match.groups()
    if path.startswith("$"):
        if path[1:] not in variables:
            raise TemplateError(f"{text!r}: unknown variable {path}")
        ref = Ref(path, path[1:], 0, (), (), False)
    else:
        depth, names, _kind, many = resolve_path(path, frames)
        ref = Ref(path, None, depth, names, (), many)
        if op and values.strip() and (many or not _kind == SCALAR):
            raise TemplateError(f"{text!r}: {path} is not a single value; compare values, test lists bare")
    return Test(text, ref, None if op is None else frozenset(v.strip() for v in values.split("|")), op == "!=")
