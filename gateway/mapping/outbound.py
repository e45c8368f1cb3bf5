"""Outbound mappings: TOML files that turn a canonical document into an EDIFACT or X12 message body.

The mirror of the inbound language (mappings/README.md); users read mappings/OUTBOUND.md.
``load_outbound_mapping`` validates every key once and compiles every placeholder;
``OutboundMapping.build`` is pure and returns the ``OutMessage`` that
``gateway.edi.serialize.render`` wraps in envelopes (counts and control numbers are its job).
``run_golden`` checks a mapping against hand-written ``mappings/golden/<mapping>/`` pairs.
"""

from __future__ import annotations

import importlib
import json
import re
import tomllib
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterable

from ..edi.model import Party, Segment
from ..edi.serialize import Envelope, OutMessage, render
from ..errors import ConfigProblem, GatewayError, MappingError
from .engine import DOCUMENT_SHAPES
from .outbound_template import (LIST, Frame, Ref, Template, TemplateError, Test, compile_template, compile_test,
                                resolve_path, shape_of)

__all__ = ["OutboundMapping", "golden_cases", "golden_envelope", "load_outbound", "load_outbound_mapping",
           "render_golden", "run_golden", "select_outbound"]

_FORMATS = ("edifact", "x12")
_TAG = re.compile(r"[A-Z][A-Z0-9]{1,2}\Z")
_HOOK_MODULE = re.compile(r"gateway\.mapping\.(?:hooks(?:\.[A-Za-z_][A-Za-z0-9_]*)*|outbound_hooks)\Z")
_META_KEYS = ("name", "direction", "format", "message", "version", "versions", "agency", "document",
              "description", "auto")
_SEGMENT_KEYS = ("tag", "elements", "when", "when_any", "counter", "bind", "versions", "python")
_LOOP_KEYS = ("loop", "segments", "when", "when_any", "versions")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
Hook = Callable[[dict, Any], Iterable]


# --- compiled plan ------------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class Element:
    """One element: a simple value (one template) or a composite (several)."""

    components: tuple[Template, ...]
    composite: bool

    def render(self, frames: list[Frame], codes: dict) -> tuple[tuple[str, ...], bool, bool]:
        """(components, has placeholders, some placeholder gave a value).

        A composite whose placeholders all give no value is left empty entirely, so its
        literal qualifiers ("137", "102") are never written alone.
        """
        texts, any_ref, any_value = [], False, False
        for template in self.components:
            text, valued = template.render(frames, codes)
            texts.append(text)
            any_ref = any_ref or bool(template.refs)
            any_value = any_value or valued
        if any_ref and not any_value:
            return ("",), True, False
        return tuple(texts), any_ref, any_value


@dataclass(frozen=True, slots=True)
class Packed:
    """``{ packed = [...] }`` / ``{ pairs = [[q, v], ...] }``: groups written only when they have a value.

    Written groups are packed one after another (X12 qualifier/value pairs, EDIFACT PIA
    composites), so a missing one leaves no gap.
    """

    groups: tuple[tuple[Element, ...], ...]
    pairs: bool                 # a group counts when its LAST element has a value (the pair's value)

    def render(self, frames: list[Frame], codes: dict) -> tuple[list[tuple[str, ...]], bool]:
        out: list[tuple[str, ...]] = []
        for group in self.groups:
            rendered = [e.render(frames, codes) for e in group]
            keep = rendered[-1][2] if self.pairs else any(valued for _, _, valued in rendered)
            if keep:
                out.extend(comps for comps, _, _ in rendered)
        return out, bool(out)


@dataclass(frozen=True, slots=True)
class SegmentPlan:
    """One ``[[segments]]`` entry that writes a segment (or calls a hook that writes some)."""

    tag: str
    elements: tuple[Element | Packed, ...]
    tests: tuple[Test, ...] = ()
    any_tests: tuple[Test, ...] = ()
    counter: str = ""
    bind: str = ""
    versions: frozenset[str] = frozenset()
    hook: Hook | None = None
    hook_name: str = ""


@dataclass(frozen=True, slots=True)
class LoopPlan:
    """A ``loop = "lines"`` entry: its segments are written once per item of the list."""

    ref: Ref                    # the list's path (no filters)
    segments: tuple[SegmentPlan | "LoopPlan", ...]
    tests: tuple[Test, ...] = ()
    any_tests: tuple[Test, ...] = ()
    versions: frozenset[str] = frozenset()


