"""Load and validate a deployment (gateway.toml, partners/*.toml, mappings/) into frozen objects.

A deployment directory holds ``gateway.toml`` (server settings and internal targets),
``partners/<ID>.toml`` (one file per trading partner), ``mappings/`` and ``certs/``; runtime
state lives under ``var/``. Every setting has a default. Problems are collected, never
raised one at a time, so ``gateway check`` can print them all as ``file: key: problem``.
Secrets are written as references (``env:NAME`` or ``file:PATH``) and resolved here.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from .config_api import ApiSettings, read_api
from .config_as2 import (As2Settings, HttpSettings, PartnerAs2, certificate_warnings, partner_target, read_as2,
                         read_http, read_partner_as2)
from .config_edi import DAY, EdiSettings, PartnerEdi, parse_identifier, read_edi_settings, read_partner_edi
from .config_monitor import AlertSettings, MonitoringSettings, read_alerts, read_monitoring
from .config_routes import FLOW_KEYS, Flow, Route, read_flow, read_routes, route_targets
from .config_sftp import (PartnerSftp, PartnerSftpRemote, SftpServerSettings, read_partner_sftp,
                          read_partner_sftp_remote, read_sftp_server, outbox_target, sftp_target)
from .config_web import WebSettings, read_partner_masking, read_web
from .edi.model import Party
from .errors import ConfigError, ConfigProblem, GatewayError
from .mapping import MappingSet, load_mappings
from .retry import RetryPolicy

CONFIG_FILE = "gateway.toml"
PARTNER_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
TARGET_NAME = PARTNER_ID


@dataclass(frozen=True)
class StoreSettings:
    """Where state and payloads live; ``url`` may be overridden by GATEWAY_STORE_URL."""

    url: str
    blobs: Path
    duplicate_window_days: float = 30.0


@dataclass(frozen=True)
class InboxSettings:
    """Watched-folder defaults: each partner's inbox is ``root/<ID>`` unless its file says otherwise."""

    root: Path
    archive: Path
    stable_seconds: float = 1.0
    rescan_seconds: float = 5.0


@dataclass(frozen=True)
class DeliverySettings:
    """How many deliveries run at once, per target, and how long a claim stays valid."""

    workers: int = 8
    per_target: int = 4
    lease_seconds: float = 120.0
    poll_seconds: float = 0.5


@dataclass(frozen=True)
class BreakerSettings:
    """Circuit breaker thresholds, shared by all targets unless a target overrides them."""

    failure_threshold: int = 5
    reset_seconds: float = 30.0


@dataclass(frozen=True)
class Target:
    """An internal system that receives canonical documents through one connector type."""

    name: str
    type: str
    options: dict[str, Any]
    retry: RetryPolicy
    breaker: BreakerSettings
    flow: Flow = field(default_factory=Flow)


