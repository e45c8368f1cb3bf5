"""gateway.toml [web] (the operators' dashboard on the [http] listener) and a partner file's [masking] table."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .config_as2 import HttpSettings

if TYPE_CHECKING:
    from .config import _Reader

# A masking path: dotted keys of the canonical envelope; "*" stands for any key; lists are walked through.
MASK_PATH = re.compile(r"^(\*|[A-Za-z_][A-Za-z0-9_]*)(\.(\*|[A-Za-z_][A-Za-z0-9_]*))*$")


@dataclass(frozen=True)
class WebSettings:
    """The dashboard: off unless enabled; sessions last ``session_hours``; logins are throttled per address."""

    enabled: bool = False
    session_hours: float = 8.0
    secure_cookies: bool = False      # read_web: true by default when [http] speaks TLS
    max_failures: int = 5             # failed logins from one address before it is locked out
    lockout_seconds: float = 300.0    # how long; the failures count over the same window


def read_web(r: "_Reader", data: dict, http: HttpSettings) -> WebSettings:
    """gateway.toml [web]: ``enabled``, ``session_hours``, ``secure_cookies``, ``max_failures``, ``lockout_seconds``."""
    p = "web."
    r.unknown(data, {"enabled", "session_hours", "secure_cookies", "max_failures", "lockout_seconds"}, p)
    enabled = r.value(data, "enabled", bool, False, p)
    if enabled and not http.enabled:
        r.problem(p + "enabled", "the dashboard is served on the [http] listener, which is disabled (http.enabled)")
    tls = bool(http.tls_cert and http.tls_key)
    return WebSettings(
        enabled=enabled,
        session_hours=r.value(data, "session_hours", float, 8.0, p, minimum=0.01),
        secure_cookies=r.value(data, "secure_cookies", bool, tls, p),
        max_failures=r.value(data, "max_failures", int, 5, p, minimum=1),
        lockout_seconds=r.value(data, "lockout_seconds", float, 300.0, p, minimum=1),
    )


def read_partner_masking(r: "_Reader", data: dict) -> tuple[str, ...]:
    """A partner file's ``[masking] fields = ["document.buyer.name", "document.lines.unit_price"]``.

    The canonical-document fields viewers see as ``***`` (operators see everything).
    """
    p = "masking."
    r.unknown(data, {"fields"}, p)
    fields = r.value(data, "fields", list, [], p)
    good: list[str] = []
    for index, path in enumerate(fields):
        if not isinstance(path, str) or not MASK_PATH.match(path):
            r.problem(f"{p}fields[{index}]", f"must be a dotted field path like \"document.buyer.name\", got {path!r}")
        else:
            good.append(path)
    return tuple(good)