def _applies(plan: SegmentPlan | LoopPlan, frames: list[Frame], version: str) -> bool:
    if plan.versions and version not in plan.versions:
        return False
    if not all(t.holds(frames) for t in plan.tests):
        return False
    return not plan.any_tests or any(t.holds(frames) for t in plan.any_tests)


class _Build:
    """The state of one ``build``: counters and the written segments."""

    def __init__(self, codes: dict, version: str) -> None:
        self.codes = codes
        self.version = version
        self.counters: dict[str, int] = {}
        self.body: list[Segment] = []

    def run(self, plans: Iterable[SegmentPlan | LoopPlan], frames: list[Frame]) -> None:
        for plan in plans:
            if not _applies(plan, frames, self.version):
                continue
            if isinstance(plan, LoopPlan):
                self.loop(plan, frames)
            elif plan.hook is not None:
                self.hook(plan, frames)
            else:
                self.segment(plan, frames)

    def loop(self, plan: LoopPlan, frames: list[Frame]) -> None:
        ref = plan.ref
        items = ref.raw(frames)
        if items is None:
            return
        if not isinstance(items, list):
            raise MappingError(f"document path '{ref.where(frames)}' must be a list, "
                               f"got {type(items).__name__}")
        base = ref.where(frames)
        for index, item in enumerate(items, 1):
            self.run(plan.segments, [*frames, Frame(item, f"{base}[{index}]", {"n": index})])

    def count(self, plan: SegmentPlan, frames: list[Frame], step: int) -> None:
        value = self.counters.get(plan.counter, 0) + step
        self.counters[plan.counter] = value
        frames[0].vars[plan.counter] = value           # counters are message-wide: the document frame
        if plan.bind:
            if step > 0:
                frames[-1].vars[plan.bind] = value
            else:
                frames[-1].vars.pop(plan.bind, None)

    def segment(self, plan: SegmentPlan, frames: list[Frame]) -> None:
        if plan.counter:
            self.count(plan, frames, 1)                # before rendering: the segment sees its own number
        elements: list[tuple[str, ...]] = []
        any_ref = any_value = False
        try:
            for index, element in enumerate(plan.elements, 1):
                if isinstance(element, Packed):
                    written, valued = element.render(frames, self.codes)
                    elements.extend(written)
                    any_ref, any_value = True, any_value or valued
                    continue
                comps, has_ref, valued = element.render(frames, self.codes)
                elements.append(comps)
                any_ref, any_value = any_ref or has_ref, any_value or valued
        except MappingError as exc:
            exc.tag = exc.tag or plan.tag
            exc.element = exc.element or str(index)
            raise
        if any_ref and not any_value:
            # Every placeholder is empty: the segment would carry only qualifiers. Not written,
            # so not counted either.
            if plan.counter:
                self.count(plan, frames, -1)
            return
        self.body.append(Segment(plan.tag, elements))

    def hook(self, plan: SegmentPlan, frames: list[Frame]) -> None:
        try:
            produced = list(plan.hook(frames[0].item, frames[-1].item if len(frames) > 1 else None))
        except Exception as exc:  # noqa: BLE001 - a hook bug must not become a traceback
            raise MappingError(f"hook {plan.hook_name} failed: {type(exc).__name__}: {exc}") from None
        for raw in produced:
            if (not isinstance(raw, (list, tuple)) or not raw or not isinstance(raw[0], str)
                    or not _TAG.match(raw[0])):
                raise MappingError(f"hook {plan.hook_name} must return segments as [TAG, element, ...], got {raw!r}")
            elements = []
            for value in raw[1:]:
                comps = tuple(value) if isinstance(value, (list, tuple)) else (value,)
                if not all(isinstance(c, str) for c in comps):
                    raise MappingError(f"hook {plan.hook_name}: elements must be strings or lists of strings",
                                       tag=raw[0])
                elements.append(comps)
            self.body.append(Segment(raw[0], elements))


