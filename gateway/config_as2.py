"""The AS2 and HTTP parts of a deployment: gateway.toml [http] and [as2], a partner file's [as2] table.

Read with config.py's ``_Reader`` so problems come out as ``file: key: problem`` lines, like
every other setting. Certificates and our key pairs are loaded here, so ``gateway check``
finds an unreadable or mismatched file before a partner's message does.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cryptography import x509

from .as2 import CIPHERS, DIGESTS, Identity, expires_in_days, load_certificates, load_identity
from .certstore import display
from .errors import ConfigError, ConfigProblem

if TYPE_CHECKING:
    from .config import _Reader

MDN_MODES = ("sync", "async", "none")
COMPRESS = ("", "before-signing", "after-signing")
MICALG_SPELLINGS = ("rfc", "bare")   # "sha-256" (RFC 5751) or "sha256" (some older AS2 servers)


@dataclass(frozen=True)
class HttpSettings:
    """The gateway's HTTP listener (AS2 today; API and dashboard later)."""

    host: str = "127.0.0.1"
    port: int = 8080
    enabled: bool = True
    tls_cert: Path | None = None       # PEM certificate chain; with tls_key the listener speaks HTTPS
    tls_key: Path | None = None
    public_url: str = ""               # how partners reach us; default http(s)://host:port
    max_body_bytes: int = 50 * 2**20   # larger requests get 413, read from the socket to a temp file
    request_timeout: float = 60.0      # a request must arrive whole within this many seconds

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls_cert else "http"
        return (self.public_url or f"{scheme}://{self.host}:{self.port}").rstrip("/")


@dataclass(frozen=True)
class As2Settings:
    """Our side of AS2: our AS2 id, our key pairs (first signs; all decrypt, for rollover), limits."""

    as2_id: str = ""
    identities: tuple[Identity, ...] = ()
    identity_files: tuple[Path, ...] = ()
    max_decompressed_bytes: int = 500 * 2**20
    mdn_timeout: float = 60.0          # how long a sent message waits for its async MDN
    expiry_warning_days: float = 30.0

    @property
    def enabled(self) -> bool:
        return bool(self.as2_id and self.identities)


@dataclass(frozen=True)
class PartnerAs2:
    """One partner's AS2 settings: their id and certificates, how we send to them, what we accept."""

    as2_id: str
    certificates: tuple[x509.Certificate, ...]      # theirs: verify with all; encrypt to the newest valid one
    certificate_files: tuple[Path, ...]
    url: str = ""                                   # where we POST; empty = we only receive from them
    sign: str = "sha256"                            # "" = send unsigned
    encrypt: str = "aes256-cbc"                     # "" = send unencrypted
    compress: str = ""
    mdn: str = "sync"
    mdn_signed: bool = True
    require_signature: bool = True
    require_encryption: bool = True
    binary_transfer: bool = True
    micalg_spelling: str = "rfc"
    algorithm_protection: bool = True               # RFC 6211 attribute in our signatures; some partners choke on it
    content_type: str = "application/edi-consent"
    timeout: float = 30.0
    verify_tls: bool = True
    ca_file: Path | None = None
    basic_auth_user: str = ""                       # they must send these credentials to us
    basic_auth_password: str = ""                   # resolved secret (never logged)
    allowed_ips: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    async_mdn_hosts: tuple[str, ...] = ()           # MDN hosts allowed on private/loopback addresses

    def ip_allowed(self, address: str) -> bool:
        if not self.allowed_ips:
            return True
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in net for net in self.allowed_ips)


