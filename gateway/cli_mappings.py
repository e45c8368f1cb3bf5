"""``gateway mappings list|test``: see the deployment's mappings and run their golden pairs.

A golden pair lives in ``<home>/mappings/golden/<mapping>/``: inbound cases are
``<case>.input.edi|x12|txt|xml`` -> ``<case>.expected.json`` (the list of documents the file's
messages map to; one document for XML), outbound cases ``<case>.input.json`` ->
``<case>.expected.edi|x12|xml``. Inbound results are also checked against the canonical JSON
Schemas. Mappings are loaded the way ``gateway check`` loads them (``load_mappings``), without
the rest of the deployment, so a mapping author needs no certificates or secrets to run this.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import click

from . import canonical
from .errors import ConfigError, GatewayError
from .mapping import MappingSet, load_mappings

INBOUND_SUFFIXES = (".edi", ".x12", ".txt", ".xml")
OUTBOUND_EXPECTED = (".edi", ".x12", ".xml")
_MISSING = object()


def register(main: click.Group) -> None:
    """Add the ``mappings`` group (``list``, ``test``) to the ``gateway`` command."""
    main.add_command(mappings)


@click.group()
def mappings() -> None:
    """Mapping files of this deployment and their golden tests."""


def _load(home: Path) -> MappingSet:
    """The deployment's mappings, or exit 2 listing every problem (as ``gateway check`` would)."""
    from .cli import EXIT_CONFIG, fail

    directory = home / "mappings"
    if not directory.is_dir():
        fail(f"{home} has no mappings/ directory (use --home or GATEWAY_HOME)", EXIT_CONFIG)
    try:
        return load_mappings(directory)
    except ConfigError as exc:
        fail(f"invalid mappings in {directory}:\n{exc}", EXIT_CONFIG)
    raise AssertionError("unreachable")  # fail() exits


@dataclass
class Case:
    """One golden pair of a mapping."""

    mapping: str
    name: str
    direction: str
    input: Path
    expected: Path | None
    status: str = "PASS"            # PASS | FAIL | SKIP
    details: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"{self.mapping}/{self.name}"


def golden_cases(golden: Path, mapping: Any) -> list[Case]:
    """The golden pairs of ``mapping`` in ``golden/<name>/``, sorted by case name."""
    folder = golden / mapping.name
    direction = getattr(mapping, "direction", "inbound")
    cases: list[Case] = []
    if not folder.is_dir():
        return cases
    for path in sorted(folder.glob("*.input.*")):
        name, _, suffix = path.name.partition(".input")
        if direction == "outbound" and suffix == ".json":
            expected = next((e for e in (folder / f"{name}.expected{s}" for s in OUTBOUND_EXPECTED) if e.exists()),
                            None)
        elif direction != "outbound" and suffix in INBOUND_SUFFIXES:
            expected = folder / f"{name}.expected.json"
        else:
            continue
        cases.append(Case(mapping.name, name, direction, path, expected))
    return cases


def first_difference(expected: Any, got: Any, path: str = "") -> tuple[str, Any, Any] | None:
    """The first JSON path where ``got`` differs from ``expected``: (path, expected, got), or None.

    A missing key or list item is ``_MISSING`` on its side; keys are visited in expected order.
    """
    if isinstance(expected, dict) and isinstance(got, dict):
        for key, value in expected.items():
            found = first_difference(value, got.get(key, _MISSING), f"{path}.{key}" if path else key)
            if found:
                return found
        for key in got:
            if key not in expected:
                return (f"{path}.{key}" if path else key), _MISSING, got[key]
        return None
    if isinstance(expected, list) and isinstance(got, list):
        for index, (want, have) in enumerate(zip(expected, got)):
            found = first_difference(want, have, f"{path}[{index}]")
            if found:
                return found
        if len(expected) != len(got):
            index = min(len(expected), len(got))
            return (f"{path}[{index}]", expected[index] if index < len(expected) else _MISSING,
                    got[index] if index < len(got) else _MISSING)
        return None
    # 1 == 1.0 == True in Python; JSON tells them apart, so compare types too.
    if type(expected) is not type(got) or expected != got:
        return path or "(root)", expected, got
    return None


def _show(value: Any) -> str:
    if value is _MISSING:
        return "(missing)"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= 120 else text[:117] + "..."


def _documents(mapping: Any, raw: bytes, suffix: str) -> list[dict]:
    """Every message (or the XML document) of ``raw`` mapped with ``mapping``; raises GatewayError."""
    from .errors import MappingError

    if mapping.format == "xml" or suffix == ".xml":
        from .edi.xml import parse_xml

        if mapping.format != "xml" or not hasattr(mapping, "apply_xml"):
            raise MappingError(f"the input is XML but mapping {mapping.name!r} reads {mapping.format}")
        tree = parse_xml(raw)
        problems = mapping.validate_xsd(tree)
        if problems:
            raise MappingError(f"the input fails the mapping's XSD: {'; '.join(problems)}")
        return [mapping.apply_xml(tree)]
    from . import edi

    fmt, interchanges = edi.read(raw)
    if fmt != mapping.format:
        raise MappingError(f"the input is {fmt} but mapping {mapping.name!r} reads {mapping.format}")
    documents = []
    for interchange in interchanges:
        for message in interchange.messages:
            if message.type != mapping.message:
                raise MappingError(f"message {message.reference} is {message.type}, mapping {mapping.name!r} "
                                   f"reads {mapping.message}", segment=message.segments[0].number)
            documents.append(mapping.apply(message, interchange.delimiters))
    return documents