@dataclass(frozen=True)
class OutboundMapping:
    """One loaded, validated outbound mapping file; ``build`` writes a message body (pure)."""

    name: str
    format: str
    message: str
    version: str
    versions: tuple[str, ...]
    document: str
    agency: str = ""
    description: str = ""
    auto: bool = True
    file: str = ""
    direction: str = "outbound"
    _codes: dict = field(default_factory=dict, repr=False, compare=False)
    _plan: tuple = field(default=(), repr=False, compare=False)

    def build(self, document: dict, *, version: str | None = None) -> OutMessage:
        """The message for one canonical ``document`` body; raises MappingError.

        ``version`` (a partner's choice) must be one the file lists; default: ``self.version``.
        """
        chosen = version or self.version
        if chosen not in self.versions:
            raise MappingError(f"mapping {self.name!r} writes {self.message} {', '.join(self.versions)}, "
                               f"not {chosen!r}", file=self.file or None)
        if not isinstance(document, dict):
            raise MappingError(f"a {self.document} document must be a JSON object, got {type(document).__name__}")
        state = _Build(self._codes, chosen)
        state.run(self._plan, [Frame(document, "", {})])
        return OutMessage(self.message, chosen, tuple(state.body), agency=self.agency)


# --- loading ------------------------------------------------------------------------------------

