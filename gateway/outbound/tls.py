"""HTTP target authentication shared by rest and soap: bearer/basic headers and the client TLS context."""

from __future__ import annotations

import base64
import ipaddress
import ssl
from pathlib import Path
from typing import Any, Callable, Iterable

from ..errors import GatewayError

AUTH_KEYS = frozenset({"bearer_token", "basic_user", "basic_password",
                       "client_cert", "client_key", "client_key_password"})
_SECRET_KEYS = ("bearer_token", "basic_password", "client_key_password")
SECRET_MARK = "***"


def is_loopback(host: str) -> bool:
    """True for localhost / 127.x / ::1: clear-text credentials never leave this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _is_reference(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(("env:", "file:")) and len(value) > 5


def check_auth_options(options: dict[str, Any], home: Path, resolve_secret: Callable[[str], str],
                       *, scheme: str | None = None, host: str = "",
                       verify: bool = True) -> Iterable[tuple[str, str]]:
    """Problems with bearer/basic/client-certificate options; never quotes a secret value.

    ``scheme``/``host`` are the target url's (None if the url is itself wrong): credentials in
    headers need https unless the target is on this machine.
    """
    for key in _SECRET_KEYS:
        if key not in options:
            continue
        if not _is_reference(options[key]):
            # Never the value itself: gateway.toml is shared, copied and committed.
            yield key, "must be a secret reference: env:NAME or file:PATH"
            continue
        try:
            if not resolve_secret(options[key]):
                yield key, "the secret it names is empty"
        except GatewayError as exc:
            yield key, str(exc)
    user = options.get("basic_user")
    if user is not None and (not isinstance(user, str) or not user or ":" in user):
        yield "basic_user", "must be a non-empty string without ':'"
    if ("basic_user" in options) != ("basic_password" in options):
        yield ("basic_password" if "basic_user" in options else "basic_user"), \
            "basic_user and basic_password go together"
    if "bearer_token" in options and ("basic_user" in options or "basic_password" in options):
        yield "bearer_token", "choose bearer_token or basic_user/basic_password, not both"
    sends_credentials = "bearer_token" in options or "basic_password" in options
    if sends_credentials and scheme == "http" and not is_loopback(host):
        yield "url", "bearer or basic credentials in clear text need an https url"
    if sends_credentials and not verify:
        yield "verify_tls", "credentials are only sent with TLS verification on"
    yield from _check_client_cert(options, home, resolve_secret)


def _check_client_cert(options: dict[str, Any], home: Path,
                       resolve_secret: Callable[[str], str]) -> Iterable[tuple[str, str]]:
    cert, key = options.get("client_cert"), options.get("client_key")
    if (cert is None) != (key is None):
        yield ("client_key" if key is None else "client_cert"), "client_cert and client_key go together"
        return
    if cert is None:
        if "client_key_password" in options:
            yield "client_key_password", "only with client_cert and client_key"
        return
    bad = False
    for name, value in (("client_cert", cert), ("client_key", key)):
        if not (isinstance(value, str) and (home / value).is_file()):
            yield name, "must name an existing PEM file (relative to the deployment home)"
            bad = True
    if bad:
        return
    try:
        password = _key_password(options, resolve_secret)
    except (GatewayError, ValueError):
        return  # already reported above as a client_key_password problem
    try:
        ssl.create_default_context().load_cert_chain(home / cert, home / key, password=password)
    except ssl.SSLError as exc:
        yield "client_cert", f"cannot load the certificate and key: {_ssl_reason(exc, home / key)}"
    except OSError as exc:
        yield "client_cert", f"cannot read the certificate or key: {exc.strerror}"


def _key_password(options: dict[str, Any], resolve_secret: Callable[[str], str]) -> str:
    """The key's pass phrase; "" for none (never None: OpenSSL would prompt on the terminal)."""
    reference = options.get("client_key_password")
    if reference is None:
        return ""
    if not _is_reference(reference):
        raise ValueError("not a reference")
    return resolve_secret(reference)


def _ssl_reason(exc: ssl.SSLError, key_file: Path) -> str:
    """OpenSSL's reason in words; its "PEM lib" alone says nothing useful."""
    reason = (exc.reason or "").replace("_", " ").lower()
    if "mismatch" in reason:
        return "the key does not belong to the certificate"
    try:
        encrypted = b"ENCRYPTED" in key_file.read_bytes()[:4096]
    except OSError:
        encrypted = False
    if encrypted:
        return "the key is encrypted: set client_key_password (or the pass phrase is wrong)"
    if not reason or "pem" in reason or "no start line" in reason:
        return "not a PEM certificate and unencrypted private key"
    return reason


def client_ssl_context(options: dict[str, Any], home: Path, resolve_secret: Callable[[str], str],
                       *, verify: bool = True) -> ssl.SSLContext | bool:
    """The context for https targets: system or ``ca_file`` trust, plus the client certificate if set.

    Plain ``True`` (aiohttp's default verification) when nothing needs configuring.
    """
    ca_file, cert = options.get("ca_file"), options.get("client_cert")
    if not cert and (not ca_file or not verify):
        return verify
    context = ssl.create_default_context(cafile=str(home / ca_file) if ca_file and verify else None)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if cert:
        context.load_cert_chain(home / cert, home / options["client_key"],
                                password=_key_password(options, resolve_secret))
    return context


def auth_headers(options: dict[str, Any], resolve_secret: Callable[[str], str]) -> dict[str, str]:
    """The Authorization header for bearer or basic options ({} for neither)."""
    if "bearer_token" in options:
        return {"Authorization": "Bearer " + resolve_secret(options["bearer_token"])}
    if "basic_user" in options:
        pair = f"{options['basic_user']}:{resolve_secret(options['basic_password'])}"
        return {"Authorization": "Basic " + base64.b64encode(pair.encode()).decode()}
    return {}


def secret_values(options: dict[str, Any], resolve_secret: Callable[[str], str]) -> list[str]:
    """Every secret (and its encoded form) that must be blanked out of error texts."""
    values: list[str] = []
    for key in _SECRET_KEYS:
        if key in options:
            values.append(resolve_secret(options[key]))
    for header in auth_headers(options, resolve_secret).values():
        values.append(header.split(" ", 1)[1])
    # Longest first, so a secret containing another is blanked whole.
    return sorted({v for v in values if len(v) >= 4}, key=len, reverse=True)


def scrub(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every secret value replaced by ***."""
    for secret in secrets:
        text = text.replace(secret, SECRET_MARK)
    return text


def tls_hint(exc: BaseException, has_client_cert: bool, url: str) -> str:
    """A sentence to add when a failure looks like a client-certificate refusal.

    With TLS 1.3 the server checks the client certificate after our side of the handshake is
    done, so a refusal often reaches us as a bare connection reset instead of an alert.
    """
    text = str(exc).lower()
    alert = any(s in text for s in ("certificate required", "handshake failure", "bad certificate",
                                    "unknown ca", "certificate unknown"))
    reset = "reset by peer" in text or "disconnected" in text
    if not url.startswith("https:") or not (alert or reset):
        return ""
    if has_client_cert:
        return " (if the server refused our client certificate: check client_cert against the CA it trusts)"
    if alert:
        return " (the server asks for a client certificate: set client_cert and client_key)"
    return " (if the server requires a client certificate: set client_cert and client_key)"


__all__ = ["AUTH_KEYS", "auth_headers", "check_auth_options", "client_ssl_context", "is_loopback",
           "scrub", "secret_values", "tls_hint"]
