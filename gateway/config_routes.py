"""Routing rules (partner files' ``[[routes]]``) and per-target delivery shaping (concurrency, rate, ordering)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .canonical import DOCUMENT_TYPES, SCHEMAS

if TYPE_CHECKING:
    from .config import _Reader

ORDERINGS = ("none", "partner", "document")


@dataclass(frozen=True)
class Route:
    """Documents of one type from one partner go to these targets.

    ``when`` narrows the route to documents whose fields hold one of the given values (every
    field must match), e.g. ``when = { "ship_to.id" = ["4012345000016", "4012345000023"] }``.
    A ``fallback`` route applies only to documents no other route took.
    """

    document: str
    targets: tuple[str, ...]
    when: tuple[tuple[tuple[str, ...], frozenset[str]], ...] = ()
    fallback: bool = False

    def matches(self, document_type: str, body: dict[str, Any] | None) -> bool:
        if self.document not in (document_type, "*"):
            return False
        return all(field_value(body, path) in accepted for path, accepted in self.when)


def route_targets(routes: tuple[Route, ...], document_type: str, body: dict[str, Any] | None) -> tuple[str, ...]:
    """Every target of every route that takes this document (file order, no repeats); fallbacks if none did."""
    found: list[str] = []
    for fallback in (False, True):
        for route in routes:
            if route.fallback is fallback and route.matches(document_type, body):
                found.extend(t for t in route.targets if t not in found)
        if found:
            break
    return tuple(found)


def field_value(body: dict[str, Any] | None, path: tuple[str, ...]) -> str | None:
    """The scalar at a dotted path of a canonical document, as text (None when absent or not a scalar)."""
    value: Any = body
    for key in path:
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _schema_has(document: str, path: tuple[str, ...]) -> bool:
    """Does the canonical schema of ``document`` (any type for "*") have a scalar at ``path``?"""
    names = DOCUMENT_TYPES if document == "*" else (document,)
    for name in names:
        root = SCHEMAS[name]
        node: Any = root
        for key in path:
            node = _resolve(root, node)
            node = (node.get("properties") or {}).get(key)
            if node is None:
                break
        else:
            node = _resolve(root, node)
            kinds = node.get("type", "string")
            kinds = kinds if isinstance(kinds, list) else [kinds]
            if not {"object", "array"} & set(kinds):
                return True
    return False


def _resolve(root: dict, node: dict) -> dict:
    while "$ref" in node:   # the canonical schemas refer only within themselves: "#/$defs/<name>"
        node = root["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    return node


def read_routes(r: "_Reader", data: dict, target_names: set[str]) -> tuple[Route, ...]:
    """A partner file's ``[[routes]]``: document, targets, optional ``when`` field conditions and ``fallback``."""
    routes: list[Route] = []
    raw_routes = data.get("routes", [])
    if not isinstance(raw_routes, list):
        r.problem("routes", "must be an array of tables ([[routes]])")
        return ()
    for index, route in enumerate(raw_routes):
        prefix = f"routes[{index}]."
        if not isinstance(route, dict):
            r.problem(f"routes[{index}]", "must be a table")
            continue
        r.unknown(route, {"document", "targets", "when", "fallback"}, prefix)
        document = route.get("document")
        if document not in (*DOCUMENT_TYPES, "*"):
            r.problem(prefix + "document", f"must be one of {', '.join(DOCUMENT_TYPES)} or '*', got {document!r}")
            continue
        targets = route.get("targets")
        if not isinstance(targets, list) or not targets or not all(isinstance(t, str) for t in targets):
            r.problem(prefix + "targets", "must be a non-empty list of target names")
            continue
        for t in targets:
            if t not in target_names:
                r.problem(prefix + "targets", f"no target {t!r} in gateway.toml [targets]")
        when = _read_when(r, r.table(route, "when", prefix), document, prefix + "when.")
        fallback = r.value(route, "fallback", bool, False, prefix)
        if fallback and when:
            r.problem(prefix + "fallback", "a fallback route takes what no other route took: it has no `when`")
        routes.append(Route(document=document, targets=tuple(targets), when=when, fallback=fallback))
    return tuple(routes)


def _read_when(r: "_Reader", when: dict, document: str, prefix: str) -> tuple:
    conditions = []
    for name, accepted in when.items():
        path = tuple(name.split("."))
        if not all(path) or not _schema_has(document, path):
            r.problem(prefix + name, f"no such field in {document} documents (a dotted path to a text field of "
                                     f"the canonical schema, e.g. ship_to.id)")
            continue
        values = accepted if isinstance(accepted, list) else [accepted]
        if not values or not all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
            r.problem(prefix + name, f"must be a value or a non-empty list of values, got {accepted!r}")
            continue
        conditions.append((path, frozenset(str(v) for v in values)))
    return tuple(conditions)


@dataclass(frozen=True)
class Flow:
    """How deliveries to one target are shaped: at most ``concurrency`` at once (None: ``[delivery] per_target``),
    at most ``rate`` started per second on each node (None: unlimited), and ``ordered`` by partner or by
    partner + document number (a later delivery waits while an earlier one is queued or retrying)."""

    concurrency: int | None = None
    rate: float | None = None
    ordered: str = "none"


FLOW_KEYS = {"concurrency", "rate_limit", "ordered"}


def read_flow(r: "_Reader", spec: dict, prefix: str) -> Flow:
    """A target's ``concurrency``, ``rate_limit`` (deliveries per second) and ``ordered`` settings."""
    ordered = r.value(spec, "ordered", str, "none", prefix)
    if ordered not in ORDERINGS:
        r.problem(prefix + "ordered", f"must be one of {', '.join(ORDERINGS)}, got {ordered!r}")
        ordered = "none"
    rate = r.value(spec, "rate_limit", float, None, prefix)
    if rate is not None and rate <= 0:
        r.problem(prefix + "rate_limit", f"must be a positive number of deliveries per second, got {rate!r}")
        rate = None
    return Flow(concurrency=r.value(spec, "concurrency", int, None, prefix, minimum=1), rate=rate, ordered=ordered)


def sequence_key(flow: Flow, partner: str, number: str) -> str | None:
    """What orders a delivery among others to the same target (None when the target does not ask)."""
    if flow.ordered == "partner":
        return partner
    if flow.ordered == "document":
        return f"{partner}\x1f{number}"
    return None