def load_outbound_mapping(path: Path, file_label: str, problems: list[ConfigProblem]) -> OutboundMapping | None:
    """Read, validate and compile one outbound mapping file; every problem goes to ``problems``."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        problems.append(ConfigProblem(file_label, "(file)", f"cannot be read as TOML: {exc}"))
        return None
    return load_outbound(file_label, Path(path), data, problems)


def load_outbound(file: str, path: Path, data: dict, problems: list[ConfigProblem]) -> OutboundMapping | None:
    """The same for an already parsed file: the signature of ``gateway.mapping.loader.LOADERS``."""
    return _Loader(file, problems).load(Path(path), data)


class _Loader:
    """Validates and compiles one outbound file, appending every problem found."""

    def __init__(self, file: str, problems: list[ConfigProblem]) -> None:
        self.file = file
        self.problems = problems
        self.codes: dict[str, dict[str, str]] = {}
        self.variables: set[str] = set()

    def problem(self, key: str, text: str) -> None:
        self.problems.append(ConfigProblem(self.file, key, text))

    def unknown(self, table: dict, allowed: tuple[str, ...], key: str) -> None:
        for name in table:
            if name not in allowed:
                self.problem(f"{key}.{name}" if key else name, f"unknown key (known: {', '.join(allowed)})")

    def load(self, path: Path, data: dict) -> OutboundMapping | None:
        before = len(self.problems)
        self.unknown(data, ("mapping", "codes", "segments"), "")
        meta = data.get("mapping")
        if not isinstance(meta, dict):
            self.problem("mapping", "missing [mapping] table (name, direction, format, message, version, document)")
            meta = {}
        self.unknown(meta, _META_KEYS, "mapping")
        name = meta.get("name")
        if name != path.stem:
            self.problem("mapping.name", f"{name!r} must equal the file name {path.stem!r}")
        if meta.get("direction") != "outbound":
            self.problem("mapping.direction", "must be \"outbound\" in an outbound mapping")
        fmt = meta.get("format")
        if fmt not in _FORMATS:
            self.problem("mapping.format", f"must be one of {', '.join(_FORMATS)} (got {fmt!r})")
        message = meta.get("message")
        if not isinstance(message, str) or not message:
            self.problem("mapping.message", "must be the message type to write, e.g. \"INVOIC\" or \"810\"")
        version = meta.get("version")
        versions = meta.get("versions", [version] if isinstance(version, str) else [])
        if not isinstance(versions, list) or not all(isinstance(v, str) and v for v in versions):
            self.problem("mapping.versions", "must be a list of versions the file can write, e.g. [\"D96A\", \"D01B\"]")
            versions = []
        if not isinstance(version, str) or not version:
            self.problem("mapping.version", "missing: the version written by default, e.g. \"D96A\" or \"004010\"")
        elif version not in versions:
            self.problem("mapping.version", f"{version!r} must be one of versions {versions}")
        agency = meta.get("agency", "")
        if not isinstance(agency, str):
            self.problem("mapping.agency", "must be a string (EDIFACT association code, e.g. \"EAN008\")")
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
        self.load_codes(data.get("codes", {}))
        segments = data.get("segments")
        plan: tuple = ()
        if not isinstance(segments, list) or not segments:
            self.problem("segments", "missing: at least one [[segments]] entry")
        elif shape is not None:
            self.collect_variables(segments)
            plan = self.entries(segments, "segments", [shape_of(shape)])
        if len(self.problems) > before:
            return None
        return OutboundMapping(name, fmt, message, version, tuple(versions), document, agency, description,
                               auto, self.file, _codes=self.codes, _plan=plan)

    def load_codes(self, codes: Any) -> None:
        if not isinstance(codes, dict):
            self.problem("codes", "must be a table of [codes.NAME] tables")
            return
        for name, table in codes.items():
            if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
                self.problem(f"codes.{name}", "must be a table of code = \"value\" strings")
                continue
            self.codes[name] = dict(table)

    def collect_variables(self, entries: list, found: dict[str, set[str]] | None = None) -> None:
        """Every counter and bound name in the file: ``$name`` may be used anywhere after loading."""
        top = found is None
        found = {"counter": set(), "bind": set()} if found is None else found
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            for key in ("counter", "bind"):
                if isinstance(entry.get(key), str) and _NAME.match(entry[key]):
                    found[key].add(entry[key])
            if isinstance(entry.get("segments"), list):
                self.collect_variables(entry["segments"], found)
        if top:
            for name in sorted(found["counter"] & found["bind"]):
                self.problem("segments", f"{name!r} is both a counter and a bound name: bind under another name")
            self.variables = found["counter"] | found["bind"]

    def entries(self, entries: list, key: str, frames: list[Any]) -> tuple:
        out = []
        for index, entry in enumerate(entries, 1):
            at = f"{key}[{index}]"
            if not isinstance(entry, dict):
                self.problem(at, "must be a table ([[segments]] or an inline { tag = ..., elements = [...] })")
                continue
            compiled = self.loop(entry, at, frames) if "loop" in entry else self.segment(entry, at, frames)
            if compiled is not None:
                out.append(compiled)
        return tuple(out)

    def variables_here(self, frames: list[Any]) -> set[str]:
        return self.variables | ({"n"} if len(frames) > 1 else set())

    def tests(self, entry: dict, at: str, frames: list[Any]) -> tuple[tuple[Test, ...], tuple[Test, ...]]:
        out: list[tuple[Test, ...]] = []
        for key in ("when", "when_any"):
            value = entry.get(key, [])
            texts = [value] if isinstance(value, str) else value
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                self.problem(f"{at}.{key}", "must be a test string or a list of them")
                texts = []
            tests = []
            for text in texts:
                try:
                    tests.append(compile_test(text, frames, self.variables_here(frames)))
                except TemplateError as exc:
                    self.problem(f"{at}.{key}", str(exc))
            out.append(tuple(tests))
        return out[0], out[1]

    def versions(self, entry: dict, at: str) -> frozenset[str]:
        value = entry.get("versions", [])
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem(f"{at}.versions", "must be a list of versions this entry is written for")
            return frozenset()
        return frozenset(value)

    def loop(self, entry: dict, at: str, frames: list[Any]) -> LoopPlan | None:
        self.unknown(entry, _LOOP_KEYS, at)
        path = entry.get("loop")
        try:
            if not isinstance(path, str) or "{" in path or "|" in path or path.startswith("$"):
                raise TemplateError(f"{path!r}: name a list of the document, e.g. \"lines\" or \"packages\"")
            depth, names, kind, _ = resolve_path(path, frames)
        except TemplateError as exc:
            self.problem(f"{at}.loop", str(exc))
            return None
        if not isinstance(kind, tuple) or kind[0] != LIST:
            self.problem(f"{at}.loop", f"{path!r} is not a list")
            return None
        loop_ref = Ref(path, None, depth, names, (), True)
        tests, any_tests = self.tests(entry, at, frames)
        segments = entry.get("segments")
        if not isinstance(segments, list) or not segments:
            self.problem(f"{at}.segments", "missing: the segments written for each item")
            return None
        inner = self.entries(segments, f"{at}.segments", [*frames, kind[1]])
        return LoopPlan(loop_ref, inner, tests, any_tests, self.versions(entry, at))

    def segment(self, entry: dict, at: str, frames: list[Any]) -> SegmentPlan | None:
        self.unknown(entry, _SEGMENT_KEYS, at)
        tests, any_tests = self.tests(entry, at, frames)
        versions = self.versions(entry, at)
        if "python" in entry:
            extra = [k for k in ("tag", "elements", "counter", "bind") if k in entry]
            if extra:
                self.problem(f"{at}.python", f"a hook writes its own segments: leave out {', '.join(extra)}")
            hook = self.hook(entry["python"], f"{at}.python")
            if hook is None:
                return None
            return SegmentPlan("", (), tests, any_tests, versions=versions, hook=hook, hook_name=entry["python"])
        tag = entry.get("tag")
        if not isinstance(tag, str) or not _TAG.match(tag):
            self.problem(f"{at}.tag", f"must be a segment tag (got {tag!r}), e.g. \"NAD\" or \"N1\"")
            tag = "XXX"
        counter, bind = entry.get("counter", ""), entry.get("bind", "")
        for key, value in (("counter", counter), ("bind", bind)):
            if value and (not isinstance(value, str) or not _NAME.match(value) or value == "n"):
                self.problem(f"{at}.{key}", f"must be a name like \"hl\" (not \"n\"), got {value!r}")
        if bind and not counter:
            self.problem(f"{at}.bind", "binds the value of this segment's counter: set counter too")
        raw = entry.get("elements", [])
        if not isinstance(raw, list):
            self.problem(f"{at}.elements", "must be a list of elements")
            raw = []
        elements = []
        for index, spec in enumerate(raw, 1):
            compiled = self.element(spec, f"{at}.elements[{index}]", frames, allow_packed=True)
            if compiled is not None:
                elements.append(compiled)
        return SegmentPlan(tag, tuple(elements), tests, any_tests, counter or "", bind or "", versions)

    def element(self, spec: Any, at: str, frames: list[Any], allow_packed: bool = False) -> Element | Packed | None:
        variables = self.variables_here(frames)
        try:
            if isinstance(spec, str):
                return Element((compile_template(spec, frames, variables, self.codes),), False)
            if isinstance(spec, list) and spec and all(isinstance(c, str) for c in spec):
                return Element(tuple(compile_template(c, frames, variables, self.codes) for c in spec), True)
        except TemplateError as exc:
            self.problem(at, str(exc))
            return None
        if allow_packed and isinstance(spec, dict) and len(spec) == 1 and next(iter(spec)) in ("packed", "pairs"):
            kind, groups = next(iter(spec.items()))
            if not isinstance(groups, list) or not groups:
                self.problem(f"{at}.{kind}", "must be a non-empty list")
                return None
            compiled = []
            for number, group in enumerate(groups, 1):
                members = group if kind == "pairs" else [group]
                if kind == "pairs" and (not isinstance(group, list) or len(group) != 2):
                    self.problem(f"{at}.pairs[{number}]", "must be [qualifier, value], e.g. [\"UP\", \"{item.gtin}\"]")
                    continue
                elements = [self.element(m, f"{at}.{kind}[{number}]", frames) for m in members]
                if all(e is not None for e in elements):
                    compiled.append(tuple(elements))
            return Packed(tuple(compiled), kind == "pairs")
        self.problem(at, "must be a string, a list of strings (a composite), { packed = [...] } "
                     "or { pairs = [[qualifier, value], ...] }")
        return None

    def hook(self, ref: Any, at: str) -> Hook | None:
        module_name, _, function_name = ref.partition(":") if isinstance(ref, str) else ("", "", "")
        if (not _HOOK_MODULE.match(module_name) or not function_name.isidentifier()
                or function_name.startswith("_")):
            self.problem(at, "must be \"module:function\" with the module gateway.mapping.outbound_hooks or "
                         f"inside gateway.mapping.hooks (got {ref!r}): mapping files may not import other code")
            return None
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - any import failure is a config problem
            self.problem(at, f"cannot import {module_name}: {exc}")
            return None
        function = getattr(module, function_name, None)
        if not callable(function) or isinstance(function, type):
            self.problem(at, f"{module_name} has no function {function_name!r}")
            return None
        return function


# --- choosing a mapping -------------------------------------------------------------------------

def select_outbound(mappings: Iterable[Any], format: str, document: str, version: str = "",
                    override: str | None = None) -> OutboundMapping | None:
    """The outbound mapping writing ``document`` in ``format`` (and ``version``, if given), or None.

    ``override`` is the mapping a partner's file names (it may be ``auto = false``); it must
    write this format and document type. Otherwise the first automatic mapping (by name)
    that can write ``version`` wins; with no version, the first automatic one.
    """
    outbound = sorted((m for m in mappings if getattr(m, "direction", "") == "outbound"), key=lambda m: m.name)
    if override:
        chosen = next((m for m in outbound if m.name == override), None)
        if chosen is None or chosen.format != format or chosen.document != document:
            return None
        return chosen
    for mapping in outbound:
        if mapping.auto and mapping.format == format and mapping.document == document:
            if not version or version in mapping.versions:
                return mapping
    return None


# --- golden pairs -------------------------------------------------------------------------------

def golden_envelope(format: str) -> Envelope:
    """The fixed envelope golden files are rendered in, so expected files never change.

    EDIFACT: UNA with the default delimiters, UNOC:3, sender OURCO (ZZZ) to PARTNER (ZZZ) on
    2026-01-02 03:04; X12: ISA sender ZZ/OURCO to ZZ/PARTNER, same moment, production, no ack.
    Control numbers come from counters starting at 1 (interchange, group, message each).
    """
    qualifier = "ZZZ" if format == "edifact" else "ZZ"
    return Envelope(format, Party("OURCO", qualifier), Party("PARTNER", qualifier), datetime(2026, 1, 2, 3, 4))


def _counter() -> Callable[[str], int]:
    counts: dict[str, int] = {}

    def next_number(level: str) -> int:
        counts[level] = counts.get(level, 0) + 1
        return counts[level]
    return next_number


def render_golden(mapping: OutboundMapping, documents: Any) -> bytes:
    """Build every document and render them in ONE interchange in the golden envelope.

    ``documents`` is one canonical document body or a list of them; an entry may also be
    ``{"version": "D01B", "document": {...}}`` to write a version other than the default.
    """
    entries = documents if isinstance(documents, list) else [documents]
    messages = []
    for entry in entries:
        version = None
        if isinstance(entry, dict) and "document" in entry and set(entry) <= {"document", "version"}:
            version, entry = entry.get("version"), entry["document"]
        messages.append(mapping.build(entry, version=version))
    return render(golden_envelope(mapping.format), messages, _counter()).raw


def run_golden(mapping: OutboundMapping, input_path: Path, expected_path: Path) -> list[str]:
    """Differences between the rendered input and the hand-written expected file (empty = pass)."""
    try:
        documents = json.loads(Path(input_path).read_text(encoding="utf-8"))
        got = render_golden(mapping, documents).decode("utf-8").replace("\r\n", "\n")
    except (OSError, ValueError) as exc:
        return [f"{input_path}: cannot be read: {exc}"]
    except GatewayError as exc:
        return [f"{input_path}: {exc}"]
    try:
        expected = Path(expected_path).read_text(encoding="utf-8").replace("\r\n", "\n")
    except OSError as exc:
        return [f"{expected_path}: cannot be read: {exc}"]
    want, have = expected.rstrip("\n").split("\n"), got.rstrip("\n").split("\n")
    out = [f"line {n}: expected {w!r}, got {h!r}" for n, (w, h) in enumerate(zip(want, have), 1) if w != h]
    if len(want) > len(have):
        out += [f"line {n}: expected {w!r}, got nothing" for n, w in enumerate(want[len(have):], len(have) + 1)]
    elif len(have) > len(want):
        out += [f"line {n}: unexpected {h!r}" for n, h in enumerate(have[len(want):], len(want) + 1)]
    return out


def golden_cases(golden_dir: Path, mapping: OutboundMapping) -> list[tuple[str, Path, Path]]:
    """(case name, input, expected) for ``<golden_dir>/<mapping name>/<case>.input.json``."""
    suffix = ".edi" if mapping.format == "edifact" else ".x12"
    out = []
    for input_path in sorted((Path(golden_dir) / mapping.name).glob("*.input.json")):
        case = input_path.name[:-len(".input.json")]
        out.append((case, input_path, input_path.with_name(case + ".expected" + suffix)))
    return out