def run_inbound(mapping: Any, case: Case) -> None:
    """Map the case's input, compare with its expected documents, check them against the schemas."""
    if case.expected is None or not case.expected.exists():
        case.status, case.details = "FAIL", [f"no expected file {case.input.name.split('.input')[0]}.expected.json"]
        return
    try:
        expected = json.loads(case.expected.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        case.status, case.details = "FAIL", [f"{case.expected.name} is not readable JSON: {exc}"]
        return
    try:
        got = _documents(mapping, case.input.read_bytes(), case.input.suffix)
    except GatewayError as exc:
        case.status, case.details = "FAIL", [f"{case.input.name}: {exc}"]
        return
    # Through JSON and back, as a target receives it (a float or a Decimal would show here).
    got = json.loads(json.dumps(got, ensure_ascii=False, default=repr))
    if isinstance(expected, dict):          # XML goldens hold the one document, not a list
        expected = [expected]
    difference = first_difference(expected, got, "documents")
    if difference is not None:
        where, want, have = difference
        case.status = "FAIL"
        case.details.append(f"at {where}: expected {_show(want)}, got {_show(have)}")
    for number, document in enumerate(got):
        if isinstance(document, dict):
            for problem in canonical.document_problems(mapping.document, document):
                case.status = "FAIL"
                case.details.append(f"schema: documents[{number}]{problem[len('document'):]}")


def run_outbound(mapping: Any, case: Case) -> None:
    """Render the case's canonical input with the outbound runner and compare with the expected EDI."""
    try:
        from .mapping.outbound import run_golden
    except ImportError:
        case.status, case.details = "SKIP", ["outbound runner not available"]
        return
    if case.expected is None:
        case.status = "FAIL"
        case.details = [f"no expected file {case.name}.expected{'|'.join(OUTBOUND_EXPECTED)}"]
        return
    differences = run_golden(mapping, case.input, case.expected)
    if differences:
        case.status, case.details = "FAIL", list(differences)


def run_cases(mapping_set: MappingSet, names: Iterable[str], golden: Path) -> list[Case]:
    """Run the golden pairs of the named mappings; returns every case with its outcome."""
    cases: list[Case] = []
    for name in names:
        mapping = mapping_set.get(name)
        for case in golden_cases(golden, mapping):
            (run_outbound if case.direction == "outbound" else run_inbound)(mapping, case)
            cases.append(case)
    return cases


@mappings.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_obj
def mappings_list(obj: Any, as_json: bool) -> None:
    """List mappings: direction, format, message, versions, document, auto and golden cases."""
    from .cli import emit_json, table

    loaded = _load(obj.home)
    golden = obj.home / "mappings" / "golden"
    rows = [{"name": m.name, "direction": getattr(m, "direction", "inbound"), "format": m.format,
             "message": m.message, "versions": list(m.versions), "document": m.document, "auto": m.auto,
             "golden": len(golden_cases(golden, m))} for m in loaded]
    if as_json:
        emit_json(rows)
        return
    table([{**row, "versions": ", ".join(row["versions"]) or "any", "auto": "yes" if row["auto"] else "no"}
           for row in rows], ["name", "direction", "format", "message", "versions", "document", "auto", "golden"])


@mappings.command("test")
@click.argument("names", nargs=-1)
@click.pass_obj
def mappings_test(obj: Any, names: tuple[str, ...]) -> None:
    """Run the golden pairs in mappings/golden/ (of NAMES, or of every mapping); exit 1 on a failure."""
    from .cli import EXIT_CONFIG, fail

    loaded = _load(obj.home)
    unknown = [name for name in names if name not in loaded]
    if unknown:
        fail(f"unknown mapping{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
             f"(known: {', '.join(loaded.names) or 'none'})", EXIT_CONFIG)
    golden = obj.home / "mappings" / "golden"
    selected = list(dict.fromkeys(names)) or loaded.names
    cases = run_cases(loaded, selected, golden)
    for case in cases:
        click.echo(f"{case.status} {case.label}" + (f": {case.details[0]}" if case.status == "SKIP" else ""))
        if case.status == "FAIL":
            for line in case.details:
                click.echo(f"    {line}")
    without = [name for name in selected if not any(c.mapping == name for c in cases)]
    if without:
        click.echo(f"no golden cases: {', '.join(without)}", err=True)
    # Golden folders whose mapping is not loaded (a typo, or a kind without a loader) are not silent.
    if not names and golden.is_dir():
        orphans = sorted(p.name for p in golden.iterdir() if p.is_dir() and p.name not in loaded)
        if orphans:
            click.echo(f"skipped golden folders without a loaded mapping: {', '.join(orphans)}", err=True)
    counts = {status: sum(c.status == status for c in cases) for status in ("PASS", "FAIL", "SKIP")}
    click.echo(f"{counts['PASS']} passed, {counts['FAIL']} failed, {counts['SKIP']} skipped")
    if counts["FAIL"]:
        sys.exit(1)
