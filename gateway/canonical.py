"""Canonical document contract: the published JSON Schemas, and checking an envelope against them.

The schemas in ``gateway/schemas/`` (draft 2020-12) are the contract with internal systems
(DESIGN.md §4, canonical v1): the envelope, and one schema per document type that the
envelope applies to ``document`` by ``type``. They are loaded and compiled once, at first use.
``check`` runs before delivery so that a mapping mistake (a float, a typo'd key, a bad date)
stops at the gateway with every problem named, instead of reaching a consumer.

Speed: ``jsonschema`` lists every problem with its path but costs ~30 ms for a 100-line
invoice; ``fastjsonschema`` (generated code) says valid/invalid in ~2.5 ms but stops at the
first problem. So ``check`` asks fastjsonschema first when installed, and only an invalid
document pays for jsonschema's full listing.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterable

from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from referencing import Registry, Resource

from .errors import MappingError

try:
    import fastjsonschema
except ImportError:  # pragma: no cover - optional speed-up; jsonschema alone gives the same answers
    fastjsonschema = None

__all__ = ["DOCUMENT_TYPES", "SCHEMAS", "SCHEMA_DIR", "check", "document_problems", "prepare", "problems",
           "schema_path"]

SCHEMA_DIR = Path(__file__).parent / "schemas"
DOCUMENT_TYPES = ("order", "invoice", "ship_notice", "order_response")
_NAMES = ("envelope", *DOCUMENT_TYPES)


def schema_path(doc_type: str) -> Path:
    """The schema file of a document type ("order"...) or of the "envelope"."""
    if doc_type not in _NAMES:
        raise ValueError(f"no canonical schema for {doc_type!r} (known: {', '.join(_NAMES)})")
    return SCHEMA_DIR / f"{doc_type}.schema.json"


#: The one registry of schemas, by name ("envelope", "order", ...): parsed JSON, never modified.
SCHEMAS: dict[str, dict] = {name: json.loads(schema_path(name).read_text(encoding="utf-8")) for name in _NAMES}

# Only "date" is a format the contract uses; checking it catches 2026-02-30, which the pattern lets by.
_FORMATS = FormatChecker(formats=())


@_FORMATS.checks("date", raises=ValueError)
def _is_date(value: object) -> bool:
    return not isinstance(value, str) or bool(_dt.date.fromisoformat(value))


@lru_cache(maxsize=None)
def _validator(name: str) -> Draft202012Validator:
    # The envelope refers to the document schemas by $id: resolve them from SCHEMAS, never the network.
    registry: Registry = Registry().with_resources(
        (schema["$id"], Resource.from_contents(schema)) for schema in SCHEMAS.values())
    return Draft202012Validator(SCHEMAS[name], registry=registry, format_checker=_FORMATS)


@lru_cache(maxsize=None)
def _fast_envelope() -> Any:
    """fastjsonschema's generated validator of the envelope (~0.1 s to build, once), or None."""
    if fastjsonschema is None:
        return None
    by_id = {schema["$id"]: schema for schema in SCHEMAS.values()}

    def local(uri: str) -> dict:
        if uri not in by_id:
            raise ValueError(f"canonical schemas refer to {uri}, which is not in {SCHEMA_DIR}")
        return by_id[uri]

    return fastjsonschema.compile(SCHEMAS["envelope"], handlers={"https": local, "http": local})


def prepare() -> None:
    """Build every validator now (at server start), so the first document does not pay ~0.1 s."""
    for name in _NAMES:
        _validator(name)
    _fast_envelope()


_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# What a failing pattern means, in words (the pattern alone reads like line noise).
_PATTERN_HINTS = {
    r"^-?\d+(\.\d+)?$": 'a decimal string like "12.50"',
    r"^\d{4}-\d{2}-\d{2}$": "a date YYYY-MM-DD",
    r"^\d{8,14}$": "8 to 14 digits",
}


