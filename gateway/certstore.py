"""The deployment's certs/ folder: read any certificate or key-pair file, write ours (0600) and partners', describe.

``certs/<name>.pem`` holds one of our key pairs (private key + certificate + chain, mode 0600);
``certs/<name>.cert.pem`` is the certificate we hand to partners; ``certs/partners/<ID>.pem``
holds a partner's certificates. Which files the configuration names is found by a raw TOML
read, not by loading the deployment, so ``gateway certs list`` works on a broken one too.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from asn1crypto import pkcs12 as asn1_pkcs12
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.serialization import pkcs12

from .as2 import Identity, encryption_certificate, expires_in_days, fingerprint, load_certificates, load_identity
from .errors import ConfigError, ConfigProblem, GatewayError

CERTS_DIR = "certs"
PARTNER_CERTS_DIR = "certs/partners"
CERT_SUFFIXES = (".pem", ".crt", ".cer", ".der", ".p12", ".pfx")
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")   # a bare name: no separators, no "..", no dot first

# Certificate states, worst last.
OK, NOT_YET_VALID, EXPIRES_SOON, EXPIRED = "ok", "not yet valid", "expires soon", "expired"


@dataclass(frozen=True)
class Bundle:
    """What a file holds: one of our key pairs (``identity``), or only certificates (a partner's)."""

    identity: Identity | None
    certificates: tuple[x509.Certificate, ...]


def check_name(name: str, what: str = "name") -> str:
    """A file name we build paths from must not climb out of certs/ (``../x``, ``/etc/x``)."""
    if not FILE_NAME.match(name) or name.endswith((".pem", ".cert")):
        raise GatewayError(f"{what} {name!r}: use letters, digits, '.', '_' and '-' only (no file suffix)")
    return name


def _fail(source: str, problem: str) -> ConfigError:
    return ConfigError([ConfigProblem(source, "file", problem)])


def read_bundle(data: bytes, password: bytes | None, *, source: str) -> Bundle:
    """Read a PEM, DER (certificate or PKCS#7) or PKCS#12 file; a private key makes it ours.

    Raises ConfigError naming ``source``; a PKCS#12 file that does not open says so
    (wrong or missing password) rather than "not a certificate".
    """
    if b"-----BEGIN" in data:
        if re.search(rb"-----BEGIN [A-Z ]*PRIVATE KEY-----", data):
            identity = load_identity(data, password, source=source)
            return Bundle(identity, (identity.certificate, *identity.chain))
        return Bundle(None, tuple(load_certificates(data, source=source)))
    try:
        return Bundle(None, tuple(load_certificates(data, source=source)))
    except ConfigError:
        pass
    if not _is_pkcs12(data):
        raise _fail(source, "not a PEM, DER or PKCS#12 certificate file")
    try:
        key, cert, extra = pkcs12.load_key_and_certificates(data, password)
    except ValueError:
        hint = "wrong password" if password else "it is password-protected: pass --password-env VAR"
        raise _fail(source, f"cannot open the PKCS#12 file ({hint})") from None
    if key is None:
        certs = tuple(c for c in (cert, *extra) if c is not None)
        if not certs:
            raise _fail(source, "the PKCS#12 file holds no certificate")
        return Bundle(None, certs)
    identity = load_identity(data, password, source=source)
    return Bundle(identity, (identity.certificate, *identity.chain))


def _is_pkcs12(data: bytes) -> bool:
    try:
        pfx = asn1_pkcs12.Pfx.load(data, strict=True)
        return pfx["auth_safe"]["content_type"].native == "data"
    except ValueError:
        return False


def identity_pem(identity: Identity) -> bytes:
    """Our key pair as one PEM file: unencrypted PKCS#8 key, its certificate, then the chain."""
    key = identity.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption())
    return key + certificates_pem((identity.certificate, *identity.chain))


def certificates_pem(certificates: tuple[x509.Certificate, ...] | list[x509.Certificate]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certificates)


