"""Message definitions for the validator: a compact text notation, compiled once per (format, type, version).

Structure notation (one line per segment group; indentation of 2 spaces = one level deeper)::

    UNH BGM DTM:M35 PAI:C1          segments in order; TAG alone = mandatory, at most once;
                                    TAG:C5 = conditional, at most 5 (X12 writes O for C)
    C99: NAD LOC:C25 FII:C5         a segment group, conditional, at most 99 repeats; its first
      C10: RFF DTM:C5               segment triggers it; deeper lines belong to it
    UNS MOA:C12                     a line without "X99:" continues the group one level up
    @ALC                            insert fragment ALC here (indented like this line)

EDIFACT groups are numbered SG1, SG2... depth-first, exactly as the UN directories number
them; X12 loops are named after their first segment ("N1 loop").

Element notation (one line per segment, elements separated by commas)::

    BGM: C002, an..35, an..3, an..3         composites by id (C002 is defined on its own line)
    C507: an..3!, an..35, an..3             ``!`` = mandatory, else conditional
    X12 types: AN 1/35, ID 2/3, DT 8, TM 4/8, N0 1/9, N2 1/15, R 1/15 (one number = fixed length)
    ``*N`` after an element = it may repeat N times (syntax-4 / X12 repetition separator)

A segment without an element line is not checked element by element (see validate.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["ElementDef", "Entry", "Group", "MessageDef", "lookup"]


@dataclass(slots=True)
class ElementDef:
    """One element or component: kind is a, n, an (EDIFACT; X12 AN and ID read as an) or N, R, DT, TM (X12)."""

    mandatory: bool
    kind: str
    min: int
    max: int
    decimals: int = 0                       # X12 Nn implied decimals (informative only)
    components: tuple[ElementDef, ...] | None = None
    repeats: int = 1
    name: str = ""                          # composite id, for problem texts


@dataclass(slots=True)
class Entry:
    """One position in a group: a segment (group None) or a nested group triggered by ``tag``."""

    tag: str
    mandatory: bool
    max: int
    group: Group | None = None


@dataclass(slots=True)
class Group:
    """A segment group / loop (the message itself is the root group)."""

    name: str
    entries: list[Entry] = field(default_factory=list)
    # tag -> every entry index whose segment (or group trigger) has that tag, ascending
    index: dict[str, tuple[int, ...]] = field(default_factory=dict)


@dataclass(slots=True)
class MessageDef:
    """A compiled message definition: the structure plus element definitions per segment tag."""

    format: str
    type: str
    version: str
    root: Group
    tags: frozenset[str]
    segments: dict[str, tuple[ElementDef, ...]]


_GROUP = re.compile(r"^([MCO])(\d+):\s*(.*)$")
_EDIFACT_TYPE = re.compile(r"^(an|a|n)(\.\.)?(\d+)$")
_X12_TYPE = re.compile(r"^(AN|ID|DT|TM|R|N\d?|B)\s+(\d+)(?:/(\d+))?$")
_ELEMENT = re.compile(r"^(.+?)(!)?(?:\*(\d+))?$")
_COMPOSITE = re.compile(r"^[A-Z]\d{3}$")


def _entry(token: str) -> Entry:
    tag, _, rule = token.partition(":")
    if not rule:
        return Entry(tag, True, 1)
    return Entry(tag, rule[0] == "M", int(rule[1:]))


def _finish(group: Group) -> None:
    index: dict[str, list[int]] = {}
    for i, entry in enumerate(group.entries):
        index.setdefault(entry.tag, []).append(i)
    group.index = {tag: tuple(positions) for tag, positions in index.items()}


def parse_structure(text: str, fragments: dict[str, str], x12: bool) -> tuple[Group, frozenset[str]]:
    """Compile the structure notation into the root Group and the set of every tag it uses."""
    lines: list[tuple[int, str]] = []
    for raw in text.splitlines():
        body = raw.split("#", 1)[0].rstrip()
        if not body.strip():
            continue
        indent = len(body) - len(body.lstrip())
        if body.strip().startswith("@"):
            for frag in fragments[body.strip()[1:]].strip("\n").splitlines():
                lines.append((indent + len(frag) - len(frag.lstrip()), frag.strip()))
        else:
            lines.append((indent, body.strip()))
    root = Group("message")
    stack: list[Group] = [root]      # stack[d] receives lines indented 2*d
    tags: set[str] = set()
    counter = 0
    for indent, body in lines:
        depth = indent // 2
        if depth >= len(stack):
            raise ValueError(f"structure line indented too deep: {body!r}")
        del stack[depth + 1:]
        parent = stack[depth]
        match = _GROUP.match(body)
        if match:
            counter += 1
            rule, repeats, body = match.groups()
            entries = [_entry(t) for t in body.split()]
            name = f"{entries[0].tag} loop" if x12 else f"SG{counter}"
            group = Group(name, entries)
            parent.entries.append(Entry(entries[0].tag, rule == "M", int(repeats), group))
            stack.append(group)
        else:
            entries = [_entry(t) for t in body.split()]
            parent.entries.extend(entries)
        tags.update(e.tag for e in entries)

    def finish(group: Group) -> None:
        _finish(group)
        for entry in group.entries:
            if entry.group is not None:
                finish(entry.group)

    finish(root)
    return root, frozenset(tags)


def _element(token: str, composites: dict[str, tuple[ElementDef, ...]]) -> ElementDef:
    match = _ELEMENT.match(token.strip())
    if match is None:
        raise ValueError(f"bad element {token!r}")
    body, mandatory, repeats = match.group(1).strip(), bool(match.group(2)), int(match.group(3) or 1)
    if _COMPOSITE.match(body):
        return ElementDef(mandatory, "composite", 0, 0, components=composites[body], repeats=repeats,
                          name=body)
    edifact = _EDIFACT_TYPE.match(body)
    if edifact:
        kind, ranged, size = edifact.groups()
        return ElementDef(mandatory, kind, 1 if ranged else int(size), int(size), repeats=repeats)
    x12 = _X12_TYPE.match(body)
    if x12:
        kind, low, high = x12.groups()
        decimals = 0
        if kind.startswith("N"):
            decimals, kind = int(kind[1:] or 0), "N"
        elif kind in ("AN", "ID", "B"):
            kind = "an"                     # same checks as EDIFACT an: length only
        return ElementDef(mandatory, kind, int(low), int(high or low), decimals, repeats=repeats)
    raise ValueError(f"bad element type {body!r}")


def parse_elements(text: str, composites: dict[str, tuple[ElementDef, ...]] | None = None
                   ) -> dict[str, tuple[ElementDef, ...]]:
    """Compile ``TAG: el, el, ...`` lines; composite lines (``C507: ...``) must come first."""
    composites = {} if composites is None else dict(composites)
    segments: dict[str, tuple[ElementDef, ...]] = {}
    for raw in text.splitlines():
        body = raw.split("#", 1)[0].strip()
        if not body:
            continue
        name, _, rest = body.partition(":")
        defs = tuple(_element(t, composites) for t in rest.split(","))
        if _COMPOSITE.match(name) and not name.isalpha():
            composites[name] = defs
        else:
            segments[name] = defs
    return segments


# --------------------------------------------------------------------------- registry

# (format, type) -> {version: (structure text, element table name)}; filled by the data modules.
_CACHE: dict[tuple[str, str, str], MessageDef | None] = {}


def _version_key(fmt: str, version: str) -> tuple[int, str] | None:
    """Sortable key: EDIFACT D96A -> (1996, 'A'), X12 004010 -> (4010, '')."""
    if fmt == "edifact":
        match = re.match(r"^D(\d\d)([A-Z])$", version.upper())
        if not match:
            return None
        year = int(match.group(1))
        return (1900 + year if year >= 90 else 2000 + year, match.group(2))
    match = re.match(r"^0*(\d{4})", version)
    return (int(match.group(1)), "") if match else None


def nearest(fmt: str, version: str, defined: list[str]) -> str | None:
    """The latest defined version not after ``version``, else the earliest one (None if unparseable)."""
    key = _version_key(fmt, version)
    if key is None:
        return None
    ranked = sorted(defined, key=lambda v: _version_key(fmt, v) or (0, ""))
    earlier = [v for v in ranked if (_version_key(fmt, v) or (0, "")) <= key]
    return earlier[-1] if earlier else ranked[0]


def lookup(fmt: str, message_type: str, version: str) -> MessageDef | None:
    """The compiled definition for a message, using the nearest defined version; None if unknown."""
    cache_key = (fmt, message_type, version)
    if cache_key in _CACHE:
        return _CACHE[cache_key]
    from . import edifact, x12       # data modules, imported on first use
    source = edifact if fmt == "edifact" else x12 if fmt == "x12" else None
    found: MessageDef | None = None
    versions = source.MESSAGES.get(message_type) if source else None
    if source is not None and versions:
        # Service messages (CONTRL) carry syntax versions, not directory ones: one definition fits all.
        chosen = next(iter(versions)) if len(versions) == 1 else nearest(fmt, version, list(versions))
        if chosen is not None:
            found = source.compiled(message_type, chosen)
    _CACHE[cache_key] = found
    return found