def _path(parts: Iterable[Any], root: str = "") -> str:
    """JSON path as text: ``document.lines[3].quantity``."""
    out = root
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.match(part):
            out += f".{part}" if out else part
        else:
            out += f"[{json.dumps(part)}]"
    return out or "(root)"


def _render(error: ValidationError, root: str) -> list[str]:
    """One line per problem: ``path: reason``; a missing or unknown key gets its own path."""
    where = _path(error.absolute_path, root)
    instance = error.instance
    kind = error.validator
    if kind == "required" and isinstance(instance, dict):
        return [f"{_path([*error.absolute_path, key], root)}: missing (every key is always present: null when "
                "there is no value)" for key in error.validator_value if key not in instance]
    if kind == "additionalProperties" and isinstance(instance, dict):
        allowed = list(error.schema.get("properties", {}))
        return [f"{_path([*error.absolute_path, key], root)}: unknown key (allowed here: {', '.join(allowed)})"
                for key in instance if key not in allowed]
    if kind == "type" and isinstance(instance, (int, float)) and not isinstance(instance, bool):
        return [f"{where}: {instance!r} is a JSON number; numbers are decimal strings (\"{instance}\")"]
    if kind == "type" and instance is None:
        return [f"{where}: null is not allowed here (expected {error.validator_value})"]
    if kind == "pattern":
        hint = _PATTERN_HINTS.get(error.validator_value)
        return [f"{where}: {instance!r} does not match {error.validator_value}" + (f" (expected {hint})" if hint else "")]
    if kind == "minLength" and instance == "":
        return [f"{where}: empty text; write null when there is no value"]
    if kind == "enum" and instance is None:
        return [f"{where}: null is not allowed here (expected one of: {', '.join(map(str, error.validator_value))})"]
    if kind == "format":
        return [f"{where}: {instance!r} is not a valid {error.validator_value}"]
    return [f"{where}: {error.message}"]


def _collect(name: str, instance: Any, root: str = "") -> list[str]:
    errors = list(_validator(name).iter_errors(instance))
    # '2026-11-21T09:30' fails the date pattern and the date format: say it once.
    misshapen = {tuple(e.absolute_path) for e in errors if e.validator == "pattern"}
    found: list[str] = []
    for error in errors:
        if error.validator == "format" and tuple(error.absolute_path) in misshapen:
            continue
        for line in _render(error, root):
            if line not in found:
                found.append(line)
    return found


def problems(envelope: dict) -> list[str]:
    """Every way ``envelope`` breaks the canonical contract, as ``path: reason`` lines ([] = valid)."""
    return _collect("envelope", envelope)


def document_problems(doc_type: str, document: dict) -> list[str]:
    """Every problem of a bare ``document`` of ``doc_type``, paths starting at ``document``."""
    if doc_type not in DOCUMENT_TYPES:
        return [f"type: unknown document type {doc_type!r} (known: {', '.join(DOCUMENT_TYPES)})"]
    return _collect(doc_type, document, "document")


def check(envelope: dict) -> None:
    """Raise MappingError listing every problem if ``envelope`` does not match the schemas."""
    fast = _fast_envelope()
    first = ""
    if fast is not None:
        try:
            fast(envelope)
            return
        except fastjsonschema.JsonSchemaValueException as exc:
            first = str(exc)
    found = problems(envelope) or ([f"{first} (fastjsonschema)"] if first else [])
    if found:
        what = envelope.get("type") if isinstance(envelope, dict) else None
        mapping = (envelope.get("source") or {}).get("mapping") if isinstance(envelope, dict) else None
        origin = f" made by mapping {mapping!r}" if isinstance(mapping, str) else ""
        raise MappingError(f"the {what or 'canonical'} document{origin} breaks the canonical schema "
                           f"({len(found)} problem{'s' if len(found) > 1 else ''}): " + "; ".join(found))
