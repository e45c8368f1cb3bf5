"""gateway.toml [monitoring] and [alerts]: /metrics, /health, /ready on the [http] listener, and the alert rules."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import _Reader

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Rule names, as written in [alerts] severity / disabled and stored in the alerts table's ``rule``.
SUCCESS_RATE, LATENCY, DEAD_LETTERS, CERTIFICATE, CAPACITY = "success-rate", "latency", "dead-letters", "certificate", "capacity"
RULES = (SUCCESS_RATE, LATENCY, DEAD_LETTERS, CERTIFICATE, CAPACITY)
SEVERITIES = ("critical", "high", "medium", "low")
DEFAULT_SEVERITY = {SUCCESS_RATE: "critical", LATENCY: "high", DEAD_LETTERS: "medium", CERTIFICATE: "low",
                    CAPACITY: "low"}
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


@dataclass(frozen=True)
class MonitoringSettings:
    """What the [http] listener serves for monitoring: /health and /ready always, /metrics when ``metrics``.

    ``listen`` opens the listener for these routes alone (otherwise it opens only for AS2, the
    API or the dashboard). /metrics names partners and volumes, so only ``metrics_allow``
    networks may read it (loopback by default: add your Prometheus server's address).
    """

    listen: bool = False
    metrics: bool = True
    metrics_allow: tuple[Network, ...] = LOOPBACK
    multiprocess_dir: Path = Path("var/metrics")   # [server] processes > 1: the processes' shared counters
    ready_timeout: float = 5.0                      # /ready: longer than this for the store to answer = not ready

    def may_read_metrics(self, address: str | None) -> bool:
        """May a client at ``address`` read /metrics?"""
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in network for network in self.metrics_allow)


@dataclass(frozen=True)
class AlertSettings:
    """The alert rules' thresholds, evaluated every ``interval_seconds`` by the node holding the schedules."""

    enabled: bool = True
    interval_seconds: float = 60.0
    webhook: str = ""                   # a rest target of gateway.toml; each change is POSTed there, signed
    webhook_attempts: int = 3           # tries per evaluation round before the next round tries again
    window_minutes: float = 15.0        # success rate and latency look at this recent window
    success_rate: float = 95.0          # percent of a partner's messages that neither failed nor went dead
    min_messages: int = 10              # fewer messages in the window: no success-rate verdict
    latency_factor: float = 2.0         # window P95 above this many times the baseline P95
    latency_baseline_hours: float = 24.0
    min_deliveries: int = 10            # fewer deliveries in the window or the baseline: no latency verdict
    certificate_days: float = 30.0
    capacity: int = 10000               # deliveries waiting (queued + retrying) per target
    severity: dict[str, str] = field(default_factory=lambda: dict(DEFAULT_SEVERITY))
    disabled: tuple[str, ...] = ()

    def active(self, rule: str) -> bool:
        return self.enabled and rule not in self.disabled


def _networks(r: "_Reader", data: dict, key: str, prefix: str, default: tuple[Network, ...]) -> tuple[Network, ...]:
    if key not in data:
        return default
    values = data[key]
    if not isinstance(values, list):
        r.problem(prefix + key, 'must be a list of networks like ["127.0.0.1/32", "10.0.0.0/8"]')
        return default
    networks: list[Network] = []
    for index, value in enumerate(values):
        try:
            networks.append(ipaddress.ip_network(value, strict=False))
        except (TypeError, ValueError):
            r.problem(f"{prefix}{key}[{index}]", f"not an IP network: {value!r}")
    return tuple(networks)


def read_monitoring(r: "_Reader", data: dict, home: Path, http_enabled: bool) -> MonitoringSettings:
    """gateway.toml [monitoring]: ``listen``, ``metrics``, ``metrics_allow``, ``multiprocess_dir``, ``ready_timeout``."""
    p = "monitoring."
    r.unknown(data, {"listen", "metrics", "metrics_allow", "multiprocess_dir", "ready_timeout"}, p)
    listen = r.value(data, "listen", bool, False, p)
    if listen and not http_enabled:
        r.problem(p + "listen", "monitoring is served on the [http] listener, which is disabled (http.enabled)")
    directory = Path(r.value(data, "multiprocess_dir", str, "var/metrics", p)).expanduser()
    return MonitoringSettings(
        listen=listen,
        metrics=r.value(data, "metrics", bool, True, p),
        metrics_allow=_networks(r, data, "metrics_allow", p, LOOPBACK),
        multiprocess_dir=directory if directory.is_absolute() else home / directory,
        ready_timeout=r.value(data, "ready_timeout", float, 5.0, p, minimum=0.1),
    )


def read_alerts(r: "_Reader", data: dict, targets: dict) -> AlertSettings:
    """gateway.toml [alerts]: thresholds of the rules, their severities, the webhook target."""
    p = "alerts."
    r.unknown(data, {"enabled", "interval_seconds", "webhook", "webhook_attempts", "window_minutes", "success_rate",
                     "min_messages", "latency_factor", "latency_baseline_hours", "min_deliveries",
                     "certificate_days", "capacity", "severity", "disabled"}, p)
    webhook = r.value(data, "webhook", str, "", p)
    if webhook and (webhook not in targets or targets[webhook].type != "rest"):
        r.problem(p + "webhook", f"must name a rest target of gateway.toml [targets], got {webhook!r}")
        webhook = ""
    severity = dict(DEFAULT_SEVERITY)
    for rule, value in r.table(data, "severity", p).items():
        if rule not in RULES:
            r.problem(f"{p}severity.{rule}", f"unknown rule (one of {', '.join(RULES)})")
        elif value not in SEVERITIES:
            r.problem(f"{p}severity.{rule}", f"must be one of {', '.join(SEVERITIES)}, got {value!r}")
        else:
            severity[rule] = value
    disabled = r.value(data, "disabled", list, [], p)
    for rule in disabled:
        if rule not in RULES:
            r.problem(p + "disabled", f"unknown rule {rule!r} (one of {', '.join(RULES)})")
    success_rate = r.value(data, "success_rate", float, 95.0, p, minimum=0)
    if success_rate > 100:
        r.problem(p + "success_rate", f"is a percentage: at most 100, got {success_rate!r}")
        success_rate = 95.0
    return AlertSettings(
        enabled=r.value(data, "enabled", bool, True, p),
        interval_seconds=r.value(data, "interval_seconds", float, 60.0, p, minimum=1),
        webhook=webhook,
        webhook_attempts=r.value(data, "webhook_attempts", int, 3, p, minimum=1),
        window_minutes=r.value(data, "window_minutes", float, 15.0, p, minimum=1),
        success_rate=success_rate,
        min_messages=r.value(data, "min_messages", int, 10, p, minimum=1),
        latency_factor=r.value(data, "latency_factor", float, 2.0, p, minimum=1),
        latency_baseline_hours=r.value(data, "latency_baseline_hours", float, 24.0, p, minimum=1),
        min_deliveries=r.value(data, "min_deliveries", int, 10, p, minimum=1),
        certificate_days=r.value(data, "certificate_days", float, 30.0, p, minimum=0),
        capacity=r.value(data, "capacity", int, 10000, p, minimum=1),
        severity=severity,
        disabled=tuple(rule for rule in disabled if rule in RULES),
    )
