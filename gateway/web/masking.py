"""Masking of canonical documents for viewers: the fields a partner's [masking] rules name become "***"."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

MASK = "***"


def mask_fields(value: Any, paths: Iterable[str]) -> Any:
    """A copy of ``value`` (parsed JSON) with every field a dotted path names replaced by ``MASK``.

    ``*`` matches any key; lists are walked through, so ``document.lines.unit_price`` masks the
    price of every line. Missing fields and nulls stay as they are (nothing to hide).
    """
    result = json.loads(json.dumps(value))   # a deep copy of plain JSON data
    for path in paths:
        _mask(result, path.split("."))
    return result


def _mask(node: Any, keys: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _mask(item, keys)
        return
    if not isinstance(node, dict) or not keys:
        return
    head, rest = keys[0], keys[1:]
    for key in (list(node) if head == "*" else [head] if head in node else []):
        if rest:
            _mask(node[key], rest)
        elif node[key] is not None:
            node[key] = [MASK for _ in node[key]] if isinstance(node[key], list) else MASK


def masked_document(body: bytes, paths: tuple[str, ...]) -> bytes:
    """A stored document's JSON, masked and pretty-printed; bytes that are not JSON are withheld entirely.

    With no paths (operators) nothing is masked, and JSON that does not parse is returned as is.
    """
    try:
        value = json.loads(body)
    except ValueError:
        return body if not paths else b'"*** (not JSON: withheld)"'
    return json.dumps(mask_fields(value, paths), indent=2, ensure_ascii=False).encode()