@dataclass(frozen=True)
class Settings:
    """The contents of gateway.toml, resolved against the deployment home."""

    home: Path
    node: str
    log_level: str
    log_format: str
    store: StoreSettings
    inbox: InboxSettings
    delivery: DeliverySettings
    targets: dict[str, Target]
    processors: int = 2
    processes: int = 1                 # gateway processes on this machine (see gateway/processes.py)
    recover_after_seconds: float = 300.0   # a message still unprocessed this long is taken over by the primary
    http: HttpSettings = field(default_factory=HttpSettings)
    as2: As2Settings = field(default_factory=As2Settings)
    sftp: SftpServerSettings = field(default_factory=SftpServerSettings)
    edi: EdiSettings = field(default_factory=EdiSettings)
    retry: RetryPolicy = field(default_factory=RetryPolicy)          # defaults for partner channels
    breaker: BreakerSettings = field(default_factory=BreakerSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    web: WebSettings = field(default_factory=WebSettings)
    monitoring: MonitoringSettings = field(default_factory=MonitoringSettings)
    alerts: AlertSettings = field(default_factory=AlertSettings)


@dataclass(frozen=True)
class Partner:
    """One trading partner, from ``partners/<ID>.toml``."""

    id: str
    name: str
    file: str
    enabled: bool = True
    identifiers: dict[str, tuple[str, ...]] = field(default_factory=dict)
    inbox: Path | None = None
    mappings: dict[str, str] = field(default_factory=dict)
    routes: tuple[Route, ...] = ()
    as2: PartnerAs2 | None = None
    sftp: PartnerSftp | None = None                  # their account on our SFTP server
    sftp_remote: PartnerSftpRemote | None = None     # their SFTP server (push / poll)
    edi: PartnerEdi = field(default_factory=PartnerEdi)
    masking: tuple[str, ...] = ()                    # canonical fields viewers see as *** on the dashboard

    def owns(self, format: str, qualifier: str, id: str) -> bool:
        """Does the interchange sender ``qualifier:id`` belong to this partner?

        Identifiers are written ``QUALIFIER:ID`` (exact) or ``ID`` (any qualifier).
        """
        for ident in self.identifiers.get(format, ()):
            q, sep, i = ident.rpartition(":")
            if (i == id) and (not sep or q == qualifier):
                return True
        return False

    def targets_for(self, document_type: str, body: dict[str, Any] | None = None) -> tuple[str, ...]:
        """Targets routed for a document (see gateway/config_routes.py: conditions, fan-out, fallbacks)."""
        return route_targets(self.routes, document_type, body)


@dataclass(frozen=True)
class Deployment:
    """Everything the gateway needs to run, loaded from one home directory."""

    home: Path
    settings: Settings
    partners: dict[str, Partner]
    mappings: MappingSet
    problems: tuple[ConfigProblem, ...] = ()   # partner files that were skipped, for `check` and the log

    def partner_for_sender(self, format: str, qualifier: str, id: str) -> Partner | None:
        """The partner whose identifiers include this interchange sender, if exactly one does."""
        owners = [p for p in self.partners.values() if p.owns(format, qualifier, id)]
        return owners[0] if len(owners) == 1 else None

    def partner_for_as2(self, as2_id: str) -> Partner | None:
        """The enabled partner whose AS2 id this is (ids are unique across partners, checked at load)."""
        for partner in self.partners.values():
            if partner.enabled and partner.as2 is not None and partner.as2.as2_id == as2_id:
                return partner
        return None

    @property
    def targets(self) -> dict[str, Target]:
        """Every delivery target: gateway.toml's internal ones and one ``as2:<ID>`` per AS2 partner with a URL."""
        targets = dict(self.settings.targets)
        for partner in self.partners.values():
            if partner.as2 is not None and partner.as2.url:
                name = partner_target(partner.id)
                targets[name] = Target(name=name, type="as2", options={"partner": partner.id},
                                       retry=self.settings.retry, breaker=self.settings.breaker)
            if partner.sftp_remote is not None and partner.sftp_remote.upload_dir:
                name = sftp_target(partner.id)
                targets[name] = Target(name=name, type="sftp", options={"partner": partner.id},
                                       retry=self.settings.retry, breaker=self.settings.breaker)
            if partner.sftp is not None:
                name = outbox_target(partner.id)
                targets[name] = Target(name=name, type="outbox", options={"partner": partner.id},
                                       retry=self.settings.retry, breaker=self.settings.breaker)
        return targets

    def partner_channels(self, partner: Partner) -> list[str]:
        """The queue targets that reach a partner, in the order `gateway send` prefers them."""
        return [name for name, target in self.targets.items()
                if target.type in ("as2", "sftp", "outbox") and target.options.get("partner") == partner.id]

    def reply_target(self, partner: Partner) -> str | None:
        """Where EDI we write for a partner (acknowledgments, outbound documents) is queued, if anywhere."""
        channels = self.partner_channels(partner)
        if partner.edi.ack_channel:
            return partner.edi.ack_channel if partner.edi.ack_channel in channels else None
        return channels[0] if channels else None

    def our_identity(self, partner: Partner, format: str) -> Party | None:
        """The interchange sender we write as towards this partner (partner [edi] our_ids, else gateway.toml)."""
        value = partner.edi.our_ids.get(format) or self.settings.edi.identifiers.get(format)
        return parse_identifier(value) if value else None

    def expect_ack_seconds(self, partner: Partner) -> float | None:
        """How long an interchange we send this partner waits for its acknowledgment (None: none expected)."""
        minutes = partner.edi.expect_ack_minutes
        minutes = self.settings.edi.expect_ack_minutes if minutes is None else minutes
        return minutes * 60.0 if minutes > 0 else None

    def duplicate_window_seconds(self, partner: Partner) -> float:
        """How far back a repeated interchange control number from this partner counts as a duplicate."""
        days = partner.edi.duplicate_window_days
        return (self.settings.edi.duplicate_window_days if days is None else days) * DAY

    def partner_for_sftp_user(self, username: str) -> Partner | None:
        """The enabled partner whose SFTP account this is (usernames are unique, checked at load)."""
        for partner in self.partners.values():
            if partner.enabled and partner.sftp is not None and partner.sftp.username == username:
                return partner
        return None


class _Reader:
    """Pulls typed values out of one parsed TOML table, recording problems instead of raising."""

    def __init__(self, file: str, problems: list[ConfigProblem]) -> None:
        self.file = file
        self.problems = problems

    def problem(self, key: str, text: str) -> None:
        self.problems.append(ConfigProblem(self.file, key, text))

    def table(self, data: dict, key: str, prefix: str = "") -> dict:
        value = data.get(key, {})
        if not isinstance(value, dict):
            self.problem(prefix + key, "must be a table")
            return {}
        return value

    def value(self, data: dict, key: str, kind: type | tuple[type, ...], default: Any, prefix: str = "",
              minimum: float | None = None) -> Any:
        if key not in data:
            return default
        value = data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds).replace("str", "string").replace("float", "number")
            self.problem(prefix + key, f"must be a {names}, got {value!r}")
            return default
        if minimum is not None and value < minimum:
            self.problem(prefix + key, f"must be at least {minimum}, got {value!r}")
            return default
        return value

    def secret(self, data: dict, key: str, prefix: str = "") -> tuple[str, str]:
        """A secret reference (``env:NAME``, ``file:PATH`` or literal) and its value; a problem if it cannot resolve.

        Returns ``(reference, value)``: the reference says whether one was given at all, even
        when its value could not be read.
        """
        reference = self.value(data, key, str, "", prefix)
        if not reference:
            return "", ""
        try:
            return reference, resolve_secret(reference)
        except GatewayError as exc:
            self.problem(prefix + key, str(exc))
            return reference, ""

    def unknown(self, data: dict, known: set[str], prefix: str = "") -> None:
        for key in data:
            if key not in known:
                self.problem(prefix + key, "unknown setting")