def _path(home: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else home / path


def read_http(r: "_Reader", data: dict, home: Path) -> HttpSettings:
    """gateway.toml [http]."""
    p = "http."
    r.unknown(data, {"enabled", "host", "port", "tls_cert", "tls_key", "public_url", "max_body_mb",
                     "request_timeout"}, p)
    cert = r.value(data, "tls_cert", str, "", p)
    key = r.value(data, "tls_key", str, "", p)
    if bool(cert) != bool(key):
        r.problem(p + "tls_cert", "tls_cert and tls_key go together (both PEM files)")
    for name, value in (("tls_cert", cert), ("tls_key", key)):
        if value and not _path(home, value).is_file():
            r.problem(p + name, f"no such file: {value}")
    public_url = r.value(data, "public_url", str, "", p)
    if public_url and urlsplit(public_url).scheme not in ("http", "https"):
        r.problem(p + "public_url", "must be an http(s):// URL")
    return HttpSettings(
        enabled=r.value(data, "enabled", bool, True, p),
        host=r.value(data, "host", str, "127.0.0.1", p),
        port=r.value(data, "port", int, 8080, p, minimum=0),
        tls_cert=_path(home, cert) if cert and key else None,
        tls_key=_path(home, key) if cert and key else None,
        public_url=public_url,
        max_body_bytes=int(r.value(data, "max_body_mb", float, 50.0, p, minimum=0.001) * 2**20),
        request_timeout=r.value(data, "request_timeout", float, 60.0, p, minimum=1),
    )


def read_as2(r: "_Reader", data: dict, home: Path) -> As2Settings:
    """gateway.toml [as2]: our AS2 id and key pairs."""
    p = "as2."
    r.unknown(data, {"as2_id", "identities", "identity_password", "max_decompressed_mb", "mdn_timeout",
                     "expiry_warning_days"}, p)
    as2_id = r.value(data, "as2_id", str, "", p)
    if as2_id and not _valid_as2_id(as2_id):
        r.problem(p + "as2_id", "AS2 ids are 1-128 printable ASCII characters without quotes or backslashes")
    files = r.value(data, "identities", list, [], p)
    password_ref, password_text = r.secret(data, "identity_password", p)
    password = password_text.encode() if password_ref else None
    identities: list[Identity] = []
    paths: list[Path] = []
    for index, value in enumerate(files):
        key = f"{p}identities[{index}]"
        if not isinstance(value, str):
            r.problem(key, "must be a file name (PEM with key and certificate, or PKCS#12)")
            continue
        path = _path(home, value)
        try:
            identities.append(load_identity(path.read_bytes(), password, source=value))
            paths.append(path)
        except OSError as exc:
            r.problem(key, f"cannot read {value}: {exc.strerror}")
        except ConfigError as exc:
            r.problem(key, "; ".join(pr.problem for pr in exc.problems))
    if as2_id and not files:
        r.problem(p + "identities", "AS2 needs our key pair: run `gateway certs generate` and list the file here")
    return As2Settings(
        as2_id=as2_id,
        identities=tuple(identities),
        identity_files=tuple(paths),
        max_decompressed_bytes=int(r.value(data, "max_decompressed_mb", float, 500.0, p, minimum=0.001) * 2**20),
        mdn_timeout=r.value(data, "mdn_timeout", float, 60.0, p, minimum=1),
        expiry_warning_days=r.value(data, "expiry_warning_days", float, 30.0, p, minimum=0),
    )


def _valid_as2_id(value: str) -> bool:
    return 0 < len(value) <= 128 and all(32 <= ord(c) < 127 and c not in '"\\' for c in value)


def _choice(r: "_Reader", data: dict, key: str, choices: tuple[str, ...], default: str, prefix: str) -> str:
    value = r.value(data, key, str, default, prefix)
    if value not in choices:
        r.problem(prefix + key, f"must be one of {', '.join(repr(c) for c in choices)}, got {value!r}")
        return default
    return value


def read_partner_as2(r: "_Reader", data: dict, home: Path, lease_seconds: float,
                     mdn_timeout: float) -> PartnerAs2 | None:
    """A partner file's [as2] table (None when the partner does not use AS2)."""
    if not data:
        return None
    p = "as2."
    r.unknown(data, {"id", "url", "certificates", "sign", "encrypt", "compress", "mdn", "mdn_signed",
                     "require_signature", "require_encryption", "binary_transfer", "micalg_spelling",
                     "algorithm_protection", "content_type", "timeout", "verify_tls", "ca_file", "basic_auth_user",
                     "basic_auth_password", "allowed_ips", "async_mdn_hosts"}, p)
    as2_id = r.value(data, "id", str, "", p)
    if not _valid_as2_id(as2_id):
        r.problem(p + "id", "the partner's AS2 id is required: 1-128 printable ASCII characters")
    certs: list[x509.Certificate] = []
    paths: list[Path] = []
    for index, value in enumerate(r.value(data, "certificates", list, [], p)):
        key = f"{p}certificates[{index}]"
        if not isinstance(value, str):
            r.problem(key, "must be a certificate file name")
            continue
        path = _path(home, value)
        try:
            certs.extend(load_certificates(path.read_bytes(), source=value))
            paths.append(path)
        except OSError as exc:
            r.problem(key, f"cannot read {value}: {exc.strerror}")
        except ConfigError as exc:
            r.problem(key, "; ".join(pr.problem for pr in exc.problems))
    url = r.value(data, "url", str, "", p)
    if url and (urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname):
        r.problem(p + "url", "must be the partner's http(s):// AS2 URL")
    sign = r.value(data, "sign", str, "sha256", p).lower().replace("-", "")
    if sign and sign not in DIGESTS:
        r.problem(p + "sign", f"must be one of {', '.join(sorted(DIGESTS))} or '' (unsigned)")
    encrypt = r.value(data, "encrypt", str, "aes256-cbc", p).lower()
    if encrypt and encrypt not in CIPHERS:
        r.problem(p + "encrypt", f"must be one of {', '.join(sorted(CIPHERS))} or '' (unencrypted)")
    require_signature = r.value(data, "require_signature", bool, True, p)
    if (encrypt or require_signature or (sign and r.value(data, "mdn_signed", bool, True, p))) and not certs:
        r.problem(p + "certificates", "the partner's certificate is needed to encrypt to them and verify them")
    timeout = r.value(data, "timeout", float, 30.0, p, minimum=1)
    mdn = _choice(r, data, "mdn", MDN_MODES, "sync", p)
    # A send holds its delivery's lease for the POST and, in async mode, the wait for the MDN.
    if timeout + (mdn_timeout if mdn == "async" else 0) >= lease_seconds:
        r.problem(p + "timeout", "timeout (+ as2.mdn_timeout for async MDNs) must be shorter than "
                  "delivery.lease_seconds, or a slow send loses its claim")
    ref, password = r.secret(data, "basic_auth_password", p)
    user = r.value(data, "basic_auth_user", str, "", p)
    if bool(user) != bool(ref):
        r.problem(p + "basic_auth_user", "basic_auth_user and basic_auth_password go together")
    networks = []
    for value in r.value(data, "allowed_ips", list, [], p):
        try:
            networks.append(ipaddress.ip_network(str(value), strict=False))
        except ValueError:
            r.problem(p + "allowed_ips", f"{value!r} is not an IP address or network (e.g. 203.0.113.0/24)")
    ca_file = r.value(data, "ca_file", str, "", p)
    if ca_file and not _path(home, ca_file).is_file():
        r.problem(p + "ca_file", f"no such file: {ca_file}")
    elif ca_file:
        try:
            ssl.create_default_context(cafile=str(_path(home, ca_file)))
        except (ssl.SSLError, ValueError) as exc:
            r.problem(p + "ca_file", f"{ca_file} holds no usable CA certificate: {exc}")
    return PartnerAs2(
        as2_id=as2_id,
        certificates=tuple(certs),
        certificate_files=tuple(paths),
        url=url,
        sign=sign,
        encrypt=encrypt,
        compress=_choice(r, data, "compress", COMPRESS, "", p),
        mdn=mdn,
        mdn_signed=r.value(data, "mdn_signed", bool, True, p),
        require_signature=require_signature,
        require_encryption=r.value(data, "require_encryption", bool, True, p),
        binary_transfer=r.value(data, "binary_transfer", bool, True, p),
        micalg_spelling=_choice(r, data, "micalg_spelling", MICALG_SPELLINGS, "rfc", p),
        algorithm_protection=r.value(data, "algorithm_protection", bool, True, p),
        content_type=r.value(data, "content_type", str, "application/edi-consent", p),
        timeout=timeout,
        verify_tls=r.value(data, "verify_tls", bool, True, p),
        ca_file=_path(home, ca_file) if ca_file else None,
        basic_auth_user=user,
        basic_auth_password=password,
        allowed_ips=tuple(networks),
        async_mdn_hosts=tuple(h.lower() for h in r.value(data, "async_mdn_hosts", list, [], p) if isinstance(h, str)),
    )


def partner_target(partner_id: str) -> str:
    """The queue target name for sending to a partner over AS2 (not a gateway.toml target)."""
    return f"as2:{partner_id}"


def as2_target_options(partner: Any, settings: Any) -> dict[str, Any]:
    """What the ``as2`` connector needs for one partner: their settings and ours."""
    return {"partner": partner.id, "as2": partner.as2, "ours": settings.as2, "http": settings.http}


def certificate_warnings(deployment: Any, now: dt.datetime) -> list[ConfigProblem]:
    """A problem per certificate in use (our identities, enabled AS2 partners') that expired or expires soon.

    "Soon" is ``[as2] expiry_warning_days``. During a key rollover the outgoing certificate is
    not flagged while it still has days left and a replacement valid beyond the window does its
    job (ours: listed first, so it signs; a partner's: any, since we encrypt to the newest).
    """
    window = deployment.settings.as2.expiry_warning_days
    problems: list[ConfigProblem] = []

    def flag(path: Path, key: str, cert: x509.Certificate, replaced: bool, advice: str) -> None:
        days = expires_in_days(cert, now)
        if days >= window or (replaced and days >= 0):
            return
        date = cert.not_valid_after_utc.date().isoformat()
        when = f"expired on {date}" if days < 0 else f"expires in {math.floor(days)} days ({date})"
        problems.append(ConfigProblem(display(path, deployment.home), key, f"{when}; {advice}"))

    ours = deployment.settings.as2
    fresh = [expires_in_days(i.certificate, now) >= window for i in ours.identities]
    for index, (identity, path) in enumerate(zip(ours.identities, ours.identity_files)):
        others = any(fresh[:index] + fresh[index + 1:])
        advice = ("remove it from [as2] identities" if others and index else
                  "put the newer key pair first in [as2] identities once partners have its certificate" if others
                  else "renew it (gateway certs generate) and send partners the new certificate")
        flag(path, f"as2.identities[{index}]", identity.certificate, others and index > 0, advice)

    for partner in deployment.partners.values():
        if not partner.enabled or partner.as2 is None:
            continue
        fresh_one = any(expires_in_days(c, now) >= window and c.not_valid_before_utc <= now
                        for c in partner.as2.certificates)
        for index, path in enumerate(partner.as2.certificate_files):
            try:
                certs = load_certificates(path.read_bytes(), source=str(path))
            except (OSError, ConfigError) as exc:
                problems.append(ConfigProblem(display(path, deployment.home),
                                              f"partner {partner.id} as2.certificates[{index}]", f"unreadable: {exc}"))
                continue
            advice = (f"remove it from {partner.file} [as2] certificates" if fresh_one
                      else f"ask {partner.id} for their new certificate (gateway certs import FILE --partner {partner.id})")
            for cert in certs:
                flag(path, f"partner {partner.id} as2.certificates[{index}]", cert, fresh_one, advice)
    return problems

