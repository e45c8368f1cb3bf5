"""gateway.toml [api]: the document API internal systems use to send documents to partners (bearer tokens)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .config_as2 import HttpSettings

if TYPE_CHECKING:
    from .config import _Reader

MIN_TOKEN_LENGTH = 16   # shorter bearer tokens are guessable; `openssl rand -hex 32` gives 64


@dataclass(frozen=True)
class ApiSettings:
    """The inbound document API: off unless enabled; every request needs one of ``tokens``."""

    enabled: bool = False
    # Resolved token values (never logged or shown); ``token_refs`` are the references as written.
    tokens: tuple[str, ...] = field(default=(), repr=False)
    token_refs: tuple[str, ...] = ()
    max_documents: int = 500          # documents in one request (one interchange)
    # Token reference -> the target its status callbacks go through ("*": every token without its own).
    callbacks: dict[str, str] = field(default_factory=dict)
    callback_seconds: float = 2.0     # how often settled statuses are looked for
    rate_limit: float = 50.0          # requests per second per token on each node (bursts of one second's worth)

    def callback_target(self, caller: str) -> str | None:
        """The target status callbacks for documents ``caller`` submits go through, if any."""
        return self.callbacks.get(caller) or self.callbacks.get("*")


def read_api(r: "_Reader", data: dict, http: HttpSettings, targets: dict) -> ApiSettings:
    """gateway.toml [api]: ``enabled``, ``tokens`` (secret references), ``max_documents``, ``callbacks``."""
    p = "api."
    r.unknown(data, {"enabled", "tokens", "max_documents", "callbacks", "callback_seconds", "rate_limit"}, p)
    enabled = r.value(data, "enabled", bool, False, p)
    raw_tokens = r.value(data, "tokens", list, [], p)
    refs: list[str] = []
    values: list[str] = []
    for index, reference in enumerate(raw_tokens):
        key = f"[{index}]"
        if not isinstance(reference, str) or not reference:
            r.problem(f"{p}tokens{key}", 'must be a secret reference like "env:ERP_API_TOKEN"')
            continue
        # _Reader.secret resolves env:/file: references and records a problem when it cannot.
        ref, value = r.secret({key: reference}, key, p + "tokens")
        if not value:
            continue
        if len(value) < MIN_TOKEN_LENGTH:
            r.problem(f"{p}tokens{key}", f"the token of {ref} is shorter than {MIN_TOKEN_LENGTH} characters")
            continue
        refs.append(ref)
        values.append(value)
    if len(set(values)) != len(values):
        r.problem(p + "tokens", "two references resolve to the same token")
    if enabled and not raw_tokens:
        r.problem(p + "tokens", 'the API is enabled but has no tokens: add tokens = ["env:ERP_API_TOKEN"]')
    if enabled and not http.enabled:
        r.problem(p + "enabled", "the API is served on the [http] listener, which is disabled (http.enabled)")
    callbacks: dict[str, str] = {}
    for ref, target in r.table(data, "callbacks", p).items():
        if ref != "*" and ref not in raw_tokens:
            r.problem(f"{p}callbacks.{ref}", "names no token of api.tokens (use the reference as written, or \"*\")")
        elif not isinstance(target, str) or target not in targets:
            r.problem(f"{p}callbacks.{ref}", f"no target {target!r} in gateway.toml [targets]")
        else:
            callbacks[ref] = target
    return ApiSettings(enabled=enabled, tokens=tuple(values), token_refs=tuple(refs),
                       max_documents=r.value(data, "max_documents", int, 500, p, minimum=1), callbacks=callbacks,
                       callback_seconds=r.value(data, "callback_seconds", float, 2.0, p, minimum=0.1),
                       rate_limit=r.value(data, "rate_limit", float, 50.0, p, minimum=0.1))