def resolve_secret(reference: str) -> str:
    """Resolve ``env:NAME`` / ``file:PATH`` secret references; other strings are literal values."""
    if reference.startswith("env:"):
        name = reference[4:]
        if name not in os.environ:
            raise GatewayError(f"environment variable {name} is not set")
        return os.environ[name]
    if reference.startswith("file:"):
        try:
            return Path(reference[5:]).read_text().strip()
        except OSError as exc:
            raise GatewayError(f"cannot read secret file: {exc.strerror}") from None
    return reference


def _resolve_path(home: Path, value: str) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else home / path


def _sqlite_url(home: Path, url: str) -> str:
    """Make relative SQLite paths relative to the deployment home, not the working directory."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and url != "sqlite:///:memory:":
        return prefix + str(home / url[len(prefix):])
    return url


def _policy(r: _Reader, data: dict, prefix: str, base: RetryPolicy) -> RetryPolicy:
    r.unknown(data, {"max_attempts", "initial_delay", "max_delay", "multiplier", "jitter", "max_age_hours"}, prefix)
    return RetryPolicy(
        max_attempts=r.value(data, "max_attempts", int, base.max_attempts, prefix, minimum=1),
        initial_delay=r.value(data, "initial_delay", float, base.initial_delay, prefix, minimum=0),
        max_delay=r.value(data, "max_delay", float, base.max_delay, prefix, minimum=0),
        multiplier=r.value(data, "multiplier", float, base.multiplier, prefix, minimum=1),
        jitter=r.value(data, "jitter", float, base.jitter, prefix, minimum=0),
        max_age=r.value(data, "max_age_hours", float, base.max_age / 3600, prefix, minimum=0) * 3600,
    )


def _breaker(r: _Reader, data: dict, prefix: str, base: BreakerSettings) -> BreakerSettings:
    r.unknown(data, {"failure_threshold", "reset_seconds"}, prefix)
    return BreakerSettings(
        failure_threshold=r.value(data, "failure_threshold", int, base.failure_threshold, prefix, minimum=1),
        reset_seconds=r.value(data, "reset_seconds", float, base.reset_seconds, prefix, minimum=0),
    )


def _read_toml(path: Path, display: str, problems: list[ConfigProblem]) -> dict | None:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        problems.append(ConfigProblem(display, "-", "file not found"))
    except tomllib.TOMLDecodeError as exc:
        problems.append(ConfigProblem(display, "-", f"not valid TOML: {exc}"))
    except OSError as exc:
        problems.append(ConfigProblem(display, "-", f"cannot read: {exc.strerror}"))
    return None


def load_settings(home: Path, problems: list[ConfigProblem], environ: dict[str, str] | None = None) -> Settings:
    """Read gateway.toml (a missing file means all defaults); problems are appended, not raised."""
    from .outbound import CONNECTORS  # registry of connector types and their option checkers

    environ = os.environ if environ is None else environ
    path = home / CONFIG_FILE
    data = _read_toml(path, CONFIG_FILE, problems) if path.exists() else {}
    data = data or {}
    r = _Reader(CONFIG_FILE, problems)
    r.unknown(data, {"server", "store", "inbox", "delivery", "retry", "breaker", "targets", "http", "as2",
                     "sftp", "edi", "api", "web", "monitoring", "alerts"})

    server = r.table(data, "server")
    r.unknown(server, {"node", "log_level", "log_format", "processors", "processes", "recover_after_seconds"},
              "server.")
    log_level = r.value(server, "log_level", str, "info", "server.")
    if log_level not in ("debug", "info", "warning", "error"):
        r.problem("server.log_level", f"must be debug, info, warning or error, got {log_level!r}")
        log_level = "info"
    log_format = r.value(server, "log_format", str, "console", "server.")
    if log_format not in ("json", "console"):
        r.problem("server.log_format", f"must be json or console, got {log_format!r}")
        log_format = "console"

    store = r.table(data, "store")
    r.unknown(store, {"url", "blobs", "duplicate_window_days"}, "store.")
    url = environ.get("GATEWAY_STORE_URL") or r.value(store, "url", str, "sqlite:///var/gateway.db", "store.")
    store_settings = StoreSettings(
        url=_sqlite_url(home, url),
        blobs=_resolve_path(home, r.value(store, "blobs", str, "var/blobs", "store.")),
        duplicate_window_days=r.value(store, "duplicate_window_days", float, 30.0, "store.", minimum=0),
    )

    inbox = r.table(data, "inbox")
    r.unknown(inbox, {"root", "archive", "stable_seconds", "rescan_seconds"}, "inbox.")
    inbox_settings = InboxSettings(
        root=_resolve_path(home, r.value(inbox, "root", str, "var/inbox", "inbox.")),
        archive=_resolve_path(home, r.value(inbox, "archive", str, "var/archive", "inbox.")),
        stable_seconds=r.value(inbox, "stable_seconds", float, 1.0, "inbox.", minimum=0),
        rescan_seconds=r.value(inbox, "rescan_seconds", float, 5.0, "inbox.", minimum=0.1),
    )

    delivery = r.table(data, "delivery")
    r.unknown(delivery, {"workers", "per_target", "lease_seconds", "poll_seconds"}, "delivery.")
    delivery_settings = DeliverySettings(
        workers=r.value(delivery, "workers", int, 8, "delivery.", minimum=1),
        per_target=r.value(delivery, "per_target", int, 4, "delivery.", minimum=1),
        lease_seconds=r.value(delivery, "lease_seconds", float, 120.0, "delivery.", minimum=1),
        poll_seconds=r.value(delivery, "poll_seconds", float, 0.5, "delivery.", minimum=0.01),
    )

    retry = _policy(r, r.table(data, "retry"), "retry.", RetryPolicy())
    breaker = _breaker(r, r.table(data, "breaker"), "breaker.", BreakerSettings())

    targets: dict[str, Target] = {}
    for name, spec in r.table(data, "targets").items():
        prefix = f"targets.{name}."
        if not TARGET_NAME.match(name):
            r.problem(f"targets.{name}", "target names use letters, digits, '.', '_' and '-' only")
            continue
        if not isinstance(spec, dict):
            r.problem(f"targets.{name}", "must be a table")
            continue
        kind = spec.get("type")
        if kind not in CONNECTORS:
            r.problem(prefix + "type", f"must be one of {', '.join(sorted(CONNECTORS))}, got {kind!r}")
            continue
        options = {k: v for k, v in spec.items() if k not in ("type", "retry", "breaker", *FLOW_KEYS)}
        connector = CONNECTORS[kind]
        for key, text in connector.check_options(options, home, resolve_secret):
            r.problem(prefix + key, text)
        timeout = options.get("timeout", 0)
        if isinstance(timeout, (int, float)) and timeout >= delivery_settings.lease_seconds:
            r.problem(prefix + "timeout", "must be shorter than delivery.lease_seconds, or a slow attempt loses its claim")
        targets[name] = Target(
            name=name,
            type=kind,
            options=options,
            retry=_policy(r, r.table(spec, "retry", prefix), prefix + "retry.", retry),
            breaker=_breaker(r, r.table(spec, "breaker", prefix), prefix + "breaker.", breaker),
            flow=read_flow(r, spec, prefix),
        )

    http = read_http(r, r.table(data, "http"), home)
    processes = r.value(server, "processes", int, 1, "server.", minimum=1)
    if processes > 1 and http.port == 0:
        r.problem("server.processes", "several processes share the [http] port: set a fixed http.port, not 0")
    return Settings(
        home=home,
        node=r.value(server, "node", str, "", "server.") or f"{os.uname().nodename}-{os.getpid()}",
        log_level=log_level,
        log_format=log_format,
        store=store_settings,
        inbox=inbox_settings,
        delivery=delivery_settings,
        targets=targets,
        processors=r.value(server, "processors", int, 2, "server.", minimum=1),
        processes=processes,
        recover_after_seconds=r.value(server, "recover_after_seconds", float, 300.0, "server.", minimum=1),
        http=http,
        as2=read_as2(r, r.table(data, "as2"), home),
        sftp=read_sftp_server(r, r.table(data, "sftp"), home),
        edi=read_edi_settings(r, r.table(data, "edi")),
        retry=retry,
        breaker=breaker,
        api=read_api(r, r.table(data, "api"), http, targets),
        web=read_web(r, r.table(data, "web"), http),
        monitoring=read_monitoring(r, r.table(data, "monitoring"), home, http.enabled),
        alerts=read_alerts(r, r.table(data, "alerts"), targets),
    )


def load_partner(path: Path, home: Path, settings: Settings, problems: list[ConfigProblem]) -> Partner | None:
    """Read one partner file; returns None (with problems appended) when it cannot be used."""
    display = f"partners/{path.name}"
    before = len(problems)
    data = _read_toml(path, display, problems)
    if data is None:
        return None
    r = _Reader(display, problems)
    r.unknown(data, {"id", "name", "enabled", "identifiers", "inbox", "mappings", "routes", "as2", "sftp",
                     "sftp_remote", "edi", "validation", "masking"})
    partner_id = r.value(data, "id", str, path.stem)
    if partner_id != path.stem:
        r.problem("id", f"must equal the file name {path.stem!r} (one file per partner, named by its id)")
    if not PARTNER_ID.match(partner_id):
        r.problem("id", "partner ids use letters, digits, '.', '_' and '-' only (1-64 characters)")

    identifiers: dict[str, tuple[str, ...]] = {}
    for fmt, values in r.table(data, "identifiers").items():
        if fmt not in ("edifact", "x12"):
            r.problem(f"identifiers.{fmt}", "must be edifact or x12")
        elif not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
            r.problem(f"identifiers.{fmt}", "must be a list of 'QUALIFIER:ID' or 'ID' strings")
        else:
            identifiers[fmt] = tuple(v.strip() for v in values)

    inbox = r.table(data, "inbox")
    r.unknown(inbox, {"enabled", "path"}, "inbox.")
    inbox_path = None
    if r.value(inbox, "enabled", bool, True, "inbox."):
        inbox_path = _resolve_path(home, r.value(inbox, "path", str, "", "inbox.") or str(settings.inbox.root / partner_id))

    mappings = r.table(data, "mappings")
    for key, value in mappings.items():
        if not isinstance(value, str):
            r.problem(f"mappings.{key}", "must be the name of a mapping file in mappings/")

    routes = read_routes(r, data, set(settings.targets))

    as2 = read_partner_as2(r, r.table(data, "as2"), home, settings.delivery.lease_seconds,
                           settings.as2.mdn_timeout)
    if as2 is not None and not settings.as2.enabled:
        r.problem("as2", "this partner uses AS2 but gateway.toml has no [as2] as2_id and identities")

    sftp = read_partner_sftp(r, r.table(data, "sftp"), partner_id, home)
    if sftp is not None and not settings.sftp.host_keys:
        r.problem("sftp", "this partner has an SFTP account but gateway.toml [sftp] host_keys is empty "
                  "(`gateway init` makes a host key)")
    sftp_remote = read_partner_sftp_remote(r, r.table(data, "sftp_remote"), home)

    edi = read_partner_edi(r, r.table(data, "edi"), r.table(data, "validation"))

    masking = read_partner_masking(r, r.table(data, "masking"))
    if len(problems) > before:
        return None
    return Partner(
        id=partner_id,
        name=r.value(data, "name", str, partner_id),
        file=display,
        enabled=r.value(data, "enabled", bool, True),
        identifiers=identifiers,
        inbox=inbox_path,
        mappings=dict(mappings),
        routes=routes,
        as2=as2,
        sftp=sftp,
        sftp_remote=sftp_remote,
        edi=edi,
        masking=masking,
    )


def load_deployment(home: Path, environ: dict[str, str] | None = None) -> Deployment:
    """Load a deployment for serving.

    Problems in gateway.toml or mappings/ raise ConfigError (the gateway cannot run safely).
    A broken partner file only disables that partner: its problems are kept in
    ``Deployment.problems`` so the others keep trading; ``gateway check`` still fails on them.
    """
    home = home.resolve()
    problems: list[ConfigProblem] = []
    settings = load_settings(home, problems, environ)
    mappings = MappingSet([])
    mapping_dir = home / "mappings"
    if mapping_dir.is_dir():
        try:
            mappings = load_mappings(mapping_dir)
        except ConfigError as exc:
            problems.extend(exc.problems)
    if problems:
        raise ConfigError(problems)

    partner_problems: list[ConfigProblem] = []
    partners: dict[str, Partner] = {}
    for path in sorted((home / "partners").glob("*.toml")):
        partner = load_partner(path, home, settings, partner_problems)
        if partner is not None:
            for fmt, names in partner.mappings.items():
                if mappings.get(names) is None:
                    partner_problems.append(ConfigProblem(partner.file, f"mappings.{fmt}", f"no mapping named {names!r} in mappings/"))
                    partner = None
                    break
        if partner is not None:
            partners[partner.id] = partner
    _check_shared_identifiers(partners, partner_problems)
    deployment = Deployment(home=home, settings=settings, partners=partners, mappings=mappings,
                            problems=tuple(partner_problems))
    for partner in list(partners.values()):
        if partner.edi.ack_channel and deployment.reply_target(partner) is None:
            partner_problems.append(ConfigProblem(
                partner.file, "edi.ack_channel", f"{partner.edi.ack_channel!r} is not one of this partner's "
                f"channels ({', '.join(deployment.partner_channels(partner)) or 'none configured'})"))
            del partners[partner.id]
    return replace(deployment, problems=tuple(partner_problems))


def _check_shared_identifiers(partners: dict[str, Partner], problems: list[ConfigProblem]) -> None:
    """Two partners claiming one sender id, SFTP user or AS2 id would let one impersonate the other: flag it."""
    seen: dict[tuple[str, str], str] = {}
    for partner in partners.values():
        claims = [(fmt, ident.rpartition(":")[2], f"identifiers.{fmt}", f"{ident!r} is also an identifier of partner")
                  for fmt, idents in partner.identifiers.items() for ident in idents]
        if partner.sftp is not None:
            name = partner.sftp.username
            claims.append(("sftp", name, "sftp.username", f"{name!r} is also the SFTP user of partner"))
        if partner.as2 is not None:
            claims.append(("as2", partner.as2.as2_id, "as2.id", f"{partner.as2.as2_id!r} is also the AS2 id of partner"))
        for kind, value, key, text in claims:
            other = seen.setdefault((kind, value), partner.id)
            if other != partner.id:
                problems.append(ConfigProblem(partner.file, key, f"{text} {other}"))


def check_deployment(home: Path, environ: dict[str, str] | None = None) -> list[ConfigProblem]:
    """Every problem in a deployment, for ``gateway check`` (empty list = valid)."""
    try:
        deployment = load_deployment(home, environ)
    except ConfigError as exc:
        return list(exc.problems)
    problems = list(deployment.problems)
    if not deployment.partners and not problems:
        problems.append(ConfigProblem("partners/", "-", "no partner files: nothing can be received"))
    # Certificates in use that expired or expire soon fail the check before a partner's message does.
    return problems + certificate_warnings(deployment, dt.datetime.now(dt.UTC))