def write_file(path: Path, data: bytes, *, mode: int, force: bool) -> None:
    """Write ``data`` with ``mode`` from the first byte on (never briefly world-readable).

    Without ``force`` the file is created with O_EXCL, so an existing key is never replaced;
    with it, the new file is written beside the old and renamed over it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if not force:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            raise GatewayError(f"{path} already exists; use --force to replace it") from None
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def state(cert: x509.Certificate, now: dt.datetime, warning_days: float) -> str:
    """ok / not yet valid / expires soon (within ``warning_days``) / expired."""
    days = expires_in_days(cert, now)
    if days < 0:
        return EXPIRED
    if now < cert.not_valid_before_utc:
        return NOT_YET_VALID
    return EXPIRES_SOON if days < warning_days else OK


def days_left(cert: x509.Certificate, now: dt.datetime) -> int:
    """Whole days until notAfter, rounded down (negative once expired)."""
    return math.floor(expires_in_days(cert, now))


def describe(cert: x509.Certificate, now: dt.datetime, warning_days: float) -> dict[str, object]:
    """The facts operators compare: subject, fingerprint, validity, days left and state."""
    return {
        "subject": subject(cert),
        "fingerprint": fingerprint(cert),
        "not_before": cert.not_valid_before_utc.isoformat(timespec="seconds"),
        "not_after": cert.not_valid_after_utc.isoformat(timespec="seconds"),
        "days_left": days_left(cert, now),
        "state": state(cert, now, warning_days),
    }


def files_under(certs_dir: Path) -> list[Path]:
    """Every certificate-looking file below certs/ (sorted; hidden and temporary files skipped)."""
    if not certs_dir.is_dir():
        return []
    return sorted(p for p in certs_dir.rglob("*")
                  if p.is_file() and p.suffix.lower() in CERT_SUFFIXES and not p.name.startswith("."))


def display(path: Path, home: Path) -> str:
    """A path as the config would write it: relative to the deployment home when inside it."""
    try:
        return str(path.resolve().relative_to(home.resolve()))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- what the configuration names


def raw_toml(path: Path) -> dict[str, Any]:
    """A TOML file as written (no validation): enough to find which files it names, even when invalid."""
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError):
        return {}


def toml_table(data: dict[str, Any], key: str) -> dict[str, Any]:
    """``data[key]`` when it is a table, else an empty one."""
    value = data.get(key)
    return value if isinstance(value, dict) else {}


def string_list(value: Any) -> list[str]:
    """The strings of a TOML array (anything else is ignored: `gateway check` reports it)."""
    return [v for v in value if isinstance(v, str)] if isinstance(value, list) else []


def warning_days(config: dict[str, Any]) -> float:
    """gateway.toml [as2] expiry_warning_days (default 30)."""
    days = toml_table(config, "as2").get("expiry_warning_days", 30.0)
    return float(days) if isinstance(days, (int, float)) and not isinstance(days, bool) else 30.0


def references(home: Path, config: dict[str, Any]) -> dict[Path, list[tuple[str, str]]]:
    """Files the configuration names, with (role, use) for each mention (a raw read: works on broken configs)."""
    refs: dict[Path, list[tuple[str, str]]] = {}

    def add(value: str, role: str, use: str) -> None:
        path = Path(value).expanduser()
        refs.setdefault((path if path.is_absolute() else home / path).resolve(), []).append((role, use))

    for index, value in enumerate(string_list(toml_table(config, "as2").get("identities"))):
        add(value, "ours", "signs, decrypts" if index == 0 else "decrypts")
    tls_cert = toml_table(config, "http").get("tls_cert")
    if isinstance(tls_cert, str) and tls_cert:
        add(tls_cert, "ours", "HTTPS listener")
    for partner_file in sorted((home / "partners").glob("*.toml")):
        data = raw_toml(partner_file)
        role = f"partner {partner_file.stem}" + ("" if data.get("enabled", True) is not False else " (disabled)")
        for value in string_list(toml_table(data, "as2").get("certificates")):
            add(value, role, "verifies")
    return refs


def certificate_rows(home: Path, config: dict[str, Any], password: bytes | None,
                     now: dt.datetime) -> list[dict[str, Any]]:
    """One row per certificate under certs/ or named by ``config`` (raw gateway.toml), with its role and state.

    ``password`` opens our key-pair files (gateway.toml [as2] identity_password, resolved).
    """
    window = warning_days(config)
    refs = references(home, config)
    loaded: dict[Path, Bundle | str] = {}
    for path in sorted({p.resolve() for p in files_under(home / CERTS_DIR)} | set(refs)):
        try:
            loaded[path] = read_bundle(path.read_bytes(), password, source=display(path, home))
        except OSError as exc:
            loaded[path] = f"unreadable: {exc.strerror}"
        except ConfigError as exc:
            loaded[path] = f"unreadable: {'; '.join(p.problem for p in exc.problems)}"
    ours = {fingerprint(b.identity.certificate) for b in loaded.values()
            if isinstance(b, Bundle) and b.identity is not None}
    # We encrypt to each partner's newest valid certificate, across all of its files.
    theirs: dict[str, list[x509.Certificate]] = {}
    for path, bundle in loaded.items():
        for role, _ in refs.get(path, []):
            if role.startswith("partner") and isinstance(bundle, Bundle):
                theirs.setdefault(role, []).extend(bundle.certificates)
    encrypting = {role: encryption_certificate(found, now) for role, found in theirs.items()}

    rows: list[dict[str, Any]] = []
    for path, bundle in loaded.items():
        file = display(path, home)
        if isinstance(bundle, str):
            for role, use in refs.get(path, [("", "")]):
                rows.append({"file": file, "role": role, "use": use, "subject": "", "fingerprint": "",
                             "not_before": "", "not_after": "", "days_left": None, "state": bundle})
            continue
        shown = [bundle.identity.certificate] if bundle.identity is not None else list(bundle.certificates)
        for cert in shown:
            mentions = refs.get(path) or [_unreferenced(bundle, cert, ours)]
            for role, use in mentions:
                if encrypting.get(role) is cert:
                    use = "verifies, encrypts"
                rows.append({"file": file, "role": role, "use": use, **describe(cert, now, window)})
    return rows


def _unreferenced(bundle: Bundle, cert: x509.Certificate, ours: set[str]) -> tuple[str, str]:
    if bundle.identity is not None:
        return "ours", "not in config"
    if fingerprint(cert) in ours:
        return "ours", "copy for partners"
    return "", "not in config"
